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
    /// The default order; latency, the longest, runs last. (The ring's single-item figures depend on what
    /// ran before them on a small VM: see the README's Performance notes.)
    static let all = ["throughput", "scaling", "coexist", "ring", "memory", "idle", "latency"]

    // MARK: throughput

    static func throughput(_ s: Settings, _ progress: Progress) async throws -> ScenarioResult {
        let n = s.quick ? 200_000 : 10_000_000
        let nPerItem = s.quick ? 20_000 : 200_000  // the per-item baselines are ~100x slower
        let w = s.workers
        typealias Impl = (name: String, items: Int, run: @Sendable (Int, Sum) async throws -> Void)
        var impls: [Impl] = [
            ("AsyncFlow native", n, { n, sum in try await flowSum(n, w, .native, sum) }),
            ("AsyncFlow .swift backend", n, { n, sum in try await flowSum(n, w, .swift, sum) }),
            ("native, async collector", n, { n, sum in try await flowSum(n, w, .native, sum, collector: .async) }),
            (".swift, async collector", n, { n, sum in try await flowSum(n, w, .swift, sum, collector: .async) }),
            (
                "native, batch collector (async, batchesOf 1024)", n,
                { n, sum in try await flowSum(n, w, .native, sum, collector: .batches) }
            ),
            (
                ".swift, batch collector (async, batchesOf 1024)", n,
                { n, sum in try await flowSum(n, w, .swift, sum, collector: .batches) }
            ),
            (
                "native, async layer (concurrency \(2 * w))", n,
                { n, sum in try await flowSum(n, w, .native, sum, asyncMiddle: true) }
            ),
            (
                ".swift, async layer (concurrency \(2 * w))", n,
                { n, sum in try await flowSum(n, w, .swift, sum, asyncMiddle: true) }
            ),
            ("one sync call per item (no pipeline, 1 thread)", n, { n, sum in CallFloor.syncCalls(n, sum) }),
            ("one async call per item (no pipeline, 1 thread)", n, { n, sum in await CallFloor.asyncCalls(n, sum) }),
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
        if w != 1 {  // the same pipeline with one worker, so every run shows both (issue 11's goal 1)
            let one: [Impl] = [
                ("native, 1 worker", n, { @Sendable n, sum in try await flowSum(n, 1, .native, sum) }),
                (".swift, 1 worker", n, { @Sendable n, sum in try await flowSum(n, 1, .swift, sum) }),
            ]
            impls.insert(contentsOf: one, at: 2)
        }
        // round robin: run k of every row, then run k + 1, so a slow phase of the machine (these VMs
        // have them) falls on every row alike rather than on whichever rows ran during it
        var rates = impls.map { _ in [Double]() }
        for _ in 0..<s.runs {
            for (i, impl) in impls.enumerated() {
                let sum = Sum()
                let t = try await seconds { try await impl.run(impl.items, sum) }
                guard sum.value == impl.items &* (impl.items - 1) else {
                    throw BenchError(description: "\(impl.name): wrong sum \(sum.value)")
                }
                rates[i].append(Double(impl.items) / t)
                progress.step("throughput: \(impl.name)")
            }
        }
        var rows = zip(impls, rates).map { impl, rates in
            Row(name: impl.name, unit: "items/s", stat: Stat(rates), note: "\(impl.items) items")
        }
        let native = rows[0].stat.median
        for i in rows.indices { rows[i].ratio = rows[i].stat.median / native }
        return ScenarioResult(
            name: "throughput", title: "gen → \(w) workers (x * 2) → sum collector",
            rows: rows,
            notes: [
                "ratio: the row's median over native's (below 1: slower than native)",
                "runs taken in turns: the first run of every row, then the second, and so on",
                "one sync / async call per item: the collector's closure (sum.add) called in a plain loop, out of"
                    + " sight of the optimiser as a stage's closure is: what a per-item collector costs at least",
            ])
    }

    /// How flowSum's collector takes its items.
    enum Collector {
        /// A sync closure per item.
        case sync
        /// An async closure per item.
        case async
        /// An async closure per batch of 1,024 (Layer(batchesOf:)).
        case batches
    }

    /// gen → x * 2 → sum: the middle layer CPU (`w` workers) or async (`2w` tasks), the collector sync,
    /// async or batched; the async closures never suspend, so these rows show what an async call costs.
    /// Never inlined, so that every row runs the same closures: inlined into each row's closure, it gave
    /// each row its own copy of them, and the optimiser put some copies behind one more forwarding call
    /// per item than others (the `.swift` 1-worker row called `sum.add` in one call, the other rows in
    /// two: ~10 % of their collector's time).
    @inline(never) static func flowSum(
        _ n: Int, _ w: Int, _ backend: PipelineOptions.Backend, _ sum: Sum, asyncMiddle: Bool = false,
        collector kind: Collector = .sync
    ) async throws {
        let middle =
            asyncMiddle
            ? Layer(concurrency: 2 * w) { (x: Int) async in x &* 2 } : Layer(workers: w) { (x: Int) in x &* 2 }
        let collector =
            switch kind {
            case .sync: Layer { (x: Int) in sum.add(x) }
            case .async: Layer { (x: Int) async in sum.add(x) }
            case .batches: Layer(batchesOf: 1024) { (xs: [Int]) async in for x in xs { sum.add(x) } }
            }
        _ = try await pipeline(Layer(0..<n), middle, collector, options: PipelineOptions(backend: backend))
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
}
