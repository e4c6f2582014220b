// CPUStage.swift — a CPU-bound layer: `workers` copies of a BatchLoop that calls the user's closure per
// item in a plain loop over each batch, run where the backend runs workers (NativeBackend: pool threads;
// SwiftBackend: tasks).
//
// Invariants:
//  C1. Each worker builds its own State where it runs (its thread, or its task) and keeps it there.
//  C2. Per item: no allocation, no async hop, no continuation. Per batch: one pop, one push, a few
//      relaxed counter adds.
//  C3. Each worker is one producer of the output link (BatchLoop B4), and takes about 100 µs of work
//      per pop (adaptive BatchSizer, BZ1).
@usableFromInline final class CPUStage<Input, Output, State>: Stage, @unchecked Sendable {
    // @unchecked: `workers` is written in prepare(), before run(); the rest is immutable.
    @usableFromInline let context: StageContext<Input, Output>
    @usableFromInline let makeState: @Sendable () -> State
    /// The layer's closure over one batch with a worker's state (BatchLoop.apply), made where the
    /// closure is known (Layer's initialiser, in the caller's module), so it is specialised for it.
    @usableFromInline typealias ApplyBatch = @Sendable (inout BatchLoop<Input, Output>, inout State, Int) -> Int
    @usableFromInline let applyBatch: ApplyBatch
    @usableFromInline var workers: (any WorkerGroup)?

    @inlinable init(
        context: StageContext<Input, Output>, makeState: @escaping @Sendable () -> State,
        applyBatch: @escaping ApplyBatch
    ) {
        self.context = context
        self.makeState = makeState
        self.applyBatch = applyBatch
        context.output?.addProducers(context.workers)
    }

    @inlinable func prepare() throws(FlowConfigurationError) {
        // unowned: the worker group is this stage's; its loops never outlive it
        let loops = WorkerLoops(
            count: context.workers, helpers: context.helpers,
            onThread: { [unowned self] thread in self.work(on: thread) },
            inTask: { [unowned self] in await self.work() })
        workers = try context.backend.makeWorkers(loops, layer: context.layer.name)
    }

    @inlinable func run() async {
        await workers?.run(context.run)
    }

    /// One worker on a backend's thread.
    @inlinable func work(on thread: PoolThread) {
        var state = makeState()  // C1
        var loop = BatchLoop(context, take: context.batch, adaptive: true)
        loop.runOnThread(thread) { loop, count in applyBatch(&loop, &state, count) }
    }

    /// One worker as a task.
    @inlinable func work() async {
        var state = makeState()  // C1
        var loop = BatchLoop(context, take: context.batch, adaptive: true)
        await loop.run { loop, count in applyBatch(&loop, &state, count) }
    }
}
