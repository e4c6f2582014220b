// Statements.swift — every SQL statement of the distributed layer's protocol, with the schema put in, and
// the values they carry. Nothing else in AsyncFlowPostgres writes SQL.
//
// Invariants (the whole protocol; Coordinator.swift, FlowWorker.swift and Claims.swift keep to it):
//  [a chunk is a row] A chunk is a row of `chunks` (run, seq) until it is completed or dead: its items, the layer's
//    name and build, the error policy, the attempt number of its latest claim and that claim's lease.
//  [claims take expired leases] A claim takes chunks whose lease is absent or past (FOR UPDATE SKIP LOCKED, several a
//    statement), adds 1 to `attempt` and sets a new lease; only chunks of the claimer's layer and build, and with
//    attempts left, are taken. A worker's heartbeat extends the leases of the claims it knows it holds, by key and
//    attempt (a claim whose answer was lost with a connection runs out).
//  [completions fenced by attempt] Completion is one statement that deletes the chunk row only if `attempt` is still
//    the claim's, and inserts the result only for rows it deleted (ON CONFLICT DO NOTHING besides): a worker that lost
//    its lease (the chunk was claimed again) writes nothing. So each chunk has at most one result, whatever runs twice
//    (execution is at least once, results exactly once).
//  [each result handed over once] The coordinator reads its run's results, hands each to its chunk's slot (once: a slot
//    takes one result), then deletes the ones it read; a result read twice (its deletion's answer was lost with a
//    connection) finds its slot closed and is deleted again. A chunk whose last attempt's lease ran out is moved to
//    `dead_letters` by one statement, and its items count failed; after a connection error the coordinator reads its
//    run's dead letters again, so a burial whose answer was lost is seen. A finished run leaves no rows in `chunks` or
//    `results`; dead letters stay for inspection.
//  [a named run's chunks keep their positions] A named run's chunk is written with its items' source positions (a row
//    of `chunk_positions`, in the same statement), deleted with its result once that was handed over, and with the
//    rest of the run at its end: so a coordinator that takes the run over knows which items the chunks and results
//    it inherits hold.
//  [a worker's rights are the protocol's] A worker's statements are calls of the schema's functions (claim,
//    other_build, heartbeat, hand_back, release_unknown, complete), which run with their owner's rights (SECURITY DEFINER, a fixed
//    search_path, EXECUTE revoked from PUBLIC): a worker role granted only EXECUTE on them and SELECT on `meta` can
//    claim, renew, hand back and complete chunks, and touch nothing else. The statements inside are the ones above.
//  [values only as binds] SQL takes values only as bind parameters; the one identifier put into SQL text, the schema
//    name, is checked against [a-z_][a-z0-9_]* first. The password is never printed (`description` masks it).
//  [commits need not be durable] Commits need not be durable (the sessions run with synchronous_commit = off unless
//    asked): a server crash undoes a suffix of the commits, as if their answers had been lost with the connection. A
//    chunk written and undone is written again (the coordinator's check, [undone writes written again]); an undone
//    claim leaves the chunk claimable (a second claim under the same attempt number is fenced like the first: one
//    result per chunk, [completions fenced by attempt]); an undone completion, hand-back or heartbeat leaves it to its
//    lease; an undone deletion or burial is done again when its rows are read again; a result read before its
//    completion was undone finds its slot closed when it comes again ([each result handed over once],
//    [a slot before its row]).
#if Postgres  // the package trait that brings postgres-nio (Package.swift)
    import AsyncFlow
    import PostgresNIO

    /// Every statement of the protocol ([a chunk is a row], [claims take expired leases],
    /// [completions fenced by attempt], [each result handed over once], [a worker's rights are the protocol's],
    /// [values only as binds],
    /// [a hung statement is given up], [commits need not be durable]), with the schema put in.
    struct Statements: Sendable {
        /// The tables' and functions' version: 3 added the worker's functions ([a worker's rights are the protocol's]).
        static let version: Int32 = 3
        let schema: String

        init(schema: String) { self.schema = schema }

        /// A table or function of the schema, quoted.
        func t(_ table: String) -> String { "\"\(schema)\".\(table)" }

        /// The NOTIFY channel a worker's completions wake the coordinators on (one NOTIFY a batch of
        /// completions).
        var doneChannel: String { "\(schema)_done" }

        /// The NOTIFY channel a coordinator's new chunk wakes idle workers on (the chunk's INSERT sends it,
        /// so it is delivered when the chunk can be claimed). Idle workers also poll, backing off from 5 to
        /// 50 ms, in case a notification is lost with a connection.
        var workChannel: String { "\(schema)_work" }

        /// Run once, by whoever makes the schema: payloads are stored as they are, never compressed
        /// (`pglz` took a fifth of all the CPU time with chunks of 1,000 `Int`s, and item data barely
        /// shrinks), in their row when it fits in a page (`toast_tuple_target`), else beside it.
        var firstUse: [String] {
            ["chunks", "results"].map { "ALTER TABLE \(t($0)) ALTER COLUMN payload SET STORAGE EXTERNAL" }
        }

        /// Run once, to bring a schema of version 2 to this version (with the worker's functions): the chunks'
        /// time in the queue, for QueueStatus.
        var fromVersion2: [String] {
            ["ALTER TABLE \(t("chunks")) ADD COLUMN IF NOT EXISTS created_at timestamptz NOT NULL DEFAULT now()"]
        }

        /// Taken by whoever makes the schema, for its transaction, so concurrent first users do not race.
        var lockSchema: PostgresQuery {
            "SELECT pg_advisory_xact_lock(hashtext('asyncflow schema ' || \(schema)))"
        }

        /// The schema's version of the tables (no row: just made). Rows: version.
        var version: PostgresQuery { PostgresQuery(unsafeSQL: "SELECT version FROM \(t("meta"))") }

        /// Record this build's version of the tables in a schema just made or brought to it.
        var setVersion: PostgresQuery {
            PostgresQuery(
                unsafeSQL: """
                    WITH gone AS (DELETE FROM \(t("meta")))
                    INSERT INTO \(t("meta")) (version) VALUES (\(Self.version))
                    """)
        }

        /// How many chunks, results and dead letters the queue holds. Rows: the three counts.
        var counts: PostgresQuery {
            PostgresQuery(
                unsafeSQL: """
                    SELECT (SELECT count(*) FROM \(t("chunks"))), (SELECT count(*) FROM \(t("results"))),
                        (SELECT count(*) FROM \(t("dead_letters")))
                    """)
        }

        var create: [String] {
            [
                "CREATE SCHEMA IF NOT EXISTS \"\(schema)\"",
                "CREATE TABLE IF NOT EXISTS \(t("meta")) (version int4 NOT NULL)",
                """
                CREATE TABLE IF NOT EXISTS \(t("chunks")) (
                    run int8 NOT NULL, seq int8 NOT NULL, layer text NOT NULL, build text NOT NULL, policy text NOT NULL,
                    items int4 NOT NULL, payload bytea NOT NULL, attempt int4 NOT NULL DEFAULT 0,
                    max_attempts int4 NOT NULL, lease_seconds float8 NOT NULL, lease_until timestamptz, worker text,
                    created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (run, seq)) WITH (toast_tuple_target = 8160)
                """,
                "CREATE INDEX IF NOT EXISTS chunks_claim ON \(t("chunks")) (layer, lease_until)",
                // [a named run's layer has one coordinator run], [a named run's chunks keep their positions]: added
                // within version 2 (older builds never read them)
                "CREATE TABLE IF NOT EXISTS \(t("named_runs")) (name text NOT NULL, layer text NOT NULL, run int8 NOT NULL, PRIMARY KEY (name, layer))",
                "CREATE TABLE IF NOT EXISTS \(t("chunk_positions")) (run int8 NOT NULL, seq int8 NOT NULL, ranges int8[] NOT NULL, PRIMARY KEY (run, seq))",
                """
                CREATE TABLE IF NOT EXISTS \(t("results")) (
                    run int8 NOT NULL, seq int8 NOT NULL, payload bytea NOT NULL, emitted int4 NOT NULL,
                    skipped int4 NOT NULL, failed int4 NOT NULL, retried int4 NOT NULL, error text NOT NULL,
                    skip_error text NOT NULL, worker text NOT NULL, PRIMARY KEY (run, seq)) WITH (toast_tuple_target = 8160)
                """,
                """
                CREATE TABLE IF NOT EXISTS \(t("dead_letters")) (
                    run int8 NOT NULL, seq int8 NOT NULL, layer text NOT NULL, items int4 NOT NULL, payload bytea NOT NULL,
                    attempts int4 NOT NULL, last_worker text, died_at timestamptz NOT NULL DEFAULT now(),
                    PRIMARY KEY (run, seq))
                """,
            ]
        }

        /// The coordinator adds one chunk ([a chunk is a row]) and wakes idle workers (workChannel) in the same
        /// statement. In a named run (`named`: the run's name and the chunk's positions as ranges) the chunk is added
        /// only while `run` is the coordinator run recorded for the named run's layer
        /// ([a taken-over coordinator writes nothing]), its positions beside it ([a named run's chunks keep their positions]);
        /// rows: one count, 1 when it was added, 0 when it was refused.
        func submit(
            run: Int64, seq: Int64, layer: String, build: String, policy: String, items: Int32, payload: ByteBuffer,
            maxAttempts: Int32, lease: Double, named: (name: String, ranges: [Int64])? = nil
        ) -> PostgresQuery {
            var b = PostgresBindings(capacity: 12)
            b.append(run)
            b.append(seq)
            b.append(layer)
            b.append(build)
            b.append(policy)
            b.append(items)
            b.append(payload)
            b.append(maxAttempts)
            b.append(lease)
            b.append(workChannel)
            if let named {
                b.append(named.name)
                b.append(named.ranges)
                // FOR SHARE: a take-over's update of the owner row waits for this statement, or this one sees it
                return PostgresQuery(
                    unsafeSQL: """
                        WITH owner AS (
                            SELECT 1 FROM \(t("named_runs")) WHERE name = $11 AND layer = $3 AND run = $1 FOR SHARE),
                        added AS (
                            INSERT INTO \(t("chunks")) (run, seq, layer, build, policy, items, payload, max_attempts,
                                lease_seconds)
                            SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 FROM owner RETURNING seq),
                        kept AS (INSERT INTO \(t("chunk_positions")) (run, seq, ranges) SELECT $1, seq, $12 FROM added)
                        SELECT count(*) FROM (SELECT pg_notify($10, '') FROM added) n
                        """, binds: b)
            }
            return PostgresQuery(
                unsafeSQL: """
                    WITH added AS (
                        INSERT INTO \(t("chunks")) (run, seq, layer, build, policy, items, payload, max_attempts,
                            lease_seconds)
                        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING seq)
                    SELECT pg_notify($10, '') FROM added
                    """, binds: b)
        }

        /// [claims take expired leases]: claim up to `limit` chunks of a layer and build, each with the lease its
        /// coordinator asked for. Rows: run, seq, attempt, policy, payload, lease seconds.
        func claim(layer: String, build: String, limit: Int32, worker: String) -> PostgresQuery {
            var b = PostgresBindings(capacity: 4)
            b.append(layer)
            b.append(build)
            b.append(limit)
            b.append(worker)
            return PostgresQuery(unsafeSQL: "SELECT * FROM \(t("claim"))($1, $2, $3, $4)", binds: b)
        }

        /// Whether chunks of `layer` wait for another build than `build` (a stale worker; or a stale
        /// coordinator). Rows: that build.
        func otherBuild(layer: String, build: String) -> PostgresQuery {
            var b = PostgresBindings(capacity: 2)
            b.append(layer)
            b.append(build)
            return PostgresQuery(unsafeSQL: "SELECT * FROM \(t("other_build"))($1, $2)", binds: b)
        }

        /// [claims take expired leases]: extend the leases of the chunks `worker` knows it holds, under those claims
        /// only: a claim whose answer was lost (the connection dropped after the commit) is not renewed, so it runs
        /// out.
        func heartbeat(_ chunks: [ClaimKey], worker: String) -> PostgresQuery { update("heartbeat", chunks, worker) }

        /// Hand claimed chunks back at once (a worker stopping): only those still under this claim; the
        /// attempt is not counted.
        func handBack(_ chunks: [ClaimKey], worker: String) -> PostgresQuery { update("hand_back", chunks, worker) }

        /// Call `function` (heartbeat, hand_back) for the rows of `chunks` still under those claims of `worker`.
        private func update(_ function: String, _ chunks: [ClaimKey], _ worker: String) -> PostgresQuery {
            var b = PostgresBindings(capacity: 4)
            b.append(chunks.map(\.run))
            b.append(chunks.map(\.seq))
            b.append(chunks.map(\.attempt))
            b.append(worker)
            return PostgresQuery(unsafeSQL: "SELECT \(t(function))($1, $2, $3, $4)", binds: b)
        }

        /// [a lost claim is released]: release the chunks claimed under `worker` other than `known` (their lease
        /// and worker cleared, the attempt not counted). Rows: how many.
        func releaseUnknown(_ known: [ClaimKey], worker: String) -> PostgresQuery {
            var b = PostgresBindings(capacity: 3)
            b.append(worker)
            b.append(known.map(\.run))
            b.append(known.map(\.seq))
            return PostgresQuery(unsafeSQL: "SELECT \(t("release_unknown"))($1, $2, $3)", binds: b)
        }

        /// [completions fenced by attempt]: complete chunks, fenced by their claims' attempts, and wake the
        /// coordinators (one NOTIFY on doneChannel when a result was written). Rows: run, seq of each result written.
        func complete(_ done: [CompletedChunk], worker: String) -> PostgresQuery {
            var b = PostgresBindings(capacity: 11)
            b.append(done.map(\.key.run))
            b.append(done.map(\.key.seq))
            b.append(done.map(\.key.attempt))
            b.append(done.map(\.payload))
            b.append(done.map(\.emitted))
            b.append(done.map(\.skipped))
            b.append(done.map(\.failed))
            b.append(done.map(\.retried))
            b.append(done.map(\.error))
            b.append(done.map(\.skipError))
            b.append(worker)
            return PostgresQuery(
                unsafeSQL: "SELECT * FROM \(t("complete"))($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)", binds: b)
        }

        /// [a worker's rights are the protocol's]: the worker's statements as functions that run with the rights of
        /// the role that makes them (the schema's owner), made by whoever makes the tables, and callable by no one
        /// until granted (EXECUTE is revoked from PUBLIC). The bodies take their parameters by position ($1): a
        /// parameter named like a column would be read as the column. The NOTIFY channel in `complete` is made of
        /// the schema's name, the one checked identifier in SQL text ([values only as binds]).
        var workerFunctions: [String] {
            let header = "LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS"
            // a chunk handed back or released: claimable at once, the attempt not counted
            let handedBack = "lease_until = NULL, worker = NULL, attempt = c.attempt - 1"
            let functions: [(signature: String, returns: String, body: String)] = [
                (
                    "claim(layer text, build text, max int4, worker text)",
                    "TABLE (run int8, seq int8, attempt int4, policy text, payload bytea, lease_seconds float8)",
                    """
                    WITH c AS MATERIALIZED (
                        SELECT run, seq FROM \(t("chunks"))
                        WHERE layer = $1 AND build = $2 AND attempt < max_attempts
                          AND (lease_until IS NULL OR lease_until < now())
                        ORDER BY run, seq LIMIT $3 FOR UPDATE SKIP LOCKED)
                    UPDATE \(t("chunks")) t SET attempt = t.attempt + 1,
                        lease_until = now() + make_interval(secs => t.lease_seconds), worker = $4
                    FROM c WHERE t.run = c.run AND t.seq = c.seq
                    RETURNING t.run, t.seq, t.attempt, t.policy, t.payload, t.lease_seconds
                    """
                ),
                (
                    "other_build(layer text, build text)", "TABLE (build text)",
                    "SELECT build FROM \(t("chunks")) WHERE layer = $1 AND build <> $2 LIMIT 1"
                ),
                (
                    "heartbeat(runs int8[], seqs int8[], attempts int4[], worker text)", "void",
                    chunksUnderClaim(set: "lease_until = now() + make_interval(secs => c.lease_seconds)")
                ),
                (
                    "hand_back(runs int8[], seqs int8[], attempts int4[], worker text)", "void",
                    chunksUnderClaim(set: handedBack)
                ),
                (
                    "release_unknown(worker text, runs int8[], seqs int8[])", "int8",
                    """
                    WITH r AS (
                        UPDATE \(t("chunks")) c SET \(handedBack)
                        WHERE c.worker = $1
                          AND NOT EXISTS (SELECT 1 FROM unnest($2, $3) AS k(run, seq) WHERE k.run = c.run AND k.seq = c.seq)
                        RETURNING 1)
                    SELECT count(*) FROM r
                    """
                ),
                (
                    """
                    complete(runs int8[], seqs int8[], attempts int4[], payloads bytea[], emitted int4[], skipped int4[],
                        failed int4[], retried int4[], errors text[], skip_errors text[], worker text)
                    """,
                    "TABLE (run int8, seq int8)",
                    """
                    WITH i AS (
                        SELECT * FROM unnest($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                        AS i(run, seq, attempt, payload, emitted, skipped, failed, retried, error, skip_error)),
                    d AS (
                        DELETE FROM \(t("chunks")) c USING i
                        WHERE c.run = i.run AND c.seq = i.seq AND c.attempt = i.attempt RETURNING c.run, c.seq),
                    w AS (
                        INSERT INTO \(t("results"))
                            (run, seq, payload, emitted, skipped, failed, retried, error, skip_error, worker)
                        SELECT i.run, i.seq, i.payload, i.emitted, i.skipped, i.failed, i.retried, i.error, i.skip_error,
                            $11
                        FROM i JOIN d ON d.run = i.run AND d.seq = i.seq
                        ON CONFLICT (run, seq) DO NOTHING
                        RETURNING run, seq),
                    n AS (SELECT pg_notify('\(doneChannel)', '') FROM (SELECT 1 FROM w LIMIT 1) one)
                    SELECT w.run, w.seq FROM w LEFT JOIN n ON true
                    """
                ),
            ]
            return functions.flatMap { function in
                let name = function.signature.prefix { $0 != "(" }
                let types = function.signature.drop { $0 != "(" }
                return [
                    "CREATE OR REPLACE FUNCTION \(t(String(name)))\(types) RETURNS \(function.returns) \(header) $$\n\(function.body)\n$$",
                    "REVOKE EXECUTE ON FUNCTION \(t(String(name)))\(types) FROM PUBLIC",
                ]
            }
        }

        /// The body of heartbeat and hand_back: `set` on the rows of the given claims that are still `worker`'s.
        private func chunksUnderClaim(set: String) -> String {
            """
            UPDATE \(t("chunks")) c SET \(set)
            FROM unnest($1, $2, $3) AS h(run, seq, attempt)
            WHERE c.run = h.run AND c.seq = h.seq AND c.attempt = h.attempt AND c.worker = $4
            """
        }

        /// [each result handed over once]: read a run's results (deleted by `drop` once they are handed over). Rows:
        /// seq, payload, emitted, skipped, failed, retried, error, skip_error, worker.
        func results(run: Int64) -> PostgresQuery {
            var b = PostgresBindings(capacity: 1)
            b.append(run)
            return PostgresQuery(
                unsafeSQL: """
                    SELECT seq, payload, emitted, skipped, failed, retried, error, skip_error, worker
                    FROM \(t("results")) WHERE run = $1
                    """, binds: b)
        }

        /// [each result handed over once]: delete results of a run that were handed over, and in a named run their
        /// positions ([a named run's chunks keep their positions]).
        func drop(run: Int64, seqs: [Int64], named: Bool) -> PostgresQuery {
            var b = PostgresBindings(capacity: 2)
            b.append(run)
            b.append(seqs)
            let results = "DELETE FROM \(t("results")) WHERE run = $1 AND seq = ANY($2::int8[])"
            guard named else { return PostgresQuery(unsafeSQL: results, binds: b) }
            return PostgresQuery(
                unsafeSQL: """
                    WITH r AS (\(results))
                    DELETE FROM \(t("chunk_positions")) WHERE run = $1 AND seq = ANY($2::int8[])
                    """, binds: b)
        }

        /// [undone writes written again]: which of a run's chunks `seqs` are in none of chunks, results and
        /// dead_letters. Rows: seq.
        func missing(run: Int64, seqs: [Int64]) -> PostgresQuery {
            var b = PostgresBindings(capacity: 2)
            b.append(run)
            b.append(seqs)
            return PostgresQuery(
                unsafeSQL: """
                    SELECT s FROM unnest($2::int8[]) AS s
                    WHERE NOT EXISTS (SELECT 1 FROM \(t("chunks")) c WHERE c.run = $1 AND c.seq = s)
                      AND NOT EXISTS (SELECT 1 FROM \(t("results")) r WHERE r.run = $1 AND r.seq = s)
                      AND NOT EXISTS (SELECT 1 FROM \(t("dead_letters")) d WHERE d.run = $1 AND d.seq = s)
                    """, binds: b)
        }

        /// [each result handed over once]: a run's dead letters, read again after a burial whose answer may have been
        /// lost. Rows: seq, attempts.
        func dead(run: Int64) -> PostgresQuery {
            var b = PostgresBindings(capacity: 1)
            b.append(run)
            return PostgresQuery(
                unsafeSQL: "SELECT seq, attempts FROM \(t("dead_letters")) WHERE run = $1", binds: b)
        }

        /// [each result handed over once]: move a run's chunks whose last attempt's lease ran out to the dead letters.
        /// Rows: seq, attempts.
        func bury(run: Int64) -> PostgresQuery {
            var b = PostgresBindings(capacity: 1)
            b.append(run)
            return PostgresQuery(
                unsafeSQL: """
                    WITH d AS (
                        DELETE FROM \(t("chunks")) WHERE run = $1 AND attempt >= max_attempts AND lease_until < now()
                        RETURNING run, seq, layer, items, payload, attempt, worker)
                    INSERT INTO \(t("dead_letters")) (run, seq, layer, items, payload, attempts, last_worker)
                    SELECT run, seq, layer, items, payload, attempt, worker FROM d
                    ON CONFLICT (run, seq) DO NOTHING
                    RETURNING seq, attempts
                    """, binds: b)
        }

        /// Forget all that is left of a run ([a run leaves no rows]): its chunks, then (a second statement, so that it
        /// sees a completion that committed while the first waited for a row) its results, then its chunks' positions.
        func forget(run: Int64) -> [PostgresQuery] {
            ["chunks", "results", "chunk_positions"].map { table in
                var b = PostgresBindings(capacity: 1)
                b.append(run)
                return PostgresQuery(unsafeSQL: "DELETE FROM \(t(table)) WHERE run = $1", binds: b)
            }
        }

        /// [a named run's layer has one coordinator run]: the statements of one transaction in which coordinator run
        /// `run` takes over layer `layer` of the named run `name`. The first locks the layer's owner row and returns
        /// the run it names (none, or one other); the second records `run` in it, so from then on the one before
        /// writes nothing ([a taken-over coordinator writes nothing]).
        func own(name: String, layer: String, run: Int64) -> (before: PostgresQuery, record: PostgresQuery) {
            var b = PostgresBindings(capacity: 3)
            b.append(name)
            b.append(layer)
            b.append(run)
            return (
                PostgresQuery(
                    unsafeSQL: "SELECT run FROM \(t("named_runs")) WHERE name = $1 AND layer = $2 FOR UPDATE",
                    binds: b),
                PostgresQuery(
                    unsafeSQL: """
                        INSERT INTO \(t("named_runs")) (name, layer, run) VALUES ($1, $2, $3)
                        ON CONFLICT (name, layer) DO UPDATE SET run = EXCLUDED.run
                        """, binds: b)
            )
        }

        /// [a taking-over coordinator keeps what was done]: in the take-over's transaction, after `own`, move what
        /// coordinator run `old` left to run `run`, under the same seqs: its chunks, to be claimed afresh (a worker
        /// still on one is fenced by the changed key, [completions fenced by attempt]), its results, and the positions
        /// of both; positions of anything else of `old` (dead letters) are deleted.
        func takeOver(from old: Int64, to run: Int64) -> PostgresQuery {
            var b = PostgresBindings(capacity: 2)
            b.append(old)
            b.append(run)
            return PostgresQuery(
                unsafeSQL: """
                    WITH c AS (
                        UPDATE \(t("chunks")) SET run = $2, attempt = 0, lease_until = NULL, worker = NULL
                        WHERE run = $1 RETURNING seq),
                    r AS (UPDATE \(t("results")) SET run = $2 WHERE run = $1 RETURNING seq),
                    moved AS (SELECT seq FROM c UNION ALL SELECT seq FROM r),
                    gone AS (
                        DELETE FROM \(t("chunk_positions"))
                        WHERE run = $1 AND seq NOT IN (SELECT seq FROM moved))
                    UPDATE \(t("chunk_positions")) SET run = $2
                    WHERE run = $1 AND seq IN (SELECT seq FROM moved)
                    """, binds: b)
        }

        /// [chunks nobody claims are said]: how many of a run's chunks are claimed, and how many there are. Rows: the
        /// two counts.
        func claimed(run: Int64) -> PostgresQuery {
            var b = PostgresBindings(capacity: 1)
            b.append(run)
            return PostgresQuery(
                unsafeSQL:
                    "SELECT count(*) FILTER (WHERE worker IS NOT NULL), count(*) FROM \(t("chunks")) WHERE run = $1",
                binds: b)
        }

        /// [a named run's chunks keep their positions]: the positions of a run's chunks. Rows: seq, ranges.
        func positions(run: Int64) -> PostgresQuery {
            var b = PostgresBindings(capacity: 1)
            b.append(run)
            return PostgresQuery(
                unsafeSQL: "SELECT seq, ranges FROM \(t("chunk_positions")) WHERE run = $1", binds: b)
        }

    }

    /// A claim of one chunk: which chunk, under which attempt ([claims take expired leases],
    /// [completions fenced by attempt]).
    struct ClaimKey: Hashable, Sendable {
        let run: Int64
        let seq: Int64
        let attempt: Int32
    }

    /// What a worker made of one claimed chunk, ready for the completion statement ([completions fenced by attempt]).
    struct CompletedChunk: Sendable {
        let key: ClaimKey
        let payload: ByteBuffer
        let emitted: Int32
        let skipped: Int32
        let failed: Int32
        let retried: Int32
        /// The failure's text ("" when none), and the first skipped item's error text ("" when none).
        let error: String
        let skipError: String
    }
#endif
