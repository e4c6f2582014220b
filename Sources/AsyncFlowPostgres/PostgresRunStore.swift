// PostgresRunStore.swift — a named run's checkpoint in PostgreSQL, beside the rows its committing
// collector writes, in one transaction ([rows and checkpoint in one transaction]).
//
// Invariants:
//  [a PostgreSQL checkpoint row moves one commit at a time] The run's row is inserted with sequence 1 only when there is none,
//    and updated to sequence n only from n - 1 (RunStore's [a checkpoint replaces only its predecessor]). Under
//    READ COMMITTED an UPDATE whose row another transaction changed re-reads it and checks the condition again, so
//    two transactions saving the same sequence cannot both succeed.
//  [one wait for the checkpoint and its commit] A batch's transaction is BEGIN, the rows, then the checkpoint's
//    statement and COMMIT (ROLLBACK when the save found another checkpoint or failed), the last two sent from the
//    connection's event loop one after the other, so the collector waits once for both. BEGIN is awaited before
//    the rows: rows never run outside the transaction. The checkpoint is saved after the rows, so its row is
//    locked only from the save to the commit.
#if Postgres  // the package trait that brings postgres-nio (Package.swift)
    import AsyncFlow
    import Foundation
    import Logging
    import PostgresNIO

    /// A ``RunStore`` in PostgreSQL (postgres-nio): the collector's body writes its rows through the
    /// transaction's connection, and the run's checkpoint is saved in the same transaction, in a table of
    /// its own (`asyncflow_runs` by default, created on first use).
    ///
    /// ```swift
    /// let store = PostgresRunStore(client: client)   // a running PostgresClient
    /// try await pipeline(
    ///     Layer(0..<records.count),
    ///     Layer(workers: 4) { i in score(records[i]) },
    ///     Layer(committing: store, run: "scores-2026-12", batchesOf: 500) { rows, connection in
    ///         try await connection.query("INSERT INTO scores ...", logger: logger)
    ///     })
    /// ```
    public struct PostgresRunStore: RunStore {
        public typealias Transaction = PostgresConnection

        public let client: PostgresClient
        /// The checkpoints' table: a lower-case SQL identifier, optionally `schema.table`.
        public let table: String
        let logger: Logger
        /// The task running `client` when the store made it (connect(url:)); nil when the caller runs it.
        let runner: Task<Void, Never>?
        /// When the store made its client (connect(url:)): its first connection, checked once before the first
        /// statement ([the first connection is checked alone]).
        let firstCheck: (check: Once, url: ConnectionURL, timeout: Duration)?

        /// A store on `client` (which must be running), keeping checkpoints in `table`.
        public init(client: PostgresClient, table: String = "asyncflow_runs", logger: Logger? = nil) throws {
            self.init(
                client: client, checkedTable: try Self.checked(table: table), logger: logger, runner: nil,
                firstCheck: nil)
        }

        /// A store with a connection pool of its own to `url` (default: the `DATABASE_URL` environment
        /// variable), read as ``PostgresWorkQueue`` reads it; ``shutdown()`` ends the pool. As a queue's, its
        /// first connection is made alone before the first statement: a wrong password, an unknown role or
        /// database fails the run at once (`PostgresWorkQueueError`, `.refused`), and a server that cannot be
        /// reached is tried again, each attempt logged, until `connectTimeout` (`.unreachable`).
        public static func connect(
            url: String? = nil, table: String = "asyncflow_runs", logger: Logger? = nil,
            connectTimeout: Duration = .seconds(30)
        ) throws -> PostgresRunStore {
            let table = try checked(table: table)  // before the pool starts running
            guard connectTimeout > .zero else {
                throw PostgresWorkQueueError("connectTimeout: \(connectTimeout): must be more than zero")
            }
            let connection = try ConnectionURL(try databaseURL(url))
            let client = PostgresClient(configuration: connection.configuration)
            return PostgresRunStore(
                client: client, checkedTable: table, logger: logger, runner: Task { await client.run() },
                firstCheck: (Once(), connection, connectTimeout))
        }

        /// End the connection pool that connect(url:) made (nothing when the caller runs the client).
        public func shutdown() async {
            runner?.cancel()
            await runner?.value
        }

        init(
            client: PostgresClient, checkedTable table: String, logger: Logger?, runner: Task<Void, Never>?,
            firstCheck: (check: Once, url: ConnectionURL, timeout: Duration)?
        ) {
            self.runner = runner
            self.client = client
            self.table = table
            self.logger = logger ?? Logger(label: "AsyncFlowPostgres.PostgresRunStore")
            self.firstCheck = firstCheck
        }

        /// `table` as TABLE or SCHEMA.TABLE of lower-case SQL identifiers, or an error naming it.
        static func checked(table: String) throws -> String {
            let parts = table.split(separator: ".", omittingEmptySubsequences: false)
            for part in parts { _ = try sqlIdentifier(String(part), parameter: "table") }
            if parts.count > 2 { throw PostgresWorkQueueError("table: \"\(table)\": expected TABLE or SCHEMA.TABLE") }
            return table
        }

        /// The first statement of a run: the first connection is checked first, when the store made its client.
        public func checkpoint(of run: String) async throws -> String? {
            if let (check, url, timeout) = firstCheck {
                try await check.run {
                    try await checkFirstConnection(
                        url.single, to: url.masked, within: timeout, logger: logger, background: logger)
                }
            }
            var binds = PostgresBindings(capacity: 1)
            binds.append(run)
            let read = PostgresQuery(unsafeSQL: "SELECT checkpoint FROM \(table) WHERE run = $1", binds: binds)
            do {
                return try await firstCheckpoint(read)
            } catch let error as PSQLError where error.serverInfo?[.sqlState] == "42P01" {
                // no table yet: made here, so a role that may only read and write an existing one never creates
                try await client.query(
                    PostgresQuery(
                        unsafeSQL: """
                            CREATE TABLE IF NOT EXISTS \(table) (run text PRIMARY KEY, sequence int8 NOT NULL,
                                checkpoint text NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())
                            """), logger: logger)
                return try await firstCheckpoint(read)
            }
        }

        func firstCheckpoint(_ read: PostgresQuery) async throws -> String? {
            for try await checkpoint in try await client.query(read, logger: logger).decode(String.self) {
                return checkpoint
            }
            return nil
        }

        /// The body's own error when it threw and the rollback went through (the collector's policy sees the
        /// user's error); postgres-nio's PostgresTransactionError otherwise.
        public func transaction(_ body: (PostgresConnection) async throws -> Void) async throws {
            do {
                try await client.withTransaction(logger: logger) { connection in try await body(connection) }
            } catch let error as PostgresTransactionError {
                if let own = error.closureError, error.rollbackError == nil, error.beginError == nil { throw own }
                throw error
            }
        }

        /// The rows, then the checkpoint and COMMIT sent one after the other with no wait between them
        /// ([one wait for the checkpoint and its commit]). BEGIN is awaited first, so the rows never run
        /// outside the transaction.
        public func commit(
            run: String, checkpoint: String, sequence: UInt64, rows: (PostgresConnection) async throws -> Void
        ) async throws -> Bool {
            try await client.withConnection { connection in
                try await connection.query("BEGIN", logger: logger)
                do {
                    try await rows(connection)
                } catch {
                    // a rollback that fails leaves a connection that is gone (the pool closes it)
                    _ = try? await connection.query("ROLLBACK", logger: logger)
                    throw error
                }
                let logger = self.logger
                // [one wait for the checkpoint and its commit]: COMMIT (or ROLLBACK) is sent from the connection's
                // event loop as soon as the checkpoint's answer arrives
                return try await connection.query(saving(run, checkpoint, sequence), logger: logger)
                    .flatMapError { error in
                        // the save failed (the transaction is aborted): roll back, report the save's error
                        connection.query("ROLLBACK", logger: logger).flatMapThrowing { _ in throw error }
                            .flatMapErrorThrowing { _ in throw error }
                    }
                    .flatMap { answer in
                        let saved = answer.rows.count == 1
                        return connection.query(saved ? "COMMIT" : "ROLLBACK", logger: logger).map { _ in saved }
                    }
                    .get()
            }
        }

        /// [a PostgreSQL checkpoint row moves one commit at a time]
        public func save(
            run: String, checkpoint: String, sequence: UInt64, in connection: PostgresConnection
        ) async throws -> Bool {
            let rows = try await connection.query(saving(run, checkpoint, sequence), logger: logger)
            for try await _ in rows.decode(Int32.self) { return true }
            return false
        }

        /// The statement that saves checkpoint number `sequence` over number `sequence - 1` (or over none), with
        /// one row in its answer when it did ([a PostgreSQL checkpoint row moves one commit at a time]).
        func saving(_ run: String, _ checkpoint: String, _ sequence: UInt64) -> PostgresQuery {
            var binds = PostgresBindings(capacity: 3)
            binds.append(run)
            binds.append(Int64(sequence))
            binds.append(checkpoint)
            let sql =
                sequence == 1
                ? "INSERT INTO \(table) (run, sequence, checkpoint) VALUES ($1, $2, $3) ON CONFLICT (run) DO NOTHING RETURNING 1"
                : """
                UPDATE \(table) SET sequence = $2, checkpoint = $3, updated_at = now()
                WHERE run = $1 AND sequence = $2 - 1 RETURNING 1
                """
            return PostgresQuery(unsafeSQL: sql, binds: binds)
        }
    }
#endif
