// Layer+Named.swift — the layers that make a named run: sources that can resume, and the collector that
// commits each batch with the run's checkpoint (DurableRun.swift).

extension Layer where Input == Never {
    /// A source layer over a random-access collection (an Array, a Range): as over any `Sequence`,
    /// and in a named run it resumes by index.
    @inlinable public init<C: RandomAccessCollection & Sendable>(_ source: C, name: String? = nil)
    where C.Element == Output, C.SubSequence: Sendable {
        self.init(sequence: source, count: knownCount(source), name: name)
        positionedStage = Self.resumed(CollectionSource(source))
    }

    /// A source that can start at any position, for a named run (``ResumableSource``); in a pipeline
    /// without a name it gives its items from position 0.
    @inlinable public init<R: ResumableSource>(resumable source: R, name: String? = nil)
    where R.Items.Element == Output {
        // items(from: 0) per run, as the named form asks per run: a Layer may run more than once
        self.init(
            kind: .source(generators: 1, count: nil), name: name, ordered: false, capacity: nil, onError: .fail,
            makeStage: { StageHandle(SequenceSourceStage(source: source.items(from: 0), context: $0)) })
        positionedStage = Self.resumed(source)
    }

    /// A source whose items arrive asynchronously that can start at any position, for a named run
    /// (``ResumableAsyncSource``). An error its items throw fails the run.
    @inlinable public init<R: ResumableAsyncSource>(resumable source: R, name: String? = nil)
    where R.Items.Element == Output {
        self.init(
            kind: .source(generators: 1, count: nil), name: name, ordered: false, capacity: nil, onError: .fail,
            makeStage: { StageHandle(AsyncSourceStage(source: source.items(from: 0), context: $0)) })
        positionedStage = Self.resumedAsync { run in source.items(from: run.start.progress.watermark) }
    }

    /// An asynchronous source's stage in a named run: `items(run)` gives the items from the checkpoint's
    /// watermark on, and the positions committed above it are passed over
    /// ([a resumed source gives only pending positions]).
    @inlinable static func resumedAsync<Items: AsyncSequence & Sendable>(
        _ items: @escaping @Sendable (DurableRun) -> Items
    ) -> PositionedForm.StageMaker where Items.Element == Output {
        { plan, run in
            let resumed = ResumedItems(items(run), start: run.start.progress, mark: run.mark)
            return StageHandle(AsyncSourceStage(source: resumed, context: StageContext(plan)))
        }
    }

    /// The source's stage in a named run: from the checkpoint's watermark, passing over the positions
    /// committed above it ([a resumed source gives only pending positions]).
    @inlinable static func resumed<R: ResumableSource>(_ source: R) -> PositionedForm.StageMaker
    where R.Items.Element == Output {
        { plan, run in
            let start = run.start.progress
            let items = ResumedItems(source.items(from: start.watermark), start: start, mark: run.mark)
            return StageHandle(SequenceSourceStage(source: items, context: StageContext(plan)))
        }
    }
}

extension Layer where Output == Void {
    /// A batch collector that makes the pipeline a named run: each batch's rows and the run's checkpoint
    /// are committed in one transaction of `store`, so a run whose process died resumes where its
    /// committed rows end, and every row is written exactly once.
    ///
    /// Started again with the same `run`, the pipeline reads the checkpoint and its source gives only the
    /// items not committed yet; a run that finished does no work (``PipelineReport/run`` says so). The
    /// source must be able to resume (a random-access collection, a ``ResumableSource``), and only one
    /// process may run a named run at a time (a second one's commit fails with ``RunTakenOverError``).
    /// The layers before the collector may call their closures again for items that were in flight when
    /// the process died: rows are exactly once, other side effects at least once.
    ///
    /// - Parameters:
    ///   - store: the database the rows go to, which keeps the run's checkpoint.
    ///   - run: the run's name, its key in the store.
    ///   - size: the most items a batch (one transaction) holds.
    ///   - within: when set, a partial batch is committed once its first item has waited this long.
    ///   - name: the layer's name in reports, progress and metrics.
    ///   - capacity: the bounded queue in front of this layer.
    ///   - onError: applies to a whole batch, as for ``init(batchesOf:within:name:capacity:onError:_:)``; a
    ///     batch skipped is not committed, and its items are done again by no later start once the run
    ///     has finished.
    ///   - body: writes a batch's rows through the store's transaction; the checkpoint is saved in the same
    ///     transaction after it returns.
    @inlinable public init<Store: RunStore>(
        committing store: Store, run: String, batchesOf size: Int, within: Duration? = nil, name: String? = nil,
        capacity: Int? = nil, onError: ErrorPolicy = .fail,
        _ body: @escaping @Sendable ([Input], Store.Transaction) async throws -> Void
    ) {
        self.init(
            store: store, run: run, size: size, within: within, name: name, capacity: capacity, onError: onError
        ) { batch, transaction in try await body(batch.map(\.value), transaction) }
    }

    /// ``init(committing:run:batchesOf:within:name:capacity:onError:_:)`` whose body also gets each item's
    /// source position: the same item has the same position in every attempt of the run, so it can key a
    /// row (positions number the source's items from 0).
    @inlinable public init<Store: RunStore>(
        committingWithPositions store: Store, run: String, batchesOf size: Int, within: Duration? = nil,
        name: String? = nil, capacity: Int? = nil, onError: ErrorPolicy = .fail,
        _ body: @escaping @Sendable ([(position: UInt64, item: Input)], Store.Transaction) async throws -> Void
    ) {
        self.init(
            store: store, run: run, size: size, within: within, name: name, capacity: capacity, onError: onError
        ) { batch, transaction in try await body(batch.map { ($0.position, $0.value) }, transaction) }
    }

    /// Both committing collectors: `rows` writes a batch of positioned items.
    @inlinable init<Store: RunStore>(
        store: Store, run: String, size: Int, within: Duration?, name: String?, capacity: Int?, onError: ErrorPolicy,
        rows: @escaping @Sendable ([Positioned<Input>], Store.Transaction) async throws -> Void
    ) {
        self.init(
            kind: .batches(size: size, within: within), name: name, ordered: false, capacity: capacity,
            onError: onError,
            makeStage: { _ in preconditionFailure("a committing collector runs only in its named run (runNamed)") })
        positionedStage = { plan, durable in
            StageHandle(
                BatchCollectStage(
                    context: StageContext<Positioned<Input>, Void>(plan), size: size, within: within,
                    body: { batch in try await durable.commit(batch, to: store, layer: plan.layer, rows) }))
        }
        commits = RunAccess(
            run: run, load: { try await store.checkpoint(of: run) },
            finish: { durable in try await durable.finish(in: store) })
    }
}
