import Foundation
import Synchronization
import Testing

@testable import AsyncFlow

/// The semantics users rely on, each pinned with exact counts.
extension Serial {
    @Suite("Pipeline semantics")
    struct PipelineTests {
        @Test(
            "every item reaches the collector exactly once, counts exact", arguments: PipelineOptions.Backend.allCases)
        func exactlyOnce(backend: PipelineOptions.Backend) async throws {
            let n = 200_000
            let sum = Counter()
            let count = Counter()
            let report = try await pipeline(
                Layer(0..<n),
                Layer(workers: 2) { (x: Int) in x &* 2 },
                Layer { (x: Int) in
                    sum.add(x)
                    count.add(1)
                }, options: PipelineOptions(backend: backend)
            )
            #expect(count.count == n)
            #expect(sum.count == n * (n - 1))
            #expect(report.pulled == n && report.completed == n)
            #expect(report.layers.map(\.received) == [n, n, n])
            #expect(report.layers.map(\.emitted) == [n, n, n])
            #expect(report.dropped == 0 && report.failed == 0 && report.skipped == 0)
            expectBalanced(report, pulled: n)
        }

        @Test(
            "values with references move through the rings without leaks or double frees",
            arguments: PipelineOptions.Backend.allCases)
        func referenceItems(backend: PipelineOptions.Backend) async throws {
            let before = Tracked.alive.load(ordering: .relaxed)
            let ids = Counter()
            let n = 50_000
            _ = try await pipeline(
                Layer((0..<n).lazy.map { Tracked($0) }),
                Layer(workers: 3) { (t: Tracked) in "item-\(t.id)" },
                Layer(concurrency: 4) { (s: String) async in Tracked(Int(s.dropFirst(5))!) },
                Layer { (t: Tracked) in ids.add(t.id) }, options: PipelineOptions(backend: backend)
            )
            #expect(ids.count == n * (n - 1) / 2)
            #expect(Tracked.alive.load(ordering: .relaxed) == before)
        }

