// PipelineControl.swift — a handle to stop a running pipeline gracefully: drain.
//
// Invariant:
//  [a drained control stays drained] Once drained, a control stays drained: every run it is attached to drains
//    ([a drain only ends the pulls]), those attached later at their start, so a drain that races the start of a run
//    is not lost.

/// Stops a pipeline gracefully from outside: set it as ``PipelineOptions/control``, then call ``drain()``
/// from any task or thread.
///
/// Draining stops pulling from the source and lets every item already pulled go through every layer;
/// `pipeline` then returns normally (a `pipelineStream` ends normally), its report with `dropped == 0`
/// and `pulled == completed + skipped + failed`. Cancelling the task instead stops at once and counts
/// the rest as dropped.
///
/// A `Sequence` source is not pulled again; an `AsyncSequence` source's pull is cancelled: it must then
/// end (return `nil` or throw `CancellationError`, as `AsyncStream` does), and whatever it still hands
/// over is finished like the rest.
public final class PipelineControl: Sendable {
    let state = Locked<(drained: Bool, runs: [ObjectIdentifier: RunState])>((false, [:]))

    public init() {}

    /// Drain every run this control is attached to, now and later ([a drained control stays drained]). Idempotent.
    public func drain() {
        let runs = state.withLock { s in
            s.drained = true
            return Array(s.runs.values)
        }
        for run in runs { run.drain() }
    }

    /// Whether ``drain()`` has been called.
    public var isDraining: Bool { state.withLock { $0.drained } }

    /// A run starts under this control ([a drained control stays drained]).
    func attach(_ run: RunState) {
        if state.withLock({ s in
            s.runs[ObjectIdentifier(run)] = run
            return s.drained
        }) {
            run.drain()
        }
    }

    /// A run has ended.
    func detach(_ run: RunState) {
        state.withLock { _ = $0.runs.removeValue(forKey: ObjectIdentifier(run)) }
    }
}
