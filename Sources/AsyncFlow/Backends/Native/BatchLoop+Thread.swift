// BatchLoop+Thread.swift — the native backend's driver of a CPU layer's BatchLoop on a pool thread: the
// same steps as BatchLoop.run (so the same rules, B1–B6), with blocking pops and pushes on the rings
// (spin, then park), and the ordered window's wait parking the thread (NativeBackend N1).
import CFlow

extension BatchLoop {
    /// The loop on a pool thread; `worker` is the thread's flow_worker (its item and busy counters).
    @inlinable mutating func runOnThread(_ worker: OpaquePointer, _ call: (inout Self, _ count: Int) -> Int) {
        let inRing = input.queue as! RingQueue<Input>  // the native backend's links are rings
        let outRing = output.map { $0.queue as! RingQueue<Output> }
        while true {
            var position: UInt64 = 0
            let count = inRing.popBlocking(into: inBuf, max: sizer.size, position: &position)
            if count == 0 { break }
            guard admit(count) else { continue }
            let made = call(&self, count)
            flow_worker_record(worker, UInt64(count), UInt64(lastNanoseconds))
            deliver(made, of: count, at: position, to: outRing)
        }
        finish()
    }

    /// BatchLoop.deliver for a pool thread: park while it is not this batch's turn or the ring is full.
    @inlinable func deliver(_ made: Int, of count: Int, at position: UInt64, to ring: RingQueue<Output>?) {
        guard let ring else { return settle(made: made, pushed: made) }
        if let window, !window.waitTurnBlocking(position, run: layer.run) { return settle(made: made, pushed: 0) }
        settle(made: made, pushed: ring.pushBlocking(outBuf, count: made))
        window?.advance(from: position, by: count)
    }
}
