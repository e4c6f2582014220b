// Backend.swift — the seam between the engine and the machinery that runs a pipeline.
//
// A backend supplies these for one run, and nothing outside Backends/ knows which one runs:
//  - a link's storage: a bounded queue whose push and pop suspend the calling task (LinkQueue);
//  - a CPU layer's workers: where its `workers` copies of the batch loop run (C threads, Swift tasks);
//  - a parker for workers that block a thread while they wait for their turn in an ordered layer;
//  - where the other stages run (a task executor), and which links skip their queue (HandOff.swift).
// A new backend is a type conforming to Backend in a folder of its own under Backends/, and a case of
// PipelineOptions.Backend mapped to it in `implementation(pool:startFailureAfter:)` below.
import CFlow

@usableFromInline protocol Backend: Sendable {
    /// The storage of a link that carries items of type `T`, holding at most `capacity` of them.
    func makeQueue<T>(of type: T.Type, capacity: Int) throws(FlowConfigurationError) -> any LinkQueue<T>
    /// A CPU layer's workers, built but not started: configuration errors surface here
    /// ([configuration errors before the first pull]).
    func makeWorkers(_ loops: WorkerLoops, layer: String) throws(FlowConfigurationError) -> any WorkerGroup
    /// What blocked threads wait on in an ordered window; nil when this backend's workers are tasks.
    func makeThreadParker() -> (any ThreadParking)?
    /// Where the run's other stages (every layer but the CPU layers) run: nil for Swift's global
    /// executor. The native backend's runs them on its pool threads (PoolExecutor).
    var stageExecutor: (any TaskExecutor)? { get }
    /// The last of the stages that run on stageExecutor has ended.
    func stagesEnded()
    /// How many jobs stageExecutor has started so far (0 for the global executor): a task that reads a
    /// different count after an await knows it may have been suspended (a hint).
    var jobsStarted: Int { get }
    /// For each link of a run (link i joins layer i to layer i + 1), whether its items go through its queue
    /// or skip it (Backends/HandOff.swift); a backend whose workers are tasks keeps every queue.
    func handOffs(_ layers: [ErasedLayer], sizes: RunSizes, streaming: Bool) -> [HandOff]
    /// Whether the calling thread is one this backend runs CPU layers' loops on: the only threads a batch may
    /// be carried through a CPU layer on ([carried batches]).
    var onWorkerThread: Bool { get }
    /// Whether the calling task runs as a job that a pool thread took while it waited on a ring: the waiter
    /// gets its thread back only when the job returns ([a job under a wait yields each batch]).
    var underAWait: Bool { get }
}

/// A CPU layer's batch loop in the two forms a backend may run it: each call is one worker.
@usableFromInline struct WorkerLoops: Sendable {
    @usableFromInline let count: Int
    /// Threads to add that run no loop, only the run's other stages (a backend without a scheduler
    /// ignores them).
    @usableFromInline let helpers: Int
    /// On a thread the backend owns, blocking in its pops and pushes.
    @usableFromInline let onThread: @Sendable (PoolThread) -> Void
    /// As a Swift task, suspending in its pops and pushes.
    @usableFromInline let inTask: @Sendable () async -> Void

    @inlinable init(
        count: Int, helpers: Int, onThread: @escaping @Sendable (PoolThread) -> Void,
        inTask: @escaping @Sendable () async -> Void
    ) {
        self.count = count
        self.helpers = helpers
        self.onThread = onThread
        self.inTask = inTask
    }
}

/// A CPU layer's workers (see Backend.makeWorkers).
@usableFromInline protocol WorkerGroup: Sendable {
    /// Start every worker and return once all of them have finished (threads joined). A failure to
    /// start fails `run`, which closes every link, so the workers that did start finish too.
    func run(_ run: RunState) async
}

/// Threads blocked until a condition holds (the ordered window's turn).
@usableFromInline protocol ThreadParking: AnyObject, Sendable {
    /// Block the calling thread until `ready()` is true; no wake-up is lost between check and sleep.
    func park(until ready: () -> Bool)
    /// Wake every parked thread, to re-check its condition.
    func wakeAll()
}

extension PipelineOptions.Backend {
    /// This backend for one run, with the pool settings (FLOW_* and the options) it may use.
    func implementation(pool: flow_config, startFailureAfter: UInt32) -> any Backend {
        switch self {
        case .native: NativeBackend(pool: pool, startFailureAfter: startFailureAfter)
        case .swift: SwiftBackend()
        }
    }
}
