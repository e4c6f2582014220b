import CFlowChecks
import Foundation
import Synchronization
import Testing

@testable import AsyncFlow

/// The native backend's scheduler (PoolExecutor): the run's other stages run on the pool's threads.
extension Serial {
    @Suite("Native scheduler")
    struct SchedulerTests {
        /// For each stage name noted, whether it ran on a pool thread, on one run or several.
        final class Places: Sendable {
            private let places = Locked([String: Set<Bool>]())
            var seen: [String: Set<Bool>] { places.withLock { $0 } }
            func note(_ stage: String) {
                let onPool = flow_check_on_pool_thread() != 0
                places.withLock { _ = $0[stage, default: []].insert(onPool) }
            }
            func clear() { places.withLock { $0 = [:] } }
        }

        /// 0..<count, noting the thread of every pull (a lazy `map` would not do: given a non-Sendable
        /// closure, the type checker picks the eager `map`, which runs in the caller before the pipeline).
        struct NotingRange: Sequence, Sendable {
            let count: Int
            let note: @Sendable (String) -> Void

            struct Iterator: IteratorProtocol {
                var position = 0
                let count: Int
                let note: @Sendable (String) -> Void
                mutating func next() -> Int? {
                    guard position < count else { return nil }
                    note("source")
                    defer { position += 1 }
                    return position
                }
            }
            func makeIterator() -> Iterator { Iterator(count: count, note: note) }
        }

        @Test(
            "the source and a sync collector run on the pool threads; an async layer on Swift's pool",
            arguments: [2, 1])
        func stagesOnPoolThreads(workers: Int) async throws {
            let places = Places()
            let note = places.note
            let n = 20_000
            let count = Counter()
            let report = try await pipeline(
                Layer(NotingRange(count: n, note: note)),
                Layer(workers: workers) { (x: Int) in x },
                Layer(concurrency: 3) { (x: Int) async in
                    note("async")
                    return x
                },
                Layer { (_: Int) in
                    note("collector")
                    count.add(1)
                })
            #expect(count.count == n && report.completed == n)
            // an async closure's layer awaits per item, which costs least on Swift's global executor
            #expect(places.seen == ["source": [true], "async": [false], "collector": [true]])
        }

        @Test("helper threads fill the CPUs the workers leave, one per other layer at most")
        func helperSizing() {
            let source = Layer(0..<10).erased(0)
            let collector = Layer { (_: Int) in }.erased(2)
            func helpers(workers: Int, cpus: Int) -> [Int] {
                let cpu = Layer(workers: workers) { (x: Int) in x }.erased(1)
                return schedulerHelpers([source, cpu, collector], workers: [1, workers, 1], cpus: cpus)
            }
            #expect(helpers(workers: 2, cpus: 2) == [0, 0, 0])
            #expect(helpers(workers: 1, cpus: 2) == [0, 1, 0])
            #expect(helpers(workers: 1, cpus: 8) == [0, 2, 0])  // two other layers: two helpers
            #expect(helpers(workers: 4, cpus: 2) == [0, 0, 0])
            let second = Layer(workers: 1) { (x: Int) in x }.erased(2)
            let two = [source, Layer(workers: 1) { (x: Int) in x }.erased(1), second, collector]
            #expect(schedulerHelpers(two, workers: [1, 1, 1, 1], cpus: 4) == [0, 2, 0, 0])  // first CPU layer's
            #expect(schedulerHelpers([source, collector], workers: [1, 1], cpus: 4) == [0, 0])  // no pool
        }

        @Test(
            "a run whose other stages all await per item (none on the pool threads) ends",
            .timeLimit(.minutes(1)))
        func noStageOnPool() async throws {
            let items = AsyncStream<Int> { continuation in
                for i in 0..<1_000 { continuation.yield(i) }
                continuation.finish()
            }
            let sum = Counter()
            let report = try await pipeline(
                Layer(merging: items, AsyncStream { $0.finish() }), Layer(workers: 2) { (x: Int) in x },
                Layer { (x: Int) async in sum.add(x) })
            #expect(sum.count == 999 * 1_000 / 2 && report.completed == 1_000)
        }

        /// NotingRange as an AsyncSequence that sleeps before every `every`-th element.
        struct NotingAsyncRange: AsyncSequence, Sendable {
            let range: NotingRange
            let every: Int

