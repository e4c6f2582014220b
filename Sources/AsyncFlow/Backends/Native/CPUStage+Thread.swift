// CPUStage+Thread.swift — a CPU layer's worker on a pool thread: its state made there
// ([per-worker state stays on its worker]), its BatchLoop run by the native driver (BatchLoop+Thread.swift),
// and, when the source's task may carry batches, each call over a batch made under the worker's slot
// ([one call slot per worker]).

extension CPUStage {
    /// One worker on a pool thread.
    @inlinable func work(on thread: PoolThread) {
        var state = makeState()  // [per-worker state stays on its worker]
        var loop = BatchLoop(context, take: context.batch, adaptive: true)
        guard !slots.isEmpty else {
            // with the source shared ([a shared source]) and no carrier, the collector keeps its queue
            // ([carried batches])
            loop.runOnThread(thread, collecting: context.inputHandOff != .shared) { loop, count in
                applyBatch(&loop, &state, count, nil)
            }
            return
        }
        let slot = slots[thread.index]  // [one call slot per worker]
        loop.runOnThread(thread) { loop, count in
            // the carrier holds a slot for a short batch ([carried batches]): wait for it as a thread does for a pull.
            // A closure literal, not a local func: a func capturing `state` puts `state` in a heap box, and a box of
            // a zero-sized State points past its allocation, into whatever heap block follows.
            let made = slot.withLockSpinningFirst { _ in applyBatch(&loop, &state, count, nil) }
            record(loop.lastNanoseconds, count)
            return made
        }
    }

    /// [carried batches]: a carried batch's results pushed as a worker pushes its own, blocking this pool thread
    /// while the output is full and serving the pool's jobs meanwhile: as a suspended task the carrier would wait to
    /// be woken at half capacity, which the workers' pushes, taking every slot the collector frees, can put off
    /// until the run ends ([an overtaken pusher reserves the room] keeps the waiting threads fair).
    @usableFromInline func deliverCarried(_ loop: BatchLoop<Input, Output>, made: Int, of count: Int) {
        loop.deliver(made, of: count, at: 0, to: loop.output?.ring, serving: PoolExecutor.shared.jobs)  // unordered
    }
}
