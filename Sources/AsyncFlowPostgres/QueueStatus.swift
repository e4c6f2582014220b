// QueueStatus.swift — what a work queue holds now, read from its tables: each coordinator run's chunks by
// state, its results not yet taken and its dead letters; each worker's claims and how long ago it last
// renewed them. Read-only: a role with SELECT on the queue's tables (a coordinator's) may ask. The same
// figures as gauges, brought up to date at an interval (publishStatus).
#if Postgres  // the package trait that brings postgres-nio (Package.swift)
    import AsyncFlow
    import CoreMetrics
    import PostgresNIO

    /// A work queue's state, as ``PostgresWorkQueue/status()`` reads it.
    public struct QueueStatus: Sendable, CustomStringConvertible {
        /// One coordinator run: a distributed layer in one pipeline run.
        public struct Run: Sendable, Equatable {
            /// The coordinator run's number (its chunks' `run`).
            public let run: Int64
            /// The named run it serves, if any, and the layer's name (nil when only results are left).
            public let named: String?
            public let layer: String?
            /// Chunks never claimed or handed back, claimed under a lease that holds, claimed under a lease
            /// that ran out (to be claimed again, or buried when their attempts are spent).
            public let waiting: Int
            public let claimed: Int
            public let expired: Int
            /// Results written by workers and not yet taken by the coordinator; chunks buried as dead letters.
            public let results: Int
            public let deadLetters: Int
            /// How long the oldest chunk of the run not yet done has been in the queue.
            public let oldest: Duration?
        }

        /// A worker that holds claims now.
        public struct Worker: Sendable, Equatable {
            public let id: String
            /// Chunks it holds, and how long ago it last renewed their leases (claimed or heartbeat).
            public let chunks: Int
            public let lastRenewed: Duration
        }

        public let runs: [Run]
        /// Workers holding claims; a worker that holds none leaves no row and is not listed.
        public let workers: [Worker]

        public var description: String {
            var lines = ["runs: \(runs.count)"]
            for r in runs {
                let name = (r.named.map { "named run \"\($0)\", " } ?? "") + (r.layer.map { "layer \"\($0)\"" } ?? "")
                lines.append(
                    "  run \(r.run) (\(name)): \(r.waiting) waiting, \(r.claimed) claimed, \(r.expired) lease expired, "
                        + "\(r.results) results not taken, \(r.deadLetters) dead letters"
                        + (r.oldest.map { "; oldest chunk \(Self.seconds($0)) old" } ?? ""))
            }
            lines.append("workers holding claims: \(workers.count)")
            for w in workers {
                lines.append("  \(w.id): \(w.chunks) chunks, renewed \(Self.seconds(w.lastRenewed)) ago")
            }
            return lines.joined(separator: "\n")
        }

        static func seconds(_ d: Duration) -> String {
            let s = PostgresWorkQueue.seconds(d)
            return s < 10 ? "\((s * 10).rounded() / 10) s" : "\(Int(s.rounded())) s"
        }
    }

    extension Statements {
        /// Per coordinator run: layer, named run, chunks waiting / claimed / expired, results, dead letters, the
        /// oldest chunk's age in seconds. Rows: those, one a run.
        var runStatus: PostgresQuery {
            PostgresQuery(
                unsafeSQL: """
                    WITH c AS (
                        SELECT run, min(layer) AS layer, count(*) FILTER (WHERE lease_until IS NULL) AS waiting,
                            count(*) FILTER (WHERE lease_until >= now()) AS claimed,
                            count(*) FILTER (WHERE lease_until < now()) AS expired, min(created_at) AS oldest
                        FROM \(t("chunks")) GROUP BY run),
                    r AS (SELECT run, count(*) AS results FROM \(t("results")) GROUP BY run),
                    d AS (SELECT run, min(layer) AS layer, count(*) AS dead FROM \(t("dead_letters")) GROUP BY run),
                    runs AS (SELECT run FROM c UNION SELECT run FROM r UNION SELECT run FROM d)
                    SELECT runs.run, (SELECT min(name) FROM \(t("named_runs")) n WHERE n.run = runs.run),
                        coalesce(c.layer, d.layer), coalesce(c.waiting, 0), coalesce(c.claimed, 0),
                        coalesce(c.expired, 0), coalesce(r.results, 0), coalesce(d.dead, 0),
                        extract(epoch FROM now() - c.oldest)::float8
                    FROM runs LEFT JOIN c USING (run) LEFT JOIN r USING (run) LEFT JOIN d USING (run)
                    ORDER BY runs.run
                    """)
        }

        /// Per worker holding claims: its chunks and the seconds since it last renewed them (a lease is set to
        /// now + lease_seconds at each claim and heartbeat). Rows: worker, chunks, seconds.
        var workerStatus: PostgresQuery {
            PostgresQuery(
                unsafeSQL: """
                    SELECT worker, count(*),
                        extract(epoch FROM now() - max(lease_until - make_interval(secs => lease_seconds)))::float8
                    FROM \(t("chunks")) WHERE worker IS NOT NULL GROUP BY worker ORDER BY worker
                    """)
        }
    }

    extension PostgresWorkQueue {
        /// What the queue holds now: each coordinator run's chunks by state, results not yet taken and dead
        /// letters, and the workers holding claims. Needs only SELECT on the queue's tables.
        public func status() async throws -> QueueStatus {
            typealias RunRow = (Int64, String?, String?, Int64, Int64, Int64, Int64, Int64, Double?)
            var runs: [QueueStatus.Run] = []
            for row: RunRow in try await rows(sql.runStatus, as: RunRow.self) {
                let oldest: Duration? = row.8.map { Self.duration(seconds: $0) }
                runs.append(
                    QueueStatus.Run(
                        run: row.0, named: row.1, layer: row.2, waiting: Int(row.3), claimed: Int(row.4),
                        expired: Int(row.5), results: Int(row.6), deadLetters: Int(row.7), oldest: oldest))
            }
            var workers: [QueueStatus.Worker] = []
            for (id, chunks, ago) in try await rows(sql.workerStatus, as: (String, Int64, Double).self) {
                workers.append(
                    QueueStatus.Worker(id: id, chunks: Int(chunks), lastRenewed: Self.duration(seconds: ago)))
            }
            return QueueStatus(runs: runs, workers: workers)
        }

        /// Publish ``status()`` as gauges through swift-metrics, every `metrics.interval` until the task is
        /// cancelled (run it beside a coordinator, or in a service of its own). Each carries `metrics.dimensions`:
        /// - `<label>_chunks` with `("run", n)`, `("layer", name)` and `("state", s)` for `s` in `waiting`,
        ///   `claimed`, `expired`; `<label>_results` and `<label>_dead_letters` with the run and layer;
        ///   `<label>_oldest_chunk_seconds` with the run and layer;
        /// - `<label>_worker_chunks` and `<label>_worker_renewed_seconds` with `("worker", id)`.
        ///
        /// A run or worker no longer in the queue has its gauges set to 0 once, then left. A read that fails
        /// (a lost connection) skips that interval.
        public func publishStatus(_ metrics: PipelineMetrics) async {
            var shown: [String: Gauge] = [:]  // by label and dimensions: what was set last time
            while !Task.isCancelled {
                if let status = try? await status() {
                    var now: [String: (Gauge, Double)] = [:]
                    func set(_ name: String, _ dimensions: [(String, String)], _ value: Double) {
                        let dims = metrics.dimensions + dimensions
                        let key = "\(name) \(dims)"
                        let gauge =
                            shown[key]
                            ?? Gauge(label: "\(metrics.label)_\(name)", dimensions: dims, factory: metrics.factory)
                        now[key] = (gauge, value)
                    }
                    for run in status.runs {
                        let dims = [("run", String(run.run)), ("layer", run.layer ?? "")]
                        for (state, count) in [
                            ("waiting", run.waiting), ("claimed", run.claimed), ("expired", run.expired),
                        ] {
                            set("chunks", dims + [("state", state)], Double(count))
                        }
                        set("results", dims, Double(run.results))
                        set("dead_letters", dims, Double(run.deadLetters))
                        set("oldest_chunk_seconds", dims, run.oldest.map(Self.seconds) ?? 0)
                    }
                    for worker in status.workers {
                        set("worker_chunks", [("worker", worker.id)], Double(worker.chunks))
                        set("worker_renewed_seconds", [("worker", worker.id)], Self.seconds(worker.lastRenewed))
                    }
                    for (key, gauge) in shown where now[key] == nil { gauge.record(0) }  // gone from the queue
                    for (gauge, value) in now.values { gauge.record(value) }
                    shown = now.mapValues(\.0)
                }
                try? await Task.sleep(for: metrics.interval)
            }
        }

        static func seconds(_ duration: Duration) -> Double {
            Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        }

        static func duration(seconds: Double) -> Duration {
            .milliseconds(Int((seconds * 1000).rounded()))
        }
    }
#endif
