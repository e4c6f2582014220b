/// One stage of a pipeline: a source, a CPU-bound layer on C worker threads, an async layer of Swift
/// tasks, or a serial async layer such as the collector.
///
/// `Input` is what the layer receives (`Never` for a source); `Output` is what it passes on (`Void`
/// for the last layer). Layers are values: describing one does nothing until ``pipeline(_:_:options:)``
/// runs it. Bad parameters (`workers: 0`, `capacity: 0`, ...) are reported by `pipeline` as a
/// ``FlowConfigurationError`` before any item is pulled.
public struct Layer<Input: Sendable, Output: Sendable>: Sendable {
    @usableFromInline let kind: LayerKind
    @usableFromInline let name: String?
    @usableFromInline let ordered: Bool
    @usableFromInline let capacity: Int?
    @usableFromInline let onError: ErrorPolicy
    /// Builds the stage that runs this layer, between its input link (nil for a source) and its output
    /// link (nil when `Output` is `Void` and the layer is last). Everything on the per-item path is
    /// @inlinable so that it is specialised for the user's item types in the user's module.
    @usableFromInline let makeStage: @Sendable (StageContext<Input, Output>) -> StageHandle
    /// A parameter of the layer's own that it cannot run with (one the engine does not know, such as a
    /// distributed layer's lease), and what is wrong with it: thrown by `pipeline` with the others.
    @usableFromInline var invalid: (parameter: String, message: String)? = nil
    /// The layer's stage in a named run, over items with their source positions (Durable/); nil when the
    /// layer cannot be part of one (a source that cannot resume, a distributed layer).
    @usableFromInline var positionedStage: PositionedForm.StageMaker? = nil
    /// Set by a committing collector only: its run and store, which make the pipeline a named run.
    @usableFromInline var commits: RunAccess? = nil

    @usableFromInline
    init(
        kind: LayerKind, name: String?, ordered: Bool, capacity: Int?, onError: ErrorPolicy,
        makeStage: @escaping @Sendable (StageContext<Input, Output>) -> StageHandle
    ) {
        self.kind = kind
        self.name = name
        self.ordered = ordered
        self.capacity = capacity
        self.onError = onError
        self.makeStage = makeStage
    }
}

extension Layer where Input == Never {
    /// A source layer over any `Sequence`: its elements enter the pipeline in order, in batches. Its
    /// iterator is used by one thread at a time, not always the same one: on the native backend, when
    /// the next layer has one worker per CPU, its workers pull their batches from it themselves.
    @inlinable public init<S: Sequence & Sendable>(_ source: S, name: String? = nil) where S.Element == Output {
        self.init(sequence: source, count: knownCount(source), name: name)
    }

    /// A single Sequence source expecting `count` items (nil: unknown); every Sequence source's stage.
    @inlinable init<S: Sequence & Sendable>(sequence source: S, count: Int?, name: String?) where S.Element == Output {
        self.init(
            kind: .source(generators: 1, count: count), name: name, ordered: false, capacity: nil, onError: .fail,
            makeStage: { StageHandle(SequenceSourceStage(source: source, context: $0)) })
    }

    /// A source layer over any `AsyncSequence`. An error it throws fails the pipeline and is rethrown.
    @inlinable public init<S: AsyncSequence & Sendable>(_ source: S, name: String? = nil) where S.Element == Output {
        self.init(
            kind: .source(generators: 1, count: nil), name: name, ordered: false, capacity: nil, onError: .fail,
            makeStage: { StageHandle(AsyncSourceStage(source: source, context: $0)) })
    }

    /// A source that merges two or more `Sequence`s of one type (a few generators): each is pulled by a
    /// task of its own, in batches, and they take turns (each yields after every batch), so none starves
    /// another. The source ends when all of them have ended. The report's source row counts every item;
    /// progress and metrics also count each generator's.
    @inlinable public init<S: Sequence & Sendable>(merging first: S, _ second: S, _ rest: S..., name: String? = nil)
    where S.Element == Output {
        let all = [first, second] + rest
        self.init(merging: all, count: sumOfKnownCounts(all.map { knownCount($0) }), awaitsPerItem: false, name: name) {
            await pullSequence($0, $1, generator: $2)
        }
    }

