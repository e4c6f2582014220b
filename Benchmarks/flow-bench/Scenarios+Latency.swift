// Scenarios+Latency.swift — how long an item takes through a pipeline at a paced offered rate.
import AsyncFlow
import CFlow
import CFlowBench
import Foundation
import Histogram
import Synchronization

extension Scenarios {
    // MARK: latency

    /// An AsyncSequence of `count` creation stamps (ns) offered at `rate` items/s (0: as fast as it can).
    /// Every item due by now is handed out at once; before one that is not due yet, the source sleeps
    /// until it is (Task.sleep), so it holds no CPU between items. At rates above what a sleep can
    /// resolve (~20k/s here) items therefore come in bursts of what fell due during one sleep.
    struct PacedSource: AsyncSequence, Sendable {
        let count: Int
        let rate: Double

        struct AsyncIterator: AsyncIteratorProtocol {
            let count: Int
            let rate: Double
            var i = 0
            var start: UInt64 = 0

            mutating func next() async -> UInt64? {
                guard i < count else { return nil }
                if rate > 0 {
                    if i == 0 { start = flow_now_ns() }
                    let due = start + UInt64(Double(i) * 1e9 / rate)
                    let now = flow_now_ns()
                    if due > now { try? await Task.sleep(for: .nanoseconds(Int64(due - now))) }
                }
                i += 1
                return flow_now_ns()
            }
        }

        func makeAsyncIterator() -> AsyncIterator { AsyncIterator(count: count, rate: rate) }
    }

    /// Records generation-to-collector latency; the first tenth of the items is warm-up, not recorded.
    final class Recorder: @unchecked Sendable {
        // @unchecked: only the (serial) collector calls record.
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000)
        var seen = 0
        let skip: Int
        init(skip: Int) { self.skip = skip }
        func record(_ created: UInt64) {
            seen += 1
            if seen > skip { _ = histogram.record(flow_now_ns() - created) }
        }
    }

    static func latencyRun(_ impl: String, items: Int, rate: Double, workers: Int) async throws -> Recorder {
        let rec = Recorder(skip: items / 10)
        let source = PacedSource(count: items, rate: rate)
        switch impl {
        case "AsyncStream per item":
            let (stream, sink) = AsyncStream<UInt64>.makeStream()
            async let fed: Void = {
                for await t in source { sink.yield(t) }
                sink.finish()
            }()
            // the same shape as the other rows: a worker stage, then the collector
            let (results, resultSink) = AsyncStream<UInt64>.makeStream()
            async let worked: Void = {
                for await t in stream { resultSink.yield(t) }
                resultSink.finish()
            }()
            for await t in results { rec.record(t) }
            await fed
            await worked
        default:
            let backend: PipelineOptions.Backend = impl.contains("native") ? .native : .swift
            _ = try await pipeline(
                Layer(source), Layer(workers: workers) { (t: UInt64) in t }, Layer { (t: UInt64) in rec.record(t) },
                options: PipelineOptions(backend: backend))
        }
        return rec
    }

    /// The offered rates every row is measured at, besides 50 % of the row's own maximum.
    static let offeredRates: [Double] = [10_000, 100_000, 1_000_000]

    static func latency(_ s: Settings, _ progress: Progress) async throws -> ScenarioResult {
        let impls = ["AsyncFlow native", "AsyncFlow .swift backend", "AsyncStream per item"]
        let maxItems = s.quick ? 50_000 : 1_000_000
        let duration = s.quick ? 0.05 : 0.5  // seconds per run at each rate
        var rows: [Row] = []
        var skipped: [String] = []
        for impl in impls {
            let fullSpeed = try await seconds {
                _ = try await latencyRun(impl, items: maxItems, rate: 0, workers: s.workers)
            }
            let maxRate = Double(maxItems) / fullSpeed
            for rate in offeredRates + [maxRate / 2] {
                let label = rate == maxRate / 2 ? "50 % of its max" : "\(Report.format(rate, unit: "items/s"))/s"
                guard rate <= 0.9 * maxRate else {  // beyond what it can sustain, queues only grow
                    skipped.append("\(impl) @ \(label) (max \(Report.format(maxRate, unit: "items/s"))/s)")
                    continue
                }
                let items = max(2_000, min(Int(rate * duration), 2_000_000))
                var p50: [Double] = []
                var p99: [Double] = []
                var p999: [Double] = []
                var mx: [Double] = []
                for _ in 0..<s.runs {
                    let rec = try await latencyRun(impl, items: items, rate: rate, workers: s.workers)
                    p50.append(Double(rec.histogram.valueAtPercentile(50)) / 1000)
                    p99.append(Double(rec.histogram.valueAtPercentile(99)) / 1000)
                    p999.append(Double(rec.histogram.valueAtPercentile(99.9)) / 1000)
                    mx.append(Double(rec.histogram.max) / 1000)
                    progress.step("latency: \(impl) @ \(label)")
                }
                rows.append(
                    Row(
                        name: "\(impl) @ \(label)", unit: "µs p99", stat: Stat(p99),
                        extra: [
                            "p50_us": Stat(p50).median, "p99_us": Stat(p99).median, "p99.9_us": Stat(p999).median,
                            "max_us": Stat(mx).median, "rate_items_per_s": rate, "max_rate_items_per_s": maxRate,
                        ],
                        note: "\(items) items at \(Int(rate)) items/s; its max \(Int(maxRate)) items/s"))
            }
        }
        return ScenarioResult(
            name: "latency", title: "generation → collector latency at the same offered rates for every row",
            rows: rows,
            notes: [
                "offered: 10 k, 100 k and 1 M items/s for every row, and 50 % of the row's own maximum",
                "source: an AsyncSequence that sleeps until the next item is due (no CPU held between items);"
                    + " \(s.workers) workers pass items on; the first 10 % are warm-up",
            ]
                + (skipped.isEmpty
                    ? [] : ["not run, above 90 % of the row's maximum: " + skipped.joined(separator: "; ")]))
    }
}
