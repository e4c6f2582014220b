// OrderedWindow.swift — restores input order after a parallel layer (`ordered: true`).
//
// Each batch (CPU layer) or item (async layer) knows its position in the input queue
// (flow_ring_pop_n_seq: positions are consecutive and each is claimed once). Its results are pushed on
// strictly in position order: only the holder of the batch that starts at `next` may push.
// Invariants:
//  O1. `next` is the position of the first input item whose results are not yet pushed on. Only the
//      holder of the batch starting at `next` advances it, by that batch's input count (skipped and
//      failed items included), with a release store, then notifies the parker.
//  O2. Holders wait for their turn holding their results: at most workers × batch (CPU) or concurrency
//      (async) items are held, so the window is bounded and back-pressure reaches the input. The prefix
//      that is in order is pushed at once; nothing waits for the whole input.
//  O3. Waiting is the eventcount protocol (prepare, re-check `next` and the stop flag, wait or cancel),
//      so no turn is missed; close() (from RunState.stop) wakes every waiter, which then sees `stopped`
//      and drops what it holds.
import CFlow
import Synchronization

@usableFromInline final class OrderedWindow: Closable, @unchecked Sendable {
    // @unchecked: `next` is atomic and the parker is a thread-safe C object.
    @usableFromInline let next = Atomic<UInt64>(0)
    @usableFromInline let parker: OpaquePointer

    @usableFromInline init() {
        parker = flow_parker_create()!
    }

    deinit { flow_parker_destroy(parker) }

    @usableFromInline func close() { flow_parker_notify(parker, Int32.max) }

    @inlinable func isTurn(_ position: UInt64, _ run: RunState) -> Bool {
        next.load(ordering: .acquiring) == position || run.stopped
    }

    /// Block the calling (C) thread until it is `position`'s turn. False when the run stopped instead.
    @inlinable func waitTurn(_ position: UInt64, run: RunState) -> Bool {
        while !isTurn(position, run) {
            let key = flow_parker_prepare(parker)
            if isTurn(position, run) {
                flow_parker_cancel(parker)
                break
            }
            _ = flow_parker_wait(parker, key, FLOW_FOREVER)
        }
        return !run.stopped
    }

    /// Suspend the calling task until it is `position`'s turn. False when the run stopped instead.
    @inlinable func waitTurn(_ position: UInt64, run: RunState) async -> Bool {
        while !isTurn(position, run) {
            await suspendForWaiter { node in
                let key = flow_parker_prepare(parker)
                if isTurn(position, run) {
                    flow_parker_cancel(parker)
                    return Int32(FLOW_READY)
                }
                return flow_parker_register(parker, key, node)
            }
        }
        return !run.stopped
    }

    /// The holder of `position` has pushed the results of `count` input items (O1).
    @inlinable func advance(from position: UInt64, by count: Int) {
        next.store(position + UInt64(count), ordering: .releasing)
        flow_parker_notify(parker, Int32.max)
    }
}
