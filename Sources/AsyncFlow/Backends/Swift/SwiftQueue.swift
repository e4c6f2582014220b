// SwiftQueue.swift — the `.swift` backend's link storage: only the standard library and Swift concurrency (a lock, a
// circular buffer, continuations), batching like the native ring. Keeps Link [batches move bitwise],
// [leftovers deinitialised once], [one continuation per wait], [the last producer closes the link],
// [producers woken at half capacity] as follows.
//
// Invariants:
//  [the queue's state only under its lock] All state (buffer, head, count, closed, popped, waiters) is read and written
//    under `state`'s lock.
//  [one lock per batch] Items move in and out by bitwise moves of whole batches under one lock acquisition: one lock
//    per batch, not per item.
//  [waiters register after a re-check] A task waits only when the queue is empty (pop) or full (push): it registers its
//    continuation under the lock after re-checking that condition, so no wake-up is lost; whoever changes the condition
//    (a push, a pop, close) takes every waiter of the other side out under the lock and resumes them after unlocking.
//    Woken tasks re-check (several may compete for the same items).
//  [close wakes everyone and drains] close() wakes everyone; pushes then fail, pops drain what is left and then report
//    closed.
//  [popped counts positions] `popped` counts items ever popped, so a pop knows its batch's position (for ordered
//    layers).
//  [pushers register only when full] Hysteresis ([producers woken at half capacity]): pops wake waiting pushers only
//    once the queue is down to half its capacity. A pusher registers only when the queue is full, so the pops that
//    drain it get there.
//  [a deadline's continuation resumed once] A pop with a deadline registers its continuation with a token; its timer
//    task resumes it only if it takes that token out of popWaiters under the lock itself, so the continuation is
//    resumed once, by a push, a close or the timer.
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A SwiftQueue's state under its lock ([the queue's state only under its lock]). Not generic: the items live in the
/// queue's buffer.
@usableFromInline struct SwiftQueueState {
    @usableFromInline var head = 0
    @usableFromInline var count = 0
    @usableFromInline var popped: UInt64 = 0
    @usableFromInline var closed = false
    @usableFromInline var popWaiters: [PopWaiter] = []
    /// The last token handed to a pop with a deadline ([a deadline's continuation resumed once]); 0 marks a pop without
    /// one.
    @usableFromInline var lastToken: UInt64 = 0
    @usableFromInline var pushWaiters: [UnsafeContinuation<Void, Never>] = []

    @inlinable init() {}
}

/// A suspended pop: its continuation, and the token its deadline's timer withdraws it by
/// ([a deadline's continuation resumed once]).
@usableFromInline struct PopWaiter {
    @usableFromInline let token: UInt64
    @usableFromInline let continuation: UnsafeContinuation<Void, Never>

    @inlinable init(token: UInt64, continuation: UnsafeContinuation<Void, Never>) {
        self.token = token
        self.continuation = continuation
    }
}

@usableFromInline final class SwiftQueue<T>: LinkQueue, @unchecked Sendable {
    // @unchecked: every mutable field lives in `state` and is touched only under its lock
    // ([the queue's state only under its lock]).
    @usableFromInline let state = Locked(SwiftQueueState())
    @usableFromInline let buffer: UnsafeMutablePointer<T>
    @usableFromInline let capacity: Int

