import CFlow
// Stage.swift — what the runner needs from each layer's running form, and what a stage is given.
import Synchronization

/// A layer being run. The runner calls prepare() on every stage (configuration errors surface here,
/// before any item is pulled), then run() on all of them concurrently.
///
/// The runner sees a stage only through a ``StageHandle``: closures made by ``StageHandle/init(_:)`` in
/// the user's module (it is @inlinable and generic), so they call the concrete stage's methods directly
/// and the compiler specialises the per-item loops for the user's item types. A protocol existential
/// would dispatch to the library's unspecialised generic code (metadata lookups per item).
@usableFromInline protocol Stage: AnyObject, Sendable {
    func prepare() throws(FlowConfigurationError)
    /// Move items from input to output until the input is closed and drained or the run is stopped;
    /// then finish as a producer of the output link. Never throws: failures go to RunState.
    func run() async
}

extension Stage {
    @inlinable func prepare() throws(FlowConfigurationError) {}
}

/// A stage with its type erased into closures (see ``Stage``).
@usableFromInline
struct StageHandle: Sendable {
    let prepare: @Sendable () throws(FlowConfigurationError) -> Void
    let run: @Sendable () async -> Void

    @inlinable
    init<S: Stage>(_ stage: S) {
        self.init(prepare: { () throws(FlowConfigurationError) in try stage.prepare() }, run: { await stage.run() })
    }

    @usableFromInline
    init(
        prepare: @escaping @Sendable () throws(FlowConfigurationError) -> Void,
        run: @escaping @Sendable () async -> Void
    ) {
        self.prepare = prepare
        self.run = run
    }
}

/// Everything a stage is built from.
@usableFromInline struct StageContext<Input, Output>: @unchecked Sendable {
    // @unchecked: the links and RunState are thread-safe; the rest is immutable.
    @usableFromInline let input: Link<Input>?
    /// nil for the last layer: its outputs (Void) are counted and dropped.
    @usableFromInline let output: Link<Output>?
    @usableFromInline let policy: PolicyRun
    @usableFromInline let batch: Int
    @usableFromInline let workers: Int
    @usableFromInline let pool: flow_config
    /// Set for an `ordered: true` parallel layer that passes results on: restores input order.
    @usableFromInline let window: OrderedWindow?
    @usableFromInline let backend: PipelineOptions.Backend

    /// Tests only: make this stage's pool fail to start after this many threads (0: never).
    @usableFromInline let poolStartFailureAfter: UInt32

    @inlinable
    init(
        input: Link<Input>?, output: Link<Output>?, policy: PolicyRun, options: PipelineOptions, workers: Int,
        pool: flow_config, window: OrderedWindow?
    ) {
        self.input = input
        self.output = output
        self.policy = policy
        self.batch = batchLimit(
            options.batchSize, stride: max(MemoryLayout<Input>.stride, MemoryLayout<Output>.stride))
        self.backend = options.backend
        self.poolStartFailureAfter = options.poolStartFailureAfter
        self.workers = workers
        self.pool = pool
        self.window = window
    }

    @inlinable var run: RunState { policy.run }
    @inlinable var counters: LayerCounters { policy.counters }
}

/// Bytes one batch buffer may take: large items move in smaller batches, so a stage's buffers stay
/// about this size whatever the item type (a 64 KiB item moves 64 at a time, an Int 1024).
@usableFromInline let batchByteBudget = 4 << 20

/// The batch size for items of `stride` bytes: `batchSize`, or fewer so a batch fits batchByteBudget.
@inlinable func batchLimit(_ batchSize: Int, stride: Int) -> Int {
    min(batchSize, max(1, batchByteBudget / max(1, stride)))
}

/// Move `count` items out of `inBuf` through `transform` under the layer's error policy, writing the
/// results to `outBuf` when `keep` (else they are discarded: the last layer's Void). A failure drops the
/// rest of the batch, counted (CPUStage C3). The time it takes is added to the layer's `busy` counter.
/// Returns how many results were made and that time in nanoseconds (for batch sizing).
@inlinable
func transformBatch<I, O>(
    _ inBuf: UnsafeMutablePointer<I>, count: Int, into outBuf: UnsafeMutablePointer<O>, keep: Bool,
    policy: PolicyRun, _ transform: (I) throws -> O
) -> (made: Int, nanoseconds: Int) {
    let start = ContinuousClock.now
    var made = 0
    var i = 0
    while i < count {
        let item = (inBuf + i).move()
        i += 1
        switch policy.call({ try transform(item) }) {
        case .value(let v):
            if keep { (outBuf + made).initialize(to: v) }
            made += 1
        case .skipped:
            break
        case .failed:
            (inBuf + i).deinitialize(count: count - i)
            policy.counters.dropped.add(count - i, ordering: .relaxed)
            i = count
        }
    }
    let spent = (ContinuousClock.now - start).wholeNanoseconds
    policy.counters.busy.add(spent, ordering: .relaxed)
    return (made, spent)
}

