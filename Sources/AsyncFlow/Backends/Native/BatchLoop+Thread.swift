// BatchLoop+Thread.swift — the native backend's driver of a CPU layer's BatchLoop on a pool thread: the same steps as
// BatchLoop.run (so the same rules, [every item accounted for], [no call after a stop], [a failure stops the run],
// [each loop is one producer], [ordered results wait their turn], [busy time per batch]), with blocking pops and pushes
// on the rings that run the run's other stages while they wait (then spin, then park: [each job runs exactly once]),
// and the ordered window's wait parking the thread ([cpu loops only on pool threads]).
import CFlow
import Synchronization

extension BatchLoop {
    /// The loop on a pool thread; `collecting`: hand batches to a collector that takes them directly
    /// ([one collector call at a time]), if the output link has one.
    @inlinable mutating func runOnThread(
        _ thread: PoolThread, collecting: Bool = true, _ call: (inout Self, _ count: Int) -> Int
    ) {
        let inRing = input.ring
        let outRing = output?.ring
        let source = input.direct.source  // [one puller at a time]
        // [one collector call at a time]; held while the loop runs ([links hold direct paths weakly])
        let collector = window == nil && collecting ? output?.direct.collector : nil
        while true {
            var position: UInt64 = 0
            var count = 0
            if let source, !source.shared {
                count = source.pull(inBuf, sizer.size, &position)  // [one puller at a time]
            } else {
                if let source {  // [a shared source]: what the source's task pushed, else pull if free, else wait
                    count = inRing.popAvailable(into: inBuf, max: sizer.size)
                    if count == 0, !source.taskWaits.load(ordering: .relaxed) {
                        count = source.pullIfFree(inBuf, sizer.size, &position) ?? 0
                    }
                }
                if count == 0 {
                    count = inRing.popServing(into: inBuf, max: sizer.size, position: &position, thread.jobs)
                }
            }
            if count == 0 { break }
            guard admit(count) else { continue }
            let made = call(&self, count)
            flow_worker_record(thread.worker, UInt64(count), UInt64(lastNanoseconds))
            if let collector, made > 0, collector.take(outBuf, made) {
                settle(made: made, pushed: made)  // [one collector call at a time]: the collector has taken them
                continue
            }
            deliver(made, of: count, at: position, to: outRing, serving: thread.jobs)
        }
        finish()
    }

    /// BatchLoop.deliver for a pool thread: park while it is not this batch's turn or the ring is full.
    @inlinable func deliver(
        _ made: Int, of count: Int, at position: UInt64, to ring: RingQueue<Output>?,
        serving jobs: UnsafePointer<flow_jobs>
    ) {
        guard let ring else { return settle(made: made, pushed: made) }
        if let window, !window.waitTurnBlocking(position, run: layer.run) { return settle(made: made, pushed: 0) }
        settle(made: made, pushed: ring.pushServing(outBuf, count: made, jobs))
        window?.advance(from: position, by: count)
    }
}

extension Link {
    /// This link's storage as a pool thread blocks on it: a pool thread runs only a native run's loops
    /// ([cpu loops only on pool threads]), and every link the native backend makes is a ring.
    @inlinable var ring: RingQueue<T> {
        guard let ring = queue as? RingQueue<T> else {
            preconditionFailure("a pool thread's loop on a link the native backend did not make: \(type(of: queue))")
        }
        return ring
    }
}
