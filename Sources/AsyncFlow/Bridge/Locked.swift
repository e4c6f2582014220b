// Locked.swift — a value guarded by a pthread mutex; used instead of Synchronization.Mutex.
//
// Why not Synchronization.Mutex: on Linux its lock and unlock live in the uninstrumented standard
// library and reach the futex directly, so ThreadSanitizer sees neither and reports every access made
// under the lock as a race (110 such reports in the test suite). A pthread mutex is intercepted by
// ThreadSanitizer, so the suite runs under `--sanitize=thread` with no suppression for our own state.
//
// Invariants:
//  K1. `value` is read and written only inside withLock, between pthread_mutex_lock and unlock.
//  K2. `body` must not call withLock on the same instance (the mutex is not recursive) and must not
//      suspend (withLock is synchronous); continuations are resumed by callers after it returns.
#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

@usableFromInline final class Locked<Value>: @unchecked Sendable {
    // @unchecked: `value` is touched only under `mutex` (K1).
    @usableFromInline let mutex: UnsafeMutablePointer<pthread_mutex_t>
    @usableFromInline var value: Value

    @inlinable init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        let rc = pthread_mutex_init(mutex, nil)
        precondition(rc == 0, "pthread_mutex_init failed: \(rc)")
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    /// Run `body` with the value, under the lock (K1, K2).
    @inlinable func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
