// PipelineStream.swift — the last layer's outputs as an AsyncSequence.
//
// Invariants:
//  T1. A run starts at the iterator's first next(): configuration errors are thrown there, before any
//      item is pulled. Each iterator runs the pipeline once; copies of the stream share `state`, which
//      remembers the latest run so report() can await it.
//  T2. The iterator pops batches from the stream's link into its own buffer and hands items out one by
//      one: a continuation is made only when the link is empty.
//  T3. Leaving the loop early (break, a thrown error, the iterator dropped) or cancelling the consuming
//      task cancels the run: every link closes, no more user closures run, the run's task joins every
//      thread. Items the consumer never received are counted as dropped by the last layer (those in
//      the iterator's buffer here, those in the link by the run: Pipeline P5). Leaving is the
//      consumer's choice: report() then returns the report; a cancelled consuming task makes it throw
//      CancellationError.
//  T4. The stream's link belongs to the consumer: the run's teardown does not drain it before the
//      consumer is done (T6); the stages may end long before the consumer has read everything.
//  T5. report() called by the task that iterates the stream, before the stream has ended, means that task
//      has left the loop (it cannot be inside next() at the same time): it ends the run as T3 does. This
//      is what makes `break` then `report()` work where Swift does not release the loop's iterator when
//      the loop is left (top-level code in main.swift, seen with Swift 6.3), which T3 relies on. Called
//      by any other task, report() only waits. The consumer is recorded once per batch, not per item.
//  T6. The consumer opens the run's gate (Pipeline P5) once it is done: next() found the stream ended
//      (closed and drained, or the run stopped), or leave() ran. The report is made after that, so
//      report() from another task waits for the consumer, and the counts include what it received.
import CFlow
import Synchronization

/// The outputs of a pipeline's last layer, as an `AsyncSequence` (see `pipelineStream`).
///
/// Iterating runs the pipeline; breaking out of the loop stops it, and cancelling the task cancels it.
public struct PipelineStream<Element: Sendable>: AsyncSequence, Sendable {
    @usableFromInline let layers: [ErasedLayer]
    @usableFromInline let options: PipelineOptions
    let state = StreamState()

    @usableFromInline init(layers: [ErasedLayer], options: PipelineOptions) {
        self.layers = layers
        self.options = options
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(driver: StreamDriver(layers: layers, options: options, state: state))
    }

    /// The report of the latest run, once it has ended and its consumer is done: the last layer's
    /// `emitted` is exactly what the loop received. Throws the error that ended the run: a layer's
    /// error under ``ErrorPolicy/fail``, the source's error, or `CancellationError` when the consuming
    /// task was cancelled. Leaving the loop early (`break`) is not an error: the run is stopped, and
    /// the report counts what was left unread as dropped.
    ///
    /// Called by the task that iterates the stream, it ends the iteration: if the stream has not ended
    /// yet, the run is stopped as if the loop had been left, and a later `next()` returns `nil`. (Swift
    /// releases a loop's iterator when the loop is left, which is what stops the run, except in
    /// top-level code, where `break` alone leaves the run waiting for a reader until `report()`.)
    /// Called by any other task, it waits until the consumer is done.
    public func report() async throws -> PipelineReport {
        let caller = currentTaskIdentity()
        let latest = state.latest.withLock { $0 }
        guard let task = latest.task else {
            throw FlowConfigurationError(parameter: "report", message: "report(): the stream has not been iterated yet")
        }
        // T5: the iterating task asks, so it is not inside next(): it has left the loop.
        if let caller, caller == latest.consumer { latest.driver?.leave() }
        return try await task.value.get()
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let driver: StreamDriver<Element>

        public mutating func next() async throws -> Element? { try await driver.next() }
    }
}

final class StreamState: Sendable {
    struct Latest: Sendable {
        var task: Task<Result<PipelineReport, any Error>, Never>?
        /// The iterator's driver (weak: the iterator owns it, and its deinit is T3) and the task that
        /// last fetched a batch through it (T5).
        weak var driver: (any StreamLeaving)?
        var consumer: Int?
    }
    let latest = Locked(Latest())
}

/// What report() needs of a driver without knowing its element type (T5).
protocol StreamLeaving: AnyObject, Sendable {
    func leave()
}

/// The current task, as a number that stays the same while it runs and differs from every other
/// running task's (a hash of its identity).
func currentTaskIdentity() -> Int? {
    withUnsafeCurrentTask { $0?.hashValue }
}

/// One iteration's run and the consumer's buffer (T2). Used only by the iterating task.
final class StreamDriver<Element: Sendable>: StreamLeaving, @unchecked Sendable {
    // @unchecked: an iterator is used by one task at a time, as AsyncIteratorProtocol requires.
    let layers: [ErasedLayer]
    let options: PipelineOptions
    let state: StreamState
    var pipeline: PipelineRun?
    var link: Link<Element>?
    let buffer: UnsafeMutablePointer<Element>
    let capacity: Int
    var count = 0
    var index = 0
    var finished = false

    init(layers: [ErasedLayer], options: PipelineOptions, state: StreamState) {
        self.layers = layers
        self.options = options
        self.state = state
        capacity = batchLimit(options.batchSize, stride: MemoryLayout<Element>.stride)
        buffer = .allocate(capacity: capacity)
    }

    deinit {
        leave()
        buffer.deallocate()
    }

    /// T3/T5: the consumer is done with this iteration. If the stream had not ended, count the items
    /// in its buffer as dropped by the last layer, cancel the run and open its gate (T6); what is left
    /// in the link is counted by the run after that (Pipeline P5). Idempotent; called from deinit or by
    /// the iterating task itself (report()), never during next().
    func leave() {
        let undelivered = count - index
        (buffer + index).deinitialize(count: undelivered)
        index = count
        if let pipeline, !finished {
            finished = true
            pipeline.counters.last!.emitted.subtract(undelivered, ordering: .relaxed)
            pipeline.counters.last!.dropped.add(undelivered, ordering: .relaxed)
            pipeline.consumerLeft.store(true, ordering: .relaxed)  // before cancel(): read after the run
            pipeline.run.cancel()
            pipeline.consumerDone!.open()  // T6
        }
    }

    func next() async throws -> Element? {
        if index < count {
            index += 1
            return (buffer + index - 1).move()
        }
        if finished { return nil }
        if pipeline == nil { try start() }
        let pipeline = pipeline!
        let consumer = currentTaskIdentity()  // T5, once per batch
        state.latest.withLock { $0.consumer = consumer }
        if Task.isCancelled { pipeline.run.cancel() }
        let k =
            pipeline.run.stopped
            ? 0
            : await withTaskCancellationHandler {
                await link!.pop(into: buffer, max: capacity)
            } onCancel: {
                pipeline.run.cancel()
            }
        if k > 0 {
            count = k
            index = 1
            return buffer.move()
        }
        finished = true  // closed and drained, or stopped: the run's outcome decides (T3)
        pipeline.consumerDone!.open()  // T6
        _ = try await state.latest.withLock({ $0.task })!.value.get()
        return nil
    }

    /// T1: build the run (throwing configuration errors) and start it.
    private func start() throws {
        let pipeline = try PipelineRun(layers, options: options, streaming: true)
        self.pipeline = pipeline
        link = (pipeline.links.last as! Link<Element>)
        let task = Task {
            await pipeline.execute()
            return Result { try pipeline.outcome() }
        }
        state.latest.withLock { $0 = StreamState.Latest(task: task, driver: self, consumer: nil) }
    }
}
