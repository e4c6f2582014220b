// Link.swift — a typed, bounded queue between two layers: a CFlow ring (native backend) or a
// SwiftQueue (`.swift` backend); L1–L3 describe the ring, SwiftQueue.swift states its own.
//
// Invariants:
//  L1. Items move through the ring as raw bytes: a successful push transfers ownership of the pushed
//      values to the ring (the caller's buffer slots become uninitialised, nothing is deinitialised);
//      a successful pop transfers ownership to the caller's buffer. Swift values are bitwise movable,
//      so this is a move, with no per-item allocation or retain/release.
//  L2. Whatever is still inside when the link is drained or deinitialised is deinitialised exactly once
//      and counted (drainDropped), so nothing leaks and nothing goes unaccounted.
//  L3. Async callers never block a thread: when the ring is full (empty) they register a flow_waiter
//      callback (flow_ring_await_push / await_pop) and suspend on an UnsafeContinuation; the callback,
//      run by whichever thread next pops (pushes) or closes the ring, resumes it exactly once. A
//      FLOW_READY answer resumes at once. One continuation per wait, never per item.
//  L4. `producers` counts the entities that push into this link; the last to finish closes the ring,
//      so consumers see "closed" only after every producer is done.
//  L5. Hysteresis: a producer that waited for space (a task or a C thread) is woken only when the queue
//      has drained to half its capacity (flow_ring resume_producers_at; SwiftQueue the same), so each
//      costly wake-up is followed by half a queue of pushes rather than one batch.
import CFlow
import Synchronization

/// Something RunState.stop() must close or wake: links, ordered windows.
@usableFromInline protocol Closable: AnyObject, Sendable {
    func close()
}

/// The type-erased face of a link, for the runner's teardown and progress reports.
@usableFromInline protocol AnyLink: Closable {
    var depth: Int { get }
    var capacity: Int { get }
    /// Deinitialise and count whatever is left inside (after every stage has ended).
    func drainDropped() -> Int
}

@usableFromInline final class Link<T>: AnyLink, @unchecked Sendable {
    // @unchecked: the ring is a thread-safe C object, the queue guards itself; `producers` is atomic.
    /// The native backend's CFlow ring, or nil on the `.swift` backend (then `queue` is set).
    @usableFromInline let ring: OpaquePointer?
    @usableFromInline let queue: SwiftQueue<T>?
    @usableFromInline let capacity: Int
    @usableFromInline let producers = Atomic<Int>(0)

    @inlinable init(capacity: Int, spinNanoseconds: Int64, backend: PipelineOptions.Backend)
        throws(FlowConfigurationError)
    {
        self.capacity = capacity
        if backend == .swift {
            guard capacity >= 1 else {
                throw FlowConfigurationError(
                    parameter: "capacity", message: "capacity: \(capacity): must be at least 1")
            }
            ring = nil
            queue = SwiftQueue(capacity: capacity)
            return
        }
        guard MemoryLayout<T>.stride <= FLOW_MAX_ELEM_SIZE else {
            throw FlowConfigurationError(
                parameter: "item type",
                message: "\(T.self) is \(MemoryLayout<T>.stride) bytes; the native backend's rings hold items of up to "
                    + "\(FLOW_MAX_ELEM_SIZE) bytes inline: keep a large payload behind a reference (a class, an "
                    + "Array, Data) or use PipelineOptions(backend: .swift)")
        }
        // L5: a producer that had to wait resumes at half capacity, so one wake-up moves half a queue
        var opts = flow_ring_options(
            capacity: UInt64(capacity), elem_size: MemoryLayout<T>.stride, spin_ns: spinNanoseconds,
            kind: FLOW_QUEUE_RING, resume_producers_at: UInt64(capacity / 2))
        var err = flow_error()
        guard let r = flow_ring_create(&opts, &err) else {
            throw FlowConfigurationError(parameter: "capacity", message: cMessage(&err))
        }
        ring = r
        queue = nil
    }

    deinit {
        if let ring {
            _ = drainDropped()
            flow_ring_destroy(ring)
        }
    }

    @inlinable var depth: Int {
        if let queue { return queue.depth }
        return Int(flow_ring_size_approx(ring))
    }

    @inlinable func close() {
        if let queue { queue.close() } else { flow_ring_close(ring) }
    }

    @inlinable func addProducers(_ n: Int) { producers.add(n, ordering: .relaxed) }

    /// Called once by each producer when it is done; the last one closes the ring (L4).
    @inlinable func finishProducer() {
        if producers.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 { close() }
    }