            struct AsyncIterator: AsyncIteratorProtocol {
                var range: NotingRange.Iterator
                let every: Int
                mutating func next() async -> Int? {
                    if range.position % every == 0 { try? await Task.sleep(for: .microseconds(50)) }
                    return range.next()
                }
            }
            func makeAsyncIterator() -> AsyncIterator { AsyncIterator(range: range.makeIterator(), every: every) }
        }

        @Test(
            "an AsyncSequence source pulls on the pool threads, also after it slept; merged ones do not",
            arguments: [2, 1])
        func asyncSourceOnPool(workers: Int) async throws {
            let places = Places()
            let note = places.note
            let n = 2_000
            let sum = Counter()
            let report = try await pipeline(
                Layer(NotingAsyncRange(range: NotingRange(count: n, note: note), every: 100)),
                Layer(workers: workers) { (x: Int) in x }, Layer { (x: Int) in sum.add(x) })
            #expect(sum.count == (n - 1) * n / 2 && report.completed == n)
            #expect(places.seen == ["source": [true]])
            // the .swift backend has no pool; merged AsyncSequences await on Swift's executor
            places.clear()
            let swiftReport = try await pipeline(
                Layer(NotingAsyncRange(range: NotingRange(count: n, note: note), every: 100)),
                Layer(workers: workers) { (x: Int) in x }, Layer { (_: Int) in },
                options: PipelineOptions(backend: .swift))
            #expect(swiftReport.completed == n)
            let merged = try await pipeline(
                Layer(
                    merging: NotingAsyncRange(range: NotingRange(count: n, note: note), every: 100),
                    NotingAsyncRange(range: NotingRange(count: n, note: note), every: 100)),
                Layer(workers: workers) { (x: Int) in x }, Layer { (_: Int) in })
            #expect(merged.completed == 2 * n)
            #expect(places.seen == ["source": [false]])
        }

        @Test(
            "no batch waits long behind a job that keeps finding work: each item is overtaken by a bounded number",
            arguments: [1, 2])
        func noBatchWaitsBehindABusyJob(workers: Int) async throws {
            // A cheap CPU layer between a Sequence source and a slow batch collector, whose job runs on the pool
            // threads: the workers wait to push and run the collector's job in their waits. Without
            // [a job under a wait yields each batch] and [an overtaken pusher reserves the room], a worker's batch
            // waited while the collector's job, nested in that worker's wait, went on taking the other producer's
            // items, for most of the run; with them an item is overtaken by about the queues' contents per wait.
            // Order is not promised (the layer is unordered): the bound is on how far, not on whether.
            guard ProcessInfo.processInfo.environment["FLOW_SANITIZED"] == nil else { return }  // a matter of timing
            let (n, capacity) = (2_000_000, 256)
            var options = PipelineOptions()
            options.cpus = "0-1"  // with one worker, a helper thread beside it ([helpers fill the spare cpus])
            let worst = Locked((collected: 0, overtaken: 0))
            let report = try await pipeline(
                Layer(0..<n), Layer(workers: workers, capacity: capacity) { (x: Int) in x },
                Layer(batchesOf: capacity, capacity: capacity) { (batch: [Int]) in
                    worst.withLock { w in
                        for x in batch {  // how many later items arrived before x
                            w.overtaken = max(w.overtaken, w.collected - x)
                            w.collected += 1
                        }
                    }
                    let end = ContinuousClock.now + .microseconds(100)  // a commit's worth of time
                    while ContinuousClock.now < end {}
                }, options: options)
            #expect(report.completed == n)
            let overtaken = worst.withLock { $0.overtaken }
            #expect(overtaken <= 128 * capacity, "an item was overtaken by \(overtaken) later items")
        }

        @Test(
            "a parked pool thread wakes for a stage's job: a source that sleeps between items",
            .timeLimit(.minutes(1)))
        func parkedPoolWakesForJobs() async throws {
            var options = PipelineOptions()
            options.spinNanoseconds = 0  // park at once: every item needs a wake-up by a queued job
            let items = AsyncStream<Int> { continuation in
                Task {
                    for i in 0..<20 {
                        try? await Task.sleep(for: .milliseconds(5))
                        continuation.yield(i)
                    }
                    continuation.finish()
                }
            }
            let sum = Counter()
            let report = try await pipeline(
                Layer(items), Layer(workers: 2) { (x: Int) in x + 1 }, Layer { (x: Int) in sum.add(x) },
                options: options)
            #expect(sum.count == (1...20).reduce(0, +))
            #expect(report.completed == 20)
        }
    }
}
