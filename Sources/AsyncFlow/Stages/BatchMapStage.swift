// BatchMapStage.swift — a middle layer that hands its items over in batches to an async closure that
// returns their results (Layer(batchesOf:concurrency:) { [Input] -> [Output] }: a bulk API call, a
// remote executor such as AsyncFlowPostgres's distributed layer), with up to `concurrency` batches in
// flight.
//
// Invariants:
//  [batches gathered in input order] One task gathers the batches ([gathered items handed over together]): batch k
//    holds the items popped after those of batch k - 1, so batch numbers are input order. Each batch is handed to a
//    child task; at most `concurrency` children are running (the gatherer waits for one to end before it starts
//    another).
//  [the next batch is always running] Ordered: a batch's results are pushed only in its turn (OrderedWindow over batch
//    numbers: the holder of batch k advances `next` to k + 1). Batch `next` is always running or pushing, because
//    batches start in number order, so holding a slot while waiting never blocks the turn.
//  [every gathered item accounted for] Every item gathered is, by the end of its batch, emitted, skipped, failed or
//    dropped ([every item accounted for]): the call's results are pushed (emitted, or dropped if the link refused
//    them), the outcome's skipped and failed are counted as such, and the rest of the batch (items it returned no
//    result for, after a failure) is counted dropped. A batch whose call did not start before a stop is dropped.
//  [the batch layer is one producer] The stage is one producer of its output link: the gatherer's loop does not finish
//    it; the stage does, once, after every child has ended.
//  [a batch call runs to its end] A call in flight is not interrupted by a stop (like an async layer's closure); a
//    closure that waits on something outside (a remote worker) runs that wait under a stop hook
//    (BatchCall.whileRunning) to end it. Its results are then dropped.
//  [the end hook runs after every call] `ended`, when given, is awaited once after every call has ended, however the
//    run ended, before the stage finishes its output ([the batch layer is one producer]): where the calls' side effects
//    elsewhere are cleaned up.
import Synchronization

/// What one call of a batch layer's closure produced, for layers whose items are handled elsewhere
/// under the layer's error policy (AsyncFlowPostgres): results for the items that gave one, in input
/// order, and what became of the others.
@usableFromInline package struct BatchOutcome<Output: Sendable>: Sendable {
    @usableFromInline package var outputs: [Output]
    /// Items skipped under `.skip`, and the first few of their errors (kept for the report).
    @usableFromInline package var skipped: Int
    @usableFromInline package var skippedErrors: [any Error]
    /// Items failed: the first failure's error stops the run (the other items without a result are
    /// counted dropped).
    @usableFromInline package var failed: Int
    @usableFromInline package var failure: (any Error)?
    /// Retries made (items), as ErrorPolicy.retry counts them.
    @usableFromInline package var retried: Int
    /// The remote worker that did the batch, if another process did (counted per worker in the report).
    @usableFromInline package var worker: String?
    /// Set when the layer's own policy counted the skipped or failed items already (LayerRuntime.settle).
    @usableFromInline var settled = false

    @usableFromInline package init(
        outputs: [Output], skipped: Int = 0, skippedErrors: [any Error] = [], failed: Int = 0,
        failure: (any Error)? = nil, retried: Int = 0, worker: String? = nil
    ) {
        self.worker = worker
        self.outputs = outputs
        self.skipped = skipped
        self.skippedErrors = skippedErrors
        self.failed = failed
        self.failure = failure
        self.retried = retried
    }

    /// A batch the layer's policy skipped or failed as a whole, counted and its error kept or failing
    /// the run by LayerRuntime.settle ([a batch call counts in items]).
    @usableFromInline init(settled count: Int, skipped: Bool) {
        self.init(outputs: [], skipped: skipped ? count : 0, failed: skipped ? 0 : count)
        settled = true
    }

    /// The same outcome with `outputs` for its results (a named run's, with their positions).
    @inlinable func with<T>(outputs: [T]) -> BatchOutcome<T> {
        var outcome = BatchOutcome<T>(
            outputs: outputs, skipped: skipped, skippedErrors: skippedErrors, failed: failed, failure: failure,
            retried: retried, worker: worker)
        outcome.settled = settled
        return outcome
    }
}

/// What a batch closure that works elsewhere may know of its run (see BatchOutcome).
@usableFromInline package struct BatchCall: Sendable {
    @usableFromInline let layer: LayerRuntime
    /// In a named run, the source positions of the call's items, in the same order; nil otherwise.
    package private(set) var positions: [UInt64]?

    @usableFromInline init(layer: LayerRuntime) { self.layer = layer }

    /// The same call for items at `positions` (a named run's positioned form).
    @usableFromInline func with(positions: [UInt64]) -> BatchCall {
        var call = self
        call.positions = positions
        return call
    }

    /// The layer's name in the report.
    package var layerName: String { layer.name }
    /// The layer's error policy (applied where the items are handled).
    package var policy: ErrorPolicy { layer.policy }
    /// Whether the run has stopped (its results would be dropped).
    package var stopped: Bool { layer.run.stopped }
    /// The named run's name, when the run has one (DurableRun).
    package var runName: String? { layer.run.named?.name }

    /// Items handled elsewhere wait for a remote worker that nobody runs: since `waited` ago, or no longer (nil). The
    /// progress snapshot and the metrics show it.
    package func unclaimed(for waited: Duration?) {
        let nanoseconds = waited.map { Int($0.secondsDouble * 1e9) } ?? 0
        layer.counters.unclaimed.store(max(0, nanoseconds), ordering: .relaxed)
    }

    /// Run `body`; if the run stops (a failure elsewhere, cancellation) before it returns, call `hook` once, at once if
    /// it has stopped already ([a batch call runs to its end]). The hook is forgotten when `body` returns.
    package func whileRunning<T>(
        onStop hook: @escaping @Sendable () -> Void, _ body: () async throws -> T
    ) async rethrows -> T {
        let closable = StopHook(hook)
        layer.run.register(closable)
        defer { layer.run.unregister(closable) }
        if layer.run.stopped { closable.close() }
        return try await body()
    }
}

