// SerialStage.swift — a serial layer with a synchronous closure (typically the collector): one task pops
// batches and calls the closure for each item in a plain loop.
//
// Invariants: as AsyncStage A2–A5 with concurrency 1; in addition, no async call is made per item,
// only per batch (the pop and the push), so a fast collector costs a function call per item.
import CFlow
import Synchronization

@usableFromInline final class SerialStage<Input, Output>: Stage, @unchecked Sendable {
    // @unchecked: immutable after init; the links and counters are thread-safe.
    @usableFromInline let context: StageContext<Input, Output>
    @usableFromInline let body: @Sendable (Input) throws -> Output

    @inlinable init(context: StageContext<Input, Output>, body: @escaping @Sendable (Input) throws -> Output) {
        self.context = context
        self.body = body
        context.output?.addProducers(1)
    }

    @inlinable func run() async {
        let batch = context.batch
        let input = context.input!
        let output = context.output
        let counters = context.counters
        let run = context.run
        let policy = context.policy
        let buffers = BatchBuffers<Input, Output>(capacity: batch)
        let (inBuf, outBuf) = (buffers.input, buffers.output)
        defer { buffers.release(finishing: output) }
        while true {
            let k = await input.pop(into: inBuf, max: batch)
            if k == 0 { return }
            counters.received.add(k, ordering: .relaxed)
            if droppedAfterStop(inBuf, count: k, run: run, counters: counters) { continue }
            let (made, _) = transformBatch(inBuf, count: k, into: outBuf, keep: output != nil, policy: policy) {
                try self.body($0)
            }
            await pushOn(outBuf, made: made, to: output, counters: counters)
        }
    }
}
