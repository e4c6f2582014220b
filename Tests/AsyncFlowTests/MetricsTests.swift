import Foundation
import MetricsTestKit
import Testing

@testable import AsyncFlow

extension Serial {
    @Suite("Metrics (swift-metrics)")
    struct MetricsTests {
        @Test(
            "per-layer counters total the report's counts; gauges and timers per layer after the source",
            arguments: PipelineOptions.Backend.allCases)
        func countersMatchTheReport(backend: PipelineOptions.Backend) async throws {
            let metrics = TestMetrics()
            var options = PipelineOptions(backend: backend)
            options.metrics = PipelineMetrics(
                label: "flow", dimensions: [("pipeline", "test")], interval: .milliseconds(5), factory: metrics)
            let thrown = Locked<Set<Int>>([])
            let report = try await pipeline(
                Layer(0..<20_000, name: "numbers"),
                Layer(workers: 2, name: "double", onError: .skip) { (x: Int) throws -> Int in
                    if x % 100 == 0 { throw TestError.bad(x) }
                    return x &* 2
                },
                Layer(concurrency: 4, name: "check", onError: .retry(attempts: 1)) { (x: Int) async throws -> Int in
                    // the first call for each of 40 items throws, the retry passes
                    if x % 1_000 == 2 && thrown.withLock({ $0.insert(x).inserted }) { throw TestError.bad(x) }
                    return x
                },
                Layer(name: "sum") { (_: Int) in }, options: options)
            #expect(report.layers[1].skipped == 200 && report.layers[2].retried == 40)
            for layer in report.layers {
                let dims = [("pipeline", "test"), ("layer", layer.name)]
                let expected = [
                    ("received", layer.received), ("emitted", layer.emitted), ("failed", layer.failed),
                    ("skipped", layer.skipped), ("retried", layer.retried), ("dropped", layer.dropped),
                ]
                for (event, count) in expected {
                    let total = metrics.counterTotal(label: "flow_items", dimensions: dims + [("event", event)])
                    #expect(total == Int64(count), "\(layer.name) \(event): metrics \(total), report \(count)")
                }
                if layer.name == "numbers" {
                    #expect(throws: (any Error).self) { try metrics.expectGauge("flow_queue_depth", dims) }
                    #expect(throws: (any Error).self) { try metrics.expectTimer("flow_item_duration", dims) }
                } else {
                    let depth = try metrics.expectGauge("flow_queue_depth", dims)
                    #expect(!depth.values.isEmpty && depth.values.allSatisfy { $0 >= 0 })
                    let duration = try metrics.expectTimer("flow_item_duration", dims)
                    #expect(!duration.values.isEmpty && duration.values.allSatisfy { $0 >= 0 })
                }
            }
        }

        @Test("a failed run's metrics also total its report", arguments: PipelineOptions.Backend.allCases)
        func failedRun(backend: PipelineOptions.Backend) async throws {
            let metrics = TestMetrics()
            let box = ReportBox()
            var options = box.options(backend)
            options.metrics = PipelineMetrics(factory: metrics)
            await #expect(throws: TestError.bad(5_000)) {
                _ = try await pipeline(
                    Layer(0..<100_000),
                    Layer(workers: 2) { (x: Int) throws -> Int in
                        if x == 5_000 { throw TestError.bad(x) }
                        return x
                    }, Layer { (_: Int) in }, options: options)
            }
            let report = try #require(box.report.withLock { $0 })
            for layer in report.layers {
                for (event, count) in [
                    ("received", layer.received), ("failed", layer.failed), ("dropped", layer.dropped),
                ] {
                    let total = metrics.counterTotal(
                        label: "asyncflow_items", dimensions: [("layer", layer.name), ("event", event)])
                    #expect(total == Int64(count), "\(layer.name) \(event)")
                }
            }
            #expect(report.failed == 1)
        }

        @Test("the sampler publishes while the run goes on, not only at the end")
        func sampledDuringTheRun() async throws {
            let metrics = TestMetrics()
            var options = PipelineOptions()
            options.metrics = PipelineMetrics(interval: .milliseconds(2), factory: metrics)
            options.batchSize = 1  // counts then move item by item, not in one batch of 100
            _ = try await pipeline(
                Layer(0..<100), Layer(workers: 1) { (x: Int) in x },
                Layer(name: "slow") { (_: Int) async in try? await Task.sleep(for: .milliseconds(2)) }, options: options
            )
            // 100 items x 2 ms: the run lasts 200 ms or more, so a 2 ms sampler publishes many times
            let depth = try metrics.expectGauge("asyncflow_queue_depth", [("layer", "slow")])
            #expect(depth.values.count >= 3, "\(depth.values.count) samples")
            let received = metrics.counters(
                label: "asyncflow_items", dimensions: [("layer", "slow"), ("event", "received")])
            #expect(received.first.map { $0.values.count >= 2 } == true)  // increments in more than one publish
        }
    }
}
