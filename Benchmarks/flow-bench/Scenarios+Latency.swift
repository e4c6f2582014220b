// Scenarios+Latency.swift — how long an item takes through a pipeline at a paced offered rate.
import AsyncFlow
import CFlow
import CFlowBench
import Foundation
import Histogram
import Synchronization

extension Scenarios {
    // MARK: latency

    /// An AsyncSequence that yields its items' creation times (ns), paced `interval` ns apart by
    /// busy-waiting (0: as fast as it can).
    struct PacedSource: AsyncSequence, Sendable {
        let count: Int
        let interval: Double

        struct AsyncIterator: AsyncIteratorProtocol {
            let count: Int
            let interval: Double
            var i = 0
            var start: UInt64 = 0

            mutating func next() async -> UInt64? {
                guard i < count else { return nil }
                if i == 0 { start = flow_now_ns() }
                let due = start + UInt64(Double(i) * interval)
                while flow_now_ns() < due {}
                i += 1
                return flow_now_ns()
            }
        }

        func makeAsyncIterator() -> AsyncIterator { AsyncIterator(count: count, interval: interval) }
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

    static func latencyRun(_ impl: String, items: Int, interval: Double, workers: Int) async throws -> Recorder {
        let rec = Recorder(skip: items / 10)
        let source = PacedSource(count: items, interval: interval)
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

    static func latency(_ s: Settings, _ progress: Progress) async throws -> ScenarioResult {
        let impls = ["AsyncFlow native", "AsyncFlow .swift backend", "AsyncStream per item"]
        let maxItems = s.quick ? 50_000 : 1_000_000
        var rows: [Row] = []
        for impl in impls {
            let fullSpeed = try await seconds {
                _ = try await latencyRun(impl, items: maxItems, interval: 0, workers: s.workers)
            }
            let maxRate = Double(maxItems) / fullSpeed
            let rate = maxRate / 2
            let items = min(Int(rate * (s.quick ? 0.1 : 1.0)), 5_000_000)
            var p50: [Double] = []
            var p99: [Double] = []
            var p999: [Double] = []
            var mx: [Double] = []
            for _ in 0..<s.runs {
                let rec = try await latencyRun(impl, items: items, interval: 1e9 / rate, workers: s.workers)
                p50.append(Double(rec.histogram.valueAtPercentile(50)) / 1000)
                p99.append(Double(rec.histogram.valueAtPercentile(99)) / 1000)
                p999.append(Double(rec.histogram.valueAtPercentile(99.9)) / 1000)
                mx.append(Double(rec.histogram.max) / 1000)
                progress.step("latency: \(impl)")
            }
            rows.append(
                Row(
                    name: impl, unit: "µs p99", stat: Stat(p99),
                    extra: [
                        "p50_us": Stat(p50).median, "p99_us": Stat(p99).median, "p99.9_us": Stat(p999).median,
                        "max_us": Stat(mx).median, "rate_items_per_s": rate, "max_rate_items_per_s": maxRate,
                    ],
                    note: "\(items) items at \(Int(rate)) items/s (50% of its max \(Int(maxRate)))"))
        }
        for i in rows.indices { rows[i].ratio = rows[i].stat.median / rows[0].stat.median }
        return ScenarioResult(
            name: "latency", title: "generation → collector latency at 50% of each row's own maximum rate",
            rows: rows,
            notes: [
                "source: an AsyncSequence paced by busy-waiting; \(s.workers) workers pass items on; the first 10% are warm-up",
                "ratio: the row's p99 over native's (above 1: slower than native)",
            ])
    }
}
