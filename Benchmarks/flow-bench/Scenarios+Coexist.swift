// Scenarios+Coexist.swift — what a CPU-heavy pipeline leaves to the rest of an app. While the pipeline
// runs, a task on Swift's cooperative pool (a server's request handler, a timer) sleeps 1 ms at a time
// and records how late it wakes; the pipeline's items/s with that probe beside it is set against the
// same pipeline alone.
import AsyncFlow
import CFlow
import Foundation
import Histogram
import Synchronization

extension Scenarios {
    /// A cooperative task that sleeps 1 ms at a time until stopped and records each wake-up's lateness.
    final class LatenessProbe: @unchecked Sendable {
        // @unchecked: `histogram` is written by the probe task only and read after it has ended.
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000)
        let stopped = Atomic<Bool>(false)

        func run() async {
            while !stopped.load(ordering: .relaxed) {
                let due = flow_now_ns() + 1_000_000
                try? await Task.sleep(for: .milliseconds(1))
                let now = flow_now_ns()
                _ = histogram.record(now > due ? now - due : 0)
            }
        }
    }

    /// The probe's figures over several runs.
    struct LatenessRuns {
        var p50: [Double] = []
        var p99: [Double] = []
        var max: [Double] = []
        var wakes = 0

        /// Runs `body` with a probe beside it and records the probe's lateness; returns what `body` returns.
        mutating func probing<T>(_ body: () async throws -> T) async throws -> T {
            let probe = LatenessProbe()
            let task = Task.detached { await probe.run() }
            let result: Result<T, any Error>
            do { result = .success(try await body()) } catch { result = .failure(error) }
            probe.stopped.store(true, ordering: .relaxed)
            await task.value
            p50.append(Double(probe.histogram.valueAtPercentile(50)) / 1000)
            p99.append(Double(probe.histogram.valueAtPercentile(99)) / 1000)
            max.append(Double(probe.histogram.max) / 1000)
            wakes += Int(probe.histogram.totalCount)
            return try result.get()
        }

        var extra: [String: Double] {
            ["p50_us": Stat(p50).median, "p99_us": Stat(p99).median, "max_us": Stat(max).median]
        }

        func note(runs: Int) -> String {
            "p50 \(Report.format(Stat(p50).median, unit: "µs")) µs, max \(Report.format(Stat(max).median, unit: "µs")) µs; "
                + "\(wakes / runs) wake-ups a run"
        }
    }

    static func coexist(_ s: Settings, _ progress: Progress) async throws -> ScenarioResult {
        let work = Work.calibrated(nanoseconds: 10_000)
        let items = s.quick ? 20_000 : 200_000  // 10 µs each: ~1 s on 2 workers
        let w = s.workers
        func flow(_ backend: PipelineOptions.Backend, niceness: Int? = nil, slice: Int? = nil)
            -> @Sendable (Sum) async throws -> Void
        {
            var options = PipelineOptions(backend: backend)
            options.niceness = niceness
            options.sliceNanoseconds = slice
            let chosen = options
            return { sum in
                _ = try await pipeline(
                    Layer(0..<items), Layer(workers: w) { (x: Int) in work.run(x) & 1 },
                    Layer { (x: Int) in sum.add(x | 2) }, options: chosen)
            }
        }
        let impls: [(name: String, run: @Sendable (Sum) async throws -> Void)] = [
            ("AsyncFlow native", flow(.native)),
            ("AsyncFlow native, FLOW_NICE=0", flow(.native, niceness: 0)),
            ("AsyncFlow native, FLOW_SLICE_NS=0 (the kernel's slice)", flow(.native, slice: 0)),
            ("AsyncFlow .swift backend", flow(.swift)),
            (
                "TaskGroup per item (2W in flight)",
                { sum in
                    await Baselines.taskGroup(
                        items: items, workers: w, work: { work.run($0) & 1 }, collect: { sum.add($0 | 2) })
                }
            ),
        ]
        // The floor: the probe with no pipeline beside it, for about as long as a pipeline's run, so
        // that a phase in which the machine itself wakes sleepers late shows as such.
        var floor = LatenessRuns()
        for _ in 0..<s.runs {
            try await floor.probing { try await Task.sleep(for: .milliseconds(s.quick ? 100 : 1000)) }
            progress.step("coexist: the probe alone")
        }
        var rows = [
            Row(
                name: "no pipeline (the probe alone)", unit: "µs p99 late", stat: Stat(floor.p99),
                extra: floor.extra, note: floor.note(runs: s.runs))
        ]
        for impl in impls {
            var solo: [Double] = []
            var beside: [Double] = []
            var lateness = LatenessRuns()
            for _ in 0..<s.runs {
                solo.append(Double(items) / (try await timedRun(impl.name, items, impl.run)))
                beside.append(
                    Double(items) / (try await lateness.probing { try await timedRun(impl.name, items, impl.run) }))
                progress.step("coexist: \(impl.name)")
            }
            let kept = Stat(beside).median / Stat(solo).median
            rows.append(
                Row(
                    name: impl.name, unit: "µs p99 late", stat: Stat(lateness.p99),
                    extra: lateness.extra.merging(
                        ["items_per_s": Stat(beside).median, "solo_items_per_s": Stat(solo).median, "kept": kept],
                        uniquingKeysWith: { a, _ in a }),
                    note:
                        "\(lateness.note(runs: s.runs)); \(Report.format(Stat(beside).median, unit: "items/s")) items/s "
                        + "beside the probe, \(Int((kept * 100).rounded())) % of alone"))
        }
        // The other side of a nice value: a batch job's share of CPUs that other busy threads want too.
        for (name, run) in [("native", flow(.native)), ("native, FLOW_NICE=0", flow(.native, niceness: 0))] {
            var kept: [Double] = []
            for _ in 0..<s.runs {
                let solo = try await timedRun(name, items, run)
                let busy = BusyThreads(count: w)
                let beside = try await timedRun(name, items, run)
                busy.stop()
                kept.append(100 * solo / beside)
                progress.step("coexist: \(name) beside busy threads")
            }
            rows.append(
                Row(
                    name: "AsyncFlow \(name) beside \(w) busy threads", unit: "% of alone", stat: Stat(kept),
                    note: "the pipeline's items/s while \(w) threads of normal priority spin, over its items/s alone"))
        }
        return ScenarioResult(
            name: "coexist",
            title: "a cooperative task's 1 ms sleep, lateness while gen → \(w) workers (10 µs/item) → sum runs",
            rows: rows,
            notes: [
                "the probe is a detached task on Swift's cooperative pool; stat: its wake-ups' p99 lateness",
                "kept: the pipeline's items/s beside the probe over the same pipeline alone (median of each)",
            ])
    }

    /// Threads of normal priority that spin until stopped: other busy processes, as far as the OS's
    /// scheduler is concerned.
    final class BusyThreads: Sendable {
        let stopped = Atomic<Bool>(false)
        let running = Atomic<Int>(0)

        init(count: Int) {
            for _ in 0..<count {
                Thread.detachNewThread { [self] in
                    running.add(1, ordering: .relaxed)
                    while !stopped.load(ordering: .relaxed) { flow_spin_pause() }
                    running.subtract(1, ordering: .relaxed)
                }
            }
            while running.load(ordering: .relaxed) < count { usleep(100) }
        }

        func stop() {
            stopped.store(true, ordering: .relaxed)
            while running.load(ordering: .relaxed) > 0 { usleep(100) }
        }
    }

    /// Seconds one run of `run` takes; checks it collected every item.
    static func timedRun(_ name: String, _ items: Int, _ run: @Sendable (Sum) async throws -> Void) async throws
        -> Double
    {
        let sum = Sum()
        let t = try await seconds { try await run(sum) }
        guard sum.value >= 2 * items && sum.value <= 3 * items else {
            throw BenchError(description: "coexist \(name): collected \(sum.value), expected \(items) items")
        }
        return t
    }
}