    /// `Layer(merging:)` over `Sequence`s of different types with the same element type. Each is pulled
    /// through its existential (an unspecialised call per element); generators of one type take the
    /// overload above, which is specialised for it.
    @_disfavoredOverload
    @inlinable public init(
        merging first: any Sequence<Output> & Sendable, _ second: any Sequence<Output> & Sendable,
        _ rest: any Sequence<Output> & Sendable..., name: String? = nil
    ) {
        let all = [first, second] + rest
        self.init(merging: all, count: sumOfKnownCounts(all.map { knownCount($0) }), awaitsPerItem: false, name: name) {
            await pullSequence($0, $1, generator: $2)
        }
    }

    /// A source that merges two or more `AsyncSequence`s of one type, each pulled by a task of its own as
    /// it produces (an element is pushed on before the next is awaited). The source ends when all of them
    /// have ended; an error from any one fails the run (as a single source's would).
    @inlinable public init<S: AsyncSequence & Sendable>(
        merging first: S, _ second: S, _ rest: S..., name: String? = nil
    ) where S.Element == Output {
        self.init(merging: [first, second] + rest, count: nil, awaitsPerItem: true, name: name) {
            source, context, index in await pullAsync(source, context, generator: index)
        }
    }

    /// `Layer(merging:)` over `AsyncSequence`s of different types with the same element type, any of
    /// which may throw.
    @_disfavoredOverload
    @inlinable public init(
        merging first: any AsyncSequence<Output, any Error> & Sendable,
        _ second: any AsyncSequence<Output, any Error> & Sendable,
        _ rest: any AsyncSequence<Output, any Error> & Sendable..., name: String? = nil
    ) {
        self.init(merging: [first, second] + rest, count: nil, awaitsPerItem: true, name: name) {
            (source: any AsyncSequence<Output, any Error> & Sendable, context, index) in
            await pullAsync(source, context, generator: index)
        }
    }

    /// `Layer(merging:)` over `AsyncSequence`s of different types with the same element type, none of
    /// which throws (such as `AsyncStream`s mixed with other sequences).
    @_disfavoredOverload
    @inlinable public init(
        merging first: any AsyncSequence<Output, Never> & Sendable,
        _ second: any AsyncSequence<Output, Never> & Sendable,
        _ rest: any AsyncSequence<Output, Never> & Sendable..., name: String? = nil
    ) {
        self.init(merging: [first, second] + rest, count: nil, awaitsPerItem: true, name: name) {
            (source: any AsyncSequence<Output, Never> & Sendable, context, index) in
            await pullAsync(source, context, generator: index)
        }
    }

    /// A merged source over `sources`, each pulled by `pull` (pullSequence or pullAsync over it, given the
    /// source's context and the generator's index).
    @inlinable init<Source: Sendable>(
        merging sources: [Source], count: Int?, awaitsPerItem: Bool, name: String?,
        pull: @escaping @Sendable (Source, StageContext<Never, Output>, Int) async -> Void
    ) {
        let pulls: [MergedSourceStage<Output>.Generator] = sources.map { source in { await pull(source, $0, $1) } }
        self.init(
            kind: .source(generators: pulls.count, count: count), name: name, ordered: false, capacity: nil,
            onError: .fail,
            makeStage: { StageHandle(MergedSourceStage(context: $0, generators: pulls, awaitsPerItem: awaitsPerItem)) })
    }
}

