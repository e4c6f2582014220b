// RunState.swift — what every stage of one pipeline run shares: the stop flag, the first error, and the
// skipped errors kept for the report.
//
// Invariants:
//  [a stop is for good] `stopped` only goes false -> true. Stages poll it (relaxed) between batches and items; after it
//    is set they pull nothing new, call no more user closures, and count what they hold as dropped.
//  [the stop flag before the close] stop() sets the flag before closing every link, so a stage woken by the close sees
//    the flag.
//  [the first stop wins] The first stop wins: a failure is the run's cause only if nothing stopped the run before it.
//    Later errors (often consequences of the stop, such as an attempt a retry policy may no longer repeat once stopped)
//    are not reported as the cause.
//  [a drain only ends the pulls] Draining (PipelineControl.drain) only ends the pulls: `pullsEnded` goes true, the
//    pull-end hooks run once (each AsyncSequence source cancels its pull, which may be waiting for ever), and every
//    item already pulled goes on through the layers as usual: nothing is dropped, no link is closed early. stop() ends
//    the pulls the same way before it closes the links. A hook registered after the pulls ended runs at once.
import Synchronization

@usableFromInline final class RunState: Sendable {
    @usableFromInline let stoppedFlag = Atomic<Bool>(false)
    @usableFromInline let cancelledFlag = Atomic<Bool>(false)
    /// Set by stop() and drain(): sources pull nothing more ([a drain only ends the pulls]). One flag, so a source's
    /// check per element is one load.
    @usableFromInline let pullsEndedFlag = Atomic<Bool>(false)
    /// What ending the pulls calls ([a drain only ends the pulls]); nil once it has.
    @usableFromInline let pullEndHooks = Locked<[@Sendable () -> Void]?>([])
    @usableFromInline let firstError = Locked<(error: any Error, layer: String)?>(nil)
    @usableFromInline let kept = Locked<[LayerError]>([])
    @usableFromInline let linkList = Locked<[any Closable]>([])
    @usableFromInline static let keptErrorLimit = 16
    /// PipelineOptions.logger's view of this run (nil: no logger).
    @usableFromInline let log: RunLog?
    /// A named run's attempt (DurableRun); nil for a run without a name.
    @usableFromInline let named: DurableRun?

    init(log: RunLog? = nil, named: DurableRun? = nil) {
        self.log = log
        self.named = named
    }

    @inlinable var stopped: Bool { stoppedFlag.load(ordering: .relaxed) }
    @inlinable var cancelled: Bool { cancelledFlag.load(ordering: .relaxed) }
    /// Sources may pull no more (the run stopped or is draining).
    @inlinable var pullsEnded: Bool { pullsEndedFlag.load(ordering: .relaxed) }
    @inlinable var failure: (error: any Error, layer: String)? { firstError.withLock { $0 } }
    @inlinable var keptErrors: [LayerError] { kept.withLock { $0 } }

    @usableFromInline func register(_ link: any Closable) { linkList.withLock { $0.append(link) } }

    /// Forget a registered closable (a stop hook whose wait ended: [a batch call runs to its end]).
    @usableFromInline func unregister(_ link: any Closable) {
        linkList.withLock { list in list.removeAll { $0 === link } }
    }

    /// Stop everything ([a stop is for good], [the stop flag before the close]): no new pulls, no more user closures,
    /// every waiter released.
    @usableFromInline func stop() {
        stoppedFlag.store(true, ordering: .sequentiallyConsistent)
        endPulls()
        for link in linkList.withLock({ $0 }) { link.close() }
    }

    /// End the pulls and let what was pulled finish ([a drain only ends the pulls]).
    @usableFromInline func drain() {
        if !pullsEnded { log?.draining() }
        endPulls()
    }

    /// [a drain only ends the pulls]: no more pulls; run the hooks once.
    func endPulls() {
        pullsEndedFlag.store(true, ordering: .sequentiallyConsistent)
        for hook in pullEndHooks.withLock({ hooks in
            defer { hooks = nil }
            return hooks ?? []
        }) {
            hook()
        }
    }

    /// Call `hook` when the pulls end (drain or stop), or now if they have ([a drain only ends the pulls]).
    @usableFromInline func onPullsEnd(_ hook: @escaping @Sendable () -> Void) {
        let now = pullEndHooks.withLock { hooks in
            guard hooks != nil else { return true }
            hooks!.append(hook)
            return false
        }
        if now { hook() }
    }

    @usableFromInline func cancel() {
        cancelledFlag.store(true, ordering: .relaxed)
        stop()
    }

    /// Record a failure unless the run had stopped already ([the first stop wins]), and stop.
    @usableFromInline func fail(_ error: any Error, layer: String) {
        let first = firstError.withLock {
            guard $0 == nil && !stopped else { return false }
            $0 = (error, layer)
            return true
        }
        if first { log?.failed(error, layer: layer) }
        stop()
    }

    /// Keep a skipped item's error for the report (the first few only).
    @usableFromInline func keep(_ error: any Error, layer: String) {
        kept.withLock {
            if $0.count < Self.keptErrorLimit { $0.append(LayerError(layer: layer, error: error)) }
        }
    }
}
