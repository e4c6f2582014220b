// PipelineStream.swift — the last layer's outputs as an AsyncSequence. An iteration's life is
// Engine/StreamStateMachine.swift ([the stream starts at the first next], [the consumer holds one batch],
// [the consumer is done once], [leaving hands back the rest]), performed by Engine/StreamDriver.swift
// ([leaving cancels the run], [the stream's link is the consumer's]).
//
// Invariants:
//  [one run per iterator] Each iterator runs the pipeline once; copies of the stream share `state`, which remembers the
//    latest run so report() can await it.
//  [a report from the consumer leaves] report() called by the task that iterates the stream, before the stream has
//    ended, means that task has left the loop (it cannot be inside next() at the same time): it leaves
//    ([the consumer is done once]). This is what makes `break` then `report()` work where Swift does not release the
//    loop's iterator when the loop is left (top-level code in main.swift, in Swift 6.3), which leaving on deinit
//    relies on. Called by any other task, report() only waits. The consumer is recorded once per batch.
//  [the report waits for the consumer] The report is made once the consumer is done
//    ([a stream ends when its consumer is done]), so report() from another task waits for the consumer, and the counts
//    include what it received.
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
        // [a report from the consumer leaves]: the iterating task asks, so it is not inside next(): it has left the
        // loop.
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
        /// The iterator's driver (weak: the iterator owns it, and its deinit leaves, [the consumer is done once]) and
        /// the task that last fetched a batch through it ([a report from the consumer leaves]).
        weak var driver: (any StreamLeaving)?
        var consumer: Int?
    }
    let latest = Locked(Latest())
}

/// What report() needs of a driver without knowing its element type ([a report from the consumer leaves]).
protocol StreamLeaving: AnyObject, Sendable {
    func leave()
}

/// The current task, as a number that stays the same while it runs and differs from every other
/// running task's (a hash of its identity).
func currentTaskIdentity() -> Int? {
    withUnsafeCurrentTask { $0?.hashValue }
}