extension Layer {
    /// A CPU-bound layer: `body` is called per item from a plain loop over each batch, at most `workers`
    /// calls at once, on C threads the pipeline owns (pinned as `FLOW_PIN` / the options say), never on
    /// Swift's cooperative pool (the `.swift` backend runs them as `workers` tasks instead).
    ///
    /// Which of those threads makes a given call is not fixed. A closure that keeps state for one thread
    /// (a scratch buffer, a decoder) belongs in ``init(workers:state:name:ordered:capacity:onError:_:)``,
    /// whose state is made on each worker's thread and used only there.
    ///
    /// - Parameters:
    ///   - workers: the layer's worker threads, and the most calls of `body` that run at once; `nil`
    ///     takes `FLOW_WORKERS` (default: the CPUs allowed).
    ///   - name: the layer's name in reports, progress and metrics (default: its index and kind).
    ///   - ordered: pass results on in the order of the input queue (a bounded window holds the rest).
    ///   - capacity: the bounded queue in front of this layer; `nil` picks one from workers and batch size.
    ///     The batches of this layer and the one before it are at most this size, so what is in flight
    ///     stays within the capacities plus one batch per worker on every path.
    ///   - onError: what a throw from `body` does to the item and the run (default: ``ErrorPolicy/fail``).
    ///   - body: the work, called once per item on one of the pool's threads.
    @inlinable public init(
        workers: Int?, name: String? = nil, ordered: Bool = false, capacity: Int? = nil,
        onError: ErrorPolicy = .fail, _ body: @escaping @Sendable (Input) throws -> Output
    ) {
        self.init(
            cpuWorkers: workers, stateless: true, state: { () }, name: name, ordered: ordered, capacity: capacity,
            onError: onError, { (_: inout Void, item: Input) throws -> Output in try body(item) })
    }

    /// A CPU-bound layer with per-worker state: `state` runs once on each worker thread, and that
    /// worker's calls of `body` get it `inout` (scratch buffers, an encoder, a connection). Only that
    /// worker's thread calls `body` with it.
    @inlinable public init<State>(
        workers: Int?, state: @escaping @Sendable () -> State, name: String? = nil, ordered: Bool = false,
        capacity: Int? = nil, onError: ErrorPolicy = .fail,
        _ body: @escaping @Sendable (inout State, Input) throws -> Output
    ) {
        self.init(
            cpuWorkers: workers, stateless: false, state: state, name: name, ordered: ordered, capacity: capacity,
            onError: onError, body)
    }

    /// Both CPU layers: `stateless` when `body` keeps no per-worker state (LayerKind.cpu).
    @inlinable init<State>(
        cpuWorkers workers: Int?, stateless: Bool, state: @escaping @Sendable () -> State, name: String?,
        ordered: Bool, capacity: Int?, onError: ErrorPolicy,
        _ body: @escaping @Sendable (inout State, Input) throws -> Output
    ) {
        self.init(
            kind: .cpu(workers: workers, stateless: stateless), name: name, ordered: ordered, capacity: capacity,
            onError: onError,
            makeStage: {
                StageHandle(
                    CPUStage(
                        context: $0, stateless: stateless, makeState: state,
                        applyBatch: { loop, state, count, items in
                            loop.apply(count, from: items) { try body(&state, $0) }
                        }
                    ))
            })
        positionedStage = { plan, _ in
            StageHandle(
                CPUStage(
                    context: StageContext<Positioned<Input>, Positioned<Output>>(plan), stateless: stateless,
                    makeState: state,
                    applyBatch: { loop, state, count, items in
                        loop.apply(count, from: items) { item in try item.map { try body(&state, $0) } }
                    }
                ))
        }
    }

    /// An async layer (I/O: API calls, database writes): Swift tasks, at most `concurrency` items in
    /// flight. Waiting for items never blocks a thread.
    @inlinable public init(
        concurrency: Int, name: String? = nil, ordered: Bool = false, capacity: Int? = nil,
        onError: ErrorPolicy = .fail, _ body: @escaping @Sendable (Input) async throws -> Output
    ) {
        self.init(
            kind: .async(concurrency: concurrency), name: name, ordered: ordered, capacity: capacity,
            onError: onError, makeStage: { StageHandle(AsyncStage(context: $0, concurrency: concurrency, body: body)) })
        positionedStage = Self.positionedAsync(concurrency: concurrency, body)
    }

