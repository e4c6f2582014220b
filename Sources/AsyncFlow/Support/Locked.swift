// Locked.swift — a value guarded by a Synchronization.Mutex that ThreadSanitizer can see.
//
// On Linux the Mutex's lock and unlock live in the uninstrumented standard library and reach the futex
// directly, so ThreadSanitizer sees no synchronisation and reports every access made under the lock as
// a race. A pthread mutex would be seen, but it sleeps at once when contended, which the `.swift` backend's
// queues, taken per batch by many tasks, pay for in throughput. So Locked keeps the Mutex
// and, when the process runs under ThreadSanitizer, tells it what the lock does: __tsan_acquire after
// taking the mutex, __tsan_release before giving it back (the runtime's public annotation interface,
// looked up once with dlsym; absent, and so skipped, in every other build).
//
// Invariants:
//  [the value only under the lock] `mutex`'s value is read and written only inside withLock (or withLockIfAvailable).
//  [no recursion or suspension under the lock] `body` must not call withLock on the same instance (not recursive) and
//    must not suspend; continuations are resumed by callers after it returns.
//  [the sanitizer sees the lock's order] Under ThreadSanitizer, every critical section begins with an acquire and ends
//    with a release on the same address (this object), so consecutive holders are ordered as they are by the mutex.
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

@usableFromInline package final class Locked<Value>: Sendable {
    @usableFromInline let mutex: Mutex<Value>

    @inlinable package init(_ value: sending Value) {
        mutex = Mutex(value)
    }

    /// Run `body` with the value, under the lock ([the value only under the lock],
    /// [no recursion or suspension under the lock], [the sanitizer sees the lock's order]).
    @inlinable package func withLock<R: Sendable>(_ body: (inout Value) throws -> R) rethrows -> R {
        try mutex.withLock { value in
            entered()
            defer { leaving() }
            return try body(&value)
        }
    }

    /// Run `body` with the value under the lock if it is free now ([the value only under the lock],
    /// [no recursion or suspension under the lock], [the sanitizer sees the lock's order]); nil, without waiting and
    /// without calling `body`, when another thread holds it.
    @inlinable package func withLockIfAvailable<R: Sendable>(_ body: (inout Value) -> R) -> R? {
        mutex.withLockIfAvailable { value in
            entered()
            defer { leaving() }
            return body(&value)
        }
    }

    /// [the sanitizer sees the lock's order]: the critical section has begun (ThreadSanitizer's acquire on this object,
    /// when it runs).
    @inlinable func entered() {
        ThreadSanitizerHooks.hooks?.acquire(Unmanaged.passUnretained(self).toOpaque())
    }

    /// [the sanitizer sees the lock's order]: the critical section ends (ThreadSanitizer's release on this object, when
    /// it runs).
    @inlinable func leaving() {
        ThreadSanitizerHooks.hooks?.release(Unmanaged.passUnretained(self).toOpaque())
    }
}

/// ThreadSanitizer's annotation entry points, when its runtime is in the process
/// ([the sanitizer sees the lock's order]).
@usableFromInline struct ThreadSanitizerHooks: Sendable {
    @usableFromInline typealias Hook = @convention(c) (UnsafeMutableRawPointer?) -> Void
    @usableFromInline let acquire: Hook
    @usableFromInline let release: Hook

    @usableFromInline static let hooks: ThreadSanitizerHooks? = {
        guard let acquire = dlsym(nil, "__tsan_acquire"), let release = dlsym(nil, "__tsan_release") else { return nil }
        return ThreadSanitizerHooks(
            acquire: unsafeBitCast(acquire, to: Hook.self), release: unsafeBitCast(release, to: Hook.self))
    }()
}
