// FlowWorker.swift — a worker process's side: claim chunks of one distributed layer, run its closure on
// local C threads (an AsyncFlow pipeline), complete the chunks, renew the leases of what it holds.
//
// Invariants:
//  [a worker claims what it can start soon] The worker's pipeline is claims → `threads` CPU workers (a chunk each at a
//    time) → completions in batches: its bounded queues bound what it holds, and a claim takes about 20 ms of work per
//    thread (ClaimPace: by how long the last chunks took on a thread; 1 to 8 chunks a thread, 1 until a chunk has been
//    timed), and only while it holds fewer than its threads run plus one claim ahead (the claims source waits for a
//    completion rather than hold a claim it cannot push): so it claims only what it can start soon, and chunks that a
//    dead worker held wait for no long queue in the others. An idle worker waits for a new chunk's NOTIFY
//    (workChannel), with a polling backstop.
//  [every claim completed or left to its lease] Every claimed chunk is completed
//    ([completions fenced by attempt]: fenced, so a chunk whose lease was lost writes nothing), or handed back (a
//    drain: chunks claimed but not yet in the pipeline), or left to its lease (the process died or was cancelled).
//  [no claim without a fresh heartbeat] The heartbeat extends the leases of every chunk the worker holds every third of
//    the shortest lease it has seen. While the last successful heartbeat is older than that lease, the worker claims
//    nothing (it may have been partitioned away and its chunks claimed by others).
//  [claims only for this layer and build] A worker claims only chunks of its layer's name and build; when it finds none
//    but there are chunks of its layer for another build, its run throws DistributedLayerError(.otherBuild).
//  [the worker retries only connection errors] Connection errors are retried (claims and heartbeats at their next turn,
//    completions with backoff while the leases may hold); any other error (isTransient) ends the run with
//    DistributedLayerError(.database): retrying a permission error would fail for ever.
#if Postgres  // the package trait that brings postgres-nio (Package.swift)
    import AsyncFlow
    import Foundation
    import Logging
    import PostgresNIO
    import Synchronization

    /// A worker of a distributed layer: claims its chunks from `queue`, runs its closure on local threads,
    /// writes the results. Start as many as you like, on any machine that reaches the database; stop one
    /// with ``drain()`` (on SIGTERM): it claims nothing more, finishes what it has started, hands back the
    /// rest at once.
    ///
    /// ```swift
    /// let worker = FlowWorker(queue: queue, serving: score)
    /// try await worker.run()
    /// ```
    public final class FlowWorker<Input: Codable & Sendable, Output: Codable & Sendable>: Sendable {
        public let queue: PostgresWorkQueue
        public let layer: DistributedLayer<Input, Output>
        /// Local CPU threads (nil: as `Layer(workers: nil)`, FLOW_WORKERS or the CPUs).
        public let threads: Int?
        /// This worker's name in the tables (host, process, a random part).
        public let id: String
        let control = PipelineControl()
        let stats = Locked<FlowWorkerReport>(FlowWorkerReport())
        let lastBeat = Locked<ContinuousClock.Instant>(.now)
        let shortestLease = Locked<Double?>(nil)
        /// The claims this worker holds: claimed, not yet completed or handed back
        /// ([no claim without a fresh heartbeat]).
        let holding = Locked<Set<ClaimKey>>([])
        /// Hand-backs started ([every claim completed or left to its lease]), awaited before run()
        /// returns.
        let handingBack = Locked<[Task<Void, Never>]>([])
        /// Tests: no heartbeats (a worker whose heartbeats stall).
        let heartbeats: Bool
        /// Signalled by a NOTIFY of a new chunk (workChannel): an idle worker claims at once.
        let newWork = Wakeup()
        /// How long chunks take on a thread: how many to claim at a time ([a worker claims what it can start soon]).
        let pace = Locked<ClaimPace>(ClaimPace())
        /// Signalled when claims are released (completed, refused, handed back): room to claim
        /// ([a worker claims what it can start soon]).
        let released = Wakeup()

        public convenience init(
            queue: PostgresWorkQueue, serving layer: DistributedLayer<Input, Output>, threads: Int? = nil
        ) {
            self.init(queue: queue, serving: layer, threads: threads, heartbeats: true)
        }

        init(queue: PostgresWorkQueue, serving layer: DistributedLayer<Input, Output>, threads: Int?, heartbeats: Bool)
        {
            self.queue = queue
            self.layer = layer
            self.threads = threads
            self.heartbeats = heartbeats
            id = "\(ProcessInfo.processInfo.hostName)/\(getpid())/\(UInt32.random(in: 0...UInt32.max))"
        }

        /// What it has done so far.
        public var report: FlowWorkerReport { stats.withLock { $0 } }

        /// Stop claiming; finish the chunks started; hand back the others. run() then returns.
        public func drain() { control.drain() }

        /// Serve the layer until ``drain()`` or cancellation.
        public func run() async throws {
            if let threads, threads < 1 {
                throw DistributedLayerError(
                    kind: .parameter, layer: layer.name, run: nil, chunk: nil,
                    message: "threads: \(threads): must be at least 1")
            }
            try await queue.prepare()
            // the threads the local CPU layer gets: what the claims are paced for
            // ([a worker claims what it can start soon])
            let threads = try self.threads ?? PipelineOptions().resolvedWorkers()
            let beat = Task { await self.heartbeat() }
            defer { beat.cancel() }
            let listener = Task { await self.queue.listen(on: self.queue.sql.workChannel, self.newWork) }
            defer { listener.cancel() }
            let claims = Claims(worker: self, threads: threads)
            var options = PipelineOptions()
            options.control = control
            let layer = self.layer
            _ = try await pipeline(
                Layer(claims, name: "claims"),
                Layer(workers: threads, state: layer.makeBody, name: layer.name, capacity: 1) {
                    (body: inout (Input) throws -> Output, chunk: ClaimedChunk) -> CompletedChunk in
                    let start = ContinuousClock.now
                    defer { self.pace.withLock { $0.worked(.now - start) } }
                    return Self.work(chunk, body)
                },
                Layer(batchesOf: 64, within: .milliseconds(2), name: "completions") { (done: [CompletedChunk]) in
                    try await self.complete(done)
                }, options: options)
            // [every claim completed or left to its lease]: the source's iterator (its pull task) has
            // ended, so its hand-back has started: wait for it, so that a process that exits next has handed its chunks
            // back
            for handBack in handingBack.withLock({ $0 }) { await handBack.value }
        }

        /// One chunk through the closure under its policy (items in order; a failure ends the chunk).
        static func work(_ chunk: ClaimedChunk, _ body: (Input) throws -> Output) -> CompletedChunk {
            func completed(
                _ outputs: [Output], skipped: Int = 0, failed: Int = 0, retried: Int = 0, error: String = "",
                skipError: String = ""
            )
                -> CompletedChunk
            {
                var (payload, message, failed, outputs) = (ByteBuffer(), error, failed, outputs)
                do { payload = try ChunkCodec.encode(outputs) } catch {
                    outputs = []
                    failed = max(failed, 1)
                    payload = (try? ChunkCodec.encode(outputs)) ?? ByteBuffer()
                    message = "encoding the results: \(error)"
                }
                return CompletedChunk(
                    key: chunk.key, payload: payload, emitted: Int32(outputs.count), skipped: Int32(skipped),
                    failed: Int32(failed), retried: Int32(retried), error: message, skipError: skipError)
            }
            let items: [Input]
            do { items = try ChunkCodec.decode(chunk.payload, as: Input.self) } catch {
                return completed([], failed: 1, error: "reading the chunk: \(error)")
            }
            var outputs: [Output] = []
            outputs.reserveCapacity(items.count)
            var skipped = 0
            var retried = 0
            var skipError = ""
            for item in items {
                var retriesLeft = if case .retry(let n) = chunk.policy { n } else { 0 }
                while true {
                    do {
                        outputs.append(try body(item))
                        break
                    } catch {
                        if retriesLeft > 0 {
                            retriesLeft -= 1
                            retried += 1
                            continue
                        }
                        if chunk.policy == .skip {
                            skipped += 1
                            if skipError.isEmpty { skipError = String(describing: error) }
                            break
                        }
                        return completed(
                            outputs, skipped: skipped, failed: 1, retried: retried, error: String(describing: error),
                            skipError: skipError)
                    }
                }
            }
            return completed(outputs, skipped: skipped, retried: retried, skipError: skipError)
        }

        /// Complete a batch of chunks in one statement ([completions fenced by attempt]), which also wakes the
        /// coordinators; retried after connection errors while the leases may still hold; any other error ends the
        /// worker ([the worker retries only connection errors]).
        func complete(_ done: [CompletedChunk]) async throws {
            var delay = Duration.milliseconds(10)
            while true {
                do {
                    let written = try await queue.rows(queue.sql.complete(done, worker: id), as: (Int64, Int64).self)
                    release(done.map(\.key))
                    stats.withLock {
                        $0.completed += written.count
                        $0.refused += done.count - written.count
                        $0.items += done.reduce(0) { $0 + Int($1.emitted + $1.skipped + $1.failed) }
                    }
                    return
                } catch {
                    guard isTransient(error) else { throw databaseError("completing chunks", error) }
                    queue.logger.warning("worker \(id): completing \(done.count) chunks: \(String(reflecting: error))")
                    try? await Task.sleep(for: delay)
                    delay = min(delay * 2, .seconds(1))
                    // [every claim completed or left to its lease]: they are another worker's now
                    if delay >= .seconds(1) && !leaseHolds {
                        release(done.map(\.key))
                        return
                    }
                }
            }
        }

        /// [the worker retries only connection errors]: the database refused a statement for another reason than a lost
        /// connection.
        func databaseError(_ doing: String, _ error: any Error) -> DistributedLayerError {
            DistributedLayerError(
                kind: .database, layer: layer.name, run: nil, chunk: nil, message: "\(doing): \(error)")
        }

        /// [no claim without a fresh heartbeat]: whether the last heartbeat is recent enough for the leases to hold.
        var leaseHolds: Bool {
            guard let lease = shortestLease.withLock({ $0 }) else { return true }
            return ContinuousClock.now - lastBeat.withLock({ $0 }) < .milliseconds(Int(lease * 1000))
        }

        /// Note a claim this worker now holds, and its lease ([no claim without a fresh heartbeat]).
        func hold(_ key: ClaimKey, lease seconds: Double) {
            holding.withLock { _ = $0.insert(key) }
            shortestLease.withLock { $0 = min($0 ?? seconds, seconds) }
        }

        /// Claims completed, refused or handed back: no longer renewed.
        func release(_ keys: [ClaimKey]) {
            holding.withLock { h in for k in keys { h.remove(k) } }
            released.signal()
        }

        /// [no claim without a fresh heartbeat]: renew the leases of what this worker holds, every third of the
        /// shortest lease.
        func heartbeat() async {
            while !Task.isCancelled {
                let lease = shortestLease.withLock { $0 } ?? 3
                try? await Task.sleep(for: .milliseconds(max(50, Int(lease * 1000 / 3))))
                let held = Array(holding.withLock { $0 })
                guard heartbeats else { continue }
                do {
                    if !held.isEmpty { try await queue.run(queue.sql.heartbeat(held, worker: id)) }
                    lastBeat.withLock { $0 = .now }
                } catch {
                    queue.logger.warning("worker \(id): heartbeat: \(String(reflecting: error))")
                }
            }
        }
    }

    /// What a worker has done: chunks completed, completions refused (their lease had been lost), items
    /// handled, chunks handed back when it drained.
    public struct FlowWorkerReport: Sendable, CustomStringConvertible {
        public var completed = 0
        public var refused = 0
        public var items = 0
        public var handedBack = 0
        public var description: String {
            "\(completed) chunks completed (\(items) items), \(refused) refused (lease lost), \(handedBack) handed back"
        }
    }

    /// A chunk as claimed: its key, policy, items (still encoded) and lease in seconds.
    struct ClaimedChunk: Sendable {
        let key: ClaimKey
        let policy: ErrorPolicy
        let payload: ByteBuffer
        let lease: Double
    }

    /// How many chunks a worker claims in one statement ([a worker claims what it can start soon]): about `ahead` of
    /// work per thread, by how long the last chunks took on a thread; one per thread until a chunk has been timed, at
    /// most `most`. Trivial chunks are claimed several at a time (fewer statements), slow ones one at a time (none
    /// waits in a busy worker while another is idle). Timed where the work is done, not by how fast the pipeline takes
    /// chunks: that is fast while its queues fill, however slow the chunks.
    struct ClaimPace {
        static let ahead = Duration.milliseconds(20)
        static let most = 8
        var perChunk: Duration?

        func limit(threads: Int) -> Int {
            guard let perChunk, perChunk > .zero else { return threads }
            return threads * Swift.max(1, Swift.min(Self.most, Int(Self.ahead / perChunk)))
        }

        /// A chunk took `duration` on a thread.
        mutating func worked(_ duration: Duration) {
            perChunk = perChunk.map { $0 * 0.7 + duration * 0.3 } ?? duration
        }
    }

    /// The worker's source: chunks claimed a few at a time as the pipeline pulls
    /// ([a worker claims what it can start soon]), waiting by LISTEN with a polling backstop when there are none.
    struct Claims<Input: Codable & Sendable, Output: Codable & Sendable>: AsyncSequence, Sendable {
        typealias Element = ClaimedChunk
        let worker: FlowWorker<Input, Output>
        /// The local CPU layer's threads.
        let threads: Int

        func makeAsyncIterator() -> Iterator { Iterator(worker: worker, threads: threads) }

        final class Iterator: AsyncIteratorProtocol {
            let worker: FlowWorker<Input, Output>
            let threads: Int
            var held: [ClaimedChunk] = []
            var idle = Duration.milliseconds(5)

            init(worker: FlowWorker<Input, Output>, threads: Int) {
                self.worker = worker
                self.threads = threads
            }

            deinit {
                // [every claim completed or left to its lease]: chunks claimed but never handed to the
                // pipeline go back at once
                guard !held.isEmpty else { return }
                let (worker, keys) = (worker, held.map(\.key))
                worker.stats.withLock { $0.handedBack += keys.count }
                worker.release(keys)
                let handBack = Task {
                    _ = try? await worker.queue.run(worker.queue.sql.handBack(keys, worker: worker.id))
                }
                worker.handingBack.withLock { $0.append(handBack) }
            }

            func next() async throws -> ClaimedChunk? {
                let queue = worker.queue
                while held.isEmpty {
                    if Task.isCancelled { return nil }
                    if worker.leaseHolds {
                        // [a worker claims what it can start soon]: a claim's worth, within room for what the threads
                        // run plus one claim ahead
                        let limit = worker.pace.withLock { $0.limit(threads: threads) }
                        let room = threads + limit - worker.holding.withLock { $0.count }
                        if room <= 0 {
                            await worker.released.wait(for: .milliseconds(50))
                            continue
                        }
                        do {
                            held = try await queue.claim(
                                layer: worker.layer.name, build: worker.layer.build,
                                limit: Int32(Swift.min(limit, room)), worker: worker.id)
                        } catch {
                            if Task.isCancelled { return nil }
                            guard isTransient(error) else { throw worker.databaseError("claiming chunks", error) }
                            queue.logger.warning("worker \(worker.id): claiming: \(String(reflecting: error))")
                        }
                        for chunk in held { worker.hold(chunk.key, lease: chunk.lease) }
                        if !held.isEmpty { break }
                        let other = try? await queue.rows(
                            queue.sql.otherBuild(layer: worker.layer.name, build: worker.layer.build), as: String.self)
                        if let build = other?.first {  // [claims only for this layer and build]
                            throw DistributedLayerError(
                                kind: .otherBuild, layer: worker.layer.name, run: nil, chunk: nil,
                                message:
                                    "chunks wait for build \(build), this worker is build \(worker.layer.build): run the coordinator's build (or give both the same version:)"
                            )
                        }
                    }
                    // nothing to claim: wait for a new chunk's NOTIFY, or poll, backing off 5 ms → 50 ms
                    await worker.newWork.wait(for: idle + .microseconds(Int.random(in: 0...2_000)))
                    idle = Swift.min(idle * 2, .milliseconds(50))
                }
                idle = .milliseconds(5)
                return held.removeFirst()
            }
        }
    }
#endif
