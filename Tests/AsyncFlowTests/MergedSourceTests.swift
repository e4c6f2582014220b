import Foundation
import MetricsTestKit
import Synchronization
import Testing

@testable import AsyncFlow

/// Layer(merging:): a few generators as one source, exact counts per generator, fair turns, errors.
extension Serial {
    @Suite("Merged generators")
    struct MergedSourceTests {
        /// The final progress snapshot of a run (PipelineOptions.progress).
        final class FinalSnapshot: Sendable {
            let snapshot = Locked<ProgressSnapshot?>(nil)
            func options(_ backend: PipelineOptions.Backend) -> PipelineOptions {
                var o = PipelineOptions(backend: backend)
                o.progress = { s in if s.isFinal { self.snapshot.withLock { $0 = s } } }
                return o
            }
            var generators: [Int]? { snapshot.withLock { $0?.generators } }
        }

        @Test("three Sequences: every item once, counted per generator", arguments: PipelineOptions.Backend.allCases)
        func threeSequences(backend: PipelineOptions.Backend) async throws {
            let n = 30_000
            let sum = Counter()
            let count = Counter()
            let final = FinalSnapshot()
            var options = final.options(backend)
            let metrics = TestMetrics()
            options.metrics = PipelineMetrics(label: "m", factory: metrics)
            let report = try await pipeline(
                Layer(merging: 0..<n, n..<2 * n, 2 * n..<3 * n - 7, name: "gens"),
                Layer(workers: 2) { (x: Int) in x },
                Layer { (x: Int) in
                    sum.add(x)
                    count.add(1)
                }, options: options)
            let total = 3 * n - 7
            #expect(count.count == total && sum.count == total * (total - 1) / 2)
            #expect(report.pulled == total && report.completed == total && report.dropped == 0)
            #expect(final.generators == [n, n, n - 7])
            for (i, pulled) in [n, n, n - 7].enumerated() {
                let published = metrics.counterTotal(
                    label: "m_generator_items", dimensions: [("layer", "gens"), ("generator", String(i))])
                #expect(published == Int64(pulled), "generator \(i)")
            }
            expectBalanced(report, pulled: total)
        }

        /// 0..<count, never throwing (its Failure is Never).
        struct Quiet: AsyncSequence, Sendable {
            let count: Int
            struct AsyncIterator: AsyncIteratorProtocol {
                var i = 0
                let count: Int
                mutating func next() async -> Int? {
                    defer { i += 1 }
                    return i < count ? i : nil
                }
            }
            func makeAsyncIterator() -> AsyncIterator { AsyncIterator(count: count) }
        }

        @Test("generators of different types with one element type", arguments: PipelineOptions.Backend.allCases)
        func mixedTypes(backend: PipelineOptions.Backend) async throws {
            let sum = Counter()
            let final = FinalSnapshot()
            var report = try await pipeline(
                Layer(merging: 0..<1_000, Array(1_000..<1_500), (1_500..<2_000).lazy.map { $0 }),
                Layer { (x: Int) in sum.add(x) }, options: final.options(backend))
            #expect(sum.count == 1_999 * 2_000 / 2 && report.pulled == 2_000)
            #expect(final.generators == [1_000, 500, 500])
            #expect(final.snapshot.withLock { $0?.expected } == 2_000)

            let (stream, feed) = AsyncThrowingStream<Int, any Error>.makeStream()
            for x in 0..<100 { feed.yield(x) }
            feed.finish()
            sum.value.store(0, ordering: .relaxed)
            report = try await pipeline(
                Layer(merging: stream, ThrowingAsyncSource(count: 50, failAt: nil)), Layer { (x: Int) in sum.add(x) },
                options: PipelineOptions(backend: backend))
            #expect(sum.count == 99 * 100 / 2 + 49 * 50 / 2 && report.pulled == 150)

            let (quiet, quietFeed) = AsyncStream<Int>.makeStream()
            for x in 0..<10 { quietFeed.yield(x) }
            quietFeed.finish()
            sum.value.store(0, ordering: .relaxed)
            report = try await pipeline(
                Layer(merging: quiet, Quiet(count: 20)), Layer { (x: Int) in sum.add(x) },
                options: PipelineOptions(backend: backend))
            #expect(sum.count == 45 + 190 && report.pulled == 30)
        }

        /// The same element forever.
        struct Endless: Sequence, Sendable {
            let tag: Int
            struct Iterator: IteratorProtocol {
                let tag: Int
                mutating func next() -> Int? { tag }
            }
            func makeIterator() -> Iterator { Iterator(tag: tag) }
        }

        @Test("generators that never end or suspend take turns", arguments: PipelineOptions.Backend.allCases)
        func fairTurns(backend: PipelineOptions.Backend) async throws {
            // Two endless generators: the collector stops the run after 200,000 items. A merge that let one
            // generator run until it suspended would starve the other (it never has to suspend while the
            // queue has room); taking turns after each batch gives each a fair share.
            let seen = [Counter(), Counter()]
            let box = ReportBox()
            await #expect(throws: TestError.bad(200_000)) {
                _ = try await pipeline(
                    Layer(merging: Endless(tag: 0), Endless(tag: 1)),
                    Layer { (tag: Int) in
                        seen[tag].add(1)
                        if seen[0].count + seen[1].count == 200_000 { throw TestError.bad(200_000) }
                    }, options: box.options(backend))
            }
            #expect(seen[0].count + seen[1].count == 200_000)
            // a fair share, loosely (scheduling decides the split; starving gives one of them 0)
            #expect(seen[0].count >= 10_000 && seen[1].count >= 10_000, "\(seen[0].count) / \(seen[1].count)")
            expectBalanced(box.report.withLock { $0 }, pulled: nil)
        }

        @Test(
            "AsyncSequences: every item once; one that throws fails the run",
            arguments: PipelineOptions.Backend.allCases)
        func asyncSequences(backend: PipelineOptions.Backend) async throws {
            let sum = Counter()
            let final = FinalSnapshot()
            let report = try await pipeline(
                Layer(
                    merging: ThrowingAsyncSource(count: 1_000, failAt: nil),
                    ThrowingAsyncSource(count: 500, failAt: nil)),
                Layer(concurrency: 3) { (x: Int) async in x },
                Layer { (x: Int) in sum.add(x) }, options: final.options(backend))
            #expect(sum.count == 999 * 1_000 / 2 + 499 * 500 / 2)
            #expect(report.pulled == 1_500 && report.completed == 1_500)
            #expect(final.generators == [1_000, 500])

            // one generator throws at its 301st element; the other waits for ever after 5: the run must end
            let (waiting, feed) = AsyncThrowingStream<Int, any Error>.makeStream()
            for x in 0..<5 { feed.yield(1_000 + x) }
            let box = ReportBox()
            let done = Counter()
            await #expect(throws: TestError.bad(300)) {
                _ = try await pipeline(
                    Layer(merging: waiting, ThrowingAsyncSource(count: 1_000, failAt: 300), name: "two"),
                    Layer { (_: Int) in done.add(1) }, options: box.options(backend))
            }
            let failed = try #require(box.report.withLock { $0 })
            #expect(failed.pulled >= 300 && failed.pulled <= 305, "\(failed.pulled)")
            #expect(failed.completed == done.count)
            withExtendedLifetime(feed) {}  // the stream stays open (never finished) until here
            expectBalanced(failed, pulled: nil)
        }
    }
}