    /// A queue of `capacity` items, its buffer allocated now: a capacity out of bounds, or one the system
    /// cannot give memory for, is an error naming it (not a trap).
    @usableFromInline init(capacity: Int) throws(FlowConfigurationError) {
        let stride = MemoryLayout<T>.stride
        let bytes = capacity.multipliedReportingOverflow(by: stride)
        guard capacity >= 1, capacity <= 1 << 40 else {
            throw FlowConfigurationError(
                parameter: "capacity", message: "capacity: \(capacity): must be between 1 and 2^40")
        }
        guard !bytes.overflow, bytes.partialValue <= 1 << 40 else {
            throw FlowConfigurationError(
                parameter: "capacity", message: "capacity: \(capacity) x \(stride) bytes: more than 2^40 bytes")
        }
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, max(MemoryLayout<T>.alignment, 16), max(1, bytes.partialValue)) == 0, let raw else {
            throw FlowConfigurationError(
                parameter: "capacity", message: "capacity: \(capacity) x \(stride) bytes: out of memory")
        }
        self.capacity = capacity
        buffer = raw.bindMemory(to: T.self, capacity: capacity)
    }

    deinit {
        _ = drainDropped()
        free(buffer)
    }

    @inlinable var depth: Int { state.withLock { $0.count } }

    @inlinable func close() {
        let waiters = state.withLock { s in
            s.closed = true
            defer {
                s.popWaiters = []
                s.pushWaiters = []
            }
            return s.popWaiters.map(\.continuation) + s.pushWaiters
        }
        for w in waiters { w.resume() }  // [close wakes everyone and drains]
    }

    /// Move `n` items between the circular buffer and a linear one, in up to two runs.
    @inlinable func move(
        count n: Int, at start: Int, _ body: (_ ring: UnsafeMutablePointer<T>, _ linear: Int, _ k: Int) -> Void
    ) {
        let first = min(n, capacity - start)
        body(buffer + start, 0, first)
        if first < n { body(buffer, first, n - first) }
    }

    /// Push up to `count` items; nil when it must wait (full), else how many went in (0: closed).
    @inlinable func tryPush(_ items: UnsafeMutablePointer<T>, count: Int) -> (Int, [UnsafeContinuation<Void, Never>])? {
        state.withLock { s in
            if s.closed { return (0, []) }
            let n = min(count, capacity - s.count)
            if n == 0 { return nil }
            move(count: n, at: (s.head + s.count) % capacity) { ring, linear, k in
                ring.moveInitialize(from: items + linear, count: k)  // [one lock per batch]
            }
            s.count += n
            defer { s.popWaiters = [] }
            return (n, s.popWaiters.map(\.continuation))
        }
    }

    /// Pop up to `max` items; nil when it must wait (empty and open), else the count (0: closed, drained).
    @inlinable func tryPop(into items: UnsafeMutablePointer<T>, max: Int, position: inout UInt64)
        -> (Int, [UnsafeContinuation<Void, Never>])?
    {
        state.withLock { s in
            if s.count == 0 { return s.closed ? (0, []) : nil }
            let n = min(max, s.count)
            move(count: n, at: s.head) { ring, linear, k in
                (items + linear).moveInitialize(from: ring, count: k)  // [one lock per batch]
            }
            s.head = (s.head + n) % capacity
            s.count -= n
            position = s.popped  // [popped counts positions]
            s.popped += UInt64(n)
            guard s.count <= capacity / 2 else { return (n, []) }  // [pushers register only when full]
            defer { s.pushWaiters = [] }
            return (n, s.pushWaiters)
        }
    }

    @inlinable func popAvailable(into items: UnsafeMutablePointer<T>, max: Int) -> Int {
        var position: UInt64 = 0
        guard let (n, woken) = tryPop(into: items, max: max, position: &position) else { return 0 }
        for w in woken { w.resume() }
        return n
    }

    @inlinable func push(_ items: UnsafeMutablePointer<T>, count: Int) async -> Int {
        var done = 0
        while done < count {
            if let (n, woken) = tryPush(items + done, count: count - done) {
                for w in woken { w.resume() }
                if n == 0 { break }  // closed
                done += n
            } else {
                await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
                    // [waiters register after a re-check]: re-check under the lock
                    let ready = state.withLock { s -> Bool in
                        if s.closed || s.count < capacity { return true }
                        s.pushWaiters.append(c)
                        return false
                    }
                    if ready { c.resume() }
                }
            }
        }
        return done
    }

    @inlinable func pop(
        into items: UnsafeMutablePointer<T>, max: Int, position: inout UInt64, until deadline: ContinuousClock.Instant?
    ) async -> Int? {
        while true {
            if let (n, woken) = tryPop(into: items, max: max, position: &position) {
                for w in woken { w.resume() }
                return n
            }
            if let deadline, ContinuousClock.now >= deadline { return nil }
            var timer: Task<Void, Never>?
            await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
                let token = state.withLock { s -> UInt64? in  // [waiters register after a re-check]
                    if s.closed || s.count > 0 { return nil }
                    var token: UInt64 = 0  // no deadline: no timer will look for it
                    if deadline != nil {
                        s.lastToken += 1
                        token = s.lastToken
                    }
                    s.popWaiters.append(PopWaiter(token: token, continuation: c))
                    return token
                }
                guard let token else { return c.resume() }
                if let deadline {
                    timer = Task {
                        try? await Task.sleep(until: deadline, clock: .continuous)
                        self.withdraw(token)?.resume()  // [a deadline's continuation resumed once]
                    }
                }
            }
            timer?.cancel()
        }
    }

    /// Take the pop waiting with `token` out of popWaiters, if it is still there
    /// ([a deadline's continuation resumed once]).
    @inlinable func withdraw(_ token: UInt64) -> UnsafeContinuation<Void, Never>? {
        state.withLock { s in
            guard let i = s.popWaiters.firstIndex(where: { $0.token == token }) else { return nil }
            return s.popWaiters.remove(at: i).continuation
        }
    }

    @inlinable func drainDropped() -> Int {
        state.withLock { s in
            let n = s.count
            move(count: n, at: s.head) { ring, _, k in ring.deinitialize(count: k) }
            s.head = 0
            s.count = 0
            return n
        }
    }
}
