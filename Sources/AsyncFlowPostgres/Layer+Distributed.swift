// Layer+Distributed.swift — the distributed layer as the coordinator's pipeline sees it: a `Layer`
// initialiser, and the errors a distributed layer ends a run with.
#if Postgres  // the package trait that brings postgres-nio (Package.swift)
    import AsyncFlow

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
        ///     the tables' size, and what keeps the workers busy while chunks travel. A chunk's trip takes
        ///     about five round trips to the database (written, claimed, completed, announced, read back), so
        ///     this bounds the rate to `concurrency` chunks per trip: with the database 10 ms away, 128 chunks
        ///     of 1,000 items allow 2.5 million items a second (32 allowed 640 thousand).
        ///   - maxAttempts: claims a chunk may have; when the last claim's lease runs out, the chunk goes to
        ///     the dead letters and its items count failed (`.fail` and `.retry` stop the run then).
        ///   - lease: how long a claim lasts without a heartbeat (workers renew it every third of it).
        ///
        /// A `maxAttempts` or `lease` out of range is thrown by `pipeline` as a `FlowConfigurationError`
        /// naming it, before any item is pulled.
        public init(
            _ layer: DistributedLayer<Input, Output>, on queue: PostgresWorkQueue, chunk: Int = 1_000,
            within: Duration? = .milliseconds(20), concurrency: Int = 128, ordered: Bool = false, maxAttempts: Int = 3,
            lease: Duration = .seconds(30), name: String? = nil, onError: ErrorPolicy = .fail
        ) {
            let coordinator = Coordinator(
                layer: layer, queue: queue, maxAttempts: maxAttempts, lease: lease, policy: onError)
            let invalid: (parameter: String, message: String)? =
                if maxAttempts < 1 || maxAttempts > Int(Int32.max) {
                    ("maxAttempts", "maxAttempts: \(maxAttempts): must be between 1 and \(Int32.max)")
                } else if lease <= .zero {
                    ("lease", "lease: \(lease): must be more than zero")
                } else {
                    nil
                }
            // a worker may skip single items of a chunk under .skip: its results could not take their positions back
            let resultsForAll = if case .skip = onError { false } else { true }
            self.init(
                batchesOf: chunk, within: within, concurrency: concurrency, ordered: ordered, name: name ?? layer.name,
                capacity: nil, onError: onError,
                handledElsewhere: { items, call in await coordinator.handle(items, call) },
                ended: { await coordinator.ended() }, invalid: invalid, resultsForAll: resultsForAll)
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
            /// The server refused this process's connection, and trying again cannot help: a wrong password, an
            /// unknown role or database, a TLS or authentication mode it does not share with the URL. The
            /// message has the server's reason.
            case refused
            /// No connection to the database could be made within the queue's `connectTimeout` at the start.
            case unreachable
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
#endif
