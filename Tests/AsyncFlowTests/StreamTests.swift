import Foundation
import Synchronization
import Testing

@testable import AsyncFlow

extension Serial {
    @Suite("pipelineStream")
    struct StreamTests {
        @Test(
            "the last layer's outputs arrive as an AsyncSequence, each once; the report is exact",
            arguments: PipelineOptions.Backend.allCases)
        func basic(backend: PipelineOptions.Backend) async throws {
            let stream = pipelineStream(
                Layer(0..<10_000), Layer(workers: 2) { (x: Int) in x * 3 }, options: PipelineOptions(backend: backend))
            var sum = 0
            var count = 0
            for try await x in stream {
                sum += x
                count += 1
            }
            #expect(count == 10_000 && sum == 3 * 10_000 * 9_999 / 2)
            let report = try await stream.report()
            #expect(report.completed == 10_000 && report.dropped == 0)
        }

        @Test("ordered layers stream in input order", arguments: PipelineOptions.Backend.allCases)
        func ordered(backend: PipelineOptions.Backend) async throws {
            var seen: [String] = []
            let stream = pipelineStream(
                Layer(0..<3_000), Layer(workers: 3, ordered: true) { (x: Int) in x },
                Layer(concurrency: 4, ordered: true) { (x: Int) async in "\(x)" },
                options: PipelineOptions(backend: backend))
            for try await s in stream {
                seen.append(s)
            }
            let report = try await stream.report()  // the run has ended (NoPoolThreadsLeft checks its threads)
            #expect(report.completed == 3_000 && report.dropped == 0)
            let firstWrong = seen.indices.first { seen[$0] != "\($0)" }
            #expect(seen.count == 3_000)
            #expect(
                firstWrong == nil,
                "first out of order at \(firstWrong ?? -1): \(seen[max(0, (firstWrong ?? 0) - 3)..<min(seen.count, (firstWrong ?? 0) + 4)])"
            )
        }

        @Test(
            "breaking out of the loop stops the pipeline, releases every thread, and report() counts the rest as dropped",
            arguments: PipelineOptions.Backend.allCases)
        func breakOut(backend: PipelineOptions.Backend) async throws {
            let pulled = Counter()
            let final = ReportBox()
            var got = 0
            let stream = pipelineStream(
                Layer(CountingSequence(range: 0..<10_000_000, pulled: pulled)), Layer(workers: 2) { (x: Int) in x },
                options: final.options(backend))
            do {  // the iterator is released at the end of this scope
                for try await _ in stream {
                    got += 1
                    if got == 1_000 { break }
                }
            }
            let report = try await stream.report()  // leaving is not an error: the report comes back
            #expect(got == 1_000)
            #expect(pulled.count < 10_000_000)
            expectNoPoolThreads()  // every pool thread joined
            expectConsumerCounts(report, delivered: got, pulled: pulled.count)
            #expect(report.dropped > 0)  // the unread rest
            expectConsumerCounts(final.report.withLock { $0 }, delivered: got, pulled: pulled.count)
        }

        @Test(
            "report() from the iterating task ends a loop left while its iterator lives on (as in top-level code)",
            arguments: PipelineOptions.Backend.allCases)
        func reportEndsLoopLeftEarly(backend: PipelineOptions.Backend) async throws {
            let pulled = Counter()
            let final = ReportBox()
            let stream = pipelineStream(
                Layer(CountingSequence(range: 0..<10_000_000, pulled: pulled)), Layer(workers: 2) { (x: Int) in x },
                options: final.options(backend))
            // Top-level code in main.swift never releases a `for await` loop's iterator (Swift 6.3), so
            // leaving the loop does not reach the stream; this iterator is kept alive the same way.
            var iterator = stream.makeAsyncIterator()
            var got = 0
            while try await iterator.next() != nil {
                got += 1
                if got == 1_000 { break }
            }
            let report = try await Watchdog.shared.watch(
                "report() after leaving a loop whose iterator lives on", bound: .seconds(30)
            ) { try await stream.report() }
            expectConsumerCounts(report, delivered: got, pulled: pulled.count)
            #expect(try await iterator.next() == nil)  // the iteration has ended
            #expect(got == 1_000)
            #expect(pulled.count < 10_000_000)
            expectNoPoolThreads()  // every pool thread joined
            expectConsumerCounts(final.report.withLock { $0 }, delivered: got, pulled: pulled.count)
        }

