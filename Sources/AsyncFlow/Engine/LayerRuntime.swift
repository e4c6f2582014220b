// LayerRuntime.swift — one layer at run time: its counters, and its error policy applied to each call of
// its closure.
//
// Invariants:
//  [counters only grow] Counters only grow. Stages add received, emitted and dropped per batch
//    ([every item accounted for]), the policy adds skipped, failed and retried per item; the report reads them after
//    every stage has ended (happens-after through the task group), so its figures are exact.
//  [retries only while the run goes on] A retry is made only while attempts are left and the run has not stopped; then
//    .skip counts the item skipped and keeps its error (the first few, RunState), anything else counts it failed and
//    fails the run with the closure's own error.
//  [a batch call counts in items] A closure called with a batch of items (Layer(batchesOf:)) is one call under the
//    policy, counted in items: a retry adds the batch's count to retried, a skip or failure its count to skipped or
//    failed; its error is kept (or fails the run) once.
import Synchronization

/// Per-layer counters (atomics: a CPU layer's workers add to them concurrently, once per batch).
@usableFromInline final class LayerCounters: Sendable {
    @usableFromInline let received = Atomic<Int>(0)
    @usableFromInline let emitted = Atomic<Int>(0)
    @usableFromInline let failed = Atomic<Int>(0)
    @usableFromInline let skipped = Atomic<Int>(0)
    @usableFromInline let retried = Atomic<Int>(0)
    @usableFromInline let dropped = Atomic<Int>(0)
    /// Nanoseconds spent calling the layer's closure, added once per batch ([busy time per batch]).
    @usableFromInline let busy = Atomic<Int>(0)
    /// Errors skipped and retried (calls, not items), for the log's limit per layer ([nothing logged per item]).
    @usableFromInline let skipErrors = Atomic<Int>(0)
    @usableFromInline let retryErrors = Atomic<Int>(0)
    /// A merged source's items pulled per generator (their sum is `received`); empty for other layers.
    @usableFromInline let generators: [GeneratorCount]
    /// A distributed layer's batches per remote worker (BatchOutcome.worker), added once per batch.
    @usableFromInline let workers = Locked<[String: WorkerCount]>([:])
    /// How long a distributed layer's chunks have waited with no worker claiming any, in nanoseconds, as its
    /// coordinator last saw (0: none waits unclaimed); set by BatchCall.unclaimed.
    @usableFromInline let unclaimed = Atomic<Int>(0)

    @usableFromInline init(generators: Int = 0) {
        self.generators = (0..<generators).map { _ in GeneratorCount() }
    }
}

extension LayerCounters {
    /// Count a batch that `worker` did, of `items` items (its results, skipped and failed items).
    @inlinable func add(worker: String, items: Int) {
        workers.withLock { $0[worker, default: WorkerCount(worker: worker, batches: 0, items: 0)].add(items: items) }
    }

    /// The remote workers' counts, by worker id.
    var workerCounts: [WorkerCount] { workers.withLock { $0.values.sorted { $0.worker < $1.worker } } }

    /// How long chunks have waited unclaimed, if they do.
    var unclaimedFor: Duration? {
        let nanoseconds = unclaimed.load(ordering: .relaxed)
        return nanoseconds > 0 ? .nanoseconds(nanoseconds) : nil
    }
}

/// Items pulled from one generator of a merged source (added once per batch, with `received`).
@usableFromInline final class GeneratorCount: Sendable {
    @usableFromInline let pulled = Atomic<Int>(0)

    @usableFromInline init() {}
}

/// How a user closure call ended, after the layer's error policy.
@usableFromInline enum Outcome<T> {
    case value(T)
    case skipped
    case failed
}

/// A layer at run time, as its stages see it: its name, counters and error policy, and the run.
@usableFromInline struct LayerRuntime: Sendable {
    @usableFromInline let name: String
    @usableFromInline let policy: ErrorPolicy
    @usableFromInline let counters: LayerCounters
    @usableFromInline let run: RunState

    @usableFromInline init(name: String, policy: ErrorPolicy, counters: LayerCounters, run: RunState) {
        self.name = name
        self.policy = policy
        self.counters = counters
        self.run = run
    }

    /// Decide what an error means: `nil` to retry the same item, or how the item ended.
    @inlinable func settle<T>(_ error: any Error, retriesLeft: inout Int, items: Int = 1) -> Outcome<T>? {
        if retriesLeft > 0 && !run.stopped {
            retriesLeft -= 1
            counters.retried.add(items, ordering: .relaxed)
            run.log?.retried(error, layer: name, counters: counters, items: items)
            return nil
        }
        if case .skip = policy {
            counters.skipped.add(items, ordering: .relaxed)
            run.keep(error, layer: name)
            run.log?.skipped(error, layer: name, counters: counters, items: items)
            return .skipped
        }
        counters.failed.add(items, ordering: .relaxed)
        run.fail(error, layer: name)
        return .failed
    }

    @inlinable var retries: Int { if case .retry(let n) = policy { n } else { 0 } }

    /// A sync closure's call for one item, once its first attempt threw `error`: the policy decides, and
    /// `attempt` is called again while retries are left. The first attempt is the caller's own, in its
    /// loop (BatchLoop.apply), so the per-item path is a plain call and this stays out of line.
    @inline(never)
    @inlinable func call<T>(after error: any Error, _ attempt: () throws -> T) -> Outcome<T> {
        var retriesLeft = retries
        var error = error
        while true {
            if let o: Outcome<T> = settle(error, retriesLeft: &retriesLeft) { return o }
            do { return .value(try attempt()) } catch let next { error = next }
        }
    }

    /// An async closure's call under the policy, for one item or a batch of `items` ([a batch call counts in items]):
    /// `attempt` is called again while retries are left.
    @inline(__always)
    @inlinable func callAsync<T>(items: Int = 1, _ attempt: () async throws -> T) async -> Outcome<T> {
        var retriesLeft = retries
        while true {
            do { return .value(try await attempt()) } catch {
                if let o: Outcome<T> = settle(error, retriesLeft: &retriesLeft, items: items) { return o }
            }
        }
    }

    /// A batch layer's closure for one batch under the policy ([a batch call counts in items]), as a BatchOutcome: the
    /// results, or the batch's items counted skipped or failed. A closure that returns another number of results than
    /// items fails the run (BatchResultCountError) with the batch counted failed.
    @inlinable func callBatch<Input, Output>(
        _ items: [Input], _ body: ([Input]) async throws -> [Output]
    ) async -> BatchOutcome<Output> {
        switch await callAsync(items: items.count, { try await body(items) }) {
        case .value(let outputs) where outputs.count == items.count:
            return BatchOutcome(outputs: outputs)
        case .value(let outputs):
            let error = BatchResultCountError(layer: name, items: items.count, results: outputs.count)
            return BatchOutcome(outputs: [], failed: items.count, failure: error)
        case .skipped:
            return BatchOutcome(settled: items.count, skipped: true)
        case .failed:
            return BatchOutcome(settled: items.count, skipped: false)
        }
    }
}

/// A batch layer's closure returned another number of results than it was given items.
public struct BatchResultCountError: Error, CustomStringConvertible, Sendable {
    public let layer: String
    public let items: Int
    public let results: Int

    @usableFromInline init(layer: String, items: Int, results: Int) {
        self.layer = layer
        self.items = items
        self.results = results
    }

    public var description: String {
        "layer \"\(layer)\": the batch closure returned \(results) results for \(items) items (must be one per item)"
    }
}
