// Claims.swift — a worker's source: the chunks it claims, a few at a time as its pipeline pulls, as its
// ClaimBook allows ([a worker claims what it can start soon], [no claim without a fresh heartbeat]), and
// handed back at once when the pipeline no longer pulls them ([every claim completed or left to its lease]).
#if Postgres  // the package trait that brings postgres-nio (Package.swift)
    import AsyncFlow
    import PostgresNIO

    /// A chunk as claimed: its key, policy, items (still encoded) and lease in seconds.
    struct ClaimedChunk: Sendable {
        let key: ClaimKey
        let policy: ErrorPolicy
        let payload: ByteBuffer
        let lease: Double
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
                claiming: while held.isEmpty {
                    if Task.isCancelled { return nil }
                    switch worker.book.withLock({ $0.nextClaim(threads: threads, now: .now) }) {
                    case .waitForRoom:
                        await worker.released.wait(for: .milliseconds(50))
                        continue
                    case .waitForHeartbeat:
                        break  // [no claim without a fresh heartbeat]: wait as an idle worker does
                    case .releaseUnknown:  // [a lost claim is released]
                        let known = Array(worker.book.withLock { $0.holding })
                        do {
                            let released = try await queue.rows(
                                queue.sql.releaseUnknown(known, worker: worker.id), as: Int64.self)
                            worker.book.withLock { $0.releasedUnknown() }
                            if let n = released.first, n > 0 {
                                queue.logger.debug("worker \(worker.id): released \(n) chunks of a lost claim")
                            }
                            continue
                        } catch {
                            if Task.isCancelled { return nil }
                            guard isTransient(error) else { throw worker.databaseError("releasing chunks", error) }
                        }
                    case .claim(let limit):
                        do {
                            let (layer, id) = (worker.layer, worker.id)
                            // [a worker claims what it can start soon]: the claim's round trip, timed off this source's
                            // executor (the pool, whose threads may all be in chunks that its resumption would wait for)
                            let claim = Task.detached { () async throws -> ([ClaimedChunk], Duration) in
                                let started = ContinuousClock.now
                                let rows = try await queue.claim(
                                    layer: layer.name, build: layer.build, limit: Int32(limit), worker: id)
                                return (rows, .now - started)
                            }
                            let (claimed, took) = try await withTaskCancellationHandler {
                                try await claim.value
                            } onCancel: {
                                claim.cancel()
                            }
                            held = claimed
                            worker.book.withLock { $0.claimTook(took) }
                        } catch {
                            if Task.isCancelled { return nil }
                            guard isTransient(error) else { throw worker.databaseError("claiming chunks", error) }
                            queue.logger.debug("worker \(worker.id): claiming: \(String(reflecting: error))")
                            worker.book.withLock { $0.claimFailed() }  // [a lost claim is released]
                        }
                        worker.book.withLock { $0.claimed(held) }
                        if !held.isEmpty { break claiming }
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
