// ContinuationWaiter.swift — a Swift task waiting on a CFlow parker: one continuation per wait.
//
// Invariants:
//  CW1. The continuation is resumed exactly once: by the flow_waiter callback, which CFlow runs once on
//      the thread that next notifies the parker (a push, a pop, close), or at once when registration
//      answers that the condition already changed (FLOW_READY).
//  CW2. The record that carries the waiter node and the continuation is freed by whoever resumes.
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

/// The flow_waiter callback: resume the suspended task and free its record (CW1, CW2).
private func waiterFired(_ context: UnsafeMutableRawPointer?) {
    let record = context!.assumingMemoryBound(to: WaitRecord.self)
    let continuation = record.pointee.continuation
    record.deinitialize(count: 1)
    record.deallocate()
    continuation.resume()
}
