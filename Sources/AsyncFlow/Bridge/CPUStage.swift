// CPUStage.swift — a CPU-bound layer: a CFlow pool of C threads, each running a loop that pops a batch,
// calls the user's closure per item, and pushes the batch of results.
//
// Invariants:
//  C1. The closure runs only on the pool's C threads (never on Swift's cooperative pool); each worker
//      builds its own State on its own thread and keeps it there.
//  C2. Per item: no allocation, no async hop, no continuation. Per batch: one pop, one push, a few
//      relaxed counter adds. Threads park (futex) only when a ring is empty/full past the spin budget.
//  C3. Every item popped is, when the worker is done with its batch, pushed on (emitted), skipped,
//      failed, or dropped (stop seen / output closed); counters are added once per batch.
//  C4. Each worker is one producer of the output link; the last worker to finish closes it (Link L4)
//      and then resumes the task awaiting the pool, which joins every thread before run() returns.
//  C5. After RunState.stopped, workers call no closure: they drain their input (closed by stop) and
//      count it as dropped, so they never block and always reach their exit.
//  C7. A worker takes at most about 100 µs of work per pop (BatchSizer, from its measured cost per item),
//      so slow items are shared out finely among the workers while cheap ones still move in full batches.
//  C6. On the `.swift` backend there is no pool: `workers` tasks run the same batch loop with async pops
//      and pushes (runTask), each with its own State, on Swift's cooperative pool.
import CFlow
import Synchronization

/// What the C trampoline calls through (a @convention(c) function cannot be generic): a closure made
/// in the stage's specialised init, so the worker loop it calls is specialised too.
@usableFromInline final class WorkerLoop: @unchecked Sendable {
    @usableFromInline var body: (OpaquePointer) -> Void = { _ in }
    @usableFromInline init() {}
}

/// The C entry point of every pool thread: ctx is an unretained WorkerLoop kept alive by its stage.
@usableFromInline func cflowWorkerEntry(_ worker: OpaquePointer?, _ context: UnsafeMutableRawPointer?) {
    Unmanaged<WorkerLoop>.fromOpaque(context!).takeUnretainedValue().body(worker!)
}

@usableFromInline final class CPUStage<Input, Output, State>: Stage, @unchecked Sendable {
    // @unchecked: `pool` is written in prepare() before any thread starts and read after they are joined;
    // the rest is immutable or thread-safe.
    @usableFromInline let context: StageContext<Input, Output>
    @usableFromInline let makeState: @Sendable () -> State
    @usableFromInline let body: @Sendable (inout State, Input) throws -> Output
    @usableFromInline var pool: OpaquePointer?
    @usableFromInline let running = Atomic<Int>(0)
    @usableFromInline let completion = Gate()  // opened by the last worker to finish (C4)
    @usableFromInline let loop = WorkerLoop()

    @inlinable init(
        context: StageContext<Input, Output>, makeState: @escaping @Sendable () -> State,
        body: @escaping @Sendable (inout State, Input) throws -> Output
    ) {
        self.context = context
        self.makeState = makeState
        self.body = body
        context.output?.addProducers(context.workers)
        loop.body = { [unowned self] worker in self.runWorker(worker) }  // the pool never outlives self
    }

    deinit {
        if let pool { flow_pool_destroy(pool) }
    }

    @inlinable func prepare() throws(FlowConfigurationError) {
        if context.backend == .swift { return }  // C6: no pool
        var config = context.pool
        config.workers = UInt32(context.workers)
        var err = flow_error()
        let ctx = Unmanaged.passUnretained(loop).toOpaque()
        guard flow_pool_create(&config, cflowWorkerEntry, ctx, &pool, &err) == FLOW_OK else {
            throw FlowConfigurationError(parameter: "workers", message: cMessage(&err), layer: context.policy.layer)
        }
        if context.poolStartFailureAfter > 0 { flow_pool_inject_start_failure(pool, context.poolStartFailureAfter) }
    }

    @inlinable func run() async {
        if context.backend == .swift {  // C6
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<context.workers { group.addTask { await self.runTask() } }
            }
            return
        }
        guard let pool else { return }
        running.store(context.workers, ordering: .relaxed)
        var err = flow_error()
        if flow_pool_start(pool, &err) != FLOW_OK {
            // The run fails, which closes every link, so the workers that did start leave their loops;
            // join them here (briefly blocking this thread, on this failure path only).
            context.run.fail(
                FlowConfigurationError(parameter: "workers", message: cMessage(&err), layer: context.policy.layer),
                layer: context.policy.layer)
            flow_pool_join(pool)
            return
        }
        await completion.wait()
        flow_pool_join(pool)  // C4: the threads have left their loops; join is immediate
    }

    @inlinable func runWorker(_ worker: OpaquePointer) {
        let batch = context.batch
        let input = context.input!
        let output = context.output
        let counters = context.counters
        let run = context.run
        let policy = context.policy
        let window = context.window
        let buffers = BatchBuffers<Input, Output>(capacity: batch)
        let (inBuf, outBuf) = (buffers.input, buffers.output)
        var state = makeState()  // C1: built on this thread, stays here
        var sizer = BatchSizer(limit: batch)
        while true {
            var position: UInt64 = 0
            let k =
                window == nil
                ? input.popBlocking(into: inBuf, max: sizer.size)
                : input.popBlocking(into: inBuf, max: sizer.size, position: &position)
            if k == 0 { break }  // closed and drained
            counters.received.add(k, ordering: .relaxed)
            if droppedAfterStop(inBuf, count: k, run: run, counters: counters) { continue }  // C5
            let (made, spent) = transformBatch(inBuf, count: k, into: outBuf, keep: output != nil, policy: policy) {
                try body(&state, $0)
            }
            flow_worker_record(worker, UInt64(k), UInt64(spent))
            sizer.record(items: k, nanoseconds: Double(spent))
            if let output {
                guard window?.waitTurn(position, run: run) ?? true else {  // O2: stopped while waiting
                    settlePush(outBuf, made: made, pushed: 0, counters: counters)
                    continue
                }
                settlePush(outBuf, made: made, pushed: output.pushBlocking(outBuf, count: made), counters: counters)
                window?.advance(from: position, by: k)
            } else {
                counters.emitted.add(made, ordering: .relaxed)
            }
        }
        buffers.release(finishing: output)
        if running.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 {  // C4
            completion.open()
        }
    }

    /// The `.swift` backend's worker: one task, the same batch loop with async pops and pushes (C6).
    @inlinable func runTask() async {
        let batch = context.batch
        let input = context.input!
        let output = context.output
        let counters = context.counters
        let run = context.run
        let policy = context.policy
        let window = context.window
        let buffers = BatchBuffers<Input, Output>(capacity: batch)
        let (inBuf, outBuf) = (buffers.input, buffers.output)
        defer { buffers.release(finishing: output) }
        var state = makeState()
        var sizer = BatchSizer(limit: batch)
        while true {
            var position: UInt64 = 0
            let k = await input.pop(into: inBuf, max: sizer.size, position: &position)
            if k == 0 { return }
            counters.received.add(k, ordering: .relaxed)
            if droppedAfterStop(inBuf, count: k, run: run, counters: counters) { continue }
            let (made, spent) = transformBatch(inBuf, count: k, into: outBuf, keep: output != nil, policy: policy) {
                try body(&state, $0)
            }
            sizer.record(items: k, nanoseconds: Double(spent))
            await pushOn(
                outBuf, made: made, to: output, counters: counters, window: window, position: position, inputCount: k,
                run: run)
        }
    }
}
