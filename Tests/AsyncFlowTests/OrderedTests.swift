import Foundation
import Synchronization
import Testing

@testable import AsyncFlow

extension Serial {
    @Suite("Ordered layers")
    struct OrderedTests {
        /// Checks that values arrive as 0, 1, 2, ... and counts them.
        final class InOrder: Sendable {
            let next = Atomic<Int>(0)
            let wrong = Atomic<Int>(0)
            func see(_ x: Int) {
                if next.load(ordering: .relaxed) != x { wrong.add(1, ordering: .relaxed) }
                next.store(x + 1, ordering: .relaxed)
            }
        }

        @Test(
            "a CPU layer with ordered: true emits in input order while running in parallel",
            arguments: PipelineOptions.Backend.allCases)
        func cpuOrdered(backend: PipelineOptions.Backend) async throws {
            let order = InOrder()
            let firstWorker = Atomic<UInt>(0)  // the thread running item 0
            let othersRan = Atomic<Bool>(false)  // another worker ran an item while item 0 was running
            var options = PipelineOptions(backend: backend)
            options.batchSize = 7  // many small batches, so workers overtake each other
            let report = try await pipeline(
                Layer(0..<100_000),
                Layer(workers: 3, ordered: true) { (x: Int) -> Int in
                    let me = UInt(pthread_self())
                    if x == 0 {
                        firstWorker.store(me, ordering: .sequentiallyConsistent)
                        // native: hold item 0 until another worker has run later items (parallel), or 10 s
                        let deadline = ContinuousClock.now + .seconds(10)
                        while backend == .native && !othersRan.load(ordering: .sequentiallyConsistent)
                            && ContinuousClock.now < deadline
                        {}
                    } else if case let first = firstWorker.load(ordering: .sequentiallyConsistent), first != 0,
                        first != me
                    {
                        othersRan.store(true, ordering: .sequentiallyConsistent)
                    }
                    return x
                },
                Layer { (x: Int) in order.see(x) },
                options: options
            )
            #expect(report.completed == 100_000)
            #expect(order.next.load(ordering: .relaxed) == 100_000)
            #expect(order.wrong.load(ordering: .relaxed) == 0)
            let parallel = othersRan.load(ordering: .relaxed)
            if backend == .native { #expect(parallel) }
        }

        @Test(
            "an async layer with ordered: true emits in input order; skipped items keep the order",
            arguments: PipelineOptions.Backend.allCases)
        func asyncOrdered(backend: PipelineOptions.Backend) async throws {
            let seen = Locked<[Int]>([])
            let report = try await pipeline(
                Layer(0..<600),
                Layer(concurrency: 8, ordered: true, onError: .skip) { (x: Int) async throws -> Int in
                    try? await Task.sleep(for: .microseconds((x * 7_919) % 1_500))
                    if x % 50 == 49 { throw TestError.bad(x) }
                    return x
                },
                Layer { (x: Int) in seen.withLock { $0.append(x) } }, options: PipelineOptions(backend: backend)
            )
            let expected = (0..<600).filter { $0 % 50 != 49 }
            #expect(seen.withLock { $0 } == expected)
            #expect(report.skipped == 12 && report.completed == 588)
        }

        @Test(
            "the in-order prefix streams at once: results arrive before the input ends", .timeLimit(.minutes(1)),
            arguments: PipelineOptions.Backend.allCases)
        func streamsPrefix(backend: PipelineOptions.Backend) async throws {
            let (source, more) = AsyncStream<Int>.makeStream()
            for i in 0..<100 { more.yield(i) }
            let order = InOrder()
            _ = try await pipeline(
                Layer(source),
                Layer(workers: 2, ordered: true) { (x: Int) in x },
                Layer { (x: Int) in
                    order.see(x)
                    if x == 99 {  // only now does the source go on; a layer waiting for the whole input hangs
                        for i in 100..<200 { more.yield(i) }
                        more.finish()
                    }
                }, options: PipelineOptions(backend: backend)
            )
            #expect(order.next.load(ordering: .relaxed) == 200 && order.wrong.load(ordering: .relaxed) == 0)
        }

        @Test(
            "a slow first item holds a bounded window, not the whole input", arguments: PipelineOptions.Backend.allCases
        )
        func boundedWindow(backend: PipelineOptions.Backend) async throws {
            let pulled = Counter()
            let finished = Counter()
            let maxOutstanding = Atomic<Int>(0)
            var options = PipelineOptions(backend: backend)
            options.batchSize = 8
            let concurrency = 4
            let capacities = [32, 16]
            _ = try await pipeline(
                Layer(CountingSequence(range: 0..<2_000, pulled: pulled)),
                Layer(concurrency: concurrency, ordered: true, capacity: capacities[0]) { (x: Int) async -> Int in
                    if x == 0 { try? await Task.sleep(for: .milliseconds(100)) }
                    return x
                },
                Layer(capacity: capacities[1]) { (x: Int) in
                    maxOutstanding.max(pulled.count - finished.count, ordering: .relaxed)
                    finished.add(1)
                },
                options: options
            )
            // queues + the source's batch + one batch per async task ([async items move in shared batches]) + the
            // collector's batch
            let bound =
                capacities.reduce(0, +) + options.batchSize + concurrency * options.batchSize + options.batchSize
            #expect(finished.count == 2_000)
            #expect(maxOutstanding.load(ordering: .relaxed) <= bound)
        }

        @Test(
            "cancelling while holders wait for their turn ends the pipeline", .timeLimit(.minutes(1)),
            arguments: PipelineOptions.Backend.allCases)
        func cancelWhileWaitingTurn(backend: PipelineOptions.Backend) async throws {
            let (started, go) = AsyncStream<Void>.makeStream()
            let task = Task {
                try await pipeline(
                    Layer(0..<1_000_000),
                    Layer(workers: 2, ordered: true) { (x: Int) -> Int in
                        if x == 0 { go.yield() }
                        if x == 0 { usleep(20_000) }  // the others wait for this batch's turn
                        return x
                    },
                    Layer { (_: Int) in }, options: PipelineOptions(backend: backend)
                )
            }
            for await _ in started { break }
            task.cancel()
            await #expect(throws: CancellationError.self) { try await task.value }
            expectNoPoolThreads()  // every pool thread joined
        }
    }
}