        @Test(
            "per-worker state is built once on each worker thread and stays there",
            arguments: PipelineOptions.Backend.allCases)
        func perWorkerState(backend: PipelineOptions.Backend) async throws {
            final class Scratch: @unchecked Sendable {
                let thread = pthread_self()
                var uses = 0
            }
            let made = Counter()
            let wrongThread = Counter()
            let uses = Counter()
            _ = try await pipeline(
                Layer(0..<10_000),
                Layer(
                    workers: 3,
                    state: { () -> Scratch in
                        made.add(1)
                        return Scratch()
                    }
                ) { (scratch: inout Scratch, x: Int) -> Int in
                    if pthread_equal(scratch.thread, pthread_self()) == 0 { wrongThread.add(1) }
                    scratch.uses += 1
                    return x
                },
                Layer { (_: Int) in uses.add(1) }, options: PipelineOptions(backend: backend)
            )
            #expect(made.count == 3)
            if backend == .native { #expect(wrongThread.count == 0) }  // .swift: a task may change threads
            #expect(uses.count == 10_000)
        }

        @Test(
            "a CPU layer's closure runs on C threads (native), never inside a Swift task",
            arguments: PipelineOptions.Backend.allCases)
        func cpuLayerOffTheCooperativePool(backend: PipelineOptions.Backend) async throws {
            let inTask = Counter()
            let calls = Counter()
            _ = try await pipeline(
                Layer(0..<20_000),
                Layer(workers: 2) { (x: Int) -> Int in
                    calls.add(1)
                    withUnsafeCurrentTask { if $0 != nil { inTask.add(1) } }
                    return x
                },
                Layer { (_: Int) in }, options: PipelineOptions(backend: backend)
            )
            #expect(calls.count == 20_000)
            // native: C threads; .swift: `workers` tasks on the cooperative pool, by design
            #expect(inTask.count == (backend == .native ? 0 : 20_000))
        }

        @Test(
            "an async layer keeps at most `concurrency` items in flight, and uses them",
            arguments: PipelineOptions.Backend.allCases)
        func asyncConcurrencyBound(backend: PipelineOptions.Backend) async throws {
            let inFlight = HighWater()
            let done = Counter()
            _ = try await pipeline(
                Layer(0..<400),
                Layer(concurrency: 8) { (x: Int) async -> Int in
                    inFlight.enter()
                    try? await Task.sleep(for: .milliseconds(1))
                    inFlight.leave()
                    return x
                },
                Layer { (_: Int) in done.add(1) }, options: PipelineOptions(backend: backend)
            )
            #expect(done.count == 400)
            #expect(inFlight.max.load(ordering: .relaxed) <= 8)
            #expect(inFlight.max.load(ordering: .relaxed) >= 2)
        }

        /// Releases everyone once `count` callers have arrived.
        actor Barrier {
            let count: Int
            var waiting: [CheckedContinuation<Void, Never>] = []
            init(count: Int) { self.count = count }
            func arrive() async {
                if waiting.count + 1 == count {
                    for c in waiting { c.resume() }
                    waiting = []
                } else {
                    await withCheckedContinuation { waiting.append($0) }
                }
            }
        }

        @Test(
            "an async layer's waiting closures block no thread: 16 wait together on 2 cooperative threads",
            .timeLimit(.minutes(1)), arguments: PipelineOptions.Backend.allCases)
        func asyncLayerBlocksNoThread(backend: PipelineOptions.Backend) async throws {
            // Every item waits until all 16 are in flight at once; with blocked threads this would hang.
            let barrier = Barrier(count: 16)
            let done = Counter()
            _ = try await pipeline(
                Layer(0..<64),
                Layer(concurrency: 16) { (x: Int) async -> Int in
                    await barrier.arrive()
                    return x
                },
                Layer { (_: Int) in done.add(1) }, options: PipelineOptions(backend: backend))
            #expect(done.count == 64)
        }

        @Test(
            "back-pressure: a slow collector bounds the items taken but not finished",
            arguments: PipelineOptions.Backend.allCases)
        func backPressure(backend: PipelineOptions.Backend) async throws {
            let pulled = Counter()
            let finished = Counter()
            let maxOutstanding = Atomic<Int>(0)
            var options = PipelineOptions(backend: backend)
            options.batchSize = 16
            let workers = 2
            let capacities = [64, 32]
            _ = try await pipeline(
                Layer(CountingSequence(range: 0..<20_000, pulled: pulled)),
                Layer(workers: workers, capacity: capacities[0]) { (x: Int) in x },
                Layer(capacity: capacities[1]) { (_: Int) async in
                    let outstanding = pulled.count - finished.count
                    maxOutstanding.max(outstanding, ordering: .relaxed)
                    finished.add(1)
                    // slow from the start: the queues fill while the first item is held
                    if finished.count == 1 { try? await Task.sleep(for: .milliseconds(50)) }
                    if finished.count % 64 == 0 { await Task.yield() }
                },
                options: options
            )
            // queues + a batch held by the source, by each worker (in and out) and by the collector
            let bound = capacities.reduce(0, +) + options.batchSize * (1 + 2 * workers + 1)
            #expect(finished.count == 20_000)
            #expect(maxOutstanding.load(ordering: .relaxed) <= bound)
            #expect(maxOutstanding.load(ordering: .relaxed) > capacities[1])  // the queues really filled
        }

        @Test(
            "a user's capacity bounds the items in flight on every path: queues, direct pulls, carried batches",
            arguments: PipelineOptions.Backend.allCases, [1, 2, 3])
        func capacityBoundsInFlight(backend: PipelineOptions.Backend, workers: Int) async throws {
            // On two CPUs, 2 workers pull the source and call the collector themselves (direct hand-off),
            // 1 worker shares the source with its task, which may carry batches through the layer, and 3
            // workers go through the queues: the default batch (1,024) is far above the capacities, so
            // each path must size its batches by the queue they stand in for.
            let pulled = Counter()
            let finished = Counter()
            let maxOutstanding = Atomic<Int>(0)
            var options = PipelineOptions(backend: backend)
            options.cpus = "0-1"
            let capacities = [8, 8]
            let n = 100_000
            _ = try await pipeline(
                Layer(CountingSequence(range: 0..<n, pulled: pulled)),
                Layer(workers: workers, capacity: capacities[0]) { (x: Int) in x },
                Layer(capacity: capacities[1]) { (_: Int) in
                    maxOutstanding.max(pulled.count - finished.count, ordering: .relaxed)
                    finished.add(1)
                    if finished.count <= 300 { usleep(200) }  // slow at first: every queue fills
                },
                options: options
            )
            // the queues, and one batch (at most the smaller capacity) held by the source, by each worker
            // (its input and results together: a result replaces its input) and by the collector
            let bound = capacities.reduce(0, +) + capacities.min()! * (1 + workers + 1)
            #expect(finished.count == n)
            #expect(maxOutstanding.load(ordering: .relaxed) <= bound, "bound \(bound)")
            #expect(maxOutstanding.load(ordering: .relaxed) > capacities[1])  // the queues really filled
        }

        @Test(
            ".fail rethrows the user's own error, stops pulling, releases every thread",
            arguments: PipelineOptions.Backend.allCases)
        func failFast(backend: PipelineOptions.Backend) async throws {
            let pulled = Counter()
            let box = ReportBox()
            let n = 1_000_000
            do {
                _ = try await pipeline(
                    Layer(CountingSequence(range: 0..<n, pulled: pulled)),
                    Layer(workers: 2) { (x: Int) throws -> Int in
                        if x == 5_000 { throw TestError.bad(x) }
                        return x
                    },
                    Layer { (_: Int) in }, options: box.options(backend)
                )
                Issue.record("pipeline did not throw")
            } catch TestError.bad(let x) {
                #expect(x == 5_000)
            }
            #expect(pulled.count < n)
            expectNoPoolThreads()  // every pool thread joined
            // nothing lost: the failed run's report accounts for every pulled item
            expectBalanced(box.report.withLock { $0 }, pulled: pulled.count)
            #expect(box.report.withLock { $0?.failed } == 1)
        }

        @Test("a CPU pool that fails to start part-way fails the run, joins the threads it started, loses nothing")
        func poolStartFailure() async throws {
            let pulled = Counter()
            let box = ReportBox()
            var options = box.options(.native)
            options.poolStartFailureAfter = 2  // the third thread "cannot be created"
            do {
                _ = try await pipeline(
                    Layer(CountingSequence(range: 0..<1_000_000, pulled: pulled)), Layer(workers: 3) { (x: Int) in x },
                    Layer { (_: Int) in }, options: options)
                Issue.record("pipeline did not throw")
            } catch let error as FlowConfigurationError {
                #expect(error.parameter == "workers" && error.message.contains("starting worker 2"), "\(error)")
            }
            expectNoPoolThreads()  // every pool thread joined
            expectBalanced(box.report.withLock { $0 }, pulled: pulled.count)
        }

        @Test(
            ".fail in the collector and in an async layer rethrows the original error",
            arguments: PipelineOptions.Backend.allCases)
        func failInAsyncLayers(backend: PipelineOptions.Backend) async throws {
            await #expect(throws: TestError.bad(77)) {
                _ = try await pipeline(
                    Layer(0..<1_000),
                    Layer(concurrency: 3) { (x: Int) async throws -> Int in
                        if x == 77 { throw TestError.bad(77) }
                        return x
                    },
                    Layer { (_: Int) in }, options: PipelineOptions(backend: backend)
                )
            }
            await #expect(throws: TestError.bad(500)) {
                _ = try await pipeline(
                    Layer(0..<1_000),
                    Layer { (x: Int) async throws in if x == 500 { throw TestError.bad(500) } },
                    options: PipelineOptions(backend: backend)
                )
            }
        }

