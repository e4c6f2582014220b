// SerialStage.swift — a serial layer with a synchronous closure (typically the collector): one task runs
// a BatchLoop that calls the closure for each item in a plain loop.
//
// Invariant: no async call is made per item, only per batch (the pop and the push), so a fast collector
// costs a function call per item; items are handled in input order.
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
        var loop = BatchLoop(context, take: context.batch, ordered: false)
        await loop.run { loop, count in loop.apply(count, body) }
    }
}
