// DurableRun.swift — a named run: its checkpoint loaded before the first pull, its items carried with
// their source positions, and each batch committed with the checkpoint that covers it.
//
// A pipeline whose last layer commits (Layer(committing:run:...)) is a named run. Every layer is then
// built in its positioned form (each item travels as Positioned<T>: its source position and its value);
// a pipeline without one builds exactly what it builds otherwise.
//
// Invariants:
//  [the collector owns the checkpoint] `current` is changed only by the committing collector, one batch at a
//    time (its stage is one task), and only after the store committed the batch; a batch whose commit
//    failed leaves it as it was, so a retry commits the same positions again from the same checkpoint.
//  [an unknown commit is read back] When a commit throws, whether the store committed it is not known (the
//    connection may have died during COMMIT): the checkpoint is read back, and if it is the one this
//    commit saved, the batch counts as committed. A checkpoint further on means another process took the
//    run over ([a checkpoint replaces only its predecessor]): the run fails with RunTakenOverError.
//  [a second arrival fails the run] A position reaching the collector a second time (RunProgress's
//    [a position commits once] refuses it) is a fault of the engine: the run fails rather than write its row twice.
//  [finished only after a whole pull] A run is saved as finished only when its source ended by itself (no
//    drain, no stop, no failure) and every stage has ended: then every position was pulled and every
//    batch settled.
import Synchronization

/// What the engine needs from a committing collector, with the store's type erased.
@usableFromInline struct RunAccess: Sendable {
    @usableFromInline let run: String
    /// The run's saved checkpoint text, or nil.
    @usableFromInline let load: @Sendable () async throws -> String?
    /// Save the run as finished ([finished only after a whole pull]).
    @usableFromInline let finish: @Sendable (DurableRun) async throws -> Void

    @inlinable init(
        run: String, load: @escaping @Sendable () async throws -> String?,
        finish: @escaping @Sendable (DurableRun) async throws -> Void
    ) {
        self.run = run
        self.load = load
        self.finish = finish
    }
}

/// One attempt of a named run, shared by its source (which sets the pull mark) and its collector (which
/// commits).
@usableFromInline final class DurableRun: Sendable {
    @usableFromInline let name: String
    /// The checkpoint this attempt started from.
    @usableFromInline let start: RunCheckpoint
    @usableFromInline let mark = PullMark()
    /// What the source recorded as it read, when it keeps bookmarks ([a bookmark is at or below the watermark]).
    let bookmarks = SourceBookmarks()
    /// The last checkpoint committed ([the collector owns the checkpoint]); its sequence less the start's is the
    /// commits this attempt made.
    @usableFromInline let current: Locked<RunCheckpoint>

    init(name: String, start: RunCheckpoint) {
        self.name = name
        self.start = start
        current = Locked(start)
    }

    /// Commit `batch`: `rows` writes its values, and the checkpoint with their positions committed is
    /// saved in the same transaction ([rows and checkpoint in one transaction], [the collector owns the checkpoint]).
    @inlinable func commit<Store: RunStore, Item: Sendable>(
        _ batch: [Positioned<Item>], to store: Store, layer: LayerRuntime,
        _ rows: @Sendable ([Positioned<Item>], Store.Transaction) async throws -> Void
    ) async throws {
        let next = try committing(batch.map(\.position), layer: layer)
        try await save(next, to: store, layer: layer) { try await rows(batch, $0) }
    }

    /// Save the run as finished: a transaction with no rows ([finished only after a whole pull]).
    @inlinable func finish<Store: RunStore>(in store: Store) async throws {
        try await save(finishing(), to: store, layer: nil) { _ in }
    }

    /// Save `next` in one transaction with `rows`, and make it current ([a checkpoint replaces only its predecessor],
    /// [an unknown commit is read back]); a take-over fails the run through `layer`, when given.
    @inlinable func save<Store: RunStore>(
        _ next: RunCheckpoint, to store: Store, layer: LayerRuntime?,
        rows: (Store.Transaction) async throws -> Void
    ) async throws {
        let text = next.encoded
        let (name, sequence) = (self.name, next.sequence)
        do {
            guard try await store.commit(run: name, checkpoint: text, sequence: sequence, rows: rows) else {
                throw takenOver(expected: sequence - 1, found: nil)
            }
        } catch {
            let found = try? await store.checkpoint(of: name)  // [an unknown commit is read back]
            try settle(error, saving: next, found: found, layer: layer)
        }
        committed(next)
    }

    /// The current checkpoint with `positions` committed, one commit further
    /// ([the collector owns the checkpoint], [a second arrival fails the run]).
    @usableFromInline func committing(_ positions: [UInt64], layer: LayerRuntime) throws -> RunCheckpoint {
        var next = current.withLock { $0 }
        let positions = positions.sorted()
        var i = 0
        while i < positions.count {
            var j = i + 1
            while j < positions.count && positions[j] == positions[j - 1] &+ 1 { j += 1 }
            if next.progress.commit(positions[i]..<(positions[j - 1] + 1)) > 0 {  // [a second arrival fails the run]
                let error = RunProgressError(
                    "run \"\(name)\": a position reached the collector twice (\(positions[i]))")
                layer.run.fail(error, layer: layer.name)
                throw error
            }
            i = j
        }
        return stamped(next)
    }

