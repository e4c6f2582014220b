// StreamStateMachine.swift — the life of one iteration of a PipelineStream, as a value: each event
// returns the action its driver (StreamDriver) performs. It takes no lock and touches no run or buffer.
//
//   idle ──next──▶ streaming ──a pop found the link closed and drained, or the run stopped──▶ ended
//                      └──leave: break, a throw, the iterator dropped, report() by the consumer──▶ left
//
// Invariants:
//  [the stream starts at the first next] The run starts at the first next(): configuration errors are thrown there,
//    before any item is pulled; an iteration whose start failed is ended (later calls return nil).
//  [the consumer holds one batch] The consumer holds one popped batch and hands its items out one by one: a pop (and so
//    a continuation, when the link is empty) is made only once the batch is used up.
//  [the consumer is done once] The consumer is done exactly once, whichever comes first: the end (.end) or leaving
//    (.stop). Only a streaming iteration is stopped by leaving; leaving after the end, or twice, does nothing.
//  [leaving hands back the rest] Leaving hands back the range of the batch not yet handed out: the driver deinitialises
//    those items and they count as dropped by the last layer (PipelineRun.consumerDone).
struct StreamStateMachine {
    enum State: Equatable { case idle, streaming, ended, left }

    private(set) var state = State.idle
    /// The batch the consumer holds: `buffered` items popped, the first `delivered` of them handed out.
    private(set) var buffered = 0
    private(set) var delivered = 0

    enum NextAction: Equatable {
        /// Hand out buffer[index] ([the consumer holds one batch]).
        case deliver(index: Int)
        /// Build and start the run ([the stream starts at the first next]), then pop.
        case start
        /// Pop a batch, then call popped(_:).
        case pop
        /// The iteration is over: return nil.
        case finish
    }

    mutating func next() -> NextAction {
        if delivered < buffered {
            delivered += 1
            return .deliver(index: delivered - 1)
        }
        switch state {
        case .idle:
            state = .streaming
            return .start
        case .streaming: return .pop
        case .ended, .left: return .finish
        }
    }

    /// The run could not be built: the error is thrown once, then the iteration is over
    /// ([the stream starts at the first next]).
    mutating func startFailed() {
        state = .ended
    }

    enum PoppedAction: Equatable {
        case deliver(index: Int)
        /// The stream has ended: the consumer is done ([the consumer is done once]); the run's outcome decides what
        /// next() does.
        case end
    }

    mutating func popped(_ count: Int) -> PoppedAction {
        precondition(state == .streaming && delivered == buffered, "pop while holding a batch")
        guard count > 0 else {
            (buffered, delivered) = (0, 0)
            state = .ended
            return .end
        }
        (buffered, delivered) = (count, 1)
        return .deliver(index: 0)
    }

    enum LeaveAction: Equatable {
        case none
        /// Stop the run; buffer[from..<from + count] was never handed out ([the consumer is done once],
        /// [leaving hands back the rest]).
        case stop(from: Int, count: Int)
    }

    mutating func leave() -> LeaveAction {
        guard state == .streaming else { return .none }
        let action = LeaveAction.stop(from: delivered, count: buffered - delivered)
        delivered = buffered
        state = .left
        return action
    }
}