/// Count a batch's push: what went in is emitted, what a closed link refused is dropped.
@inlinable
func settlePush<O>(_ outBuf: UnsafeMutablePointer<O>, made: Int, pushed: Int, counters: LayerCounters) {
    if pushed < made {
        (outBuf + pushed).deinitialize(count: made - pushed)
        counters.dropped.add(made - pushed, ordering: .relaxed)
    }
    counters.emitted.add(pushed, ordering: .relaxed)
}

/// Push a batch of results on from a task (suspending while the link is full), or, for the last
/// layer, just count them.
@inlinable
func pushOn<O>(_ outBuf: UnsafeMutablePointer<O>, made: Int, to output: Link<O>?, counters: LayerCounters) async {
    guard let output else {
        counters.emitted.add(made, ordering: .relaxed)
        return
    }
    settlePush(outBuf, made: made, pushed: await output.push(outBuf, count: made), counters: counters)
}

/// pushOn for a layer that may be ordered: with a window, wait for this batch's turn (OrderedWindow O1,
/// O2), push, and pass the turn on; if the run stops while waiting, the results are dropped, counted.
@inlinable
func pushOn<O>(
    _ outBuf: UnsafeMutablePointer<O>, made: Int, to output: Link<O>?, counters: LayerCounters,
    window: OrderedWindow?, position: UInt64, inputCount: Int, run: RunState
) async {
    guard let window, output != nil else {
        await pushOn(outBuf, made: made, to: output, counters: counters)
        return
    }
    guard await window.waitTurn(position, run: run) else {
        settlePush(outBuf, made: made, pushed: 0, counters: counters)
        return
    }
    await pushOn(outBuf, made: made, to: output, counters: counters)
    window.advance(from: position, by: inputCount)
}

/// How many items a CPU worker should take per pop: about `target` ns of work by the running average of
/// its cost per item, between 1 and `limit` (CPUStage C7). Cheap items move in full batches; slow ones
/// in small batches, so the last items of a run are not left queued behind one busy worker.
@usableFromInline
struct BatchSizer {
    @usableFromInline let limit: Int
    @usableFromInline var nanosecondsPerItem = 0.0
    @usableFromInline static var target: Double { 100_000 }

    @inlinable init(limit: Int) { self.limit = limit }

    @inlinable var size: Int {
        guard nanosecondsPerItem > 0 else { return min(limit, 16) }  // first batch: small, to measure
        return max(1, min(limit, Int(Self.target / nanosecondsPerItem)))
    }

    @inlinable mutating func record(items: Int, nanoseconds: Double) {
        guard items > 0 else { return }
        let perItem = nanoseconds / Double(items)
        nanosecondsPerItem = nanosecondsPerItem == 0 ? perItem : 0.8 * nanosecondsPerItem + 0.2 * perItem
    }
}

/// A stage loop's batch buffers; release() frees them and finishes the loop as a producer of `output`
/// (Link L4), which every loop does exactly once on its way out.
@usableFromInline
struct BatchBuffers<Input, Output> {
    @usableFromInline let input: UnsafeMutablePointer<Input>
    @usableFromInline let output: UnsafeMutablePointer<Output>

    @inlinable init(capacity: Int) {
        input = .allocate(capacity: capacity)
        output = .allocate(capacity: capacity)
    }

    @inlinable func release(finishing link: Link<Output>?) {
        input.deallocate()
        output.deallocate()
        link?.finishProducer()
    }
}

/// After RunState.stopped a popped batch is not processed but dropped, counted (CPUStage C5, A5).
/// Returns whether it was.
@inlinable
func droppedAfterStop<I>(_ batch: UnsafeMutablePointer<I>, count: Int, run: RunState, counters: LayerCounters) -> Bool {
    guard run.stopped else { return false }
    batch.deinitialize(count: count)
    counters.dropped.add(count, ordering: .relaxed)
    return true
}