    /// The current checkpoint marked finished, one commit further.
    @usableFromInline func finishing() -> RunCheckpoint {
        var next = current.withLock { $0 }
        next.finished = true
        return stamped(next)
    }

    /// `next` as the next commit: its sequence one on, its pulled mark brought up ([the pulled mark only grows]), its
    /// bookmark the source's last at or below its watermark, or the one it had ([a bookmark is at or below the watermark]).
    func stamped(_ next: RunCheckpoint) -> RunCheckpoint {
        var next = next
        next.sequence += 1
        next.pulled = max(next.pulled, mark.end.load(ordering: .relaxed))
        if let bookmark = bookmarks.latest(atOrBelow: next.progress.watermark) { next.bookmark = bookmark }
        return next
    }

    /// A save of `next` threw `error`, and the store now holds `found` ([an unknown commit is read back]): return when
    /// it committed after all; else throw, a take-over as RunTakenOverError (failing the run through `layer`).
    @usableFromInline func settle(_ error: any Error, saving next: RunCheckpoint, found: String?, layer: LayerRuntime?)
        throws
    {
        if found == next.encoded { return }
        let foundSequence = found.flatMap { try? RunCheckpoint(encoded: $0) }?.sequence ?? 0
        guard error is RunTakenOverError || (found != nil && foundSequence >= next.sequence) else { throw error }
        let error = takenOver(expected: next.sequence - 1, found: found)
        if let layer { layer.run.fail(error, layer: layer.name) }
        throw error
    }

    @usableFromInline func takenOver(expected: UInt64, found: String?) -> RunTakenOverError {
        RunTakenOverError(run: name, expected: expected, found: found)
    }

    /// `next` was committed: it is the current checkpoint ([the collector owns the checkpoint]).
    @usableFromInline func committed(_ next: RunCheckpoint) {
        current.withLock { $0 = next }
    }
}

/// What a named run's report says about where it started and what it did.
public struct NamedRunReport: Sendable, Equatable, CustomStringConvertible {
    /// The run's name.
    public let run: String
    /// The checkpoint's watermark when this attempt started: every position below it was done.
    public let resumedAt: UInt64
    /// Positions committed by earlier attempts (0 for a first start).
    public let alreadyDone: UInt64
    /// Positions an earlier attempt had pulled (as its last commit knew) but not committed, done again by
    /// this one: the work a crash cost, at most what was in flight.
    public let doneAgain: UInt64
    /// The run had finished before this attempt, which then did no work.
    public let wasFinished: Bool
    /// Batches this attempt committed.
    public let commits: Int
    /// Positions committed after this attempt, over every attempt.
    public let committed: UInt64
    /// This attempt finished the run (its source ended and every batch settled).
    public let finished: Bool

    public var description: String {
        if wasFinished { return "run \"\(run)\": finished before, nothing to do (\(committed) committed)" }
        return start + "; \(commits) commits, \(committed) committed" + (finished ? ", finished" : ", not finished")
    }

    /// Where the run starts, as the log says before the first pull.
    var start: String {
        guard alreadyDone > 0 || resumedAt > 0 else { return "run \"\(run)\": started" }
        return "run \"\(run)\": resumed at \(resumedAt) (\(alreadyDone) done before"
            + (doneAgain > 0 ? ", \(doneAgain) done again)" : ")")
    }
}

extension DurableRun {
    /// The report's view of this attempt so far.
    func report() -> NamedRunReport {
        let now = current.withLock { $0 }
        let before = start.progress.committed
        return NamedRunReport(
            run: name, resumedAt: start.progress.watermark, alreadyDone: before,
            doneAgain: start.pulled > before ? start.pulled - before : 0, wasFinished: start.finished,
            commits: Int(now.sequence - start.sequence), committed: now.progress.committed, finished: now.finished)
    }
}

/// Run a named pipeline (its last layer commits through `access`): load its checkpoint, run every layer in its
/// positioned form from there, and save it finished when its source ended by itself
/// ([finished only after a whole pull]).
func runNamed(_ layers: [ErasedLayer], access: RunAccess, options: PipelineOptions) async throws -> PipelineReport {
    // [configuration errors before the first pull], and before the checkpoint is read
    let pool = try validate(layers, options: options, streaming: false)
    let start = try await access.load().map { text throws(RunProgressError) in try RunCheckpoint(encoded: text) }
    let durable = DurableRun(name: access.run, start: start ?? RunCheckpoint())
    if durable.start.finished {
        // nothing to do: no stage runs, no item is pulled
        let report = PipelineReport(
            layers: layers.map { LayerReport(empty: $0.name, busy: $0.index == 0 ? nil : .zero) }, errors: [],
            elapsed: .zero, run: durable.report())
        options.logger.map(RunLog.init)?.nothingToDo(report)
        options.onReport?(report)
        return report
    }
    let pipeline = try PipelineRun(
        layers.map { $0.positioned(in: durable) }, options: options, named: (durable, pool))
    await pipeline.execute()
    let state = pipeline.run
    if state.failure == nil && !state.cancelled && !state.pullsEnded {  // [finished only after a whole pull]
        do { try await access.finish(durable) } catch { state.fail(error, layer: layers.last!.name) }
    }
    return try pipeline.outcome()
}
