// RunState.swift — what every stage of one pipeline run shares: the stop flag, the first error,
// the skipped errors kept for the report, and each layer's counters.
//
// Invariants:
//  S1. `stopped` only goes false -> true. Stages poll it (relaxed) between batches and items; after it is
//      set they pull nothing new, call no more user closures, and count what they hold as dropped.
//  S2. stop() sets the flag before closing every link, so a stage woken by the close sees the flag.
//  S3. The first stop wins: a failure is the run's cause only if nothing stopped the run before it.
//      Later errors (often consequences of the stop, such as an attempt a retry policy may no longer
//      repeat once stopped) are not reported as the cause.
//  S4. Counters are added per batch by the stage that owns them; the report reads them after every
//      stage has ended (happens-after through the task group), so its figures are exact.
import CFlow
import Synchronization

/// Per-layer counters (atomics: a CPU layer's workers add to them concurrently, once per batch).
@usableFromInline final class LayerCounters: Sendable {
    @usableFromInline let received = Atomic<Int>(0)
    @usableFromInline let emitted = Atomic<Int>(0)
    @usableFromInline let failed = Atomic<Int>(0)
    @usableFromInline let skipped = Atomic<Int>(0)
    @usableFromInline let retried = Atomic<Int>(0)
    @usableFromInline let dropped = Atomic<Int>(0)
    /// Nanoseconds spent in the layer's closure (per batch for sync closures, per call for async ones).
    @usableFromInline let busy = Atomic<Int>(0)

    @usableFromInline init() {}
}

@usableFromInline final class RunState: Sendable {
    @usableFromInline let stoppedFlag = Atomic<Bool>(false)
    @usableFromInline let cancelledFlag = Atomic<Bool>(false)
    @usableFromInline let firstError = Locked<(error: any Error, layer: String)?>(nil)
    @usableFromInline let kept = Locked<[LayerError]>([])
    @usableFromInline let linkList = Locked<[any Closable]>([])
    @usableFromInline static let keptErrorLimit = 16

    @inlinable var stopped: Bool { stoppedFlag.load(ordering: .relaxed) }
    @inlinable var cancelled: Bool { cancelledFlag.load(ordering: .relaxed) }
    @inlinable var failure: (error: any Error, layer: String)? { firstError.withLock { $0 } }
    @inlinable var keptErrors: [LayerError] { kept.withLock { $0 } }

    @usableFromInline func register(_ link: any Closable) { linkList.withLock { $0.append(link) } }

    /// Stop everything (S1, S2): no new pulls, no more user closures, every waiter released.
    @usableFromInline func stop() {
        stoppedFlag.store(true, ordering: .sequentiallyConsistent)
        for link in linkList.withLock({ $0 }) { link.close() }
    }

    @usableFromInline func cancel() {
        cancelledFlag.store(true, ordering: .relaxed)
        stop()
    }

    /// Record a failure unless the run had stopped already (S3), and stop.
    @usableFromInline func fail(_ error: any Error, layer: String) {
        firstError.withLock { if $0 == nil && !stopped { $0 = (error, layer) } }
        stop()
    }

    /// Keep a skipped item's error for the report (the first few only).
    @usableFromInline func keep(_ error: any Error, layer: String) {
        kept.withLock {
            if $0.count < Self.keptErrorLimit { $0.append(LayerError(layer: layer, error: error)) }
        }
    }
}

/// How a user closure call ended, after the layer's error policy.
@usableFromInline enum Outcome<T> {
    case value(T)
    case skipped
    case failed
}

/// One layer's error policy applied to one item: `attempt` is called again while retries are left.
@usableFromInline struct PolicyRun {
    @usableFromInline let policy: ErrorPolicy
    @usableFromInline let counters: LayerCounters
    @usableFromInline let run: RunState
    @usableFromInline let layer: String

    /// Decide what an error means: `nil` to retry the same item, or how the item ended.
    @inlinable func settle<T>(_ error: any Error, retriesLeft: inout Int) -> Outcome<T>? {
        if retriesLeft > 0 && !run.stopped {
            retriesLeft -= 1
            counters.retried.add(1, ordering: .relaxed)
            return nil
        }
        if case .skip = policy {
            counters.skipped.add(1, ordering: .relaxed)
            run.keep(error, layer: layer)
            return .skipped
        }
        counters.failed.add(1, ordering: .relaxed)
        run.fail(error, layer: layer)
        return .failed
    }

    @inlinable var retries: Int { if case .retry(let n) = policy { n } else { 0 } }

    @inline(__always)
    @inlinable func call<T>(_ attempt: () throws -> T) -> Outcome<T> {
        var retriesLeft = retries
        while true {
            do { return .value(try attempt()) } catch {
                if let o: Outcome<T> = settle(error, retriesLeft: &retriesLeft) { return o }
            }
        }
    }

    @inline(__always)
    @inlinable func callAsync<T>(_ attempt: () async throws -> T) async -> Outcome<T> {
        var retriesLeft = retries
        while true {
            do { return .value(try await attempt()) } catch {
                if let o: Outcome<T> = settle(error, retriesLeft: &retriesLeft) { return o }
            }
        }
    }
}
