// Link.swift — a typed, bounded queue between two layers, over the backend's storage (LinkQueue).
//
// Invariants (every LinkQueue keeps [batches move bitwise], [leftovers deinitialised once], [one continuation per wait]
// and [producers woken at half capacity]; Link itself keeps [the last producer closes the link]):
//  [batches move bitwise] Items move by bitwise moves of whole batches: a successful push transfers ownership of the
//    pushed values to the queue (the caller's buffer slots become uninitialised), a successful pop to the caller's
//    buffer. No per-item allocation, retain or release.
//  [leftovers deinitialised once] Whatever is still inside when the link is drained or deinitialised is deinitialised
//    exactly once and counted (drainDropped), so nothing leaks and nothing goes unaccounted.
//  [one continuation per wait] A task waits only when the queue is full (push) or empty (pop), on one continuation per
//    wait, never per item, and no wake-up is lost; close() wakes every waiter.
//  [the last producer closes the link] `producers` counts the entities that push into this link; the last to finish
//    closes it, so consumers see "closed" only after every producer is done.
//  [producers woken at half capacity] Hysteresis: a producer that waited for space is woken only once the queue has
//    drained to half its capacity, so each costly wake-up is followed by half a queue of pushes rather than one batch.
import Synchronization

/// A link's storage: what a backend provides (RingQueue, SwiftQueue).
@usableFromInline protocol LinkQueue<Element>: AnyObject, Sendable {
    associatedtype Element
    /// Items inside now (approximate while others push and pop).
    var depth: Int { get }
    func close()
    /// Deinitialise and count whatever is left inside ([leftovers deinitialised once]).
    func drainDropped() -> Int
    /// Push `buffer[0..<count]`, suspending while full. Returns how many were pushed: all, or fewer when
    /// the queue was closed (the rest stay initialised in the buffer, owned by the caller).
    func push(_ buffer: UnsafeMutablePointer<Element>, count: Int) async -> Int
    /// Pop up to `max` items into uninitialised `buffer`, suspending while empty, and the queue position
    /// of the first (positions number the items in queue order, for ordered layers). Returns the count
    /// (>= 1), or 0 when the queue is closed and drained. With a `deadline`, it gives up then: nil when
    /// the queue stayed empty (and open) until then; the wait ends exactly once, by an item, a close or
    /// the deadline, and no item is taken when it gives up. Without one it never returns nil.
    func pop(
        into buffer: UnsafeMutablePointer<Element>, max: Int, position: inout UInt64,
        until deadline: ContinuousClock.Instant?
    ) async -> Int?
    /// Pop up to `max` items that are there now, without waiting: 0 when there are none.
    func popAvailable(into buffer: UnsafeMutablePointer<Element>, max: Int) -> Int
}

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

@usableFromInline final class Link<T>: AnyLink {
    @usableFromInline let queue: any LinkQueue<T>
    @usableFromInline let capacity: Int
    @usableFromInline let producers = Atomic<Int>(0)
    /// The paths around its queue that its stages offer (HandOff.swift), when the backend lets its items skip it.
    @usableFromInline let direct = DirectPaths<T>()

    @inlinable init(capacity: Int, backend: any Backend) throws(FlowConfigurationError) {
        self.capacity = capacity
        queue = try backend.makeQueue(of: T.self, capacity: capacity)
    }

    @inlinable var depth: Int { queue.depth }
    @inlinable func close() { queue.close() }
    @inlinable func drainDropped() -> Int { queue.drainDropped() }

    @inlinable func addProducers(_ n: Int) { producers.add(n, ordering: .relaxed) }

    /// Called once by each producer when it is done; the last one closes the link
    /// ([the last producer closes the link]).
    @inlinable func finishProducer() {
        if producers.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 { close() }
    }

    /// See LinkQueue.push.
    @inlinable func push(_ buffer: UnsafeMutablePointer<T>, count: Int) async -> Int {
        await queue.push(buffer, count: count)
    }

    /// See LinkQueue.pop.
    @inlinable func pop(into buffer: UnsafeMutablePointer<T>, max: Int, position: inout UInt64) async -> Int {
        await queue.pop(into: buffer, max: max, position: &position, until: nil)!  // no deadline: never nil
    }

    /// LinkQueue.pop with a deadline, for a consumer that does not need the position.
    @inlinable func pop(into buffer: UnsafeMutablePointer<T>, max: Int, until deadline: ContinuousClock.Instant) async
        -> Int?
    {
        var position: UInt64 = 0
        return await queue.pop(into: buffer, max: max, position: &position, until: deadline)
    }

    /// LinkQueue.pop for a consumer that does not need the position.
    @inlinable func pop(into buffer: UnsafeMutablePointer<T>, max: Int) async -> Int {
        var position: UInt64 = 0
        return await pop(into: buffer, max: max, position: &position)
    }
}
