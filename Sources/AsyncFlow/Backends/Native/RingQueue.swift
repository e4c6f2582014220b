// RingQueue.swift — the native backend's link storage: a CFlow ring (lock-free, bounded MPMC), popped and pushed by
// Swift tasks (suspending) and by pool threads (blocking). It keeps Link's rules this way:
//  [batches move bitwise]: items move through the ring as raw bytes (flow_ring_push_n / pop_n copy whole
//    batches); Swift values are bitwise movable, so this is a move.
//  [leftovers deinitialised once]: drainDropped pops what is left and deinitialises it; deinit calls it.
//  [one continuation per wait]: a task that finds the ring full (empty) registers a flow_waiter callback
//    (flow_ring_await_push / await_pop) and suspends (ContinuationWaiter.swift); pool threads run queued jobs,
//    spin, then park (flow_ring_*_serving). A pop with a deadline also withdraws its waiter when the deadline
//    passes ([a timed wait ends once]).
//  [producers woken at half capacity]: flow_ring's resume_producers_at is half the capacity.
import CFlow

@usableFromInline final class RingQueue<T>: LinkQueue, @unchecked Sendable {
    // @unchecked: the ring is a thread-safe C object, created in init and destroyed in deinit.
    @usableFromInline let ring: OpaquePointer

    @usableFromInline init(capacity: Int, spinNanoseconds: Int64) throws(FlowConfigurationError) {
        guard MemoryLayout<T>.stride <= FLOW_MAX_ELEM_SIZE else {
            throw FlowConfigurationError(
                parameter: "item type",
                message: "\(T.self) is \(MemoryLayout<T>.stride) bytes; the native backend's rings hold items of up to "
                    + "\(FLOW_MAX_ELEM_SIZE) bytes inline: keep a large payload behind a reference (a class, an "
                    + "Array, Data) or use PipelineOptions(backend: .swift)")
        }
        var opts = flow_ring_options(
            capacity: UInt64(capacity), elem_size: MemoryLayout<T>.stride, spin_ns: spinNanoseconds,
            kind: FLOW_QUEUE_RING, resume_producers_at: UInt64(capacity / 2))  // [producers woken at half capacity]
        var err = flow_error()
        guard let r = flow_ring_create(&opts, &err) else {
            throw FlowConfigurationError(parameter: "capacity", message: cMessage(&err))
        }
        ring = r
    }

    deinit {
        _ = drainDropped()
        flow_ring_destroy(ring)
    }

    @usableFromInline var depth: Int { Int(flow_ring_size_approx(ring)) }

    @usableFromInline func close() { flow_ring_close(ring) }

    @usableFromInline func drainDropped() -> Int {
        var dropped = 0
        withUnsafeTemporaryAllocation(of: T.self, capacity: 64) { buf in
            let base = buf.baseAddress!
            while true {
                let k = flow_ring_pop_n(ring, base, 64)
                if k <= 0 { break }
                base.deinitialize(count: Int(k))
                dropped += Int(k)
            }
        }
        return dropped
    }

    // MARK: tasks

    @usableFromInline func push(_ buffer: UnsafeMutablePointer<T>, count: Int) async -> Int {
        var done = 0
        while done < count {
            let k = flow_ring_push_n(ring, buffer + done, Int64(count - done))
            if k > 0 {
                done += Int(k)
            } else if k == Int64(FLOW_FULL) {
                await suspendForWaiter { flow_ring_await_push(ring, $0) }
            } else {
                break  // closed
            }
        }
        return done
    }

    @usableFromInline func pop(
        into buffer: UnsafeMutablePointer<T>, max: Int, position: inout UInt64, until deadline: ContinuousClock.Instant?
    ) async -> Int? {
        while true {
            let k = flow_ring_pop_n_seq(ring, buffer, Int64(max), &position)
            if k > 0 { return Int(k) }
            if k != Int64(FLOW_EMPTY) { return 0 }
            guard let deadline else {
                await suspendForWaiter { flow_ring_await_pop(ring, $0) }
                continue
            }
            if ContinuousClock.now >= deadline { return nil }
            // the timer's withdraw holds this queue: it runs after the wait too ([a timed wait ends once]) and must not
            // find the ring destroyed
            await suspendForWaiter(until: deadline) {
                flow_ring_await_pop(ring, $0)
            } withdraw: { [self] in
                flow_ring_unawait(ring, $0)
            }
        }
    }

    @usableFromInline func popAvailable(into buffer: UnsafeMutablePointer<T>, max: Int) -> Int {
        let k = flow_ring_pop_n(ring, buffer, Int64(max))
        return k > 0 ? Int(k) : 0
    }

    // MARK: pool threads

    /// Pop up to `max` items and the position of the first on a pool thread: while the ring is empty, run the jobs it
    /// serves ([a serving waiter misses no job], [each job runs exactly once]), then spin, then park. 0 when closed and
    /// drained.
    @inlinable func popServing(
        into buffer: UnsafeMutablePointer<T>, max: Int, position: inout UInt64, _ jobs: UnsafePointer<flow_jobs>
    ) -> Int {
        let k = flow_ring_pop_n_serving(ring, buffer, Int64(max), &position, jobs)
        return k > 0 ? Int(k) : 0
    }

    /// Push all of `buffer[0..<count]` on a pool thread, serving `jobs` while the ring is full (as
    /// popServing). Returns how many were pushed (fewer: closed).
    @inlinable func pushServing(_ buffer: UnsafeMutablePointer<T>, count: Int, _ jobs: UnsafePointer<flow_jobs>) -> Int
    {
        var pushed: Int64 = 0
        _ = flow_ring_push_all_serving(ring, buffer, Int64(count), jobs, &pushed)
        return Int(pushed)
    }
}
