import Foundation
import MetricsTestKit
import Synchronization
import Testing

@testable import AsyncFlow

/// Layer(batchesOf:concurrency:ordered:) { [Input] -> [Output] }: batches formed in input order, at
/// most `concurrency` in flight, results in order when asked, error policies counted in items, and the
/// form for items handled elsewhere (BatchOutcome, the stop hook) that AsyncFlowPostgres uses.
extension Serial {
    @Suite("Batch map")
    struct BatchMapTests {
        /// Suspends the first `count` callers until all of them have arrived.
        final class Barrier: Sendable {
            let state = Locked<(arrived: Int, waiting: [CheckedContinuation<Void, Never>])>((0, []))
            let count: Int
            init(_ count: Int) { self.count = count }

            func arrive() async {
                await withCheckedContinuation { c in
                    let release = state.withLock { s -> [CheckedContinuation<Void, Never>] in
                        s.arrived += 1
                        s.waiting.append(c)
                        guard s.arrived == count else { return [] }
                        defer { s.waiting = [] }
                        return s.waiting
                    }
                    for w in release { w.resume() }
                }
            }
        }

        @Test(
            "ordered: results in input order, full batches but the last, `concurrency` batches in flight",
            .timeLimit(.minutes(1)), arguments: PipelineOptions.Backend.allCases)
        func orderedConcurrent(backend: PipelineOptions.Backend) async throws {
            let n = 10_003
            let sizes = Locked<[Int]>([])
            let inFlight = Atomic<Int>(0)
            let most = Atomic<Int>(0)
            let barrier = Barrier(4)
            let calls = Atomic<Int>(0)
            let seen = Locked<[Int]>([])
            let report = try await pipeline(
                Layer(0..<n),
                Layer(batchesOf: 100, concurrency: 4, ordered: true) { (items: [Int]) async -> [Int] in
                    sizes.withLock { $0.append(items.count) }
                    let now = inFlight.add(1, ordering: .relaxed).newValue
                    most.max(now, ordering: .relaxed)
                    // the first four calls wait for each other: four are in flight at once, or this hangs
                    if calls.add(1, ordering: .relaxed).newValue <= 4 { await barrier.arrive() }
                    // later batches end out of order: the first of every three takes longest
                    if items[0] % 300 == 0 { try? await Task.sleep(for: .milliseconds(2)) }
                    inFlight.subtract(1, ordering: .relaxed)
                    return items.map { $0 * 2 }
                },
                Layer { (x: Int) in seen.withLock { $0.append(x) } },
                options: PipelineOptions(backend: backend))
            let inOrder = seen.withLock { $0 } == (0..<n).map { $0 * 2 }
            #expect(inOrder)
            let s = sizes.withLock { $0 }
            #expect(s.count == 101 && s.filter { $0 == 100 }.count == 100 && s.contains(3))
            #expect(most.load(ordering: .relaxed) == 4)
            #expect(report.layers.map(\.received) == [n, n, n] && report.layers[1].emitted == n)
            expectBalanced(report, pulled: n)
        }

        @Test("unordered: every result once; `within` hands over a partial batch while the source is open")
        func unorderedWithin() async throws {
            let (source, feed) = AsyncStream<Int>.makeStream()
            let batches = Locked<[[Int]]>([])
            let seen = Locked<[Int]>([])
            let (arrivals, arrived) = AsyncStream<Int>.makeStream()
            let run = Task {
                try await pipeline(
                    Layer(source),
                    Layer(batchesOf: 1_000, within: .milliseconds(5), concurrency: 2) { (items: [Int]) in
                        batches.withLock { $0.append(items) }
                        return items.map { $0 + 1 }
                    },
                    Layer { (x: Int) in
                        seen.withLock { $0.append(x) }
                        arrived.yield(x)
                    })
            }
            // three rounds of 10 items, each waited for at the collector before the next is fed: only the
            // deadline can have handed each round over, since no batch of 1,000 ever fills
            var next = 0
            var waiting = arrivals.makeAsyncIterator()
            for _ in 0..<3 {
                for _ in 0..<10 {
                    feed.yield(next)
                    next += 1
                }
                for _ in 0..<10 { _ = await waiting.next() }
            }
            feed.finish()
            let report = try await run.value
            #expect(seen.withLock { $0 }.sorted() == Array(1...30))
            #expect(batches.withLock { $0 }.count >= 3 && batches.withLock { $0 }.allSatisfy { $0.count <= 10 })
            expectBalanced(report, pulled: 30)
        }

