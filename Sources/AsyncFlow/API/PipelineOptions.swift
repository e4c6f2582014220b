import CFlow
import Logging

/// How a pipeline runs. Every property has a default; set what you need.
///
/// Pool settings override the `FLOW_*` environment variables, which override the built-in defaults.
public struct PipelineOptions: Sendable {
    /// What runs the pipeline: CFlow (the default) or the pure-Swift baseline.
    public var backend: Backend = .native
    /// The most items a stage moves per queue operation (and so per C-loop batch). Default 1024.
    /// A stage never waits for a batch to fill: it takes what is there, up to this.
    public var batchSize: Int = 1024
    /// Threads of a CPU layer declared with `workers: nil` (else `FLOW_WORKERS`, else the CPUs allowed).
    public var workers: Int? = nil
    /// CPUs for the worker threads, as a cpulist (`"0-3,8"`), overriding `FLOW_CPUS`.
    public var cpus: String? = nil
    /// Pinning of worker threads, overriding `FLOW_PIN`.
    public var pin: Pinning? = nil
    /// Spin budget in nanoseconds before a waiting worker parks, overriding `FLOW_SPIN_NS`.
    public var spinNanoseconds: Int? = nil
    /// The worker threads' scheduling class, overriding `FLOW_SCHED` (native backend: the `.swift` backend
    /// has no threads of its own).
    public var scheduling: Scheduling? = nil
    /// How much nicer than the process the worker threads run, 0–19, overriding `FLOW_NICE` (default 5;
    /// Linux, native backend). Above 0, a thread of the app that wakes (a request handler, a timer on
    /// Swift's cooperative pool) gets a CPU from a busy worker at once; 0 gives the workers an equal share
    /// against other busy processes.
    public var niceness: Int? = nil
    /// The worker threads' time slice in nanoseconds, 0 (the kernel's own) or 100,000–100,000,000,
    /// overriding `FLOW_SLICE_NS` (default 5 ms; Linux 6.12 and later, native backend). A thread of the
    /// app whose slice is shorter (the kernel gives every thread 0.7–2.8 ms) can take a CPU from a busy
    /// worker as soon as it wakes, instead of waiting out the worker's slice. It changes no thread's share of the
    /// CPUs: ``niceness`` does that.
    public var sliceNanoseconds: Int? = nil
    /// Where the run tells what it does (apple/swift-log): at the start its layers, workers, queue
    /// capacities, backend and pinning (info); each skipped (warning) or retried (notice) error, the first
    /// few per layer, then how many more; a drain (info); the failure (error); the final report (info).
    /// Nothing is logged per item. nil (the default): no logging.
    public var logger: Logger? = nil
    /// A handle to drain the run from outside (``PipelineControl/drain()``); nil: none.
    public var control: PipelineControl? = nil
    /// Called every `progressInterval` while the pipeline runs, and once at the end.
    public var progress: (@Sendable (ProgressSnapshot) -> Void)? = nil
    /// How often `progress` is called. Default 1 s.
    public var progressInterval: Duration = .seconds(1)
    /// A live progress line on standard error: items done, rate, each queue's fill, elapsed time and an
    /// ETA when the source's count is known (see ``ProgressSnapshot/expected``); redrawn up to
    /// 10 times a second and finished with a newline at the end. Nothing is written when standard error
    /// is not a terminal (a log file, a pipe). Default off.
    public var progressBar = false
    /// Tests only: where the progress bar writes (standard error).
    @usableFromInline var progressBarDescriptor: Int32 = 2
    /// Called once with the final report however the pipeline ended: also when it throws (the first
    /// `.fail` error, `CancellationError`), so the counts of a failed run are not lost. Its figures keep
    /// `received == emitted + failed + skipped + dropped` for every layer.
    public var onReport: (@Sendable (PipelineReport) -> Void)? = nil
    /// Per-layer counters, queue-depth gauges and a per-item time through apple/swift-metrics; off
    /// (nil) by default. See ``PipelineMetrics``.
    public var metrics: PipelineMetrics? = nil
    /// Tests only (fault injection): CPU pools fail to start after this many threads (0: never).
    @usableFromInline var poolStartFailureAfter: UInt32 = 0

    public init() {}

    /// Creates options for `backend`, the rest at their defaults.
    public init(backend: Backend) {
        self.backend = backend
    }

