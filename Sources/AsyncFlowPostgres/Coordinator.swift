// Coordinator.swift — the distributed layer in the coordinator's pipeline: a batch layer (AsyncFlow's
// BatchMapStage) whose batches are chunks written to PostgreSQL, done by workers, and read back.
//
// Invariants:
//  [a slot before its row] A chunk's slot is registered before its row is written, so a result the poller reads always
//    finds its slot; a slot is filled once (a result or a burial read again finds it closed) and read once.
//  [outstanding chunks bounded] At most `concurrency` chunks per run are outstanding
//    ([batches gathered in input order]): memory and table size stay flat however long the source is.
//  [one poller while slots are open] One poller per coordinator runs while slots are open: it takes results and buries
//    dead chunks, woken by a NOTIFY from a worker's completion or by a backstop timer with jitter; it ends when no slot
//    is open (checked under the slots' lock, so a new slot starts a new poller).
//  [a stop closes the slots] A stop (failure elsewhere, cancellation) closes the open slots empty
//    (BatchCall.whileRunning); each chunk call then returns at once, and [a run leaves no rows] deletes what the run
//    left in the tables.
//  [the coordinator retries connection errors] Connection errors (a database restart; isTransient) are retried with
//    backoff until the run stops: writing a chunk twice is refused by its key and taken as written; a result is deleted
//    only after it was handed over, and dead letters are read again after an error ([each result handed over once]), so
//    an answer lost with a connection loses nothing. Any other error (a permission, a full disk) fails the chunks
//    concerned, and so the run, with DistributedLayerError(.database).
//  [undone writes written again] A write's answer can come before its commit, and a connection lost in between undoes
//    it (a server restart: the chunk is nowhere and its call would wait for ever). So once a second the poller
//    asks which chunks whose writes were answered are in none of chunks, results, dead_letters, and those calls write
//    their chunk again (same key: a second copy is refused, [completions fenced by attempt] fences results).
//  [a run leaves no rows] Once the layer's last call has ended ([the end hook runs after every call]), whatever of the
//    run is left in chunks and results is deleted, so no run leaves rows behind: a stopped run's chunks
//    ([a stop closes the slots]), and a chunk that a server crash brought back by undoing its completion after its
//    result was handed over ([commits need not be durable]), to be done again for nothing. A worker still on one is
//    fenced ([completions fenced by attempt]).
#if Postgres  // the package trait that brings postgres-nio (Package.swift)
    import AsyncFlow
    import Foundation
    import Logging
    import PostgresNIO
    import Synchronization

    extension Layer where Input: Codable, Output: Codable {
        /// The distributed layer `layer`, done by ``FlowWorker``s through `queue`: items go in chunks of
        /// `chunk`, at most `concurrency` chunks outstanding (back-pressure reaches the source), results come
        /// back to the next layer, in input order when `ordered`.
        ///
        /// Execution is at least once (a chunk whose worker died is done again), results exactly once (each
        /// chunk's result is recorded once, fenced by its claim). `onError` is applied by the workers per
        /// item; their counts come back into this run's report; `.fail` stops the run with a
        /// ``DistributedLayerError`` carrying the chunk and the remote error's text.
        ///
        /// - Parameters:
        ///   - chunk: items per chunk (one row; one claim; one result).
        ///   - within: a partial chunk is sent once its first item has waited this long.
        ///   - concurrency: chunks outstanding at once (written and not yet taken back): the run's bound on
        ///     the tables' size, and what keeps the workers busy while chunks travel (32 × 1,000 items: about
        ///     twice the 2-worker throughput of 8 on a 2-CPU machine).
        ///   - maxAttempts: claims a chunk may have; when the last claim's lease runs out, the chunk goes to
        ///     the dead letters and its items count failed (`.fail` and `.retry` stop the run then).
        ///   - lease: how long a claim lasts without a heartbeat (workers renew it every third of it).
        public init(
            _ layer: DistributedLayer<Input, Output>, on queue: PostgresWorkQueue, chunk: Int = 1_000,
            within: Duration? = .milliseconds(20), concurrency: Int = 32, ordered: Bool = false, maxAttempts: Int = 3,
            lease: Duration = .seconds(30), name: String? = nil, onError: ErrorPolicy = .fail
        ) {
            let coordinator = Coordinator(
                layer: layer, queue: queue, maxAttempts: maxAttempts, lease: lease, policy: onError)
            self.init(
                batchesOf: chunk, within: within, concurrency: concurrency, ordered: ordered, name: name ?? layer.name,
                capacity: nil, onError: onError,
                handledElsewhere: { items, call in await coordinator.handle(items, call) },
                ended: { await coordinator.ended() })
        }
    }

    /// The distributed layer failed: a worker's closure failed under `.fail` (or ran out of `.retry`
    /// attempts), or a chunk went to the dead letters, or a worker or coordinator of another build met it.
    public struct DistributedLayerError: Error, CustomStringConvertible, Sendable {
        public enum Kind: Sendable, Equatable {
            /// The closure threw on a worker; `message` is the error's text there.
            case remote
            /// The chunk's workers died (their leases ran out) `maxAttempts` times.
            case deadLetter
            /// Chunks of this layer are written for another build than the worker's.
            case otherBuild
            /// A parameter of the layer or the worker is out of range.
            case parameter
            /// The database refused a statement, not for a lost connection (a permission, a full disk).
            case database
        }

        public let kind: Kind
        public let layer: String
        /// The chunk (its run and sequence number), when one is concerned.
        public let run: Int64?
        public let chunk: Int64?
        public let message: String

        public var description: String {
            let place = chunk.map { " chunk \($0) of run \(run.map { String($0, radix: 16) } ?? "?")" } ?? ""
            return "distributed layer \"\(layer)\"\(place): \(message)"
        }
    }

    /// An error a worker kept for a skipped item, as its text.
    public struct RemoteError: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// What the poller found for one chunk.
    enum ChunkResult: Sendable {
        /// The database refused a statement for another reason than a lost connection
        /// ([the coordinator retries connection errors]).
        case broken(String)
        case done(
            payload: ByteBuffer, emitted: Int, skipped: Int, failed: Int, retried: Int, error: String,
            skipError: String,
            worker: String)
        case dead(attempts: Int)
        /// The chunk is nowhere (not waiting, done or dead) although its write was answered: the answer came before the
        /// commit, which a connection lost in between undid ([undone writes written again]). It is written again.
        case lost

        var isLost: Bool { if case .lost = self { true } else { false } }
    }

    /// One run's side of the protocol, shared by the chunk calls of a distributed layer ([a slot before its row],
    /// [outstanding chunks bounded], [one poller while slots are open], [a stop closes the slots],
    /// [the coordinator retries connection errors], [undone writes written again], [a run leaves no rows]).
    final class Coordinator<Input: Codable & Sendable, Output: Codable & Sendable>: Sendable {
        let layer: DistributedLayer<Input, Output>
        let queue: PostgresWorkQueue
        let maxAttempts: Int
        let lease: Duration
        let policy: ErrorPolicy
        /// This coordinator's run id: chunks' keys are (run, seq).
        let run = Int64.random(in: 1...Int64.max)
        let nextSeq = Atomic<Int64>(0)
        let slots = Locked<Slots>(Slots())
        let wakeup = Wakeup()

        struct Slots {
            var open: [Int64: Slot] = [:]
            var polling = false
            /// Chunks whose write was answered and whose slot waits: what the poller checks for
            /// ([undone writes written again]).
            var written: Set<Int64> = []
        }

        enum Slot {
            case waiting(CheckedContinuation<ChunkResult?, Never>?)
            case filled(ChunkResult?)
        }

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

        func handle(_ items: [Input], _ call: BatchCall) async -> BatchOutcome<Output> {
            let name = call.layerName
            func failure(_ kind: DistributedLayerError.Kind, _ seq: Int64?, _ message: String) -> DistributedLayerError
            {
                DistributedLayerError(
                    kind: kind, layer: name, run: seq == nil ? nil : run, chunk: seq, message: message)
            }
            guard maxAttempts >= 1, maxAttempts <= Int(Int32.max) else {
                return BatchOutcome(
                    outputs: [], failed: items.count,
                    failure: failure(.parameter, nil, "maxAttempts: \(maxAttempts): must be at least 1"))
            }
            guard lease > .zero else {
                return BatchOutcome(
                    outputs: [], failed: items.count,
                    failure: failure(.parameter, nil, "lease: \(lease): must be more than zero"))
            }
            let payload: ByteBuffer
            do { payload = try ChunkCodec.encode(items) } catch {
                return BatchOutcome(
                    outputs: [], failed: items.count, failure: failure(.parameter, nil, "encoding a chunk: \(error)"))
            }
            let seq = nextSeq.add(1, ordering: .relaxed).newValue
            var result: ChunkResult?
            repeat {
                open(seq)  // [a slot before its row]
                let written = await retrying(call, duplicateIsDone: true) {
                    try await self.queue.run(
                        self.queue.sql.submit(
                            run: self.run, seq: seq, layer: self.layer.name, build: self.layer.build,
                            policy: self.policy.wire,
                            items: Int32(items.count), payload: payload, maxAttempts: Int32(self.maxAttempts),
                            lease: self.lease.seconds))
                }
                // [the coordinator retries connection errors]: not a connection error
                if case .failure(let error) = written {
                    fill(seq, nil)
                    _ = await wait(seq)
                    return BatchOutcome(
                        outputs: [], failed: items.count,
                        failure: failure(.database, seq, "writing the chunk: \(error)"))
                }
                slots.withLock { _ = $0.written.insert(seq) }  // [undone writes written again]
                result = await call.whileRunning(onStop: { self.fill(seq, nil) }, { await self.wait(seq) })
            } while result?.isLost == true
            guard let result else { return BatchOutcome(outputs: []) }  // [a stop closes the slots]
            switch result {
            case .lost:  // not reached: the loop above writes a lost chunk again
                return BatchOutcome(outputs: [], failed: items.count, failure: failure(.database, seq, "chunk lost"))
            case .broken(let message):
                return BatchOutcome(outputs: [], failed: items.count, failure: failure(.database, seq, message))
            case .dead(let attempts):
                let error = failure(
                    .deadLetter, seq, "its workers died \(attempts) times (dead letter, \(items.count) items failed)")
                return policy == .skip
                    ? BatchOutcome(outputs: [], failed: items.count)
                    : BatchOutcome(outputs: [], failed: items.count, failure: error)
            case .done(
                let payload, let emitted, let skipped, let failed, let retried, let error, let skipError, let worker):
                let outputs: [Output]
                do { outputs = try ChunkCodec.decode(payload, as: Output.self) } catch {
                    return BatchOutcome(
                        outputs: [], failed: items.count,
                        failure: failure(.remote, seq, "reading the chunk's results: \(error)"))
                }
                guard outputs.count == emitted, emitted + skipped + failed <= items.count else {
                    let counts = "\(outputs.count) results, \(emitted) emitted, \(skipped) skipped, \(failed) failed"
                    return BatchOutcome(
                        outputs: [], failed: items.count,
                        failure: failure(.remote, seq, "\(counts) do not fit a chunk of \(items.count) items"))
                }
                return BatchOutcome(
                    outputs: outputs, skipped: skipped,
                    skippedErrors: skipError.isEmpty ? [] : [RemoteError(description: skipError)],
                    failed: failed, failure: error.isEmpty ? nil : failure(.remote, seq, error), retried: retried,
                    worker: worker)
            }
        }

        /// [a run leaves no rows]: the layer's last call has ended: delete what is left of the run, in a task of its
        /// own (a cancelled run's task would cancel the statements too).
        func ended() async {
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
                    queue.logger.warning(
                        "distributed layer \(layer.name): \(String(reflecting: error)); retrying in \(delay)")
                    try? await Task.sleep(for: delay)
                    delay = min(delay * 2, .seconds(1))
                }
            }
            return .success(false)
        }

        // MARK: slots ([a slot before its row], [one poller while slots are open])

        func open(_ seq: Int64) {
            let start = slots.withLock { s -> Bool in
                s.open[seq] = .waiting(nil)
                defer { s.polling = true }
                return !s.polling
            }
            if start { Task { await self.poll() } }
        }

        /// Fill a slot (once: a later fill of the same slot is ignored) and wake its waiter.
        func fill(_ seq: Int64, _ result: ChunkResult?) {
            let waiter = slots.withLock { s -> CheckedContinuation<ChunkResult?, Never>? in
                s.written.remove(seq)
                switch s.open[seq] {
                case .waiting(let c)?:
                    if let c {
                        s.open[seq] = nil
                        return c
                    }
                    s.open[seq] = .filled(result)
                    return nil
                default: return nil
                }
            }
            waiter?.resume(returning: result)
        }

        func wait(_ seq: Int64) async -> ChunkResult? {
            await withCheckedContinuation { c in
                let now = slots.withLock { s -> ChunkResult?? in
                    if case .filled(let r)? = s.open[seq] {
                        s.open[seq] = nil
                        return .some(r)
                    }
                    s.open[seq] = .waiting(c)
                    return nil
                }
                if let now { c.resume(returning: now) }
            }
        }

        /// Fill the slots of the dead chunks that `query` returns (rows: seq, attempts).
        func fillDead(_ query: PostgresQuery) async throws {
            for (seq, attempts) in try await queue.rows(query, as: (Int64, Int32).self) {
                fill(seq, .dead(attempts: Int(attempts)))
            }
        }

        /// The poller ([one poller while slots are open]): take results, bury dead chunks, sleep until a NOTIFY or the
        /// backstop.
        func poll() async {
            let listener = Task { await self.queue.listen(on: self.queue.sql.doneChannel, self.wakeup) }
            defer { listener.cancel() }
            var lastBurial = ContinuousClock.now
            // [each result handed over once]: after a connection error, a burial's answer may have been lost
            var recheckDead = false
            var lastCheck = ContinuousClock.now
            while true {
                let waiting = slots.withLock { s -> Bool in
                    if s.open.isEmpty { s.polling = false }
                    return s.polling
                }
                guard waiting else { return }
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
                    if !rows.isEmpty { try await queue.run(queue.sql.drop(run: run, seqs: rows.map(\.0))) }
                    if ContinuousClock.now - lastCheck > .seconds(1) {  // [undone writes written again]
                        lastCheck = .now
                        let written = slots.withLock { Array($0.written) }
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
                    if ContinuousClock.now - lastBurial > min(lease / 4, .seconds(1)) {
                        lastBurial = .now
                        try await fillDead(queue.sql.bury(run: run))
                    }
                } catch let error where isTransient(error) {
                    recheckDead = true
                    queue.logger.warning(
                        "distributed layer \(layer.name): polling for results: \(String(reflecting: error))")
                } catch {  // [the coordinator retries connection errors]: every open chunk fails with it
                    let open = slots.withLock { Array($0.open.keys) }
                    for seq in open { fill(seq, .broken("taking results: \(error)")) }
                }
                // the backstop: 20-30 ms (a NOTIFY wakes it at once)
                await wakeup.wait(for: .milliseconds(20 + Int.random(in: 0...10)))
            }
        }

    }

    /// A wake-up with a timeout for one waiter at a time: signal() ends the current or the next wait.
    final class Wakeup: Sendable {
        let state = Locked<(signalled: Bool, waiter: CheckedContinuation<Void, Never>?, generation: Int)>(
            (false, nil, 0))

        func signal() {
            let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
                guard let w = s.waiter else {
                    s.signalled = true
                    return nil
                }
                s.waiter = nil
                return w
            }
            waiter?.resume()
        }

        func wait(for timeout: Duration) async {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let generation = state.withLock { s -> Int? in
                    if s.signalled {
                        s.signalled = false
                        return nil
                    }
                    s.generation += 1
                    s.waiter = c
                    return s.generation
                }
                guard let generation else { return c.resume() }
                Task {
                    try? await Task.sleep(for: timeout)
                    let timedOut = self.state.withLock { s -> CheckedContinuation<Void, Never>? in
                        guard s.generation == generation, let w = s.waiter else { return nil }
                        s.waiter = nil
                        return w
                    }
                    timedOut?.resume()
                }
            }
        }
    }

    extension Duration {
        /// Whole and fractional seconds.
        var seconds: Double {
            let (s, atto) = components
            return Double(s) + Double(atto) / 1e18
        }
    }
#endif
