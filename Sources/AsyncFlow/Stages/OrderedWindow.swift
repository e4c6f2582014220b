// OrderedWindow.swift — restores input order after a parallel layer (`ordered: true`).
//
// Each batch knows its position in the input queue
// (LinkQueue.pop: positions are consecutive and each is popped once). Its results are pushed on
// strictly in position order: only the holder of the batch that starts at `next` may push.
// Invariants:
//  [only the turn's holder advances] `next` is the position of the first input item whose results are not yet pushed
//    on. Only the holder of the batch starting at `next` advances it, by that batch's input count (skipped and failed
//    items included), with a release store, then wakes the waiters.
//  [the ordered window is bounded] Holders wait for their turn holding their results: at most workers (CPU) or
//    concurrency (async) × batch items are held, so the window is bounded and back-pressure reaches the input. The
//    prefix that is in order is pushed at once; nothing waits for the whole input.
//  [no turn is missed] Threads park on the backend's parker (ThreadParking: no wake-up lost between the check of `next`
//    and the stop flag and the sleep); tasks wait with a continuation filed under the position they wait for,
//    re-checked under the lock that advance() takes to find it, so no turn is missed either way. close() (from
//    RunState.stop) wakes every waiter, which then sees `stopped` and drops what it holds.
import Synchronization

@usableFromInline final class OrderedWindow: Closable {
    @usableFromInline let next = Atomic<UInt64>(0)
    /// Where threads wait (nil when the backend's workers are tasks).
    @usableFromInline let threads: (any ThreadParking)?
    @usableFromInline let tasks = Locked<[UInt64: UnsafeContinuation<Void, Never>]>([:])

    @usableFromInline init(threads: (any ThreadParking)?) {
        self.threads = threads
    }

    @usableFromInline func close() {
        threads?.wakeAll()
        let waiting = tasks.withLock { t in
            defer { t = [:] }
            return Array(t.values)
        }
        for c in waiting { c.resume() }
    }

    @inlinable func isTurn(_ position: UInt64, _ run: RunState) -> Bool {
        next.load(ordering: .acquiring) == position || run.stopped
    }

    /// Block the calling thread until it is `position`'s turn. False when the run stopped instead.
    @inlinable func waitTurnBlocking(_ position: UInt64, run: RunState) -> Bool {
        threads!.park { isTurn(position, run) }  // only a backend whose workers are threads gets here
        return !run.stopped
    }

    /// Suspend the calling task until it is `position`'s turn. False when the run stopped instead.
    @inlinable func waitTurn(_ position: UInt64, run: RunState) async -> Bool {
        while !isTurn(position, run) {
            await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
                let ready = tasks.withLock { t -> Bool in  // [no turn is missed]: re-check under the lock
                    if isTurn(position, run) { return true }
                    t[position] = c
                    return false
                }
                if ready { c.resume() }
            }
        }
        return !run.stopped
    }

    /// The holder of `position` has pushed the results of `count` input items ([only the turn's holder advances]).
    @inlinable func advance(from position: UInt64, by count: Int) {
        let turn = position + UInt64(count)
        next.store(turn, ordering: .releasing)
        threads?.wakeAll()
        tasks.withLock { $0.removeValue(forKey: turn) }?.resume()
    }
}
