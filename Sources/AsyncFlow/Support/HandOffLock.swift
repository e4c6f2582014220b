// HandOffLock.swift — the lock of the direct hand-off paths (Backends/HandOff.swift): a mutex that says
// whether it is held, so that a thread that waits for it a while spins on a load, not on system calls.
//
// Invariant:
//  [a hand-off lock says it is held] The direct paths' locks (HandOffLock) say whether they are held:
//    `held` is set just after the mutex is taken and cleared just before it is given back, relaxed, as a
//    hint only (the mutex alone orders the critical sections); a thread waiting to try the lock reads
//    `held` and tries the mutex only when it reads false, so a busy lock costs its waiters loads, not
//    system calls.
import CFlow
import Synchronization

/// A lock that says whether it is held ([a hand-off lock says it is held]), for the direct paths' threads to wait on
/// with a load: a Synchronization.Mutex whose try fails asks the kernel (FUTEX_TRYLOCK_PI on Linux), a system call
/// per try for a thread that retries it for microseconds.
@usableFromInline final class HandOffLock<Value>: Sendable {
    @usableFromInline let locked: Locked<Value>
    /// [a hand-off lock says it is held]: true from just after the mutex is taken until just before it is given back; a
    /// hint only.
    @usableFromInline let held = Atomic<Bool>(false)

    @inlinable init(_ value: sending Value) {
        locked = Locked(value)
    }

    /// Run `body` under the first of `locks` found free, waiting for a while (as withLockSoon) while
    /// every one is held; nil, without calling `body`, if they all stayed taken.
    @inlinable static func withAnySoon<R: Sendable>(_ locks: [HandOffLock], _ body: (inout Value) -> R) -> R? {
        spinning {
            for lock in locks {
                if let result = lock.tryWithLock(body) { return result }
            }
            return nil
        }
    }

    /// withLockSoon, then, if the lock stayed taken, withLock: for a thread that must run `body` and
    /// would rather spin through a short hold than sleep.
    @inlinable func withLockSpinningFirst<R: Sendable>(_ body: (inout Value) -> R) -> R {
        withLockSoon(body) ?? withLock(body)
    }

    /// Run `body` under the lock, waiting for it as long as it takes.
    @inlinable func withLock<R: Sendable>(_ body: (inout Value) -> R) -> R {
        locked.withLock { value in holding(&value, body) }
    }

    /// Run `body` under the lock once it is free, waiting for a while (1,024 pauses: tens of microseconds, a few
    /// batches of a cheap closure) while another thread holds it; nil, without calling `body`, if it stayed taken
    /// ([one puller at a time], [one collector call at a time]). Waits read `held` and try the mutex only when it looks
    /// free ([a hand-off lock says it is held]).
    @inlinable func withLockSoon<R: Sendable>(_ body: (inout Value) -> R) -> R? {
        Self.spinning { tryWithLock(body) }
    }

    /// Run `body` under the lock if it is free now: `held` first, then the mutex
    /// ([a hand-off lock says it is held]); nil, without calling `body`, if it is taken.
    @inlinable func tryWithLock<R: Sendable>(_ body: (inout Value) -> R) -> R? {
        guard !held.load(ordering: .relaxed) else { return nil }
        return locked.withLockIfAvailable { value in holding(&value, body) }
    }

    /// `attempt` until it answers, with a pause between tries, 1,024 tries at most: the while that a thread
    /// waits for a hand-off lock before it gives up (withLockSoon, withAnySoon).
    @inlinable static func spinning<R>(_ attempt: () -> R?) -> R? {
        for _ in 0..<1024 {
            if let result = attempt() { return result }
            flow_spin_pause()
        }
        return nil
    }

    @inlinable func holding<R>(_ value: inout Value, _ body: (inout Value) -> R) -> R {
        held.store(true, ordering: .relaxed)
        defer { held.store(false, ordering: .relaxed) }
        return body(&value)
    }
}
