// Stage.swift — what the runner needs from each layer's running form, and what a stage is given.
import Synchronization

/// A layer being run. The runner calls prepare() on every stage (configuration errors surface here,
/// before any item is pulled), then run() on all of them concurrently.
///
/// The runner sees a stage only through a ``StageHandle``: closures made by ``StageHandle/init(_:)`` in
/// the user's module (it is @inlinable and generic), so they call the concrete stage's methods directly
/// and the compiler specialises the per-item loops for the user's item types. A protocol existential
/// would dispatch to the library's unspecialised generic code (metadata lookups per item).
///
/// A new kind of stage: a class conforming to Stage in this folder, whose loop is a ``BatchLoop`` (it
/// keeps the accounting rules), and a `Layer` initialiser that makes it.
@usableFromInline protocol Stage: AnyObject, Sendable {
    func prepare() throws(FlowConfigurationError)
    /// Move items from input to output until the input is closed and drained or the run is stopped;
    /// then finish as a producer of the output link. Never throws: failures go to RunState.
    func run() async
    /// Whether the stage awaits once per item (an async closure): such a stage stays on Swift's global
    /// executor, where an await that does not suspend costs least (on a task with an executor preference
    /// each one takes the task's status lock). A single AsyncSequence source does
    /// not, to keep the pool the run's one scheduler ([an async source pulls on the pool]).
    var awaitsPerItem: Bool { get }
}

extension Stage {
    @inlinable func prepare() throws(FlowConfigurationError) {}
    @inlinable var awaitsPerItem: Bool { false }
}

/// A stage with its type erased into closures (see ``Stage``).
@usableFromInline
struct StageHandle: Sendable {
    let prepare: @Sendable () throws(FlowConfigurationError) -> Void
    let run: @Sendable () async -> Void
    let awaitsPerItem: Bool

    @inlinable
    init<S: Stage>(_ stage: S) {
        self.init(
            prepare: { () throws(FlowConfigurationError) in try stage.prepare() }, run: { await stage.run() },
            awaitsPerItem: stage.awaitsPerItem)
    }

    @usableFromInline
    init(
        prepare: @escaping @Sendable () throws(FlowConfigurationError) -> Void,
        run: @escaping @Sendable () async -> Void, awaitsPerItem: Bool
    ) {
        self.prepare = prepare
        self.run = run
        self.awaitsPerItem = awaitsPerItem
    }
}

/// What the runner decided for one stage, before its item types are known (see ErasedLayer).
@usableFromInline struct StagePlan: Sendable {
    @usableFromInline let input: (any AnyLink)?
    @usableFromInline let output: (any AnyLink)?
    @usableFromInline let layer: LayerRuntime
    /// Items per batch buffer (Sizing: batchLimit).
    @usableFromInline let batch: Int
    /// Parallel loops: a CPU layer's workers (1 for the other kinds).
    @usableFromInline let workers: Int
    /// Threads a CPU layer's pool adds that only run the other stages ([helpers fill the spare cpus]).
    @usableFromInline let helpers: Int
    /// Set for an `ordered: true` parallel layer that passes results on: restores input order.
    @usableFromInline let window: OrderedWindow?
    @usableFromInline let backend: any Backend
    /// How items cross the input / output link ([direct hand-offs only where they pay]).
    @usableFromInline let inputHandOff: HandOff
    @usableFromInline let outputHandOff: HandOff
}

/// Everything a stage is built from: the plan, with the links typed.
@usableFromInline struct StageContext<Input, Output>: @unchecked Sendable {
    // @unchecked: the links, the layer's runtime and the backend are thread-safe; the rest is immutable.
    @usableFromInline let plan: StagePlan
    @usableFromInline let input: Link<Input>?
    /// nil for the last layer: its outputs (Void) are counted and dropped.
    @usableFromInline let output: Link<Output>?

    @inlinable init(_ plan: StagePlan) {
        self.plan = plan
        input = plan.input.map { typed($0, as: Input.self) }
        output = plan.output.map { typed($0, as: Output.self) }
    }

    @inlinable var layer: LayerRuntime { plan.layer }
    @inlinable var batch: Int { plan.batch }
    @inlinable var workers: Int { plan.workers }
    @inlinable var helpers: Int { plan.helpers }
    @inlinable var window: OrderedWindow? { plan.window }
    @inlinable var backend: any Backend { plan.backend }
    @inlinable var inputHandOff: HandOff { plan.inputHandOff }
    @inlinable var outputHandOff: HandOff { plan.outputHandOff }
    @inlinable var run: RunState { layer.run }
    @inlinable var counters: LayerCounters { layer.counters }
}

/// A link of the plan with its item type: the runner made link i with layer i's output type, which is
/// layer i + 1's input type, so the type always matches (a mismatch is a bug in the runner, named here).
@inlinable func typed<T>(_ link: any AnyLink, as _: T.Type) -> Link<T> {
    guard let typed = link as? Link<T> else { preconditionFailure("\(type(of: link)) where a Link<\(T.self)> belongs") }
    return typed
}