/// A stop hook as RunState sees it: something to close, once.
final class StopHook: Closable {
    let hook: Locked<(@Sendable () -> Void)?>

    init(_ hook: @escaping @Sendable () -> Void) { self.hook = Locked(hook) }

    func close() {
        hook.withLock { h in
            defer { h = nil }
            return h
        }?()
    }
}

@usableFromInline final class BatchMapStage<Input: Sendable, Output: Sendable>: Stage, @unchecked Sendable {
    // @unchecked: immutable after init; the links, the window and the counters are thread-safe.
    @usableFromInline let context: StageContext<Input, Output>
    @usableFromInline let size: Int
    @usableFromInline let within: Duration?
    @usableFromInline let concurrency: Int
    @usableFromInline let body: @Sendable ([Input], BatchCall) async -> BatchOutcome<Output>
    @usableFromInline let ended: (@Sendable () async -> Void)?

    @inlinable init(
        context: StageContext<Input, Output>, size: Int, within: Duration?, concurrency: Int,
        body: @escaping @Sendable ([Input], BatchCall) async -> BatchOutcome<Output>,
        ended: (@Sendable () async -> Void)? = nil
    ) {
        self.context = context
        self.size = size
        self.within = within
        self.concurrency = concurrency
        self.body = body
        self.ended = ended
        context.output?.addProducers(1)  // [the batch layer is one producer]
    }

    @inlinable func run() async {
        await withTaskGroup(of: Void.self) { group in
            var loop = BatchLoop(context, take: size, ordered: false, producing: false)
            var number: UInt64 = 0
            var running = 0
            await loop.runGathering(within: within) { loop, count in
                let items = loop.takeHeld(count)
                if running == concurrency {  // [batches gathered in input order]
                    await group.next()
                    running -= 1
                }
                let position = number
                number += 1
                running += 1
                group.addTask { await self.handle(items, position) }
            }
        }
        await ended?()  // [the end hook runs after every call]
        context.output?.finishProducer()  // [the batch layer is one producer]
    }

    /// Call the closure for one batch and deliver its results ([the next batch is always running],
    /// [every gathered item accounted for]).
    @inlinable func handle(_ items: [Input], _ position: UInt64) async {
        let layer = context.layer
        let counters = context.counters
        var outcome = BatchOutcome<Output>(outputs: [])
        if !layer.run.stopped {
            let start = ContinuousClock.now
            outcome = await body(items, BatchCall(layer: layer))
            counters.busy.add((ContinuousClock.now - start).wholeNanoseconds, ordering: .relaxed)
            if !outcome.settled {
                counters.retried.add(outcome.retried, ordering: .relaxed)
                counters.skipped.add(outcome.skipped, ordering: .relaxed)
                counters.failed.add(outcome.failed, ordering: .relaxed)
                for error in outcome.skippedErrors { layer.run.keep(error, layer: layer.name) }
            }
            if let failure = outcome.failure { layer.run.fail(failure, layer: layer.name) }
            if let worker = outcome.worker {
                counters.add(worker: worker, items: outcome.outputs.count + outcome.skipped + outcome.failed)
            }
        }
        let made = outcome.outputs.count
        let unaccounted = items.count - made - outcome.skipped - outcome.failed
        counters.dropped.add(max(0, unaccounted), ordering: .relaxed)
        guard let output = context.output else {
            counters.emitted.add(made, ordering: .relaxed)
            return
        }
        if let window = context.window, !(await window.waitTurn(position, run: layer.run)) {
            counters.dropped.add(made, ordering: .relaxed)  // [the next batch is always running], stopped while waiting
            return
        }
        let buffer = UnsafeMutablePointer<Output>.allocate(capacity: max(made, 1))
        defer { buffer.deallocate() }
        _ = UnsafeMutableBufferPointer(start: buffer, count: made).initialize(from: outcome.outputs)
        let pushed = made > 0 ? await output.push(buffer, count: made) : 0
        (buffer + pushed).deinitialize(count: made - pushed)  // what a closed link refused
        counters.emitted.add(pushed, ordering: .relaxed)
        counters.dropped.add(made - pushed, ordering: .relaxed)
        context.window?.advance(from: position, by: 1)
    }
}