    @inlinable func drainDropped() -> Int {
        if let queue { return queue.drainDropped() }
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

    // MARK: async side (Swift tasks)

    /// Push `buffer[0..<count]`, suspending while the ring is full. Returns how many were pushed: all,
    /// or fewer when the ring was closed (the rest stay initialised in the buffer, owned by the caller).
    @inlinable func push(_ buffer: UnsafeMutablePointer<T>, count: Int) async -> Int {
        if let queue { return await queue.push(buffer, count: count) }
        var done = 0
        while done < count {
            let k = flow_ring_push_n(ring, buffer + done, Int64(count - done))
            if k > 0 {
                done += Int(k)
            } else if k == Int64(FLOW_FULL) {
                await wait(flow_ring_await_push)
            } else {
                break  // closed
            }
        }
        return done
    }

    /// Pop up to `max` items into uninitialised `buffer`, suspending while the ring is empty.
    /// Returns the count (>= 1), or 0 when the ring is closed and drained.
    @inlinable func pop(into buffer: UnsafeMutablePointer<T>, max: Int) async -> Int {
        if let queue {
            var position: UInt64 = 0
            return await queue.pop(into: buffer, max: max, position: &position)
        }
        while true {
            let k = flow_ring_pop_n(ring, buffer, Int64(max))
            if k > 0 { return Int(k) }
            if k != Int64(FLOW_EMPTY) { return 0 }
            await wait(flow_ring_await_pop)
        }
    }

    /// `pop`, also giving the queue position of the first item popped (for ordered layers).
    @inlinable func pop(into buffer: UnsafeMutablePointer<T>, max: Int, position: inout UInt64) async -> Int {
        if let queue { return await queue.pop(into: buffer, max: max, position: &position) }
        while true {
            let k = flow_ring_pop_n_seq(ring, buffer, Int64(max), &position)
            if k > 0 { return Int(k) }
            if k != Int64(FLOW_EMPTY) { return 0 }
            await wait(flow_ring_await_pop)
        }
    }

    @inlinable func wait(_ register: (OpaquePointer?, UnsafeMutablePointer<flow_waiter>?) -> Int32) async {
        await suspendForWaiter { register(ring, $0) }
    }

    // MARK: blocking side (C worker threads; native backend only)

    /// Pop up to `max` items, spinning then parking the calling thread. 0 when closed and drained.
    @inlinable func popBlocking(into buffer: UnsafeMutablePointer<T>, max: Int) -> Int {
        let k = flow_ring_pop_n_wait(ring, buffer, Int64(max), FLOW_FOREVER)
        return k > 0 ? Int(k) : 0
    }

    /// `popBlocking`, also giving the queue position of the first item popped (for ordered layers).
    @inlinable func popBlocking(into buffer: UnsafeMutablePointer<T>, max: Int, position: inout UInt64) -> Int {
        let k = flow_ring_pop_n_wait_seq(ring, buffer, Int64(max), FLOW_FOREVER, &position)
        return k > 0 ? Int(k) : 0
    }

    /// Push all of `buffer[0..<count]`, parking while full. Returns how many were pushed (fewer: closed).
    @inlinable func pushBlocking(_ buffer: UnsafeMutablePointer<T>, count: Int) -> Int {
        var pushed: Int64 = 0
        _ = flow_ring_push_all_wait(ring, buffer, Int64(count), FLOW_FOREVER, &pushed)
        return Int(pushed)
    }
}

/// Suspend the current task until a flow_waiter callback fires (L3). `register` hands the waiter node to
/// a parker and returns FLOW_OK (registered: the callback resumes us later) or anything else (the
/// condition already changed: resume at once).
@inlinable func suspendForWaiter(_ register: (UnsafeMutablePointer<flow_waiter>) -> Int32) async {
    await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
        let record = UnsafeMutablePointer<WaitRecord>.allocate(capacity: 1)
        record.initialize(to: WaitRecord(node: flow_waiter(), continuation: continuation))
        let node = record.pointer(to: \.node)!
        node.pointee.fn = linkWaiterFired
        node.pointee.ctx = UnsafeMutableRawPointer(record)
        if register(node) != FLOW_OK {
            linkWaiterFired(UnsafeMutableRawPointer(record))
        }
    }
}

@usableFromInline struct WaitRecord {
    @usableFromInline var node: flow_waiter
    @usableFromInline let continuation: UnsafeContinuation<Void, Never>

    @inlinable init(node: flow_waiter, continuation: UnsafeContinuation<Void, Never>) {
        self.node = node
        self.continuation = continuation
    }
}

/// The flow_waiter callback: resume the suspended task and free its record (L3). Runs exactly once.
@usableFromInline func linkWaiterFired(_ context: UnsafeMutableRawPointer?) {
    let record = context!.assumingMemoryBound(to: WaitRecord.self)
    let continuation = record.pointee.continuation
    record.deinitialize(count: 1)
    record.deallocate()
    continuation.resume()
}

/// The message of a C error record.
@usableFromInline func cMessage(_ err: inout flow_error) -> String {
    withUnsafeBytes(of: &err.message) { raw in
        String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
    }
}