    /// The machinery under the same API and semantics.
    public enum Backend: String, Sendable, CaseIterable {
        /// CFlow: lock-free C rings between layers, CPU layers on (optionally pinned) C threads.
        case native
        /// Only the standard library and Swift concurrency: Mutex-guarded bounded queues with
        /// continuations, batching as the native backend does, CPU layers as `workers` Swift tasks.
        /// The baseline flow-bench compares the native backend against.
        case swift
    }

    /// The scheduling class of worker threads (`FLOW_SCHED`; Linux scheduling policies).
    public enum Scheduling: String, Sendable {
        /// The OS's time-sharing class (`SCHED_OTHER`): workers compete with the app's threads as equals.
        case normal
        /// `SCHED_BATCH`: CPU-bound threads that do not preempt others when they wake.
        case batch
        /// `SCHED_IDLE`: workers run only when no thread of the normal class wants the CPU, so the app's
        /// own threads (Swift's cooperative pool: request handlers, timers) always go first.
        case idle
    }

    /// Worker-thread pinning (`FLOW_PIN`).
    public enum Pinning: String, Sendable {
        /// Threads float over the allowed CPUs.
        case none
        /// Worker i on the i-th allowed CPU, SMT siblings next to each other.
        case compact
        /// One hardware thread of every core first, then their siblings.
        case spread
    }
}

extension PipelineOptions {
    /// Check these options and the `FLOW_*` environment variables without running anything: throws the
    /// ``FlowConfigurationError`` a pipeline run with them would throw before pulling any item.
    public func validate() throws(FlowConfigurationError) {
        _ = try poolConfigValidated()
    }

    /// The threads a CPU layer declared with `workers: nil` gets under these options (AsyncFlowPostgres's
    /// FlowWorker paces its claims by them).
    package func resolvedWorkers() throws(FlowConfigurationError) -> Int {
        Int(try poolConfigValidated().workers)
    }

    /// The pool configuration after checking every option: defaults, then FLOW_* variables, then these.
    func poolConfigValidated() throws(FlowConfigurationError) -> flow_config {
        if batchSize < 1 {
            throw FlowConfigurationError(
                parameter: "PipelineOptions.batchSize", message: "batchSize \(batchSize): must be at least 1")
        }
        if progress != nil && progressInterval <= .zero {
            throw FlowConfigurationError(
                parameter: "PipelineOptions.progressInterval",
                message: "progressInterval \(progressInterval): must be positive")
        }
        return try poolConfig()
    }

    /// The pool configuration: defaults, then FLOW_* variables, then these options.
    private func poolConfig() throws(FlowConfigurationError) -> flow_config {
        var config = flow_config()
        var err = flow_error()
        guard flow_config_init(&config, &err) == FLOW_OK, flow_config_apply_env(&config, &err) == FLOW_OK else {
            throw FlowConfigurationError(parameter: variableName(in: cMessage(&err)), message: cMessage(&err))
        }
        let overrides: [(String, String, String?)] = [
            ("PipelineOptions.cpus", "FLOW_CPUS", cpus),
            ("PipelineOptions.pin", "FLOW_PIN", pin?.rawValue),
            ("PipelineOptions.spinNanoseconds", "FLOW_SPIN_NS", spinNanoseconds.map(String.init)),
            ("PipelineOptions.scheduling", "FLOW_SCHED", scheduling?.rawValue),
            ("PipelineOptions.niceness", "FLOW_NICE", niceness.map(String.init)),
            ("PipelineOptions.sliceNanoseconds", "FLOW_SLICE_NS", sliceNanoseconds.map(String.init)),
        ]
        for (parameter, variable, value) in overrides {
            guard let value else { continue }
            if flow_config_set(&config, variable, value, &err) != FLOW_OK {
                let raw = cMessage(&err)
                let text = raw.hasPrefix(variable) ? parameter + raw.dropFirst(variable.count) : raw
                throw FlowConfigurationError(parameter: parameter, message: text)
            }
        }
        if let workers {  // after FLOW_CPUS, which sets the count only where none was given
            try checkWorkers(workers, parameter: "PipelineOptions.workers")
            config.workers = UInt32(workers)
            config.workers_explicit = 1
        }
        return config
    }
}

/// The FLOW_* variable a C configuration message starts with, or "environment".
private func variableName(in message: String) -> String {
    guard message.hasPrefix("FLOW_"), let end = message.firstIndex(where: { $0 == "=" || $0 == ":" }) else {
        return "environment"
    }
    return String(message[..<end])
}
