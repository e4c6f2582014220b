#if Postgres
    import Foundation
    import PostgresNIO
    import Testing

    @testable import AsyncFlowPostgres

    /// The distributed layer's two state machines, event by event, without a database or threads: the
    /// coordinator's slots ([a slot before its row], [one poller while slots are open],
    /// [undone writes written again]) and a worker's claims ([a worker claims what it can start soon],
    /// [no claim without a fresh heartbeat]).
    @Suite("Distributed layer state machines")
    struct DistributedStateTests {
        typealias Slots = CoordinatorSlots<Int>  // a chunk call's waiter: a token

        /// The result a slot was resumed with, or the reason it was not.
        func resumed(_ action: Slots.FillAction) -> (waiter: Int, attempts: Int?)? {
            guard case .resume(let waiter, let result) = action else { return nil }
            if case .dead(let attempts)? = result { return (waiter, attempts) }
            return (waiter, nil)
        }

        @Test("a slot filled after its call came to wait resumes that call, once")
        func fillAfterWait() {
            var slots = Slots()
            #expect(slots.open(1) == .startPoller)
            guard case .suspend = slots.wait(1, 10) else { return #expect(Bool(false), "a waiting slot resumed") }
            let first = resumed(slots.fill(1, .dead(attempts: 3)))
            #expect(first?.waiter == 10 && first?.attempts == 3)
            #expect(resumed(slots.fill(1, .dead(attempts: 4))) == nil)  // read again: the slot is closed
            #expect(slots.openChunks.isEmpty)
        }

        @Test("a slot filled before its call came to wait hands the result over when it comes, once")
        func fillBeforeWait() {
            var slots = Slots()
            _ = slots.open(7)
            #expect(resumed(slots.fill(7, .dead(attempts: 2))) == nil)  // nobody waits yet
            #expect(resumed(slots.fill(7, .dead(attempts: 5))) == nil)  // the first fill stays
            guard case .resume(.dead(let attempts)?) = slots.wait(7, 70) else {
                return #expect(Bool(false), "the filled slot did not hand its result over")
            }
            #expect(attempts == 2)
            #expect(slots.openChunks.isEmpty)
            #expect(resumed(slots.fill(7, .dead(attempts: 6))) == nil)  // taken: a late result finds it closed
        }

        @Test("a stop fills a slot empty: its call ends with no result")
        func stopFillsEmpty() {
            var slots = Slots()
            _ = slots.open(1)
            _ = slots.wait(1, 11)
            guard case .resume(11, nil) = slots.fill(1, nil) else {
                return #expect(Bool(false), "the waiting call was not resumed empty")
            }
        }

        @Test("a result for a slot never opened is ignored")
        func unknownSlot() {
            var slots = Slots()
            #expect(resumed(slots.fill(99, .dead(attempts: 1))) == nil)
            #expect(slots.openChunks.isEmpty)
        }

        @Test("one poller while slots are open: it ends with the last slot, and the next slot starts another")
        func onepoller() {
            var slots = Slots()
            #expect(slots.open(1) == .startPoller)
            #expect(slots.open(2) == .none)  // one runs already
            #expect(slots.pollerTurn() == .poll)
            _ = slots.wait(1, 1)
            _ = slots.fill(1, nil)
            #expect(slots.pollerTurn() == .poll)  // slot 2 is still open
            _ = slots.fill(2, nil)  // filled: open until its call takes it
            #expect(slots.pollerTurn() == .poll)
            _ = slots.wait(2, 2)
            #expect(slots.pollerTurn() == .stop)
            #expect(slots.pollerTurn() == .stop)  // it stays ended until a slot opens
            #expect(slots.open(3) == .startPoller)
            #expect(slots.pollerTurn() == .poll)
        }

        @Test("written chunks are checked until their slot is filled; a filled slot is never checked")
        func writtenChunks() {
            var slots = Slots()
            _ = slots.open(1)
            _ = slots.open(2)
            slots.written(1)
            slots.written(2)
            #expect(Set(slots.writtenChunks) == [1, 2])
            _ = slots.fill(1, .lost)  // found nowhere: its call writes it again, under a new slot
            #expect(slots.writtenChunks == [2])
            _ = slots.fill(2, .dead(attempts: 1))
            slots.written(2)  // an answer that came after the result: nothing left to check
            #expect(slots.writtenChunks.isEmpty)
        }

        /// A claimed chunk with a lease of `seconds`.
        func chunk(_ seq: Int64, lease seconds: Double = 3) -> ClaimedChunk {
            ClaimedChunk(
                key: ClaimKey(run: 1, seq: seq, attempt: 1), policy: .fail, payload: ByteBuffer(), lease: seconds)
        }

        @Test("a worker claims its threads' work plus a claim ahead, then waits for a release")
        func claimRoom() {
            let start = ContinuousClock.now
            var book = ClaimBook(now: start)
            #expect(book.nextClaim(threads: 2, now: start) == .claim(limit: 2))  // nothing timed: one a thread
            book.claimed([chunk(1), chunk(2), chunk(3)])
            #expect(book.nextClaim(threads: 2, now: start) == .claim(limit: 1))  // 2 + 2 - 3
            book.claimed([chunk(4)])
            #expect(book.nextClaim(threads: 2, now: start) == .waitForRoom)
            book.released([ClaimKey(run: 1, seq: 2, attempt: 1)])
            #expect(book.nextClaim(threads: 2, now: start) == .claim(limit: 1))
            book.worked(.microseconds(500))  // cheap chunks: 8 a thread
            #expect(book.nextClaim(threads: 2, now: start) == .claim(limit: 15))  // limit 16, room 2 + 16 - 3
            #expect(book.holding.count == 3)
        }

        @Test("no claim without a fresh heartbeat: after the shortest lease with no heartbeat, until the next one")
        func claimsNeedHeartbeats() {
            let start = ContinuousClock.now
            var book = ClaimBook(now: start)
            #expect(book.heartbeatInterval == .seconds(1))  // no lease seen yet
            #expect(book.leaseHolds(now: start + .seconds(3600)))  // no claim: nothing to lose
            book.claimed([chunk(1, lease: 0.3), chunk(2, lease: 0.9)])
            #expect(book.heartbeatInterval == .milliseconds(100))  // a third of the shortest lease
            #expect(book.nextClaim(threads: 1, now: start + .milliseconds(299)) == .waitForRoom)
            #expect(!book.leaseHolds(now: start + .milliseconds(300)))
            book.released([ClaimKey(run: 1, seq: 1, attempt: 1)])
            #expect(book.nextClaim(threads: 1, now: start + .milliseconds(300)) == .waitForHeartbeat)
            book.beat(at: start + .milliseconds(250))
            #expect(book.nextClaim(threads: 1, now: start + .milliseconds(300)) == .claim(limit: 1))
            #expect(book.nextClaim(threads: 1, now: start + .milliseconds(550)) == .waitForHeartbeat)
            book.claimed([chunk(3, lease: 0.03)])
            #expect(book.heartbeatInterval == .milliseconds(50))  // at least 50 ms
        }

        @Test("a heartbeat that failed is tried again within 200 ms, not a third of the lease later")
        func failedHeartbeat() {
            let start = ContinuousClock.now
            var book = ClaimBook(now: start)
            book.claimed([chunk(1, lease: 30)])
            #expect(book.heartbeatInterval == .seconds(10))
            book.heartbeatFailed()
            #expect(book.heartbeatInterval == .milliseconds(200))
            book.beat(at: start + .seconds(31))
            #expect(book.heartbeatInterval == .seconds(10))
        }

        @Test("a lost claim: the next action releases what the worker does not hold, then it claims again")
        func lostClaim() {
            let start = ContinuousClock.now
            var book = ClaimBook(now: start)
            book.claimed([chunk(1, lease: 30)])
            book.claimFailed()
            #expect(book.nextClaim(threads: 2, now: start) == .releaseUnknown)
            #expect(book.nextClaim(threads: 2, now: start) == .releaseUnknown)  // until a release succeeds
            book.releasedUnknown()
            #expect(book.nextClaim(threads: 2, now: start) == .claim(limit: 2))
            #expect(book.holding == [ClaimKey(run: 1, seq: 1, attempt: 1)])  // what it holds stays its own
            book.claimFailed()  // and a stale heartbeat still comes first
            #expect(book.nextClaim(threads: 2, now: start + .seconds(3600)) == .waitForHeartbeat)
        }

        @Test("a worker claims about 20 ms of work a thread, as timed: one a thread at first, up to 8")
        func claimPace() {
            var pace = ClaimPace()
            #expect(pace.limit(threads: 2) == 2)  // nothing timed yet
            pace.worked(.microseconds(500))  // 40 fit in 20 ms: at most 8 a thread
            #expect(pace.limit(threads: 2) == 16)
            var slow = ClaimPace()
            slow.worked(.milliseconds(200))
            #expect(slow.limit(threads: 3) == 3)
            var mid = ClaimPace()
            mid.worked(.milliseconds(5))  // 4 in 20 ms
            #expect(mid.limit(threads: 1) == 4)
            mid.worked(.milliseconds(55))  // a moving average: 0.7 × 5 + 0.3 × 55 = 20 ms
            #expect(mid.limit(threads: 1) == 1)
        }

        @Test("a worker claims what its threads work through in two claim round trips too, up to 64 chunks a thread")
        func claimPaceCoversRoundTrips() {
            var far = ClaimPace()
            far.worked(.microseconds(500))
            far.claimTook(.milliseconds(3))  // the first claim (it may have opened the connection): not counted
            #expect(far.limit(threads: 1) == 8)
            far.claimTook(.milliseconds(300))  // a claim that waited
            far.claimTook(.milliseconds(10))  // the shortest: 20 ms of round trips, 40 chunks more a thread
            far.claimTook(.milliseconds(25))  // a busy server
            #expect(far.limit(threads: 2) == 2 * (8 + 40))
            // slower for good: the 10 ms claim leaves the window
            for _ in 0..<ClaimPace.claimsKept { far.claimTook(.milliseconds(20)) }
            #expect(far.roundTrip == .milliseconds(20))
            #expect(far.limit(threads: 1) == 8 + 64)  // 80, at most 64
            var slow = ClaimPace()
            slow.worked(.milliseconds(200))
            slow.claimTook(.milliseconds(10))
            slow.claimTook(.milliseconds(10))  // slow chunks: the round trips take less than one
            #expect(slow.limit(threads: 3) == 3)
            var near = ClaimPace()
            near.worked(.microseconds(500))
            near.claimTook(.microseconds(300))
            near.claimTook(.microseconds(300))  // a database beside it: one chunk more a thread
            #expect(near.limit(threads: 1) == 8 + 1)
        }

        @Test("a taken-over chunk's items are found by position, each once; a chunk is let go with its last position")
        func takenOverChunks() {
            // chunk 5 holds positions 10, 11, 12 (results "a", "b", "c" in that order); chunk 6 holds 20, 13
            var taken = TakenOverChunks<String>([(5, [10, 11, 12]), (6, [20, 13])]) { seq, count in "\(seq)x\(count)" }
            #expect(Set(taken.seqs) == [5, 6])
            let first = taken.take([13, 1, 11, 2])  // a call with two fresh items
            #expect(first.map(\.item) == [0, 2] && first.map(\.seq) == [6, 5] && first.map(\.index) == [1, 1])
            #expect(first.map(\.pending) == ["6x2", "5x3"])
            #expect(taken.take([13, 11]).isEmpty)  // taken already
            let second = taken.take([10, 12, 20])
            #expect(second.map(\.seq) == [5, 5, 6] && second.map(\.index) == [0, 2, 0])
            #expect(taken.seqs.isEmpty)  // every position taken: both let go
            var none = TakenOverChunks<String>()
            #expect(none.take([1, 2]).isEmpty)
        }

        @Test("a chunk's positions kept as ranges of consecutive positions read back exactly")
        func positionRanges() {
            for positions: [UInt64] in [[], [5], Array(0..<1_000), [3, 4, 5, 9, 10, 2], [7, 7], [UInt64.max - 1]] {
                #expect(PositionRanges.decode(PositionRanges.encode(positions)) == positions)
            }
            #expect(PositionRanges.encode(Array(100..<1_100)) == [100, 1_100])
            #expect(PositionRanges.encode([3, 4, 5, 9, 10, 2]) == [3, 6, 9, 11, 2, 3])
            #expect(PositionRanges.decode([1, 2, 3]) == nil)  // not pairs
            #expect(PositionRanges.decode([5, 5]) == nil)  // an empty range
        }

        @Test("an outage is said when it starts, every 10 s while it lasts, and when it ends, with its length")
        func outageLog() {
            var outage = Outage()
            let t0 = ContinuousClock.now
            #expect(outage.succeeded(at: t0, began: t0) == Outage.Event.none)  // no outage: nothing to say
            #expect(outage.failed(at: t0) == .started)
            // a statement begun before the first failure proves nothing about the connection now
            #expect(outage.succeeded(at: t0 + .seconds(1), began: t0 - .seconds(1)) == Outage.Event.none)
            #expect(outage.failed(at: t0 + .seconds(9)) == Outage.Event.none)
            #expect(outage.failed(at: t0 + .seconds(10)) == .lasting(.seconds(10)))
            #expect(outage.failed(at: t0 + .seconds(15)) == Outage.Event.none)
            #expect(outage.failed(at: t0 + .seconds(21)) == .lasting(.seconds(21)))
            #expect(outage.succeeded(at: t0 + .seconds(22), began: t0 + .seconds(21)) == .ended(.seconds(22)))
            #expect(outage.succeeded(at: t0 + .seconds(23), began: t0 + .seconds(23)) == Outage.Event.none)
            #expect(outage.failed(at: t0 + .seconds(30)) == .started)  // a new outage
        }
    }
#endif