        @Test(
            "an error made by the stop itself (a retry no longer allowed) is not what report() throws",
            arguments: PipelineOptions.Backend.allCases)
        func leaveDuringRetry(backend: PipelineOptions.Backend) async throws {
            let started = Atomic<Bool>(false)
            let leaving = Atomic<Bool>(false)
            var options = PipelineOptions(backend: backend)
            options.batchSize = 1  // one item per pop and push, so the worker reaches item 101 after 0...100
            let stream = pipelineStream(
                Layer(0..<10_000),
                Layer(workers: 1, onError: .retry(attempts: 3)) { (x: Int) throws -> Int in
                    if x == 101 && !started.exchange(true, ordering: .relaxed) {
                        // The first attempt for item 101 fails after the consumer has left: a retry
                        // would follow, but the run has stopped, so that attempt was the last.
                        while !leaving.load(ordering: .relaxed) { usleep(100) }
                        usleep(200_000)
                        throw TestError.bad(x)
                    }
                    return x
                }, options: options)
            var got = 0
            var iterator = stream.makeAsyncIterator()
            while try await iterator.next() != nil {
                got += 1
                if got == 100 { break }
            }
            while !started.load(ordering: .relaxed) { try await Task.sleep(for: .milliseconds(1)) }
            leaving.store(true, ordering: .relaxed)
            let report = try await stream.report()  // not TestError.bad(101): the consumer's leaving came first
            expectConsumerCounts(report, delivered: 100, pulled: nil)
            #expect(report.layers[1].failed == 1 && report.layers[1].retried == 0)
        }

        @Test(
            "report() from another task waits for the consumer, which goes on and reads every item",
            arguments: PipelineOptions.Backend.allCases)
        func reportFromAnotherTaskWaits(backend: PipelineOptions.Backend) async throws {
            let stream = pipelineStream(
                Layer(0..<100_000), Layer(workers: 2) { (x: Int) in x }, options: PipelineOptions(backend: backend))
            let (reached, signal) = AsyncStream<Void>.makeStream()
            let consumer = Task {
                var n = 0
                for try await _ in stream {
                    n += 1
                    if n == 1_000 { signal.yield() }
                }
                return n
            }
            for await _ in reached { break }
            let report = try await stream.report()  // not the iterating task: it only waits
            #expect(try await consumer.value == 100_000)
            #expect(report.completed == 100_000 && report.dropped == 0)
        }

        @Test(
            "a layer's error is thrown from the loop, as the user's own error",
            arguments: PipelineOptions.Backend.allCases)
        func error(backend: PipelineOptions.Backend) async throws {
            var got = 0
            await #expect(throws: TestError.bad(4_242)) {
                for try await _ in pipelineStream(
                    Layer(0..<10_000),
                    Layer(workers: 2) { (x: Int) throws -> Int in
                        if x == 4_242 { throw TestError.bad(x) }
                        return x
                    }, options: PipelineOptions(backend: backend))
                {
                    got += 1
                }
            }
            #expect(got < 10_000)
        }

        @Test(
            "cancelling the consuming task ends the loop with CancellationError",
            arguments: PipelineOptions.Backend.allCases)
        func cancelConsumer(backend: PipelineOptions.Backend) async throws {
            let (reached, signal) = AsyncStream<Void>.makeStream()
            let final = ReportBox()
            let consumed = Counter()
            let stream = pipelineStream(
                Layer(0..<Int.max), Layer(workers: 2) { (x: Int) in x }, options: final.options(backend))
            let consumer = Task {
                var n = 0
                for try await _ in stream {
                    n += 1
                    consumed.add(1)
                    if n == 500 { signal.yield() }
                }
                return n
            }
            for await _ in reached { break }
            consumer.cancel()
            await #expect(throws: CancellationError.self) { try await consumer.value }
            await #expect(throws: CancellationError.self) { try await stream.report() }
            expectNoPoolThreads()  // every pool thread joined
            expectConsumerCounts(final.report.withLock { $0 }, delivered: consumed.count, pulled: nil)
        }

        @Test(
            "bad parameters are thrown at the first next(), before any item is pulled",
            arguments: PipelineOptions.Backend.allCases)
        func badInput(backend: PipelineOptions.Backend) async throws {
            let pulled = Counter()
            await #expect(throws: FlowConfigurationError.self) {
                for try await _ in pipelineStream(
                    Layer(CountingSequence(range: 0..<10, pulled: pulled)), Layer(workers: 0) { (x: Int) in x },
                    options: PipelineOptions(backend: backend))
                {}
            }
            #expect(pulled.count == 0)
        }
    }
}

/// A stream's run that the consumer left or cancelled: the last layer emitted exactly what the consumer
/// received, and the report balances (expectBalanced; `pulled` nil when the source's count is not known).
func expectConsumerCounts(
    _ report: PipelineReport?, delivered: Int, pulled: Int?, sourceLocation: SourceLocation = #_sourceLocation
) {
    expectBalanced(report, pulled: pulled, sourceLocation: sourceLocation)
    if let report {
        #expect(report.layers.last!.emitted == delivered, "emitted to the consumer", sourceLocation: sourceLocation)
    }
}
