import Testing

@testable import AsyncFlow

/// The life of one stream iteration, event by event, without threads ([the stream starts at the first next],
/// [the consumer holds one batch], [the consumer is done once], [leaving hands back the rest]).
@Suite("Stream state machine")
struct StreamStateMachineTests {
    @Test("first next() starts the run; batches are handed out one by one; the end ends it once")
    func readToTheEnd() {
        var m = StreamStateMachine()
        #expect(m.next() == .start)
        #expect(m.state == .streaming)
        #expect(m.popped(3) == .deliver(index: 0))
        #expect(m.next() == .deliver(index: 1))
        #expect(m.next() == .deliver(index: 2))
        #expect(m.next() == .pop)  // [the consumer holds one batch]: a pop only once the batch is used up
        #expect(m.popped(1) == .deliver(index: 0))
        #expect(m.next() == .pop)
        #expect(m.popped(0) == .end)
        #expect(m.state == .ended)
        #expect(m.next() == .finish)
        #expect(m.next() == .finish)
        #expect(m.leave() == .none)  // [the consumer is done once]: after the end, leaving does nothing
    }

    @Test("leaving mid-batch stops the run once and hands back exactly the items not handed out")
    func leaveMidBatch() {
        var m = StreamStateMachine()
        #expect(m.next() == .start)
        #expect(m.popped(5) == .deliver(index: 0))
        #expect(m.next() == .deliver(index: 1))
        #expect(m.leave() == .stop(from: 2, count: 3))  // [leaving hands back the rest]
        #expect(m.state == .left)
        #expect(m.leave() == .none)  // [the consumer is done once]: once
        #expect(m.next() == .finish)
    }

    @Test("leaving between batches stops the run with nothing to hand back")
    func leaveBetweenBatches() {
        var m = StreamStateMachine()
        #expect(m.next() == .start)
        #expect(m.popped(2) == .deliver(index: 0))
        #expect(m.next() == .deliver(index: 1))
        #expect(m.leave() == .stop(from: 2, count: 0))
        #expect(m.next() == .finish)
    }

    @Test("leaving before the first next() does nothing; a failed start ends the iteration")
    func idleAndFailedStart() {
        var m = StreamStateMachine()
        #expect(m.leave() == .none)
        #expect(m.state == .idle)
        #expect(m.next() == .start)
        m.startFailed()
        #expect(m.state == .ended)
        #expect(m.next() == .finish)  // [the stream starts at the first next]: the error was thrown once; then nil
        #expect(m.leave() == .none)
    }
}
