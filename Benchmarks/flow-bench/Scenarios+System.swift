// Scenarios+System.swift — what a pipeline costs the machine: memory, idle CPU, and the C ring alone.
import AsyncFlow
import CFlow
import CFlowBench
import Foundation
import Histogram
import Synchronization

extension Scenarios {
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
