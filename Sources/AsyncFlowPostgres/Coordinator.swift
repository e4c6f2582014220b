// Coordinator.swift — the distributed layer in the coordinator's pipeline: a batch layer (AsyncFlow's
// BatchMapStage) whose batches are chunks written to PostgreSQL, done by workers, and read back. Its slots
// are a state machine (CoordinatorSlots); the statements are Statements'.
//
// Invariants:
//  [outstanding chunks bounded] At most `concurrency` chunks per run are outstanding
//    ([batches gathered in input order]): memory and table size stay flat however long the source is.
//  [the poller takes results and buries the dead] The poller (one while slots are open: CoordinatorSlots) takes
//    results and buries dead chunks, woken by a NOTIFY from a worker's completion or by a backstop timer with jitter.
//  [a stop closes the slots] A stop (failure elsewhere, cancellation) closes the open slots empty
//    (BatchCall.whileRunning); each chunk call then returns at once, and [a run leaves no rows] deletes what the run
//    left in the tables.
//  [the coordinator retries connection errors] Connection errors (a database restart; isTransient) are retried with
//    backoff until the run stops: writing a chunk twice is refused by its key and taken as written; a result is deleted
//    only after it was handed over, and dead letters are read again after an error ([each result handed over once]), so
//    an answer lost with a connection loses nothing. Any other error (a permission, a full disk) fails the chunks
//    concerned, and so the run, with DistributedLayerError(.database).
//  [a lost chunk is written again] A write's answer can come before its commit, and a connection lost in between undoes
//    it (a server restart: the chunk is nowhere and its call would wait for ever). So once a second the poller asks
//    which chunks whose writes were answered are in none of chunks, results, dead_letters
//    ([undone writes written again]), and those calls write their chunk again (same key: a second copy is refused,
//    [completions fenced by attempt] fences results).
//  [a run leaves no rows] Once the layer's last call has ended ([the end hook runs after every call]), whatever of the
//    run is left in chunks and results is deleted, so no run leaves rows behind: a stopped run's chunks
//    ([a stop closes the slots]), and a chunk that a server crash brought back by undoing its completion after its
//    result was handed over ([commits need not be durable]), to be done again for nothing. A worker still on one is
//    fenced ([completions fenced by attempt]).
//  [a named run's layer has one coordinator run] In a named run, before its first chunk, a coordinator records its run
//    as the one that serves its layer of the named run, in one transaction with
//    [a taking-over coordinator keeps what was done]. A coordinator run that is no longer the recorded one writes
//    no chunk ([a taken-over coordinator writes nothing]), so two coordinators never serve one named run's layer at
//    once; the run's store keeps the commits of a second process out ([a checkpoint replaces only its predecessor]).
//  [a taking-over coordinator keeps what was done] In that transaction the chunks and results the coordinator run
//    before it left (one that died) become this run's, under their seqs, with their items' source positions
//    ([a named run's chunks keep their positions]); this run's own chunks take seqs after them. A call whose items
//    are at taken-over positions takes their results from those chunks, waiting as for its own
//    ([a taken-over chunk's items are found by position]); what workers finished while no coordinator was alive is
//    not done again. Taken-over chunks still waiting are claimed afresh (a worker still on one is fenced out:
//    [completions fenced by attempt]); items of one that died, failed or was lost are sent again in a new chunk.
//  [chunks nobody claims are said] While chunks wait, if no result has come for the queue's unclaimedNotice (10 s) and
//    none of the run's chunks is claimed, the poller logs that no worker has claimed a chunk (the layer, its build
//    and the database, so a missing or stale worker is found), and again every unclaimedNotice while it lasts; the
//    progress snapshot and the metric `<label>_unclaimed_seconds` show how long, until a result comes.
//  [a taken-over coordinator writes nothing] A named run's chunk is written only while its coordinator run is the
//    recorded one (the write reads the record under a share lock, which the take-over's update waits for); a
//    refused write fails the run with DistributedLayerError(.database): another coordinator has the run.
#if Postgres  // the package trait that brings postgres-nio (Package.swift)
    import AsyncFlow
    import Logging
    import PostgresNIO
    import Synchronization

    /// What the poller found for one chunk.
    enum ChunkResult: Sendable {
        /// The database refused a statement for another reason than a lost connection
        /// ([the coordinator retries connection errors]): the run's error kind and its message.
        case broken(DistributedLayerError.Kind, String)
        case done(
            payload: ByteBuffer, emitted: Int, skipped: Int, failed: Int, retried: Int, error: String,
            skipError: String, worker: String)
        case dead(attempts: Int)
        /// The chunk is nowhere (not waiting, done or dead) although its write was answered: the answer came before the
        /// commit, which a connection lost in between undid ([a lost chunk is written again]).
        case lost
    }

    /// One run's side of the protocol, shared by the chunk calls of a distributed layer.
    final class Coordinator<Input: Codable & Sendable, Output: Codable & Sendable>: Sendable {
        let layer: DistributedLayer<Input, Output>
        let queue: PostgresWorkQueue
        let maxAttempts: Int
        let lease: Duration
        let policy: ErrorPolicy
        /// This coordinator's run id: chunks' keys are (run, seq).
        let run = Int64.random(in: 1...Int64.max)
        let nextSeq = Atomic<Int64>(0)
        let slots = Locked(CoordinatorSlots<CheckedContinuation<ChunkResult?, Never>>())
        /// [a named run's layer has one coordinator run]: done once, before the first chunk.
        let adopted = Once()
        /// The layer is part of a named run (set by the take-over, before the first chunk).
        let named = Atomic<Bool>(false)
        /// [a taking-over coordinator keeps what was done]: the chunks taken over, each with the task that waits for
        /// its results (nil when it did not finish cleanly: its items are sent again).
        let takenOver = Locked(TakenOverChunks<Task<[Output]?, Never>>())
        /// The latest chunk call, through which the poller says that chunks wait unclaimed
        /// ([chunks nobody claims are said]).
        let latestCall = Locked<BatchCall?>(nil)
        let wakeup = Wakeup()

        /// maxAttempts and lease are in range: the layer's initialiser refuses the run before it starts otherwise.
        init(
            layer: DistributedLayer<Input, Output>, queue: PostgresWorkQueue, maxAttempts: Int, lease: Duration,
            policy: ErrorPolicy
        ) {
            self.layer = layer
            self.queue = queue
            self.maxAttempts = maxAttempts
            self.lease = lease
            self.policy = policy
        }

        /// The run's error for `call` (in chunk `seq`, when one is concerned).
        func fault(_ kind: DistributedLayerError.Kind, _ call: BatchCall, _ seq: Int64?, _ message: String)
            -> DistributedLayerError
        {
            DistributedLayerError(
                kind: kind, layer: call.layerName, run: seq == nil ? nil : run, chunk: seq, message: message)
        }

        /// A chunk call: in a named run, take the run over first and use what was taken over; then send the items
        /// as one chunk, wait for its result, and say what became of them.
        func handle(_ items: [Input], _ call: BatchCall) async -> BatchOutcome<Output> {
            latestCall.withLock { $0 = call }
            if let name = call.runName {  // [a named run's layer has one coordinator run]
                let adopting = await retrying(call) { try await self.adopted.run { try await self.takeOver(name) } }
                if case .failure(let error) = adopting {
                    return BatchOutcome(
                        outputs: [], failed: items.count,
                        failure: fault(.init(database: error), call, nil, "taking named run \"\(name)\" over: \(error)")
                    )
                }
                if let positions = call.positions {
                    let taken = takenOver.withLock { $0.take(positions) }
                    if !taken.isEmpty { return await handle(items, at: positions, taken: taken, call) }
                }
            }
            return await send(items, at: call.positions, call)
        }

        /// [a named run's layer has one coordinator run], [a taking-over coordinator keeps what was done]: record this
        /// coordinator run as the named run's, move what the one before it left to it, and wait for those chunks'
        /// results (slots opened as for a chunk written here, so the poller fills them and checks they exist).
        func takeOver(_ name: String) async throws {
            let kept = try await queue.takeOver(name: name, layer: layer.name, run: run)
            named.store(true, ordering: .relaxed)
            // this run's seqs go on after the kept chunks' (they keep the seqs they had)
            nextSeq.store(kept.map(\.seq).max() ?? 0, ordering: .relaxed)
            let chunks = kept.compactMap { chunk in PositionRanges.decode(chunk.ranges).map { (chunk.seq, $0) } }
            for (seq, _) in chunks {
                open(seq)
                slots.withLock { $0.written(seq) }
            }
            let taken = TakenOverChunks(chunks) { seq, count in
                Task { self.outputs(of: await self.wait(seq), count: count) }
            }
            takenOver.withLock { $0 = taken }
            if !chunks.isEmpty {
                let items = chunks.reduce(0) { $0 + $1.1.count }
                queue.logger.notice(
                    "distributed layer \(layer.name): took named run \"\(name)\" over with \(chunks.count) chunks of \(items) items that the coordinator before it had sent"
                )
            }
        }

        /// A taken-over chunk's results, when every one of its `count` items has one.
        func outputs(of result: ChunkResult?, count: Int) -> [Output]? {
            guard case .done(let payload, let emitted, _, _, _, let error, _, _)? = result, emitted == count,
                error.isEmpty, let outputs = try? ChunkCodec.decode(payload, as: Output.self), outputs.count == count
            else { return nil }
            return outputs
        }

        /// A call some of whose items (`taken`) belong to taken-over chunks: their results come from those chunks
        /// ([a taken-over chunk's items are found by position]); the others, and those of a taken-over chunk that did
        /// not finish cleanly (it died, failed or was lost), are sent as one chunk.
        func handle(
            _ items: [Input], at positions: [UInt64], taken: [TakenOverChunks<Task<[Output]?, Never>>.Taken],
            _ call: BatchCall
        ) async -> BatchOutcome<Output> {
            // each chunk's results, or nil when it did not finish cleanly
            var results: [Int64: [Output]?] = [:]
            for t in taken where !results.keys.contains(t.seq) {
                // a stop ends the wait: the chunk's slot is filled empty, and every call waiting on it goes on
                let stop = { @Sendable in self.fill(t.seq, nil) }
                results[t.seq] = .some(await call.whileRunning(onStop: stop) { await t.pending.value })
            }
            var outputs: [Output?] = Array(repeating: nil, count: items.count)
            var done = Array(repeating: false, count: items.count)
            for t in taken {
                guard case .some(let chunk?) = results[t.seq] else { continue }
                outputs[t.item] = chunk[t.index]
                done[t.item] = true
            }
            let rest = items.indices.filter { !done[$0] }
            guard !rest.isEmpty else { return BatchOutcome(outputs: outputs.map { $0! }) }
            var outcome = await send(rest.map { items[$0] }, at: rest.map { positions[$0] }, call)
            guard outcome.outputs.count == rest.count else { return outcome }  // none: the outcome counts them
            for (k, i) in rest.enumerated() { outputs[i] = outcome.outputs[k] }
            outcome.outputs = outputs.map { $0! }
            return outcome
        }

        /// Write `items` (in a named run, at `positions`) as one chunk, wait for its result, and say what became
        /// of them.
        func send(_ items: [Input], at positions: [UInt64]?, _ call: BatchCall) async -> BatchOutcome<Output> {
            let payload: ByteBuffer
            do { payload = try ChunkCodec.encode(items) } catch {
                return BatchOutcome(
                    outputs: [], failed: items.count,
                    failure: fault(.parameter, call, nil, "encoding a chunk: \(error)"))
            }
            let named = call.runName.map { ($0, PositionRanges.encode(positions ?? [])) }
            let seq = nextSeq.add(1, ordering: .relaxed).newValue
            switch await submit(payload, count: items.count, seq: seq, named: named, call) {
            case .stopped: return BatchOutcome(outputs: [])  // [a stop closes the slots]
            case .refused(let kind, let message):
                return BatchOutcome(outputs: [], failed: items.count, failure: fault(kind, call, seq, message))
            case .answered(let result): return outcome(of: result, count: items.count, seq: seq, call)
            }
        }

        /// How a chunk call's wait ended.
        enum Submission {
            case answered(ChunkResult)
            /// The run stopped first.
            case stopped
            /// The database refused the chunk's write ([the coordinator retries connection errors]): the run's error
            /// kind and its message.
            case refused(DistributedLayerError.Kind, String)
        }

        /// Write chunk `seq` (in a named run, `named`: the run's name and the chunk's position ranges) and wait for its
        /// result, writing it again while it is lost ([a slot before its row], [a lost chunk is written again]).
        func submit(
            _ payload: ByteBuffer, count: Int, seq: Int64, named: (name: String, ranges: [Int64])?, _ call: BatchCall
        ) async -> Submission {
            while true {
                open(seq)  // [a slot before its row]
                let written = await retrying(call, duplicateIsDone: true) {
                    let statement = self.queue.sql.submit(
                        run: self.run, seq: seq, layer: self.layer.name, build: self.layer.build,
                        policy: self.policy.wire, items: Int32(count), payload: payload,
                        maxAttempts: Int32(self.maxAttempts), lease: self.lease.seconds, named: named)
                    guard let named else { return try await self.queue.run(statement) }
                    // [a taken-over coordinator writes nothing]
                    let added: [Int64] = try await self.queue.rows(statement, as: Int64.self)
                    if added.first == 0 {
                        throw PostgresWorkQueueError(
                            "another coordinator has taken layer \"\(self.layer.name)\" of named run \"\(named.name)\" "
                                + "over; one coordinator may serve it at a time")
                    }
                }
                if case .failure(let error) = written {  // not a connection error
                    fill(seq, nil)
                    _ = await wait(seq)
                    return .refused(.init(database: error), "writing the chunk: \(error)")
                }
                slots.withLock { $0.written(seq) }  // [a lost chunk is written again]
                switch await call.whileRunning(onStop: { self.fill(seq, nil) }, { await self.wait(seq) }) {
                case nil: return .stopped
                case .lost?: continue
                case let result?: return .answered(result)
                }
            }
        }

        /// What became of a chunk's `count` items, from its result.
        func outcome(of result: ChunkResult, count: Int, seq: Int64, _ call: BatchCall) -> BatchOutcome<Output> {
            func failure(_ kind: DistributedLayerError.Kind, _ message: String) -> BatchOutcome<Output> {
                BatchOutcome(outputs: [], failed: count, failure: fault(kind, call, seq, message))
            }
            switch result {
            case .lost:  // not reached: submit writes a lost chunk again
                return failure(.database, "chunk lost")
            case .broken(let kind, let message):
                return failure(kind, message)
            case .dead(let attempts):
                let dead = failure(
                    .deadLetter, "its workers died \(attempts) times (dead letter, \(count) items failed)")
                return policy == .skip ? BatchOutcome(outputs: [], failed: count) : dead
            case .done(
                let payload, let emitted, let skipped, let failed, let retried, let error, let skipError, let worker):
                let outputs: [Output]
                do { outputs = try ChunkCodec.decode(payload, as: Output.self) } catch {
                    return failure(.remote, "reading the chunk's results: \(error)")
                }
                guard outputs.count == emitted, emitted + skipped + failed <= count else {
                    let counts = "\(outputs.count) results, \(emitted) emitted, \(skipped) skipped, \(failed) failed"
                    return failure(.remote, "\(counts) do not fit a chunk of \(count) items")
                }
                return BatchOutcome(
                    outputs: outputs, skipped: skipped,
                    skippedErrors: skipError.isEmpty ? [] : [RemoteError(description: skipError)],
                    failed: failed, failure: error.isEmpty ? nil : fault(.remote, call, seq, error),
                    retried: retried, worker: worker)
            }
        }

        /// [a run leaves no rows]: the layer's last call has ended: let go of the taken-over chunks no call asked for
        /// (their positions were committed before the take-over), so the poller ends, and delete what is left of the
        /// run, in a task of its own (a cancelled run's task would cancel the statements too). A queue that never
        /// reached its database wrote nothing.
        func ended() async {
            for seq in takenOver.withLock({ $0.seqs }) { fill(seq, nil) }
            guard queue.reached.load(ordering: .acquiring) else { return }
            await Task {
                _ = await self.retrying(nil, attempts: 3) {
                    for statement in self.queue.sql.forget(run: self.run) { try await self.queue.run(statement) }
                }
            }.value
        }

        /// Run `action` until it succeeds, backing off after connection errors
        /// ([the coordinator retries connection errors]): `.success(true)` when done, `.success(false)` if the run
        /// stopped first (or `attempts` ran out), the error when it is not a connection error (it would fail again).
        /// With `duplicateIsDone`, a unique violation (a write that had succeeded before the connection dropped) counts
        /// as done.
        @discardableResult
        func retrying(
            _ call: BatchCall?, attempts: Int = .max, duplicateIsDone: Bool = false,
            _ action: @escaping @Sendable () async throws -> Void
        ) async -> Result<Bool, any Error> {
            var delay = Duration.milliseconds(10)
            for attempt in 1... {
                if call?.stopped == true { return .success(false) }
                do {
                    try await action()
                    return .success(true)
                } catch let error as PSQLError where duplicateIsDone && error.serverInfo?[.sqlState] == "23505" {
                    return .success(true)
                } catch {
                    guard isTransient(error) else { return .failure(error) }
                    if attempt >= attempts { return .success(false) }
                    // [an outage is logged, not each failure]
                    queue.logger.debug(
                        "distributed layer \(layer.name): \(String(reflecting: error)); retrying in \(delay)")
                    try? await Task.sleep(for: delay)
                    delay = min(delay * 2, .seconds(1))
                }
            }
            return .success(false)
        }

        // MARK: slots (CoordinatorSlots: the machine says what to do; this does it, outside the lock)

        func open(_ seq: Int64) {
            if slots.withLock({ $0.open(seq) }) == .startPoller { Task { await self.poll() } }
        }

        /// Fill a slot (once: a later fill of the same slot is ignored) and wake its waiter.
        func fill(_ seq: Int64, _ result: ChunkResult?) {
            if case .resume(let waiter, let result) = slots.withLock({ $0.fill(seq, result) }) {
                waiter.resume(returning: result)
            }
        }

        func wait(_ seq: Int64) async -> ChunkResult? {
            await withCheckedContinuation { c in
                if case .resume(let result) = slots.withLock({ $0.wait(seq, c) }) { c.resume(returning: result) }
            }
        }

        /// Fill the slots of the dead chunks that `query` returns (rows: seq, attempts).
        func fillDead(_ query: PostgresQuery) async throws {
            for (seq, attempts) in try await queue.rows(query, as: (Int64, Int32).self) {
                fill(seq, .dead(attempts: Int(attempts)))
            }
        }

        /// [chunks nobody claims are said]: log it when the run has chunks and none is claimed.
        func sayIfUnclaimed(since lastResult: ContinuousClock.Instant) async throws {
            let counts = try await queue.rows(queue.sql.claimed(run: run), as: (Int64, Int64).self)
            let call = latestCall.withLock { $0 }
            guard let (claimed, chunks) = counts.first, claimed == 0, chunks > 0 else {
                call?.unclaimed(for: nil)
                return
            }
            call?.unclaimed(for: ContinuousClock.now - lastResult)
            queue.logger.warning(
                "distributed layer \(layer.name): no worker has claimed a chunk for \((ContinuousClock.now - lastResult).shown) (\(chunks) chunks waiting): is a FlowWorker serving layer \"\(layer.name)\" of build \(layer.build) running against \(queue.description)?"
            )
        }

        /// The poller ([the poller takes results and buries the dead], [one poller while slots are open]): take results,
        /// bury dead chunks, sleep until a NOTIFY or the backstop.
        func poll() async {
            let listener = Task { await self.queue.listen(on: self.queue.sql.doneChannel, self.wakeup) }
            defer { listener.cancel() }
            var lastBurial = ContinuousClock.now
            // [each result handed over once]: after a connection error, a burial's answer may have been lost
            var recheckDead = false
            var lastCheck = ContinuousClock.now
            // [chunks nobody claims are said]: the last result (or the poller's start), and the last time it was said
            var lastResult = ContinuousClock.now
            var lastSaid = ContinuousClock.now
            while true {
                guard slots.withLock({ $0.pollerTurn() }) == .poll else { return }
                do {
                    let rows = try await queue.rows(
                        queue.sql.results(run: run),
                        as: (Int64, ByteBuffer, Int32, Int32, Int32, Int32, String, String, String).self)
                    for (seq, payload, emitted, skipped, failed, retried, error, skipError, worker) in rows {
                        fill(
                            seq,
                            .done(
                                payload: payload, emitted: Int(emitted), skipped: Int(skipped), failed: Int(failed),
                                retried: Int(retried), error: error, skipError: skipError, worker: worker))
                    }
                    if !rows.isEmpty {
                        if lastSaid > lastResult { latestCall.withLock { $0 }?.unclaimed(for: nil) }
                        lastResult = .now
                        let named = self.named.load(ordering: .relaxed)
                        try await queue.run(queue.sql.drop(run: run, seqs: rows.map(\.0), named: named))
                    }
                    if ContinuousClock.now - lastCheck > .seconds(1) {  // [a lost chunk is written again]
                        lastCheck = .now
                        let written = slots.withLock { $0.writtenChunks }
                        if !written.isEmpty {
                            for seq in try await queue.rows(queue.sql.missing(run: run, seqs: written), as: Int64.self)
                            {
                                fill(seq, .lost)
                            }
                        }
                    }
                    if recheckDead {
                        try await fillDead(queue.sql.dead(run: run))
                        recheckDead = false
                    }
                    let notice = queue.unclaimedNotice
                    if ContinuousClock.now - lastResult >= notice && ContinuousClock.now - lastSaid >= notice {
                        lastSaid = .now
                        try await sayIfUnclaimed(since: lastResult)
                    }
                    if ContinuousClock.now - lastBurial > min(lease / 4, .seconds(1)) {
                        lastBurial = .now
                        try await fillDead(queue.sql.bury(run: run))
                    }
                } catch let error where isTransient(error) {
                    recheckDead = true
                    queue.logger.debug(  // [an outage is logged, not each failure]
                        "distributed layer \(layer.name): polling for results: \(String(reflecting: error))")
                } catch {  // [the coordinator retries connection errors]: every open chunk fails with it
                    let open = slots.withLock { $0.openChunks }
                    for seq in open { fill(seq, .broken(.init(database: error), "taking results: \(error)")) }
                }
                // the backstop: 20-30 ms (a NOTIFY wakes it at once)
                await wakeup.wait(for: .milliseconds(20 + Int.random(in: 0...10)))
            }
        }

    }
#endif