        @Test("error policies count items: skip, retry, fail; a wrong number of results fails the run")
        func policies() async throws {
            let n = 1_000
            let attempts = Locked<[Int: Int]>([:])
            let skipped = try await pipeline(
                Layer(0..<n),
                Layer(batchesOf: 100, concurrency: 3, onError: .skip) { (items: [Int]) throws -> [Int] in
                    if items.contains(250) { throw TestError.bad(250) }
                    return items
                },
                Layer { (_: Int) in })
            #expect(skipped.layers[1].skipped == 100 && skipped.layers[1].emitted == 900 && skipped.completed == 900)
            #expect(skipped.errors.count == 1)
            expectBalanced(skipped, pulled: n)

            let retried = try await pipeline(
                Layer(0..<n),
                Layer(batchesOf: 100, concurrency: 2, onError: .retry(attempts: 2)) { (items: [Int]) throws -> [Int] in
                    let k = attempts.withLock { a -> Int in
                        a[items[0], default: 0] += 1
                        return a[items[0]]!
                    }
                    if items[0] == 500 && k < 3 { throw TestError.bad(500) }
                    return items
                },
                Layer { (_: Int) in })
            #expect(retried.layers[1].retried == 200 && retried.layers[1].emitted == n && retried.completed == n)
            #expect(attempts.withLock { $0[500] } == 3)

            let box = ReportBox()
            await #expect(throws: TestError.bad(700)) {
                try await pipeline(
                    Layer(0..<n),
                    Layer(batchesOf: 100) { (items: [Int]) throws -> [Int] in
                        if items.contains(700) { throw TestError.bad(700) }
                        return items
                    },
                    Layer { (_: Int) in }, options: box.options(.native))
            }
            let failed = try #require(box.report.withLock { $0 })
            #expect(failed.layers[1].failed == 100 && failed.layers[1].emitted == 700)
            expectBalanced(failed, pulled: failed.layers[0].received)

            let miscount = ReportBox()
            do {
                _ = try await pipeline(
                    Layer(0..<n), Layer(batchesOf: 100, name: "short") { (items: [Int]) in items.dropLast() },
                    Layer { (_: Int) in }, options: miscount.options(.swift))
                Issue.record("pipeline did not throw")
            } catch let error as BatchResultCountError {
                #expect(error.layer == "short" && error.items == 100 && error.results == 99)
                #expect("\(error)".contains("returned 99 results for 100 items"))
            }
            let report = try #require(miscount.report.withLock { $0 })
            #expect(report.layers[1].failed == 100)
            expectBalanced(report, pulled: report.layers[0].received)
        }

