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
            #expect(seen[0].count >= 40_000 && seen[1].count >= 40_000, "\(seen[0].count) / \(seen[1].count)")
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

            let box = ReportBox()
            let done = Counter()
            await #expect(throws: TestError.bad(300)) {
                _ = try await pipeline(
                    Layer(
                        merging: ThrowingAsyncSource(count: 100_000, failAt: nil),
                        ThrowingAsyncSource(count: 1_000, failAt: 300), name: "two"),
                    Layer { (_: Int) in done.add(1) }, options: box.options(backend))
            }
            let failed = try #require(box.report.withLock { $0 })
            #expect(failed.pulled < 100_300)  // the other generator stopped too
            #expect(failed.completed == done.count)
            expectBalanced(failed, pulled: nil)
        }
    }
}
