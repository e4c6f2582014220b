// SQLiteRunStore.swift — a named run's checkpoint in SQLite, beside the rows its committing collector
// writes, in one transaction ([rows and checkpoint in one transaction]).
//
// Invariants:
//  [one transaction at a time on the connection] SQLite has one transaction per connection: the store's
//    transactions are serialised by the collector (one batch at a time), and the store must be the only user of
//    its connection while a run commits (another user's statements would join the open transaction).
//  [an SQLite checkpoint row moves one commit at a time] The run's row is inserted with sequence 1 only when there is none,
//    and updated to sequence n only from n - 1 (RunStore's [a checkpoint replaces only its predecessor]); BEGIN
//    IMMEDIATE takes the write lock first, so another process's transaction cannot slip between the check and
//    the write.
#if SQLite  // the package trait that brings sqlite-nio (Package.swift)
    import AsyncFlow
    import SQLiteNIO

    /// A ``RunStore`` in an SQLite database (sqlite-nio): the collector's body writes its rows through the
    /// connection inside an open transaction, and the run's checkpoint is saved in the same transaction, in
    /// a table of its own (`asyncflow_runs` by default, created on first use).
    ///
    /// ```swift
    /// let db = try await SQLiteConnection.open(storage: .file(path: "scores.sqlite"))
    /// let store = try SQLiteRunStore(connection: db)
    /// try await pipeline(
    ///     Layer(0..<records.count),
    ///     Layer(workers: 4) { i in score(records[i]) },
    ///     Layer(committing: store, run: "scores", batchesOf: 500) { rows, db in
    ///         try await db.query("INSERT INTO scores ...", binds)
    ///     })
    /// ```
    /// The store must be its connection's only user while a run commits
    /// ([one transaction at a time on the connection]).
    public struct SQLiteRunStore: RunStore {
        public typealias Transaction = SQLiteConnection

        public let connection: SQLiteConnection
        /// The checkpoints' table: a lower-case SQL identifier.
        public let table: String

        /// A store on `connection`, keeping checkpoints in `table`.
        public init(connection: SQLiteConnection, table: String = "asyncflow_runs") throws {
            if let problem = sqlIdentifierProblem(table, parameter: "table") { throw SQLiteRunStoreError(problem) }
            self.connection = connection
            self.table = table
        }

        public func checkpoint(of run: String) async throws -> String? {
            try await sql(
                """
                CREATE TABLE IF NOT EXISTS \(table) (run TEXT PRIMARY KEY, sequence INTEGER NOT NULL,
                    checkpoint TEXT NOT NULL, updated_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)
                """)
            return try await sql("SELECT checkpoint FROM \(table) WHERE run = ?", [.text(run)]).first?.column(
                "checkpoint")?.string
        }

        /// [one transaction at a time on the connection], [an SQLite checkpoint row moves one commit at a time]
        public func transaction(_ body: (SQLiteConnection) async throws -> Void) async throws {
            try await sql("BEGIN IMMEDIATE")
            do {
                try await body(connection)
                try await sql("COMMIT")
            } catch {
                _ = try? await sql("ROLLBACK")  // after a failed COMMIT too (SQLite may keep the transaction open)
                throw error
            }
        }

        public func save(
            run: String, checkpoint: String, sequence: UInt64, in connection: SQLiteConnection
        ) async throws -> Bool {
            let binds: [SQLiteData] = [.text(run), .integer(Int(sequence)), .text(checkpoint)]
            let statement =
                sequence == 1
                ? "INSERT INTO \(table) (run, sequence, checkpoint) VALUES (?1, ?2, ?3) ON CONFLICT (run) DO NOTHING RETURNING 1"
                : """
                UPDATE \(table) SET sequence = ?2, checkpoint = ?3, updated_at = CURRENT_TIMESTAMP
                WHERE run = ?1 AND sequence = ?2 - 1 RETURNING 1
                """
            return try await connection.query(statement, binds).count == 1
        }

        /// One statement on the store's connection (the async overload).
        @discardableResult
        func sql(_ statement: String, _ binds: [SQLiteData] = []) async throws -> [SQLiteRow] {
            try await connection.query(statement, binds)
        }
    }

    /// A ``SQLiteRunStore`` was given something it cannot use (the error names it).
    public struct SQLiteRunStoreError: Error, Sendable, CustomStringConvertible {
        public let description: String

        init(_ message: String) { description = message }
    }
#endif