        @Test(
            "batches done by remote workers are counted per worker in the report, the progress and the metrics",
            arguments: PipelineOptions.Backend.allCases)
        func countedPerWorker(backend: PipelineOptions.Backend) async throws {
            // 25 batches of 40: batch k is done by worker "w<k % 3>", 30 results and 10 skipped; the
            // last one (k = 24) by nobody (as a dead letter would be): 40 failed, no worker
            let metrics = TestMetrics()
            var options = MergedSourceTests.FinalSnapshot().options(backend)
            let snapshots = Locked<[ProgressSnapshot]>([])
            options.progress = { s in if s.isFinal { snapshots.withLock { $0.append(s) } } }
            options.metrics = PipelineMetrics(label: "m", interval: .milliseconds(5), factory: metrics)
            let report = try await pipeline(
                Layer(0..<1_000),
                Layer<Int, Int>(
                    batchesOf: 40, within: nil, concurrency: 4, ordered: false, name: "remote", capacity: nil,
                    onError: .skip,
                    handledElsewhere: { items, _ in
                        let k = items[0] / 40
                        if k == 24 { return BatchOutcome(outputs: [], failed: 40) }
                        return BatchOutcome(outputs: Array(items[0..<30]), skipped: 10, worker: "w\(k % 3)")
                    }),
                Layer { (_: Int) in }, options: options)
            // w0: k = 0, 3, ..., 21 (8 batches); w1: 1, ..., 22 (8); w2: 2, ..., 23 (8)
            let expected = (0..<3).map { WorkerCount(worker: "w\($0)", batches: 8, items: 8 * 40) }
            #expect(report.layers[1].workers == expected)
            #expect(report.layers[0].workers.isEmpty && report.layers[2].workers.isEmpty)
            #expect(
                report.layers[1].description.hasSuffix(
                    "; workers: w0 320 items in 8 batches, w1 320 items in 8 batches, w2 320 items in 8 batches"))
            #expect(report.layers[1].failed == 40 && report.layers[1].skipped == 240 && report.layers[1].emitted == 720)
            #expect(snapshots.withLock { $0.last?.layers[1].workers } == expected)
            for count in expected {
                let published = metrics.counterTotal(
                    label: "m_worker_items", dimensions: [("layer", "remote"), ("worker", count.worker)])
                #expect(published == Int64(count.items), "\(count.worker)")
            }
            expectBalanced(report, pulled: 1_000)
        }

        @Test("items handled elsewhere: the outcome's counts go into the report, items without a result are dropped")
        func handledElsewhere() async throws {
            let n = 1_000
            let box = ReportBox()
            do {
                _ = try await pipeline(
                    Layer(0..<n),
                    Layer<Int, Int>(
                        batchesOf: 100, within: nil, concurrency: 1, ordered: true, name: "remote", capacity: nil,
                        onError: .skip,
                        handledElsewhere: { items, call in
                            #expect(call.layerName == "remote" && call.policy == .skip)
                            // every batch: 90 results, 10 skipped; the sixth also fails after 50 results
                            if items[0] == 500 {
                                return BatchOutcome(
                                    outputs: Array(items[0..<50]), skipped: 10, failed: 1, failure: TestError.bad(550))
                            }
                            return BatchOutcome(
                                outputs: Array(items[0..<90]), skipped: 10, skippedErrors: [TestError.bad(items[95])],
                                retried: 3)
                        }),
                    Layer { (_: Int) in }, options: box.options(.swift))
                Issue.record("pipeline did not throw")
            } catch TestError.bad(let x) {
                #expect(x == 550)
            }
            let report = try #require(box.report.withLock { $0 })
            let remote = report.layers[1]
            // five whole batches, then the failing one: 50 results, 10 skipped, 1 failed, 39 dropped
            #expect(remote.emitted == 5 * 90 && remote.skipped == 6 * 10 && remote.failed == 1)
            #expect(remote.retried == 5 * 3 && report.errors.count == 5)
            #expect(remote.dropped == remote.received - 450 - 60 - 1)
            expectBalanced(report, pulled: report.layers[0].received)
        }

        @Test(
            "a stop ends a call that waits elsewhere through its stop hook", .timeLimit(.minutes(1)),
            arguments: PipelineOptions.Backend.allCases)
        func stopHook(backend: PipelineOptions.Backend) async throws {
            let hooks = Atomic<Int>(0)
            let waiting = Atomic<Int>(0)
            let box = ReportBox()
            await #expect(throws: TestError.bad(-1)) {
                try await pipeline(
                    Layer(0..<100_000),
                    Layer<Int, Int>(
                        batchesOf: 10, within: nil, concurrency: 2, ordered: false, name: nil, capacity: nil,
                        onError: .fail,
                        handledElsewhere: { items, call in
                            if items[0] == 0 { return BatchOutcome(outputs: items) }
                            // the second call to wait fails the run; the first waits for a result that
                            // never comes, until its stop hook ends the wait
                            if waiting.add(1, ordering: .relaxed).newValue == 2 {
                                return BatchOutcome(outputs: [], failed: 1, failure: TestError.bad(-1))
                            }
                            let (stopped, stop) = AsyncStream<Void>.makeStream()
                            await call.whileRunning(
                                onStop: {
                                    hooks.add(1, ordering: .relaxed)
                                    stop.finish()
                                },
                                { for await _ in stopped {} })
                            #expect(call.stopped)
                            return BatchOutcome(outputs: [])
                        }),
                    Layer { (_: Int) in }, options: box.options(backend))
            }
            #expect(hooks.load(ordering: .relaxed) == 1)
            let report = try #require(box.report.withLock { $0 })
            #expect(report.layers[1].emitted == 10 && report.layers[1].failed == 1)
            expectBalanced(report, pulled: nil)
        }

        @Test("bad parameters name themselves")
        func badParameters() async throws {
            for (layer, parameter, text) in [
                (Layer<Int, Int>(batchesOf: 0) { $0 }, "batchesOf", "batchesOf: 0: must be at least 1"),
                (
                    Layer<Int, Int>(batchesOf: 10, concurrency: 0) { $0 }, "concurrency",
                    "concurrency: 0: must be at least 1"
                ),
                (Layer<Int, Int>(batchesOf: 10, within: .zero) { $0 }, "within", "must be more than zero"),
            ] {
                do {
                    _ = try await pipeline(Layer(0..<10), layer, Layer { (_: Int) in })
                    Issue.record("\(parameter): pipeline did not throw")
                } catch let error as FlowConfigurationError {
                    #expect(error.parameter == parameter && error.message.contains(text), "\(error)")
                }
            }
        }
    }
}
