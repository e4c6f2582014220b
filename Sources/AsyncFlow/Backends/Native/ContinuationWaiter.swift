// ContinuationWaiter.swift — a Swift task waiting on a CFlow parker: one continuation per wait.
//
// Invariants:
//  [the continuation resumed once] The continuation is resumed exactly once: by the flow_waiter callback, which CFlow
//    runs once on the thread that next notifies the parker (a push, a pop, close), or at once when registration answers
//    that the condition already changed (FLOW_READY).
//  [the resumer frees the record] The record that carries the waiter node and the continuation is freed by whoever
//    resumes.
//  [a timed wait ends once] A wait with a deadline (suspendForWaiter(until:)) is also ended by a timer task, which
//    resumes only if it withdrew the node itself (flow_ring_unawait answered 1: the callback will never run); otherwise
//    the callback has run or will, and resumes. The node lives in a reference-counted TimedWait held by the timer and,
//    while registered, by the callback's context, so neither touches freed memory. The waiting task cancels the timer
//    once resumed; the timer still runs after that (a cancelled sleep returns), so `withdraw` must keep alive whatever
//    it touches (its queue).
import CFlow

/// Suspend the current task until a flow_waiter callback fires. `register` hands the waiter node to a
/// parker and returns FLOW_OK (registered: the callback resumes us later) or anything else (resume now).
@usableFromInline func suspendForWaiter(_ register: (UnsafeMutablePointer<flow_waiter>) -> Int32) async {
    await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
        let record = UnsafeMutablePointer<WaitRecord>.allocate(capacity: 1)
        record.initialize(to: WaitRecord(node: flow_waiter(), continuation: continuation))
        let node = record.pointer(to: \.node)!
        node.pointee.fn = waiterFired
        node.pointee.ctx = UnsafeMutableRawPointer(record)
        if register(node) != FLOW_OK {
            waiterFired(UnsafeMutableRawPointer(record))
        }
    }
}

struct WaitRecord {
    var node: flow_waiter
    let continuation: UnsafeContinuation<Void, Never>
}

/// The flow_waiter callback: resume the suspended task and free its record ([the continuation resumed once],
/// [the resumer frees the record]).
private func waiterFired(_ context: UnsafeMutableRawPointer?) {
    let record = context!.assumingMemoryBound(to: WaitRecord.self)
    let continuation = record.pointee.continuation
    record.deinitialize(count: 1)
    record.deallocate()
    continuation.resume()
}

/// suspendForWaiter that also returns once `deadline` has passed ([a timed wait ends once]). `withdraw` removes the
/// node from wherever `register` put it: 1 removed, 0 it had fired already (flow_ring_unawait).
@usableFromInline func suspendForWaiter(
    until deadline: ContinuousClock.Instant, register: (UnsafeMutablePointer<flow_waiter>) -> Int32,
    withdraw: @escaping (UnsafeMutablePointer<flow_waiter>) -> Int32
) async {
    var timer: Task<Void, Never>?
    await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
        let wait = TimedWait(continuation: continuation, withdraw: withdraw)
        wait.node.pointee.fn = timedWaiterFired
        wait.node.pointee.ctx = Unmanaged.passRetained(wait).toOpaque()  // the callback's reference
        guard register(wait.node) == FLOW_OK else {
            Unmanaged<TimedWait>.fromOpaque(wait.node.pointee.ctx).release()
            continuation.resume()
            return
        }
        timer = Task {
            try? await Task.sleep(until: deadline, clock: .continuous)
            wait.expire()
        }
    }
    timer?.cancel()
}

/// A deadline wait's node and continuation ([a timed wait ends once]).
final class TimedWait: @unchecked Sendable {
    // @unchecked: `node` is written before it is registered and then only by CFlow under the parker's
    // lock; the continuation is resumed once ([a timed wait ends once]); `withdraw` is a thread-safe C call.
    let node = UnsafeMutablePointer<flow_waiter>.allocate(capacity: 1)
    let continuation: UnsafeContinuation<Void, Never>
    let withdraw: (UnsafeMutablePointer<flow_waiter>) -> Int32

    init(
        continuation: UnsafeContinuation<Void, Never>, withdraw: @escaping (UnsafeMutablePointer<flow_waiter>) -> Int32
    ) {
        node.initialize(to: flow_waiter())
        self.continuation = continuation
        self.withdraw = withdraw
    }

    deinit { node.deallocate() }

    /// The timer's end (its sleep finished or was cancelled): resume if the node was still registered.
    func expire() {
        guard withdraw(node) == 1 else { return }  // fired: the callback resumes (or resumed)
        Unmanaged.passUnretained(self).release()  // the callback's reference: it will never run
        continuation.resume()
    }
}

/// The callback of a deadline wait's node: take back the callback's reference and resume ([a timed wait ends once]).
private func timedWaiterFired(_ context: UnsafeMutableRawPointer?) {
    Unmanaged<TimedWait>.fromOpaque(context!).takeRetainedValue().continuation.resume()
}
