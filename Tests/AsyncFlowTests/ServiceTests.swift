import AsyncFlowServiceLifecycle
import Logging
import ServiceLifecycle
import Testing

@testable import AsyncFlow

/// PipelineService under a ServiceGroup: graceful shutdown drains, cancellation cancels.
extension Serial {
    @Suite("PipelineService (swift-service-lifecycle)")
    struct ServiceTests {
        static let quiet = Logger(label: "service-test") { _ in SwiftLogNoOpLogHandler() }

        /// An endless pipeline service that says when `after` items have been collected.
        func endless(_ backend: PipelineOptions.Backend, after: Int) -> (PipelineService, Counter, AsyncStream<Void>) {
            let collected = Counter()
            let (reached, reaching) = AsyncStream<Void>.makeStream()
            let service = PipelineService(options: PipelineOptions(backend: backend)) { options in
                try await pipeline(
                    Layer(DrainTests.Naturals(pulled: Counter())), Layer(workers: 2, ordered: true) { (x: Int) in x },
                    Layer { (x: Int) async in
                        collected.add(1)
                        if collected.count == after { reaching.yield() }
                    }, options: options)
            }
            return (service, collected, reached)
        }

        @Test(
            "a graceful shutdown drains the pipeline: nothing pulled is lost", .timeLimit(.minutes(1)),
            arguments: PipelineOptions.Backend.allCases)
        func gracefulShutdownDrains(backend: PipelineOptions.Backend) async throws {
            let (service, collected, reached) = endless(backend, after: 5_000)
            let group = ServiceGroup(configuration: .init(services: [service], logger: Self.quiet))
            async let running: Void = group.run()
            var signal = reached.makeAsyncIterator()
            await signal.next()
            await group.triggerGracefulShutdown()
            try await running
            let report = try #require(service.report)
            #expect(report.dropped == 0 && report.failed == 0 && report.skipped == 0)
            #expect(report.pulled == report.completed && report.completed == collected.count)
            #expect(report.completed >= 5_000)
        }

        @Test("cancelling the group cancels the pipeline", .timeLimit(.minutes(1)))
        func cancellationCancels() async throws {
            let (service, _, reached) = endless(.native, after: 1_000)
            let group = ServiceGroup(configuration: .init(services: [service], logger: Self.quiet))
            let running = Task { try await group.run() }
            var signal = reached.makeAsyncIterator()
            await signal.next()
            running.cancel()
            _ = await running.result
            let report = try #require(service.report)
            #expect(report.completed >= 1_000)
            #expect(report.pulled == report.completed + report.dropped)
        }
    }
}