    /// A layer called with batches of items that returns their results, one per item in the same order:
    /// a bulk API call, a query for many keys, a model run on a batch. Up to `concurrency` batches are in
    /// flight; items never wait for a batch to fill once `within` has passed.
    ///
    /// - Parameters:
    ///   - size: the most items a batch holds; full batches are handed over at once.
    ///   - within: when set, a partial batch is handed over once its first item has waited this long.
    ///   - concurrency: batches in flight at once (calls of `body` running concurrently).
    ///   - ordered: pass results on in input order (batches are numbered as they are formed).
    ///   - name: the layer's name in reports, progress and metrics.
    ///   - capacity: the bounded queue in front of this layer.
    ///   - onError: applies to a whole batch, as for a batch collector: counts are items.
    ///   - body: called with each batch; must return exactly one result per item, in the same order
    ///     (otherwise the run fails with a ``BatchResultCountError``).
    @inlinable public init(
        batchesOf size: Int, within: Duration? = nil, concurrency: Int = 1, ordered: Bool = false,
        name: String? = nil, capacity: Int? = nil, onError: ErrorPolicy = .fail,
        _ body: @escaping @Sendable ([Input]) async throws -> [Output]
    ) {
        self.init(
            batchesOf: size, within: within, concurrency: concurrency, ordered: ordered, name: name,
            capacity: capacity, onError: onError,
            handledElsewhere: { items, call in
                await call.layer.callBatch(items, body)
            }, resultsForAll: true)
    }

    /// A batch layer whose items are handled elsewhere under the layer's error policy (AsyncFlowPostgres):
    /// `body` reports what became of each batch's items ([every gathered item accounted for]); `ended` is awaited once
    /// after the last call ([the end hook runs after every call]). `resultsForAll`: an outcome has a result for every
    /// item of its batch or for none, so in a named run each result takes its item's position; otherwise the layer
    /// cannot be part of one.
    @inlinable package init(
        batchesOf size: Int, within: Duration?, concurrency: Int, ordered: Bool, name: String?, capacity: Int?,
        onError: ErrorPolicy,
        handledElsewhere body: @escaping @Sendable ([Input], BatchCall) async -> BatchOutcome<Output>,
        ended: (@Sendable () async -> Void)? = nil, invalid: (parameter: String, message: String)? = nil,
        resultsForAll: Bool = false
    ) {
        self.init(
            kind: .batchMap(size: size, within: within, concurrency: concurrency), name: name, ordered: ordered,
            capacity: capacity, onError: onError,
            makeStage: {
                StageHandle(
                    BatchMapStage(
                        context: $0, size: size, within: within, concurrency: concurrency, body: body, ended: ended))
            })
        self.invalid = invalid
        guard resultsForAll else { return }
        positionedStage = { plan, _ in
            StageHandle(
                BatchMapStage(
                    context: StageContext<Positioned<Input>, Positioned<Output>>(plan), size: size, within: within,
                    concurrency: concurrency,
                    body: { items, call in
                        // a result for every item, in order, or none: the rest are counted by the outcome
                        // ([every gathered item accounted for])
                        let outcome = await body(items.map(\.value), call.with(positions: items.map(\.position)))
                        let all = outcome.outputs.count == items.count
                        return outcome.with(
                            outputs: all ? zip(items, outcome.outputs).map { Positioned($0.position, $1) } : [])
                    }, ended: ended))
        }
    }

    /// A serial layer with a synchronous closure: `body` is called for one item at a time, in the order
    /// items reach it, in a plain loop over each batch (no async call per item). With `Output == Void`
    /// this is the collector. Keep `body` short. It runs on Swift's cooperative pool, except on the
    /// native backend in a pipeline with a CPU layer: there it runs on that layer's threads, and when it
    /// is the last layer, after a CPU layer with one worker per CPU, the worker that made a batch
    /// calls it with that batch directly, outside any task (task-local values are not set there).
    @inlinable public init(
        name: String? = nil, capacity: Int? = nil, onError: ErrorPolicy = .fail,
        _ body: @escaping @Sendable (Input) throws -> Output
    ) {
        self.init(
            kind: .serial, name: name, ordered: false, capacity: capacity, onError: onError,
            makeStage: {
                StageHandle(
                    SerialStage(context: $0, applyBatch: { loop, count, items in loop.apply(count, from: items, body) })
                )
            })
        positionedStage = { plan, _ in
            StageHandle(
                SerialStage(
                    context: StageContext<Positioned<Input>, Positioned<Output>>(plan),
                    applyBatch: { loop, count, items in loop.apply(count, from: items) { try $0.map(body) } }))
        }
    }

