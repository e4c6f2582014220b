// AsyncStage.swift — an async layer: `concurrency` Swift tasks, each running a BatchLoop that awaits the
// user's closure per item. With concurrency 1 it is the serial async layer (a collector with an async
// closure): one task, items in input order, popped in batches.
//
// Invariants:
//  A1. At most `concurrency` closure calls are in flight: each task holds one batch and calls the closure
//      for one item at a time. With concurrency > 1 a task pops one item at a time, so a slow item never
//      holds others back from idle tasks.
//  A2. Waiting for input or for space suspends the task (Link L3); no thread is blocked.
//  A3. Each task is one producer of the output link (BatchLoop B4).
@usableFromInline final class AsyncStage<Input, Output>: Stage, @unchecked Sendable {
    // @unchecked: immutable after init; the links and counters are thread-safe.
    @usableFromInline let context: StageContext<Input, Output>
    @usableFromInline let concurrency: Int
    @usableFromInline let body: @Sendable (Input) async throws -> Output

    @inlinable init(
        context: StageContext<Input, Output>, concurrency: Int,
        body: @escaping @Sendable (Input) async throws -> Output
    ) {
        self.context = context
        self.concurrency = concurrency
        self.body = body
        context.output?.addProducers(concurrency)
    }

    @inlinable var awaitsPerItem: Bool { true }

    @inlinable func run() async {
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<concurrency {
                group.addTask { await self.work() }
            }
        }
    }

    @inlinable func work() async {
        // A1; one task is in input order already: the window is for concurrency > 1
        var loop = BatchLoop(context, take: concurrency == 1 ? context.batch : 1, ordered: concurrency > 1)
        await loop.run { loop, count in await loop.applyEach(count, body) }
    }
}
