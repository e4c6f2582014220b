// Scenarios.swift — what flow-bench measures. Every row of a scenario is measured in the same process
// run, each figure the median of `runs` runs (min and max kept), and every run checks its result.
import AsyncFlow
import CFlow
import CFlowBench
import Foundation
import Histogram
import Synchronization

struct Settings {
    let quick: Bool
    let runs: Int
    let workers: Int
}

/// One measured row: `stat` in `unit`; `extra` holds further figures (percentiles, efficiency...).
struct Row: Codable {
    let name: String
    let unit: String
    let stat: Stat
    var ratio: Double? = nil
    var extra: [String: Double] = [:]
    var note: String? = nil
}

struct ScenarioResult: Codable {
    let name: String
    let title: String
    var rows: [Row]
    var notes: [String]
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
}

/// A serial collector's running total (called from one task at a time, so no lock is needed).
final class Sum: @unchecked Sendable {
    var value = 0
    func add(_ x: Int) { value &+= x }
}

enum Scenarios {
    /// The default order; latency, the longest, runs last. (The ring's figures are bimodal on the 2-vCPU
    /// VMs, ~16 or ~46 ns per item 1P1C, whatever ran before them: see the README's Performance notes.)
    static let all = ["throughput", "scaling", "ring", "memory", "idle", "latency"]

    // MARK: throughput

    static func throughput(_ s: Settings, _ progress: Progress) async throws -> ScenarioResult {
        let n = s.quick ? 200_000 : 10_000_000
        let nPerItem = s.quick ? 20_000 : 200_000  // the per-item baselines are ~100x slower
        let w = s.workers
        typealias Impl = (name: String, items: Int, run: @Sendable (Int, Sum) async throws -> Void)
        let impls: [Impl] = [
            ("AsyncFlow native", n, { n, sum in try await flowSum(n, w, .native, sum) }),
            ("AsyncFlow .swift backend", n, { n, sum in try await flowSum(n, w, .swift, sum) }),
            (
                "AsyncStream per item", nPerItem,
                { n, sum in
                    await Baselines.asyncStream(items: n, workers: w, work: { $0 &* 2 }, collect: sum.add)
                }
            ),
            (
                "AsyncChannel per item", nPerItem,
                { n, sum in
                    await Baselines.asyncChannel(items: n, workers: w, work: { $0 &* 2 }, collect: sum.add)
                }
            ),
            (
                "TaskGroup per item (2W in flight)", nPerItem,
                { n, sum in
                    await Baselines.taskGroup(items: n, workers: w, work: { $0 &* 2 }, collect: sum.add)
                }
            ),
        ]
        var rows: [Row] = []
        for impl in impls {
            var rates: [Double] = []
            for _ in 0..<s.runs {
                let sum = Sum()
                let t = try await seconds { try await impl.run(impl.items, sum) }
                guard sum.value == impl.items &* (impl.items - 1) else {
                    throw BenchError(description: "\(impl.name): wrong sum \(sum.value)")
                }
                rates.append(Double(impl.items) / t)
                progress.step("throughput: \(impl.name)")
            }
            rows.append(Row(name: impl.name, unit: "items/s", stat: Stat(rates), note: "\(impl.items) items"))
        }
        let native = rows[0].stat.median
        for i in rows.indices { rows[i].ratio = rows[i].stat.median / native }
        return ScenarioResult(
            name: "throughput", title: "gen → \(w) workers (x * 2) → sum collector",
            rows: rows, notes: ["ratio: the row's median over native's (below 1: slower than native)"])
    }

    static func flowSum(_ n: Int, _ w: Int, _ backend: PipelineOptions.Backend, _ sum: Sum) async throws {
        _ = try await pipeline(
            Layer(0..<n), Layer(workers: w) { (x: Int) in x &* 2 }, Layer { (x: Int) in sum.add(x) },
            options: PipelineOptions(backend: backend))
    }

    // MARK: scaling

    static func scaling(_ s: Settings, _ progress: Progress) async throws -> ScenarioResult {
        var rows: [Row] = []
        let cpus = allowedCPUs()
        for ns in [1_000.0, 10_000.0] {
            let work = Work.calibrated(nanoseconds: ns)
            let items = Int((s.quick ? 0.05 : 0.4) * 1e9 / ns)
            say("  calibrated \(Int(ns)) ns of work: \(work.iterations) iterations; \(items) items per run")
            for backend in PipelineOptions.Backend.allCases {
                var oneWorker = 0.0
                for w in 1...cpus {
                    var rates: [Double] = []
                    for _ in 0..<s.runs {
                        let sum = Sum()
                        let t = try await seconds {
                            _ = try await pipeline(
                                Layer(0..<items), Layer(workers: w) { (x: Int) in work.run(x) & 1 },
                                Layer { (x: Int) in sum.add(x) }, options: PipelineOptions(backend: backend))
                        }
                        rates.append(Double(items) / t)
                        progress.step("scaling: \(backend) \(Int(ns / 1000)) µs W=\(w)")
                    }
                    let stat = Stat(rates)
                    if w == 1 { oneWorker = stat.median }
                    rows.append(
                        Row(
                            name: "\(backend) \(Int(ns / 1000)) µs/item W=\(w)", unit: "items/s", stat: stat,
                            extra: [
                                "efficiency": stat.median / (Double(w) * oneWorker), "workers": Double(w),
                                "work_ns": ns,
                            ]))
                }
            }
        }
        return ScenarioResult(
            name: "scaling", title: "calibrated CPU work per item, W = 1 … \(cpus) workers", rows: rows,
            notes: ["efficiency: items/s at W over W × items/s at W = 1 (same backend and work)"])
    }

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

