// SerialStage.swift — a serial layer with a synchronous closure (typically the collector): one task runs
// a BatchLoop that calls the closure for each item in a plain loop; on the native backend, a CPU layer's
// thread may also call it with a batch it just made ([one collector call at a time]).
//
// Invariant:
//  [a serial closure on one thread at a time] No async call is made per item, only per batch (the pop and the push),
//    so a fast collector costs a function call per item; the closure is never called by two threads at once (when
//    batches may be taken directly, it is called only under `directLoop`'s lock, which the task takes too); items are
//    handled in arrival order (input order, unless a CPU layer hands its batches over directly:
//    [one collector call at a time]).
@usableFromInline final class SerialStage<Input, Output>: Stage, @unchecked Sendable {
    // @unchecked: `directLoop` and `direct` are written in prepare(), before run(); the rest is
    // immutable; the links and counters are thread-safe.
    @usableFromInline let context: StageContext<Input, Output>
    /// The closure over one batch (BatchLoop.apply, on inBuf or the given items), made where the closure
    /// is known (see Layer), so it is specialised for it.
    @usableFromInline let applyBatch: BatchLoop<Input, Output>.Apply
    /// [one collector call at a time], when the layer may take batches directly: the loop that counts them, under the
    /// closure's lock.
    @usableFromInline var directLoop: HandOffLock<BatchLoop<Input, Output>>?
    /// [one collector call at a time]: what its input link's producers call (held weakly by the link,
    /// [links hold direct paths weakly]).
    @usableFromInline var direct: DirectCollector<Input>?

    @inlinable init(context: StageContext<Input, Output>, applyBatch: @escaping BatchLoop<Input, Output>.Apply) {
        self.context = context
        self.applyBatch = applyBatch
        context.output?.addProducers(1)
    }

    deinit { directLoop?.withLock { $0.finish() } }  // frees its buffers (it has no output link to finish)

    @inlinable func prepare() throws(FlowConfigurationError) {
        // [direct hand-offs only where they pay]
        guard context.inputHandOff == .direct, context.output == nil else { return }
        let locked = HandOffLock(BatchLoop(context, take: context.batch, ordered: false, producing: false))
        let applyBatch = applyBatch
        let queue = context.input!.queue
        let direct = DirectCollector<Input> { buffer, count in
            locked.withLockSoon { loop -> Bool in
                loop.collect(count, from: buffer, applyBatch)
                // [one collector call at a time]: then what others pushed while the closure was busy, a few batches at
                // most
                for _ in 0..<4 {
                    let popped = queue.popAvailable(into: loop.inBuf, max: loop.sizer.limit)
                    if popped == 0 { break }
                    loop.collect(popped, from: loop.inBuf, applyBatch)
                }
                return true
            } ?? false
        }
        directLoop = locked
        self.direct = direct
        context.input!.direct.collector = direct
    }

    @inlinable func run() async {
        var loop = BatchLoop(context, take: context.batch, ordered: false)
        if let directLoop {
            // [one collector call at a time]
            await loop.run { loop, count in directLoop.withLock { _ in applyBatch(&loop, count, nil) } }
        } else {
            await loop.run { loop, count in applyBatch(&loop, count, nil) }
        }
    }
}

extension BatchLoop {
    /// A batch (the caller's, or popped into inBuf) taken by a last layer directly ([one collector call at a time]):
    /// counted received (dropped after a stop), then called, its results counted, not kept ([every item accounted for],
    /// [no call after a stop]).
    @inlinable mutating func collect(
        _ count: Int, from items: UnsafeMutablePointer<Input>, _ applyBatch: Apply
    ) {
        guard admit(count, in: items) else { return }
        let made = applyBatch(&self, count, items)
        settle(made: made, pushed: made)
    }
}