    /// A serial async layer: one task calls `body` for each item in order. With `Output == Void` this
    /// is the collector that ends a pipeline.
    @inlinable public init(
        name: String? = nil, capacity: Int? = nil, onError: ErrorPolicy = .fail,
        _ body: @escaping @Sendable (Input) async throws -> Output
    ) {
        self.init(
            kind: .serial, name: name, ordered: false, capacity: capacity, onError: onError,
            makeStage: { StageHandle(AsyncStage(context: $0, concurrency: 1, body: body)) })
        positionedStage = Self.positionedAsync(concurrency: 1, body)
    }

    /// An async layer's stage in a named run: `body` called with each item's value, its position kept.
    @inlinable static func positionedAsync(
        concurrency: Int, _ body: @escaping @Sendable (Input) async throws -> Output
    ) -> PositionedForm.StageMaker {
        { plan, _ in
            StageHandle(
                AsyncStage(
                    context: StageContext<Positioned<Input>, Positioned<Output>>(plan), concurrency: concurrency,
                    body: { item in Positioned(item.position, try await body(item.value)) }))
        }
    }
}

extension Layer where Output == Void {
    /// A batch collector: one task calls `body` with up to `size` items at a time (a transaction, a bulk
    /// insert), serially, batches in arrival order. It ends a pipeline (it must be the last layer).
    ///
    /// - Parameters:
    ///   - size: the most items a batch holds; full batches are handed over at once.
    ///   - within: when set, a partial batch is handed over once its first item has waited this long
    ///     (from when the collector took it off its queue), so a slow source still commits promptly. The
    ///     last partial batch is handed over at the end either way.
    ///   - name: the layer's name in reports, progress and metrics.
    ///   - capacity: the bounded queue in front of this layer.
    ///   - onError: applies to a whole batch: `.skip` counts all its items skipped (its error kept),
    ///     `.retry(attempts:)` calls `body` again with the same batch, `.fail` counts them failed and
    ///     stops the run. Counts in the report are items, never batches.
    ///   - body: called once per batch with the batch's items in input order.
    @inlinable public init(
        batchesOf size: Int, within: Duration? = nil, name: String? = nil, capacity: Int? = nil,
        onError: ErrorPolicy = .fail, _ body: @escaping @Sendable ([Input]) async throws -> Void
    ) {
        self.init(
            kind: .batches(size: size, within: within), name: name, ordered: false, capacity: capacity,
            onError: onError,
            makeStage: { StageHandle(BatchCollectStage(context: $0, size: size, within: within, body: body)) })
    }
}

/// A source's item count when it is cheap and safe to know up front: a RandomAccessCollection's `count`
/// (an Array, a Range), or a plain Sequence's `underestimatedCount` when it gives one (a generator that
/// knows its length); nil otherwise: counting another Collection might mean walking it, and a range's
/// `count` traps when it does not fit in an Int (`Int.min...Int.max`), so ranges other than those of
/// Int are not counted and those of Int are counted with overflow checks.
@usableFromInline func knownCount<S: Sequence>(_ source: S) -> Int? {
    if let r = source as? Range<Int> {
        let (n, overflow) = r.upperBound.subtractingReportingOverflow(r.lowerBound)
        return overflow ? nil : n
    }
    if let r = source as? ClosedRange<Int> {
        let (d, overflow) = r.upperBound.subtractingReportingOverflow(r.lowerBound)
        return overflow || d == Int.max ? nil : d + 1
    }
    if source is any RangeExpression { return nil }
    if let collection = source as? any RandomAccessCollection { return collection.count }
    if source is any Collection { return nil }
    let n = source.underestimatedCount
    return n > 0 ? n : nil
}

/// The sum of the generators' known counts, or nil when any is unknown (or the sum would overflow).
@usableFromInline func sumOfKnownCounts(_ counts: [Int?]) -> Int? {
    var total = 0
    for count in counts {
        guard let count else { return nil }
        let (sum, overflow) = total.addingReportingOverflow(count)
        if overflow { return nil }
        total = sum
    }
    return total
}