    // MARK: memory

    static func memory(_ s: Settings, _ progress: Progress) async throws -> ScenarioResult {
        let sizes = s.quick ? [10_000, 100_000] : [100_000, 10_000_000]
        let work = Work.calibrated(nanoseconds: 100)
        var rows: [Row] = []
        guard resetPeakRSS() else {
            throw BenchError(description: "memory: cannot reset the peak RSS (/proc/self/clear_refs)")
        }
        for backend in PipelineOptions.Backend.allCases {
            for n in sizes {
                var peaks: [Double] = []
                for _ in 0..<s.runs {
                    _ = resetPeakRSS()
                    let sum = Sum()
                    _ = try await pipeline(
                        Layer(0..<n), Layer(workers: s.workers) { (x: Int) in work.run(x) & 1 },
                        Layer { (x: Int) in sum.add(x) }, options: PipelineOptions(backend: backend))
                    peaks.append(Double(procStatusKiB("VmHWM")) / 1024)
                    progress.step("memory: \(backend) \(n)")
                }
                rows.append(Row(name: "\(backend) \(n) items", unit: "MiB peak RSS", stat: Stat(peaks)))
            }
            let small = rows[rows.count - 2].stat.median
            let large = rows[rows.count - 1].stat.median
            rows[rows.count - 1].extra["growth_mib"] = large - small
        }
        return ScenarioResult(
            name: "memory", title: "fast generator, slow middle layer (~100 ns/item): peak RSS of the process",
            rows: rows, notes: ["peak RSS (VmHWM) reset before each run; growth_mib: the larger size minus the smaller"]
        )
    }

    // MARK: idle

    static func idle(_ s: Settings, _ progress: Progress) async throws -> ScenarioResult {
        let window = s.quick ? 0.25 : 1.0
        var rows: [Row] = []
        for backend in PipelineOptions.Backend.allCases {
            var shares: [Double] = []
            for _ in 0..<s.runs {
                let (stream, sink) = AsyncStream<Int>.makeStream()
                let burnt = Mutex<Double>(0)
                async let fed: Void = {
                    for i in 0..<1_000 { sink.yield(i) }
                    try? await Task.sleep(for: .milliseconds(100))  // spin budgets run out
                    let before = cpuSeconds()
                    try? await Task.sleep(for: .seconds(window))
                    burnt.withLock { $0 = cpuSeconds() - before }
                    sink.finish()
                }()
                let sum = Sum()
                _ = try await pipeline(
                    Layer(stream), Layer(workers: s.workers) { (x: Int) in x }, Layer { (x: Int) in sum.add(x) },
                    options: PipelineOptions(backend: backend))
                await fed
                shares.append(burnt.withLock { $0 } / window * 100)
                progress.step("idle: \(backend)")
            }
            rows.append(Row(name: "\(backend), \(s.workers) workers waiting", unit: "% of one CPU", stat: Stat(shares)))
        }
        return ScenarioResult(
            name: "idle", title: "CPU burned while the source produces nothing for \(window) s", rows: rows,
            notes: ["getrusage over the idle window, starting 100 ms after the last item (spin budget: FLOW_SPIN_NS)"])
    }

    // MARK: ring

    static func ring(_ s: Settings, _ progress: Progress) async throws -> ScenarioResult {
        let items: UInt64 = s.quick ? 200_000 : 10_000_000
        let cases: [(String, flow_queue_kind, UInt32, Int32)] = [
            ("ring 1P1C single", FLOW_QUEUE_RING, 1, 0), ("ring 1P1C batch 64", FLOW_QUEUE_RING, 1, 1),
            ("ring 2P2C single", FLOW_QUEUE_RING, 2, 0), ("ring 2P2C batch 64", FLOW_QUEUE_RING, 2, 1),
            ("liburcu 1P1C single", FLOW_QUEUE_URCU, 1, 0), ("liburcu 1P1C batch 64", FLOW_QUEUE_URCU, 1, 1),
            ("liburcu 2P2C single", FLOW_QUEUE_URCU, 2, 0),
        ]
        var rows: [Row] = []
        for (name, kind, pairs, batch) in cases where flow_ring_kind_available(kind) != 0 {
            let urcuItems = kind == FLOW_QUEUE_URCU ? items / 10 : items  // a malloc per item: slower
            var ns: [Double] = []
            for _ in 0..<s.runs {
                ns.append(flow_bench_ring(kind, pairs, batch, urcuItems))
                progress.step("ring: \(name)")
            }
            rows.append(Row(name: name, unit: "ns/item", stat: Stat(ns), note: "\(urcuItems) items"))
        }
        var trips: [Double] = []
        let n: UInt64 = s.quick ? 5_000 : 50_000
        for _ in 0..<s.runs {
            trips.append(flow_bench_park_wake(n) / 1000)
            progress.step("ring: park/wake")
        }
        rows.append(Row(name: "park/wake round trip (spin 0)", unit: "µs", stat: Stat(trips), note: "\(n) trips"))
        var notes = [
            "capacity 1024, 8-byte items, blocking calls" + (flow_bench_pinned() != 0 ? ", threads pinned" : "")
        ]
        if flow_ring_kind_available(FLOW_QUEUE_URCU) == 0 { notes.append("liburcu rows: build with --traits URCU") }
        return ScenarioResult(name: "ring", title: "the CFlow ring alone", rows: rows, notes: notes)
    }
}
