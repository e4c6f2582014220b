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
            for try await s in pipelineStream(
                Layer(0..<3_000), Layer(workers: 3, ordered: true) { (x: Int) in x },
                Layer(concurrency: 4, ordered: true) { (x: Int) async in "\(x)" },
                options: PipelineOptions(backend: backend))
            {
                seen.append(s)
            }
            let firstWrong = seen.indices.first { seen[$0] != "\($0)" }
            #expect(seen.count == 3_000)
            #expect(
                firstWrong == nil,
                "first out of order at \(firstWrong ?? -1): \(seen[max(0, (firstWrong ?? 0) - 3)..<min(seen.count, (firstWrong ?? 0) + 4)])"
            )
        }

        @Test(
            "breaking out of the loop cancels the pipeline and releases every thread",
            arguments: PipelineOptions.Backend.allCases)
        func breakOut(backend: PipelineOptions.Backend) async throws {
            let before = threadCount()
            let pulled = Counter()
            let stream = pipelineStream(
                Layer(CountingSequence(range: 0..<10_000_000, pulled: pulled)), Layer(workers: 2) { (x: Int) in x },
                options: PipelineOptions(backend: backend))
            var got = 0
            for try await _ in stream {
                got += 1
                if got == 1_000 { break }
            }
            await #expect(throws: CancellationError.self) { try await stream.report() }
            #expect(got == 1_000)
            #expect(pulled.count < 10_000_000)
            #expect(threadCount() == before)
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
            let before = threadCount()
            let (reached, signal) = AsyncStream<Void>.makeStream()
            let stream = pipelineStream(
                Layer(0..<Int.max), Layer(workers: 2) { (x: Int) in x }, options: PipelineOptions(backend: backend))
            let consumer = Task {
                var n = 0
                for try await _ in stream {
                    n += 1
                    if n == 500 { signal.yield() }
                }
                return n
            }
            for await _ in reached { break }
            consumer.cancel()
            await #expect(throws: CancellationError.self) { try await consumer.value }
            await #expect(throws: CancellationError.self) { try await stream.report() }
            #expect(threadCount() == before)
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
