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
//      thread. Items the consumer never received are counted as dropped by the last layer.
//  T4. The stream's link belongs to the consumer: the run's teardown does not drain it (the stages may
//      end long before the consumer has read everything); the iterator reads it to the end.
import CFlow
import Synchronization

/// The outputs of a pipeline's last layer, as an `AsyncSequence` (see `pipelineStream`).
///
/// Iterating runs the pipeline; breaking out of the loop or cancelling the task cancels it.
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

    /// The report of the latest run, once it has ended: throws the error that ended it
    /// (`CancellationError` when the loop was left early). Waits for the run to end.
    public func report() async throws -> PipelineReport {
        guard let task = state.latest.withLock({ $0 }) else {
            throw FlowConfigurationError(parameter: "report", message: "report(): the stream has not been iterated yet")
        }
        return try await task.value.get()
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let driver: StreamDriver<Element>

        public mutating func next() async throws -> Element? { try await driver.next() }
    }
}

final class StreamState: Sendable {
    let latest = Locked<Task<Result<PipelineReport, any Error>, Never>?>(nil)
}

/// One iteration's run and the consumer's buffer (T2). Used only by the iterating task.
final class StreamDriver<Element: Sendable>: @unchecked Sendable {
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
        var undelivered = count - index
        (buffer + index).deinitialize(count: undelivered)
        buffer.deallocate()
        if let pipeline, !finished {  // T3: left early
            pipeline.run.cancel()
            undelivered += link!.drainDropped()  // more may still arrive; Link's deinit drops those
            pipeline.counters.last!.emitted.subtract(undelivered, ordering: .relaxed)
            pipeline.counters.last!.dropped.add(undelivered, ordering: .relaxed)
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
        _ = try await state.latest.withLock({ $0 })!.value.get()
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
        state.latest.withLock { $0 = task }
    }
}
