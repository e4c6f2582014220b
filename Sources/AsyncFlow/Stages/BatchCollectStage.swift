// BatchCollectStage.swift — a batch collector (Layer(batchesOf:within:)): one task gathers items into batches of at
// most `size` ([gathered items handed over together]) and calls the user's async closure once per batch, serially,
// batches in arrival order.
//
// Invariant:
//  [each item in one batch call] The closure gets each popped item exactly once, in one batch (or the item is
//    counted dropped after a stop); an async call is made per batch, never per item.
@usableFromInline final class BatchCollectStage<Input>: Stage, @unchecked Sendable {
    // @unchecked: immutable after init; the links and counters are thread-safe.
    @usableFromInline let context: StageContext<Input, Void>
    @usableFromInline let size: Int
    @usableFromInline let within: Duration?
    @usableFromInline let body: @Sendable ([Input]) async throws -> Void

    @inlinable init(
        context: StageContext<Input, Void>, size: Int, within: Duration?,
        body: @escaping @Sendable ([Input]) async throws -> Void
    ) {
        self.context = context
        self.size = size
        self.within = within
        self.body = body
    }

    @inlinable func run() async {
        var loop = BatchLoop(context, take: size, ordered: false)
        await loop.runGathering(within: within) { loop, count in await loop.applyBatch(count, body) }
    }
}
