// StreamStateMachine.swift — the life of one iteration of a PipelineStream, as a value: each event
// returns the action its driver (StreamDriver) performs. It takes no lock and touches no run or buffer.
//
//   idle ──next──▶ streaming ──a pop found the link closed and drained, or the run stopped──▶ ended
//                      └──leave: break, a throw, the iterator dropped, report() by the consumer──▶ left
//
// Invariants:
//  T1. The run starts at the first next(): configuration errors are thrown there, before any item is
//      pulled; an iteration whose start failed is ended (later calls return nil).
//  T2. The consumer holds one popped batch and hands its items out one by one: a pop (and so a
//      continuation, when the link is empty) is made only once the batch is used up.
//  T3. The consumer is done exactly once, whichever comes first: the end (.end) or leaving (.stop). Only
//      a streaming iteration is stopped by leaving; leaving after the end, or twice, does nothing.
//  T4. Leaving hands back the range of the batch not yet handed out: the driver deinitialises those
//      items and they count as dropped by the last layer (PipelineRun.consumerDone).
struct StreamStateMachine {
    enum State: Equatable { case idle, streaming, ended, left }

    private(set) var state = State.idle
    /// The batch the consumer holds: `buffered` items popped, the first `delivered` of them handed out.
    private(set) var buffered = 0
    private(set) var delivered = 0

    enum NextAction: Equatable {
        /// Hand out buffer[index] (T2).
        case deliver(index: Int)
        /// Build and start the run (T1), then pop.
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

    /// The run could not be built: the error is thrown once, then the iteration is over (T1).
    mutating func startFailed() {
        state = .ended
    }

    enum PoppedAction: Equatable {
        case deliver(index: Int)
        /// The stream has ended: the consumer is done (T3); the run's outcome decides what next() does.
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
        /// Stop the run; buffer[from..<from + count] was never handed out (T3, T4).
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
