// PipelineService.swift — a pipeline as a swift-service-lifecycle Service: graceful shutdown drains it,
// cancellation cancels it, and its report is kept for whoever started it.
//
// Invariant:
//  [a shutdown drains the service] A graceful shutdown of the group (SIGTERM, SIGINT, triggerGracefulShutdown) drains
//    the run (PipelineControl, [a drain only ends the pulls]): nothing it pulled is lost, and run() returns normally.
//    A cancellation of the group cancels the run (what was not finished is counted as dropped) and run() throws
//    CancellationError. Either way `report` holds the run's report once run() has returned.
public import AsyncFlow
public import ServiceLifecycle
import Synchronization

/// Runs a pipeline as a `Service` under swift-service-lifecycle's `ServiceGroup`:
///
/// ```swift
/// let ingest = PipelineService { options in
///     try await pipeline(Layer(source), Layer(workers: nil) { parse($0) },
///                        Layer(batchesOf: 500) { try await db.insert($0) }, options: options)
/// }
/// let job = ServiceGroupConfiguration.ServiceConfiguration(
///     service: ingest, successTerminationBehavior: .gracefullyShutdownGroup)
/// let group = ServiceGroup(configuration: .init(
///     services: [job], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
/// try await group.run()
/// print(ingest.report!)   // SIGTERM: dropped == 0, pulled == completed + skipped + failed
/// ```
///
/// The closure gets the service's options with a ``PipelineControl`` in them (the one given, or a new
/// one) and must pass them to `pipeline(...)`. A graceful shutdown drains the run: the source is no
/// longer pulled and every item already pulled goes through every layer, so an ingest job stopped by
/// SIGTERM loses nothing it took. Cancelling the group cancels the run. When the run ends by itself, the
/// service returns: a job whose end should end the group says `successTerminationBehavior:
/// .gracefullyShutdownGroup` (as above); by default `ServiceGroup` treats a service that returns as a
/// failure (`serviceFinishedUnexpectedly`), which suits a pipeline meant to run for ever.
public final class PipelineService: Service, Sendable {
    public typealias Body = @Sendable (PipelineOptions) async throws -> PipelineReport

    let options: PipelineOptions
    let body: Body
    let control: PipelineControl
    let lastReport = Mutex<PipelineReport?>(nil)

    /// A service that runs `body` with `options` (whose `control` is used, or a new one made).
    public init(options: PipelineOptions = PipelineOptions(), _ body: @escaping Body) {
        var options = options
        control = options.control ?? PipelineControl()
        options.control = control
        self.options = options
        self.body = body
    }

    /// The run's report, once run() has returned (also when it threw).
    public var report: PipelineReport? { lastReport.withLock { $0 } }

    /// Drain the run now, as a graceful shutdown would ([a shutdown drains the service]).
    public func drain() { control.drain() }

    /// Whether the run was drained (a graceful shutdown, or drain()).
    public var isDraining: Bool { control.isDraining }

    public func run() async throws {
        var options = self.options
        let mine = options.onReport
        options.onReport = { [self] report in
            lastReport.withLock { $0 = report }
            mine?(report)
        }
        let body = self.body
        let control = self.control
        try await withGracefulShutdownHandler {
            _ = try await body(options)
        } onGracefulShutdown: {
            control.drain()  // [a shutdown drains the service]
        }
    }
}