        @Test(
            ".skip counts the failures exactly and keeps the first errors with their layer",
            arguments: PipelineOptions.Backend.allCases)
        func skip(backend: PipelineOptions.Backend) async throws {
            let done = Counter()
            let report = try await pipeline(
                Layer(0..<10_000),
                Layer(workers: 2, name: "parse", onError: .skip) { (x: Int) throws -> Int in
                    if x % 10 == 0 { throw TestError.bad(x) }
                    return x
                },
                Layer { (_: Int) in done.add(1) }, options: PipelineOptions(backend: backend)
            )
            #expect(done.count == 9_000)
            #expect(report.skipped == 1_000)
            #expect(report.layers[1].skipped == 1_000 && report.layers[1].emitted == 9_000)
            #expect(report.errors.count == RunState.keptErrorLimit)
            #expect(report.errors.allSatisfy { $0.layer == "parse" && $0.error is TestError })
        }

        @Test(
            ".retry calls again for the same item, then fails with the original error",
            arguments: PipelineOptions.Backend.allCases)
        func retry(backend: PipelineOptions.Backend) async throws {
            let attempts = Locked<[Int: Int]>([:])
            let report = try await pipeline(
                Layer(0..<100),
                Layer(workers: 2, onError: .retry(attempts: 2)) { (x: Int) throws -> Int in
                    let n = attempts.withLock {
                        $0[x, default: 0] += 1
                        return $0[x]!
                    }
                    if x % 10 == 0 && n <= 2 { throw TestError.bad(x) }  // succeeds on the third call
                    return x
                },
                Layer { (_: Int) in }, options: PipelineOptions(backend: backend)
            )
            #expect(report.completed == 100)
            #expect(report.layers[1].retried == 20)
            #expect(attempts.withLock { $0.values.reduce(0, +) } == 120)
            await #expect(throws: TestError.bad(3)) {
                _ = try await pipeline(
                    Layer(0..<10),
                    Layer(workers: 1, onError: .retry(attempts: 3)) { (x: Int) throws -> Int in
                        if x == 3 { throw TestError.bad(3) }
                        return x
                    },
                    Layer { (_: Int) in }, options: PipelineOptions(backend: backend)
                )
            }
        }

        @Test(
            "cancelling the awaiting task ends the pipeline, runs no more closures, releases threads",
            arguments: PipelineOptions.Backend.allCases)
        func cancellation(backend: PipelineOptions.Backend) async throws {
            let calls = Counter()
            let pulled = Counter()
            let box = ReportBox()
            let started = AsyncStream<Void>.makeStream()
            let task = Task {
                try await pipeline(
                    Layer(CountingSequence(range: 0..<Int.max, pulled: pulled)),
                    Layer(workers: 2) { (x: Int) -> Int in
                        calls.add(1)
                        return x
                    },
                    Layer { (x: Int) async in
                        if x == 1_000 { started.continuation.yield() }
                        await Task.yield()
                    }, options: box.options(backend)
                )
            }
            for await _ in started.stream { break }
            task.cancel()
            let result = await task.result
            #expect(throws: CancellationError.self) { try result.get() }
            let callsAfter = calls.count
            try await Task.sleep(for: .milliseconds(50))
            #expect(calls.count == callsAfter)
            expectNoPoolThreads()  // every pool thread joined
            expectBalanced(box.report.withLock { $0 }, pulled: pulled.count)
            #expect((box.report.withLock { $0?.dropped } ?? 0) > 0)  // cancelled with items in flight
        }

        @Test("AsyncSequence sources, and their errors", arguments: PipelineOptions.Backend.allCases)
        func asyncSources(backend: PipelineOptions.Backend) async throws {
            let done = Counter()
            let report = try await pipeline(
                Layer(ThrowingAsyncSource(count: 3_000, failAt: nil)),
                Layer(workers: 2) { (x: Int) in x },
                Layer { (_: Int) in done.add(1) }, options: PipelineOptions(backend: backend)
            )
            #expect(done.count == 3_000 && report.pulled == 3_000)
            await #expect(throws: TestError.bad(1_234)) {
                _ = try await pipeline(
                    Layer(ThrowingAsyncSource(count: 3_000, failAt: 1_234)),
                    Layer { (_: Int) in }, options: PipelineOptions(backend: backend)
                )
            }
        }

        @Test("8 layers of every kind chain their types", arguments: PipelineOptions.Backend.allCases)
        func longChain(backend: PipelineOptions.Backend) async throws {
            let sum = Counter()
            let report = try await pipeline(
                Layer(0..<5_000),
                Layer(workers: 1) { (x: Int) in x + 1 },
                Layer(concurrency: 2) { (x: Int) async in String(x) },
                Layer(workers: 2) { (s: String) in Int(s)! },
                Layer { (x: Int) async in Double(x) },
                Layer(workers: 1) { (d: Double) in Int(d) },
                Layer(concurrency: 3) { (x: Int) async in x - 1 },
                Layer { (x: Int) in sum.add(x) }, options: PipelineOptions(backend: backend)
            )
            #expect(sum.count == 5_000 * 4_999 / 2)
            #expect(report.layers.count == 8 && report.layers.allSatisfy { $0.emitted == 5_000 })
        }

        @Test(
            "progress is reported with per-layer counts, and once more at the end",
            arguments: PipelineOptions.Backend.allCases)
        func progress(backend: PipelineOptions.Backend) async throws {
            let finals = Locked<[ProgressSnapshot]>([])
            var options = PipelineOptions(backend: backend)
            options.progressInterval = .milliseconds(5)
            options.progress = { snap in if snap.isFinal { finals.withLock { $0.append(snap) } } }
            _ = try await pipeline(
                Layer(0..<1_000), Layer(workers: 1) { (x: Int) in x }, Layer { (_: Int) in }, options: options)
            let last = try #require(finals.withLock { $0 }.first)
            #expect(finals.withLock { $0.count } == 1)
            #expect(last.layers.map(\.emitted) == [1_000, 1_000, 1_000])
            #expect(last.queueDepths == [0, 0])
        }

        @Test(
            "200 pipelines back to back, a quarter failing, leave no pool thread running",
            arguments: PipelineOptions.Backend.allCases)
        func noThreadLeak(backend: PipelineOptions.Backend) async throws {
            for i in 0..<200 {
                do {
                    _ = try await pipeline(
                        Layer(0..<100),
                        Layer(workers: 1 + i % 3) { (x: Int) throws -> Int in
                            if i % 4 == 0 && x == 50 { throw TestError.bad(x) }
                            return x
                        },
                        Layer { (_: Int) in }, options: PipelineOptions(backend: backend)
                    )
                } catch TestError.bad {}
            }
            expectNoPoolThreads()  // every pool thread joined
        }
    }
}
