// CPUStage.swift — a CPU-bound layer: `workers` copies of a BatchLoop that calls the user's closure per
// item in a plain loop over each batch, run where the backend runs workers (as tasks here; on a pool
// thread, CPUStage+Thread.swift); on the native backend, with fewer workers than CPUs, the source's task
// may carry batches through it too ([carried batches]).
//
// Invariants:
//  [per-worker state stays on its worker] Each worker builds its own State where it runs (its thread, or its task) and
//    keeps it there.
//  [nothing per item but the call] Per item: no allocation, no async hop, no continuation. Per batch: one pop, one
//    push, a few relaxed counter adds.
//  [each worker is a producer sized by its work] Each worker is one producer of the output link
//    ([each loop is one producer]), and takes about 100 µs of work per pop (adaptive BatchSizer,
//    [batches sized by measured work]).
//  [one call slot per worker] When the source's task may carry batches ([carried batches]), every call of the closure
//    over a batch is made under one of `slots`, one per worker: a worker's loop under its own, the carrier under any
//    free one. So the closure never runs more than `workers` times at once. The carrier's loop and state are touched
//    only by the source's task (one thread at a time), under a slot.
import Synchronization

/// [carried batches]: the longest a batch may be expected to take for the source's task to carry it (the layer's
/// last batch's time per item, times its items): about what a thread that finds a slot taken spins for
/// (HandOffLock.withLockSoon), so a carried batch never holds a worker up for longer.
@usableFromInline let carryBudgetNanoseconds = 20_000

@usableFromInline final class CPUStage<Input, Output, State>: Stage, @unchecked Sendable {
    // @unchecked: `workers`, `slots` and the carrier's are written in prepare(), before run(); the carrier's
    // loop and state are the source task's alone ([one call slot per worker]); the rest is immutable or atomic.
    @usableFromInline let context: StageContext<Input, Output>
    /// The closure keeps no per-worker state (LayerKind.cpu): any pool thread may call it ([carried batches]).
    @usableFromInline let stateless: Bool
    @usableFromInline let makeState: @Sendable () -> State
    /// The layer's closure over one batch (in the loop's inBuf, or the given items) with a worker's state
    /// (BatchLoop.apply), made where the closure is known (Layer's initialiser, in the caller's module),
    /// so it is specialised for it.
    @usableFromInline typealias ApplyBatch =
        @Sendable (inout BatchLoop<Input, Output>, inout State, Int, UnsafeMutablePointer<Input>?) -> Int
    @usableFromInline let applyBatch: ApplyBatch
    @usableFromInline var workers: (any WorkerGroup)?
    /// [one call slot per worker]: one per worker, when the source's task may carry batches; else none.
    @usableFromInline var slots: [HandOffLock<Void>] = []
    /// [carried batches]: the source task's loop and state, when it may carry batches ([one call slot per worker]).
    @usableFromInline var carrierLoop: BatchLoop<Input, Output>?
    @usableFromInline var carrierState: State?
    /// [carried batches]: the time the layer's last batch took per 1,024 items, in nanoseconds; -1 until one is timed.
    @usableFromInline let cost = Atomic<Int>(-1)

    @inlinable init(
        context: StageContext<Input, Output>, stateless: Bool, makeState: @escaping @Sendable () -> State,
        applyBatch: @escaping ApplyBatch
    ) {
        self.context = context
        self.stateless = stateless
        self.makeState = makeState
        self.applyBatch = applyBatch
        context.output?.addProducers(context.workers)
    }

    deinit {
        if let carrierLoop {  // its buffers; it is no producer of the output link ([carried batches])
            carrierLoop.inBuf.deallocate()
            carrierLoop.outBuf.deallocate()
        }
    }

    @inlinable func prepare() throws(FlowConfigurationError) {
        // unowned: the worker group is this stage's; its loops never outlive it
        let loops = WorkerLoops(
            count: context.workers, helpers: context.helpers,
            onThread: { [unowned self] thread in self.work(on: thread) },
            inTask: { [unowned self] in await self.work() })
        workers = try context.backend.makeWorkers(loops, layer: context.layer.name)
        // [carried batches]: a stateless, unordered layer fed by a source its task pulls beside the workers
        // ([a shared source])
        if stateless, context.window == nil, context.inputHandOff == .shared,
            context.input!.direct.source?.shared == true
        {
            slots = (0..<context.workers).map { _ in HandOffLock(()) }
            carrierLoop = BatchLoop(context, take: context.batch)
            carrierState = makeState()
            let consumer = DirectConsumer<Input> { [unowned self] items, count in await self.carry(items, count) }
            directConsumer = consumer
            context.input!.direct.consumer = consumer  // held weakly ([links hold direct paths weakly])
        }
    }

    /// [carried batches]: what the input link holds weakly; the source's task holds it while it runs.
    @usableFromInline var directConsumer: DirectConsumer<Input>?

    @inlinable func run() async {
        await workers?.run(context.run)
    }

    /// One worker as a task.
    @inlinable func work() async {
        var state = makeState()  // [per-worker state stays on its worker]
        var loop = BatchLoop(context, take: context.batch, adaptive: true)
        await loop.run { loop, count in applyBatch(&loop, &state, count, nil) }
    }

    /// [carried batches]: a batch's time, for the carrier's estimate.
    @inlinable func record(_ nanoseconds: Int, _ count: Int) {
        cost.store(nanoseconds * 1024 / max(1, count), ordering: .relaxed)
    }

    /// [carried batches]: carry a batch the source's task just pulled through this layer on its thread, and on to the
    /// collector (directly, when it is free) or the output link; false, taking nothing, when it is not a
    /// pool thread, the batch would take too long or not fit, or every slot stays taken.
    @inlinable func carry(_ items: UnsafeMutablePointer<Input>, _ count: Int) async -> Bool {
        let perKilo = cost.load(ordering: .relaxed)
        guard perKilo >= 0, perKilo * count <= carryBudgetNanoseconds * 1024, count <= carrierLoop!.sizer.limit,
            context.backend.onWorkerThread  // [cpu loops only on pool threads]
        else { return false }
        let outcome = HandOffLock.withAnySoon(slots) { _ -> Int in
            // dropped: the run has stopped ([no call after a stop])
            guard carrierLoop!.admit(count, in: items) else { return -1 }
            return applyBatch(&carrierLoop!, &carrierState!, count, items)
        }
        guard let made = outcome else { return false }
        guard made >= 0 else { return true }
        let loop = carrierLoop!
        record(loop.lastNanoseconds, count)
        if made > 0, let collector = loop.output?.direct.collector, collector.take(loop.outBuf, made) {
            loop.settle(made: made, pushed: made)  // [one collector call at a time]: the collector has taken them
        } else {
            deliverCarried(loop, made: made, of: count)
        }
        return true
    }
}
