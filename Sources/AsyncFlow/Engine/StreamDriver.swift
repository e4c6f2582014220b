// StreamDriver.swift — performs the actions of one iteration's StreamStateMachine: builds and starts the run, pops
// batches from the stream's link into the consumer's buffer, and tells the run when the consumer is done
// ([a stream ends when its consumer is done]). Used only by the iterating task, as AsyncIteratorProtocol requires.
//
// Invariants:
//  [leaving cancels the run] Leaving ([the consumer is done once]) cancels the run: every link closes, no more user
//    closures run, and the run's task joins every thread. Leaving is the consumer's choice: report() then returns the
//    report; a cancelled consuming task makes it throw CancellationError.
//  [the stream's link is the consumer's] The stream's link belongs to the consumer: the run does not drain it before
//    the consumer is done, though the stages may end long before the consumer has read everything.
import Synchronization

final class StreamDriver<Element: Sendable>: StreamLeaving, @unchecked Sendable {
    // @unchecked: an iterator is used by one task at a time, as AsyncIteratorProtocol requires.
    let layers: [ErasedLayer]
    let options: PipelineOptions
    let state: StreamState
    var machine = StreamStateMachine()
    /// Set by start().
    var pipeline: PipelineRun?
    var link: Link<Element>?
    var buffer: UnsafeMutablePointer<Element>?
    var capacity = 0

    init(layers: [ErasedLayer], options: PipelineOptions, state: StreamState) {
        self.layers = layers
        self.options = options
        self.state = state
    }

    deinit {
        leave()
        buffer?.deallocate()
    }

    /// The consumer left the loop ([the consumer is done once], [leaving hands back the rest];
    /// [leaving cancels the run]). Idempotent; called from deinit or by the iterating task itself (report()), never
    /// during next().
    func leave() {
        guard case .stop(let from, let count) = machine.leave() else { return }
        (buffer! + from).deinitialize(count: count)
        pipeline!.consumerDone(undelivered: count, left: true)
    }

    func next() async throws -> Element? {
        switch machine.next() {
        case .deliver(let index): return (buffer! + index).move()
        case .finish: return nil
        case .start:
            do { try start() } catch {
                machine.startFailed()
                throw error
            }
        case .pop: break
        }
        let pipeline = pipeline!
        let consumer = currentTaskIdentity()  // for report() ([a report from the consumer leaves]): once per batch
        state.latest.withLock { $0.consumer = consumer }
        if Task.isCancelled { pipeline.run.cancel() }
        let count =
            pipeline.run.stopped
            ? 0
            : await withTaskCancellationHandler {
                await link!.pop(into: buffer!, max: capacity)
            } onCancel: {
                pipeline.run.cancel()
            }
        switch machine.popped(count) {
        case .deliver(let index): return (buffer! + index).move()
        case .end:
            pipeline.consumerDone(undelivered: 0, left: false)  // closed and drained, or stopped: the outcome decides
            _ = try await state.latest.withLock({ $0.task })!.value.get()
            return nil
        }
    }

    /// [the stream starts at the first next]: build the run (throwing configuration errors) and start it.
    private func start() throws {
        let pipeline = try PipelineRun(layers, options: options, streaming: true)
        self.pipeline = pipeline
        link = typed(pipeline.links.last!, as: Element.self)
        capacity = pipeline.sizes.streamBatch
        buffer = .allocate(capacity: capacity)
        let task = Task {
            await pipeline.execute()
            return Result { try pipeline.outcome() }
        }
        state.latest.withLock { $0 = StreamState.Latest(task: task, driver: self, consumer: nil) }
    }
}
