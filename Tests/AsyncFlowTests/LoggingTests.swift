import InMemoryLogging
import Logging
import Testing

@testable import AsyncFlow

/// PipelineOptions.logger: the start, the first errors per layer, a drain, the failure, the end; nothing
/// per item.
extension Serial {
    @Suite("Logging")
    struct LoggingTests {
        func logged(_ backend: PipelineOptions.Backend) -> (InMemoryLogHandler, PipelineOptions) {
            let handler = InMemoryLogHandler()
            var logger = Logger(label: "flow-test") { _ in handler }
            logger.logLevel = .trace
            var options = PipelineOptions(backend: backend)
            options.logger = logger
            return (handler, options)
        }

        @Test(
            "a run logs its shape, the first few errors of each layer, and its report: nothing per item",
            arguments: PipelineOptions.Backend.allCases)
        func runLog(backend: PipelineOptions.Backend) async throws {
            let (handler, options) = logged(backend)
            let retried = Locked<Set<Int>>([])
            _ = try await pipeline(
                Layer(0..<10_000, name: "numbers"),
                Layer(workers: 2, name: "double", onError: .skip) { (x: Int) throws -> Int in
                    if x % 1_000 == 1 { throw TestError.bad(x) }  // 10 items
                    return x &* 2
                },
                Layer(name: "save", onError: .retry(attempts: 1)) { (x: Int) throws in
                    if x % 5_000 == 0 && retried.withLock({ $0.insert(x).inserted }) { throw TestError.bad(x) }  // 4
                }, options: options)
            let entries = handler.entries
            #expect(entries.count == 11, "\(entries.map(\.message))")  // start, 5 skips, 4 retries, end
            let start = try #require(entries.first)
            #expect(start.level == .info)
            let shape: String =
                "pipeline starting: numbers [source, 10000 items] → double [cpu, 2 workers, queue 8192, "
                + "onError skip] → save [serial, queue 4096, onError retry(attempts: 1)]"
            #expect(start.message.description == shape, "\(start.message)")
            #expect(start.metadata["backend"] == "\(backend)")
            let warnings = entries.filter { $0.level == .warning }.map(\.message.description)
            #expect(warnings.count == 5)
            #expect(warnings.allSatisfy { $0.hasPrefix("double: skipped an item: bad(") }, "\(warnings)")
            #expect(entries.filter { $0.level == .notice }.count == 4)
            let end = try #require(entries.last)
            #expect(end.level == .info && end.message.description.hasPrefix("pipeline finished:\n"))
            #expect(end.message.description.contains("double: 5 more skipped errors not logged"), "\(end.message)")
        }

        @Test("a failure and a drain are logged", arguments: PipelineOptions.Backend.allCases)
        func failureAndDrain(backend: PipelineOptions.Backend) async throws {
            var (handler, options) = logged(backend)
            await #expect(throws: TestError.bad(700)) {
                _ = try await pipeline(
                    Layer(0..<10_000), Layer(name: "check") { (x: Int) in if x == 700 { throw TestError.bad(x) } },
                    options: options)
            }
            let errors = handler.entries.filter { $0.level == .error }.map(\.message.description)
            #expect(errors == ["pipeline failed in check: bad(700)"])
            #expect(handler.entries.last?.message.description.hasPrefix("pipeline failed:\n") == true)

            handler.clear()
            let control = PipelineControl()
            options.control = control
            _ = try await pipeline(
                Layer(0..<1_000_000), Layer { (x: Int) in if x == 100 { control.drain() } }, options: options)
            #expect(handler.entries.count == 3)
            let messages = handler.entries.map(\.message.description)
            #expect(messages.contains("pipeline draining: no more pulls; finishing what was pulled"), "\(messages)")
            #expect(handler.entries.last?.message.description.hasPrefix("pipeline finished:\n") == true)
        }
    }
}
