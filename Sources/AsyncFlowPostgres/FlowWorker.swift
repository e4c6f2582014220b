// FlowWorker.swift — a worker process's side: claim chunks of one distributed layer, run its closure on
// local C threads (an AsyncFlow pipeline), complete the chunks, renew the leases of what it holds.
//
// Invariants:
//  [a worker's queues bound what it holds] The worker's pipeline is claims → `threads` CPU workers (a chunk each at a
//    time) → completions in batches: its bounded queues bound what it holds, and its claims source claims only as
//    its ClaimBook allows ([a worker claims what it can start soon]), waiting for a completion rather than hold a
//    claim it cannot push. An idle worker waits for a new chunk's NOTIFY (workChannel), with a polling backstop.
//  [every claim completed or left to its lease] Every claimed chunk is completed
//    ([completions fenced by attempt]: fenced, so a chunk whose lease was lost writes nothing), or handed back (a
//    drain: chunks claimed but not yet in the pipeline), or left to its lease (the process died or was cancelled).
//  [the heartbeat renews what the book holds] The heartbeat renews the leases of the claims in the worker's ClaimBook, as
//    often as the book says, and tells the book when it succeeded ([no claim without a fresh heartbeat]).
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
        /// The claims this worker holds, its leases, its last heartbeat and its pace (ClaimBook).
        let book = Locked<ClaimBook>(ClaimBook(now: .now))
        /// Hand-backs started ([every claim completed or left to its lease]), awaited before run()
        /// returns.
        let handingBack = Locked<[Task<Void, Never>]>([])
        /// Tests: no heartbeats (a worker whose heartbeats stall).
        let heartbeats: Bool
        /// Signalled by a NOTIFY of a new chunk (workChannel): an idle worker claims at once.
        let newWork = Wakeup()
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
            do { try await queue.prepare() } catch {  // [the first connection is checked alone]
                throw databaseError("connecting", error)
            }
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
                    defer { self.book.withLock { $0.worked(.now - start) } }
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
                    queue.logger.debug("worker \(id): completing \(done.count) chunks: \(String(reflecting: error))")
                    try? await Task.sleep(for: delay)
                    delay = min(delay * 2, .seconds(1))
                    // [every claim completed or left to its lease]: they are another worker's now
                    if delay >= .seconds(1) && !book.withLock({ $0.leaseHolds(now: .now) }) {
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
                kind: .init(database: error), layer: layer.name, run: nil, chunk: nil, message: "\(doing): \(error)")
        }

        /// Claims completed, refused or handed back: no longer renewed; room to claim again.
        func release(_ keys: [ClaimKey]) {
            book.withLock { $0.released(keys) }
            released.signal()
        }

        /// [the heartbeat renews what the book holds]: renew the leases of what this worker holds, as often as its
        /// book says.
        func heartbeat() async {
            while !Task.isCancelled {
                try? await Task.sleep(for: book.withLock { $0.heartbeatInterval })
                let held = Array(book.withLock { $0.holding })
                guard heartbeats else { continue }
                do {
                    let started = ContinuousClock.now  // the leases run from the statement's start, at the latest
                    if !held.isEmpty { try await queue.run(queue.sql.heartbeat(held, worker: id)) }
                    book.withLock { $0.beat(at: started) }
                } catch {
                    book.withLock { $0.heartbeatFailed() }
                    queue.logger.debug("worker \(id): heartbeat: \(String(reflecting: error))")
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

#endif
