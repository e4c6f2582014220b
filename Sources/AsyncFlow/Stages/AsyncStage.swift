// AsyncStage.swift — an async layer: `concurrency` Swift tasks, each running a BatchLoop that awaits the
// user's closure per item. With concurrency 1 it is the serial async layer (a collector with an async
// closure): one task, items in input order, popped in batches.
//
// Invariants:
//  [at most concurrency calls in flight] At most `concurrency` closure calls are in flight: each task holds one batch
//    and calls the closure for one item at a time.
//  [async layers block no thread] Waiting for input or for space suspends the task ([one continuation per wait]); no
//    thread is blocked.
//  [each task is one producer] Each task is one producer of the output link ([each loop is one producer]).
//  [async items move in shared batches] With concurrency > 1, items move through the links in batches too (no queue
//    operation per item), sized so that a task holds about `asyncBatchTarget` of work
//    ([batches sized by measured work]; the first pop takes one item): cheap closures move whole batches, slow ones
//    (I/O) one item at a time, as before. Unordered, a task's batch is shared (SharedBatch): once the input has ended,
//    idle tasks take the items a busy task has not started, so a closure that slows down late in a run does not keep
//    them. Ordered, a batch stays with its task (its results are pushed in its turn:
//    [ordered results wait their turn]).
@usableFromInline final class AsyncStage<Input, Output>: Stage, @unchecked Sendable {
    // @unchecked: immutable after init; the links and counters are thread-safe.
    @usableFromInline let context: StageContext<Input, Output>
    @usableFromInline let concurrency: Int
    @usableFromInline let body: @Sendable (Input) async throws -> Output

    /// [async items move in shared batches]: the work a task of a concurrent async layer takes per pop, in nanoseconds.
    @inlinable static var asyncBatchTarget: Double { 20_000 }

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
        guard concurrency > 1 else {
            var loop = BatchLoop(context, take: context.batch, ordered: false)  // one task: in input order already
            return await loop.run { loop, count in await loop.applyEach(count, body) }
        }
        let sizer = BatchSizer(
            limit: min(context.batch, SharedBatch<Input>.limit), adaptive: true, target: Self.asyncBatchTarget,
            first: 1)
        let shared = context.window == nil ? (0..<concurrency).map { _ in SharedBatch<Input>() } : nil
        let (stageContext, transform) = (context, body)
        await withTaskGroup(of: Void.self) { group in
            for task in 0..<concurrency {
                group.addTask {
                    var loop = BatchLoop(stageContext, sizer: sizer)
                    if let shared {
                        await loop.runSharing(shared[task], among: shared) { loop, _ in
                            await loop.applyShared(shared[task], transform)
                        }
                    } else {
                        // [async items move in shared batches]: ordered
                        await loop.run { loop, count in await loop.applyEach(count, transform) }
                    }
                }
            }
        }
    }
}
