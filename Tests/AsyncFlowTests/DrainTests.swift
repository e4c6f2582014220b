import Foundation
import Synchronization
import Testing

@testable import AsyncFlow

/// PipelineControl.drain(): the source is no longer pulled, everything pulled is finished, the run ends
/// normally with nothing dropped.
extension Serial {
    @Suite("Drain")
    struct DrainTests {
        /// 0, 1, 2, ... for ever, counting pulls.
        struct Naturals: Sequence, Sendable {
            let pulled: Counter
            struct Iterator: IteratorProtocol {
                var value = 0
                let pulled: Counter
                mutating func next() -> Int? {
                    pulled.add(1)
                    defer { value += 1 }
                    return value
                }
            }
            func makeIterator() -> Iterator { Iterator(pulled: pulled) }
        }

        /// Options for `backend` with a new control in them.
        static func controlled(
            _ backend: PipelineOptions.Backend, _ adjust: (inout PipelineOptions) -> Void = { _ in }
        ) -> (PipelineControl, PipelineOptions) {
            var options = PipelineOptions(backend: backend)
            adjust(&options)
            let control = PipelineControl()
            options.control = control
            return (control, options)
        }

        /// Every pulled item arrived exactly once: the ids seen are exactly 0..<pulled.
        static func expectAllOnce(_ seen: Locked<[Int]>, pulled: Int, sourceLocation: SourceLocation = #_sourceLocation)
        {
            let ids = seen.withLock { $0 }.sorted()
            #expect(ids == Array(0..<pulled), "\(ids.count) seen of \(pulled) pulled", sourceLocation: sourceLocation)
        }

        @Test(
            "drain while every queue is full: all pulled items finish, nothing dropped",
            .timeLimit(.minutes(1)), arguments: PipelineOptions.Backend.allCases)
        func drainFullQueues(backend: PipelineOptions.Backend) async throws {
            let (control, options) = Self.controlled(backend) { $0.batchSize = 4 }
            let pulled = Counter()
            let seen = Locked<[Int]>([])
            let capacities = [8, 8]
            let report = try await pipeline(
                Layer(Naturals(pulled: pulled)),
                Layer(workers: 2, capacity: capacities[0]) { (x: Int) in x },
                Layer(capacity: capacities[1]) { (x: Int) async in
                    if x == 0 {
                        // hold the collector until the source is blocked behind full queues, then drain
                        while pulled.count < capacities[0] + capacities[1] + 1 {
                            try? await Task.sleep(for: .milliseconds(1))
                        }
                        control.drain()
                    }
                    seen.withLock { $0.append(x) }
                }, options: options)
            #expect(control.isDraining)
            #expect(report.dropped == 0 && report.failed == 0 && report.skipped == 0)
            #expect(report.pulled == pulled.count && report.completed == pulled.count)
            #expect(pulled.count > capacities[0] + capacities[1])
            Self.expectAllOnce(seen, pulled: pulled.count)
            expectBalanced(report, pulled: pulled.count)
        }

        @Test(
            "drain while an ordered window holds items: they finish, in order", .timeLimit(.minutes(1)),
            arguments: PipelineOptions.Backend.allCases)
        func drainOrderedWindow(backend: PipelineOptions.Backend) async throws {
            let (control, options) = Self.controlled(backend) { $0.batchSize = 1 }
            let pulled = Counter()
            let passed = Counter()
            let seen = Locked<[Int]>([])
            let report = try await pipeline(
                Layer(Naturals(pulled: pulled)),
                Layer(workers: 3, ordered: true) { (x: Int) in
                    if x == 100 {
                        // item 100 is held until the two other workers have each done a later item, which
                        // waits in the window for 100's turn; then drain
                        while passed.count < 102 {}
                        control.drain()
                    } else {
                        passed.add(1)
                    }
                    return x
                },
                Layer { (x: Int) in seen.withLock { $0.append(x) } }, options: options)
            #expect(report.dropped == 0 && report.pulled == pulled.count && report.completed == pulled.count)
            #expect(seen.withLock { $0 } == Array(0..<pulled.count))
            expectBalanced(report, pulled: pulled.count)
        }

        @Test(
            "drain an AsyncSequence that waits for ever, and merged generators", .timeLimit(.minutes(1)),
            arguments: PipelineOptions.Backend.allCases)
        func drainAsyncSources(backend: PipelineOptions.Backend) async throws {
            let (control, options) = Self.controlled(backend)
            let (source, feed) = AsyncStream<Int>.makeStream()
            let (other, otherFeed) = AsyncStream<Int>.makeStream()
            for i in 0..<50 { feed.yield(i) }
            for i in 50..<60 { otherFeed.yield(i) }  // neither stream ever finishes
            let seen = Locked<[Int]>([])
            let report = try await pipeline(
                Layer(merging: source, other),
                Layer(workers: 2) { (x: Int) in x },
                Layer { (x: Int) in
                    if seen.withLock({
                        $0.append(x)
                        return $0.count
                    }) == 60 {
                        control.drain()
                    }
                }, options: options)
            #expect(report.pulled == 60 && report.completed == 60 && report.dropped == 0)
            Self.expectAllOnce(seen, pulled: 60)
            _ = feed
            _ = otherFeed
        }

        @Test("a stream drains to its normal end", .timeLimit(.minutes(1)), arguments: PipelineOptions.Backend.allCases)
        func drainStream(backend: PipelineOptions.Backend) async throws {
            let (control, options) = Self.controlled(backend)
            let pulled = Counter()
            let stream = pipelineStream(
                Layer(Naturals(pulled: pulled)), Layer(workers: 2, ordered: true) { (x: Int) in x }, options: options)
            var read: [Int] = []
            for try await x in stream {
                read.append(x)
                if read.count == 1_000 { control.drain() }
            }
            let report = try await stream.report()
            #expect(read == Array(0..<pulled.count))
            #expect(report.dropped == 0 && report.pulled == pulled.count && report.completed == pulled.count)
        }

        @Test("a control drained before the run: nothing is pulled, the run ends normally")
        func drainBeforeStart() async throws {
            let control = PipelineControl()
            control.drain()
            var options = PipelineOptions()
            options.control = control
            let pulled = Counter()
            let report = try await pipeline(
                Layer(Naturals(pulled: pulled)), Layer(workers: 1) { (x: Int) in x }, Layer { (_: Int) in },
                options: options)
            #expect(pulled.count == 0 && report.pulled == 0 && report.dropped == 0)
        }

        @Test(
            "a failure ends a pull that waits for ever (an AsyncSequence that never finishes)", .timeLimit(.minutes(1)),
            arguments: PipelineOptions.Backend.allCases)
        func failureEndsWaitingPull(backend: PipelineOptions.Backend) async throws {
            let (source, feed) = AsyncStream<Int>.makeStream()
            for i in 0..<10 { feed.yield(i) }
            let box = ReportBox()
            await #expect(throws: TestError.bad(9)) {
                _ = try await pipeline(
                    Layer(source),
                    Layer { (x: Int) in if x == 9 { throw TestError.bad(x) } }, options: box.options(backend))
            }
            let report = box.report.withLock { $0 }
            #expect(report?.pulled == 10 && report?.completed == 9 && report?.failed == 1)
            _ = feed
        }
    }
}
