// PostgresWorkQueue.swift — the PostgreSQL database that a coordinator and its workers share: the
// connection pool (from a URL), the schema (made on first use, or by its owner), and running the protocol's statements
// (Statements) with a bound on how long each may take.
//
// Invariants:
//  [a hung statement is given up] A statement that has not finished within statementLimit, or whose connection is
//    closed while it waits for its answer, is given up (its caller retries) and the connection pool is replaced:
//    postgres-nio can leave a statement waiting for ever on a connection the server closed (a restart, a
//    terminated backend, a reset), and its pool every later request after a server restart. Giving up is safe:
//    every statement is idempotent or fenced ([completions fenced by attempt]).
//  [the first connection is checked alone] Before its first statement a queue makes one connection of its own:
//    a refusal that cannot heal (a password, a role, a database) fails at once with the server's reason; a
//    connection that cannot be made is tried again, each failure logged, until connectTimeout. (postgres-nio's pool
//    would try for ever, and its requests wait without an error.)
//  [an outage is logged, not each failure] While statements fail for a lost connection, the queue logs when the
//    outage starts, every Outage.notice (10 s) while it lasts, and when it ends with its length; the callers retry
//    quietly.
//  [a schema is made once by a role that may] A schema at this build's version is used as it is: a queue's first
//    use reads `meta` and runs no DDL, so a coordinator's or a worker's role needs no right to create anything. A
//    missing schema, or one of version 2, is made or brought to this version by the first user that may (under an
//    advisory lock, so concurrent first users do not race); a role that may not fails at once (.refused), naming
//    setUp().
#if Postgres  // the package trait that brings postgres-nio (Package.swift)
    import AsyncFlow
    import Foundation
    import Logging
    import PostgresNIO
    import Synchronization

    /// A PostgreSQL database used as the work queue of distributed layers: the coordinator's pipeline and
    /// every ``FlowWorker`` connect to the same one.
    ///
    /// ```swift
    /// let queue = try PostgresWorkQueue()          // DATABASE_URL, schema "asyncflow"
    /// ```
    public final class PostgresWorkQueue: Sendable, CustomStringConvertible {
        /// The schema holding the queue's tables (created on first use).
        public let schema: String
        /// The URL with its password masked.
        public let description: String
        /// Where the queue's own lines go (notices and warnings by default); postgres-nio's go to its own
        /// logger (errors only by default).
        let logger: Logger
        let configuration: PostgresClient.Configuration
        /// One connection's configuration ([the first connection is checked alone]).
        let single: PostgresConnection.Configuration
        /// How long the first connection may take to succeed ([the first connection is checked alone]).
        let connectTimeout: Duration
        let outage = Locked(Outage())
        let backgroundLogger: Logger
        /// The client (a connection pool) and the task that runs it; replaced when a statement hangs
        /// ([a hung statement is given up]).
        let current: Locked<(client: PostgresClient, runner: Task<Void, Never>)>
        let sql: Statements
        /// A test seam: called after each statement has run, with its SQL and the rows it returned (nil when
        /// they are discarded); what it throws is the statement's error, as if the answer had been lost with
        /// the connection after the commit. nil outside tests.
        let afterStatement: (@Sendable (_ sql: String, _ rows: Int?) throws -> Void)?
        let ready = Once()
        /// prepare() has succeeded once: the queue has reached its database (before, nothing was written).
        let reached = Atomic<Bool>(false)

        /// Connect to `url` (default: the `DATABASE_URL` environment variable), a
        /// `postgres://user:password@host:port/database?sslmode=...` URL. `sslmode` is `disable`, `allow`,
        /// `prefer` (the default), `require`, `verify-ca` or `verify-full`, as libpq reads it; `sslrootcert=PATH`
        /// names the CA certificate that verify-ca and verify-full trust (else the system's).
        /// - Parameters:
        ///   - schema: where the queue's tables live; a lower-case SQL identifier.
        ///   - logger: where the queue's lines go (an outage, a named run taken over, a coordinator whose chunks nobody
        ///     claims) and postgres-nio's; by default the queue's notices and warnings, and postgres-nio's errors only.
        ///   - synchronousCommit: whether each of the queue's commits waits until the server has flushed it to disk.
        ///     Off by default (the queue's sessions set `synchronous_commit = off`): the protocol does not need it
        ///     ([commits need not be durable]: a commit that a server crash undoes is found and redone, and a result
        ///     handed over twice finds its slot closed), and on small chunks it is a third of the time. Turn it on if
        ///     your server's rules ask for it.
        ///   - connectTimeout: how long the first connection may take. A server that refuses the connection for a
        ///     reason trying again cannot change (a wrong password, an unknown role or database) fails the first
        ///     statement at once, with the server's reason; one that cannot be reached is tried again, each attempt
        ///     logged, until this has passed (then `PostgresWorkQueueError`, `.unreachable`). A connection lost
        ///     later is waited for as long as it takes, logged when the wait starts, every 10 s and when it ends.
        public convenience init(
            url: String? = nil, schema: String = "asyncflow", logger: Logger? = nil, synchronousCommit: Bool = false,
            connectTimeout: Duration = .seconds(30)
        ) throws {
            try self.init(
                url: url, schema: schema, logger: logger, synchronousCommit: synchronousCommit,
                connectTimeout: connectTimeout, afterStatement: nil)
        }

        /// How long a coordinator's chunks may wait with no worker on them before it says so
        /// ([chunks nobody claims are said]; shorter in tests).
        let unclaimedNotice: Duration

        /// The public initialiser, with test seams (see afterStatement, unclaimedNotice).
        init(
            url: String?, schema: String, logger: Logger?, synchronousCommit: Bool,
            connectTimeout: Duration = .seconds(30),
            unclaimedNotice: Duration = .seconds(10),
            afterStatement: (@Sendable (_ sql: String, _ rows: Int?) throws -> Void)?
        ) throws {
            self.unclaimedNotice = unclaimedNotice
            let url = try databaseURL(url)
            _ = try sqlIdentifier(schema, parameter: "schema")
            guard connectTimeout > .zero else {
                throw PostgresWorkQueueError("connectTimeout: \(connectTimeout): must be more than zero")
            }
            let connection = try ConnectionURL(url)
            var own = logger ?? Logger(label: "AsyncFlowPostgres")
            var background = logger ?? Logger(label: "AsyncFlowPostgres.postgres-nio")
            if logger == nil {
                own.logLevel = .notice
                background.logLevel = .error
            }
            self.schema = schema
            self.description = connection.masked
            self.logger = own
            self.backgroundLogger = background
            self.sql = Statements(schema: schema)
            self.afterStatement = afterStatement
            self.connectTimeout = connectTimeout
            var configuration = connection.configuration
            if !synchronousCommit {  // [commits need not be durable]
                configuration.options.additionalStartupParameters.append(("synchronous_commit", "off"))
            }
            self.configuration = configuration
            self.single = connection.single
            current = Locked(Self.connect(configuration, background))
        }

        deinit { current.withLock { $0.runner.cancel() } }

        static func connect(
            _ configuration: PostgresClient.Configuration, _ logger: Logger
        ) -> (client: PostgresClient, runner: Task<Void, Never>) {
            let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
            return (client, Task { await client.run() })
        }

        /// The connection pool in use.
        var client: PostgresClient { current.withLock { $0.client } }

        /// [a hung statement is given up]: replace `stale` (a pool whose statement hung) with a new pool, unless that
        /// was done already.
        func renew(_ stale: PostgresClient, because why: String) {
            let renewed = current.withLock { c in
                guard c.client === stale else { return false }
                c.runner.cancel()
                c = Self.connect(configuration, backgroundLogger)
                return true
            }
            if renewed {
                logger.warning("AsyncFlowPostgres: a statement was given up (\(why)); reconnected to \(description)")
            }
        }

        /// Close the connections (the queue is unusable afterwards).
        public func shutdown() async {
            let runner = current.withLock { $0.runner }
            runner.cancel()
            await runner.value
        }

        /// Before the first statement, once per queue object: check the first connection, then use the schema as
        /// it is when it holds this build's version, else make it ([a schema is made once by a role that may]).
        func prepare() async throws {
            try await ready.run {
                try await self.connect()
                defer { self.reached.store(true, ordering: .releasing) }
                if try await self.versions() == [Statements.version] { return }
                try await self.make()
            }
        }

        /// Make the queue's schema, tables and functions unless they exist, or bring them to this build's version:
        /// what the queue's first use does, for the schema's owner to run once when the coordinators' and workers'
        /// roles may not create anything (``privileges(coordinator:worker:)`` lists what they are granted).
        public func setUp() async throws {
            try await connect()
            try await make()
        }

        /// The grants that let `coordinator` run distributed layers on this queue and `worker` serve them, and
        /// nothing more ([a worker's rights are the protocol's]), for the schema's owner to run after ``setUp()``:
        /// a coordinator reads and writes the queue's tables; a worker calls the queue's functions (claim, renew,
        /// hand back and complete chunks) and reads its version. Neither may create, alter or drop anything.
        /// Both roles are lower-case SQL identifiers.
        public func privileges(coordinator: String, worker: String) throws -> [String] {
            let coordinator = try sqlIdentifier(coordinator, parameter: "coordinator")
            let worker = try sqlIdentifier(worker, parameter: "worker")
            let schema = "\"\(self.schema)\""
            return [
                "GRANT USAGE ON SCHEMA \(schema) TO \(coordinator), \(worker)",
                "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA \(schema) TO \(coordinator)",
                "GRANT SELECT ON \(schema).meta TO \(worker)",
                "GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA \(schema) TO \(worker)",
            ]
        }

        /// The schema's version rows; none when the schema or its `meta` table does not exist.
        func versions() async throws -> [Int32] {
            do {
                return try await Self.versions(in: client.query(sql.version, logger: logger))
            } catch let error as PSQLError where ["3F000", "42P01"].contains(error.serverInfo?[.sqlState]) {
                return []  // no such schema, no such table
            }
        }

        /// The version rows of `sql.version`'s answer.
        static func versions(in rows: PostgresRowSequence) async throws -> [Int32] {
            var versions: [Int32] = []
            for try await v in rows.decode(Int32.self) { versions.append(v) }
            return versions
        }

        /// [a schema is made once by a role that may]: create what is missing under an advisory lock (so
        /// concurrent first users do not race), or bring version 2's tables to this version (the worker's
        /// functions). A role that may not create them fails with the owner's way out.
        func make() async throws {
            let (sql, logger) = (self.sql, self.logger)
            do {
                try await client.withTransaction(logger: logger) { connection in
                    try await connection.query(sql.lockSchema, logger: logger)
                    for statement in sql.create {
                        try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                    }
                    let versions = try await Self.versions(in: connection.query(sql.version, logger: logger))
                    guard versions != [Statements.version] else { return }
                    guard versions.isEmpty || versions == [2] else {
                        throw PostgresWorkQueueError(
                            "schema \(sql.schema) holds AsyncFlowPostgres tables of version \(versions), this build uses \(Statements.version): use another schema: or drop it"
                        )
                    }
                    for statement in (versions.isEmpty ? sql.firstUse : sql.fromVersion2) + sql.workerFunctions {
                        try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                    }
                    try await connection.query(sql.setVersion, logger: logger)
                }
            } catch let error as PostgresTransactionError {
                let reason = error.closureError ?? error.beginError ?? error.commitError ?? error
                if let e = reason as? PSQLError, e.serverInfo?[.sqlState] == "42501" {
                    throw PostgresWorkQueueError(
                        "schema \(sql.schema) is not set up for this build (version \(Statements.version)) and this "
                            + "connection's role may not make it (\(failureReason(e))): the schema's owner runs "
                            + "PostgresWorkQueue.setUp() once", kind: .refused)
                }
                throw reason
            }
        }

        /// [the first connection is checked alone]
        func connect() async throws {
            try await checkFirstConnection(
                single, to: description, within: connectTimeout, logger: logger, background: backgroundLogger)
        }

        /// Signal `wakeup` on every NOTIFY on `channel` (and once when listening starts: a notification may
        /// have come before LISTEN took effect), until cancelled; listens again after connection errors.
        func listen(on channel: String, _ wakeup: Wakeup) async {
            while !Task.isCancelled {
                do {
                    try await prepare()
                    try await client.withConnection { connection in
                        try await connection.listen(on: channel) { notifications in
                            wakeup.signal()
                            for try await _ in notifications { wakeup.signal() }
                        }
                    }
                } catch {
                    if Task.isCancelled { return }
                    try? await Task.sleep(for: .milliseconds(200))
                }
            }
        }

        /// Run a statement, discarding its rows.
        func run(_ query: PostgresQuery) async throws {
            try await prepare()
            let client = self.client
            try await bounded(client) { connection in _ = try await connection.query(query, logger: self.logger) }
            try afterStatement?(query.sql, nil)
        }

        /// Run a statement and decode its rows.
        func rows<each T: PostgresDecodable & Sendable>(_ query: PostgresQuery, as: (repeat each T).Type) async throws
            -> [(repeat each T)]
        {
            try await prepare()
            let client = self.client
            return try await bounded(client) { connection in
                var out: [(repeat each T)] = []
                for try await row in try await connection.query(query, logger: self.logger).decode((repeat each T).self)
                {
                    out.append(row)
                }
                try self.afterStatement?(query.sql, out.count)
                return out
            }
        }

        /// How long a statement may take before its caller gives up on it (and retries): every statement of
        /// the protocol is short.
        static let statementLimit = Duration.seconds(5)
        /// How often a statement's connection is looked at while it runs ([a hung statement is given up]).
        static let closedCheck = Duration.milliseconds(100)

        /// Run `work` on a connection of `client`, in a task of its own; if it has not finished within
        /// statementLimit, or its connection is closed under it, throw and replace the pool
        /// ([a hung statement is given up]; the task is left to end on its own).
        func bounded<T: Sendable>(
            _ client: PostgresClient, _ work: @escaping @Sendable (PostgresConnection) async throws -> T
        ) async throws -> T {
            try await withCheckedThrowingContinuation { c in
                let first = FirstResume(c)
                let on = StatementConnection()
                let timer = Task {
                    let deadline = ContinuousClock.now + Self.statementLimit
                    var closed = false
                    while !closed && ContinuousClock.now < deadline {
                        guard (try? await Task.sleep(for: Self.closedCheck)) != nil else { return }
                        closed = on.closed  // [a hung statement is given up]: its connection closed under it
                    }
                    let why =
                        closed ? "its connection closed under it" : "it did not finish within \(Self.statementLimit)"
                    first.resume(
                        with: .failure(PostgresWorkQueueError("a statement was given up: \(why)", transient: true)))
                    self.renew(client, because: why)
                }
                Task {
                    let began = ContinuousClock.now
                    let result: Result<T, any Error>
                    do {
                        result = .success(
                            try await client.withConnection { connection in
                                on.connection.withLock { $0 = connection }
                                return try await work(connection)
                            })
                    } catch { result = .failure(error) }
                    timer.cancel()
                    first.resume(with: result)
                    self.note(result, began: began)
                }
            }
        }

        /// [a named run's layer has one coordinator run]: in one transaction, record coordinator run `run` as the one
        /// that serves layer `layer` of the named run `name`, and move to it what the one before it left
        /// ([a taking-over coordinator keeps what was done]). Returns the chunks moved: seq and position ranges.
        func takeOver(name: String, layer: String, run: Int64) async throws -> [(seq: Int64, ranges: [Int64])] {
            try await prepare()
            let (client, sql, logger) = (self.client, self.sql, self.logger)
            return try await bounded(client) { connection in
                try await connection.withTransaction(logger: logger) { connection in
                    let own = sql.own(name: name, layer: layer, run: run)
                    var before: [Int64] = []
                    for try await old in try await connection.query(own.before, logger: logger).decode(Int64.self) {
                        before.append(old)
                    }
                    try await connection.query(own.record, logger: logger)
                    for old in before where old != run {
                        try await connection.query(sql.takeOver(from: old, to: run), logger: logger)
                    }
                    // all of `run`'s chunks so far, so a retry whose first try committed reads the same
                    var kept: [(seq: Int64, ranges: [Int64])] = []
                    let rows = try await connection.query(sql.positions(run: run), logger: logger)
                    for try await (seq, ranges) in rows.decode((Int64, [Int64]).self) { kept.append((seq, ranges)) }
                    return kept
                }
            }
        }

        /// [an outage is logged, not each failure]: a statement's result (it began at `began`), as the outage log sees it.
        func note<T>(_ result: Result<T, any Error>, began: ContinuousClock.Instant) {
            let now = ContinuousClock.now
            let event: Outage.Event
            switch result {
            case .success: event = outage.withLock { $0.succeeded(at: now, began: began) }
            case .failure(let error):
                guard isTransient(error) else { return }  // not a lost connection: its caller fails
                event = outage.withLock { $0.failed(at: now) }
                switch event {
                case .started:
                    logger.warning(
                        "AsyncFlowPostgres: lost the connection to \(description) (\(failureReason(error))); waiting for it"
                    )
                case .lasting(let since):
                    logger.warning(
                        "AsyncFlowPostgres: still no connection to \(description) after \(since.shown) (\(failureReason(error)))"
                    )
                default: break
                }
                return
            }
            if case .ended(let lasted) = event {
                logger.notice("AsyncFlowPostgres: the connection to \(description) is back after \(lasted.shown)")
            }
        }

        /// [claims take expired leases]: claim up to `limit` chunks of `layer` for `worker`.
        func claim(layer: String, build: String, limit: Int32, worker: String) async throws -> [ClaimedChunk] {
            try await rows(
                sql.claim(layer: layer, build: build, limit: limit, worker: worker),
                as: (Int64, Int64, Int32, String, ByteBuffer, Double).self
            ).map { run, seq, attempt, policy, payload, lease in
                ClaimedChunk(
                    key: ClaimKey(run: run, seq: seq, attempt: attempt), policy: ErrorPolicy(wire: policy) ?? .fail,
                    payload: payload, lease: lease)
            }
        }

        /// What the queue holds now (for tests, tools and the example): chunks waiting or claimed, results
        /// not yet taken, dead letters.
        public func counts() async throws -> (chunks: Int, results: Int, deadLetters: Int) {
            let r = try await rows(sql.counts, as: (Int64, Int64, Int64).self)
            return (Int(r[0].0), Int(r[0].1), Int(r[0].2))
        }
    }

    /// The connection a bounded statement runs on, once it has one ([a hung statement is given up]).
    final class StatementConnection: Sendable {
        let connection = Locked<PostgresConnection?>(nil)
        var closed: Bool { connection.withLock { $0?.isClosed ?? false } }
    }

    /// [an outage is logged, not each failure]: whether the queue's statements are failing for a lost connection,
    /// since when, and when that was last said.
    struct Outage: Sendable {
        /// How often a lasting outage is logged again.
        static let notice = Duration.seconds(10)
        private var since: ContinuousClock.Instant?
        private var said: ContinuousClock.Instant?

        enum Event: Equatable, Sendable {
            case none
            /// The first failure after a success: log that the wait starts.
            case started
            /// Failing for this long, and not said for `notice`: log it again.
            case lasting(Duration)
            /// The first success, of a statement begun after the failures began, which lasted this long.
            case ended(Duration)
        }

        mutating func failed(at now: ContinuousClock.Instant) -> Event {
            guard let since, let said else {
                (self.since, self.said) = (now, now)
                return .started
            }
            guard now - said >= Self.notice else { return .none }
            self.said = now
            return .lasting(now - since)
        }

        /// A statement begun at `began` succeeded; one begun before the outage does not end it (its connection may
        /// have been lost just after).
        mutating func succeeded(at now: ContinuousClock.Instant, began: ContinuousClock.Instant) -> Event {
            guard let since, began >= since else { return .none }
            (self.since, self.said) = (nil, nil)
            return .ended(now - since)
        }
    }
#endif
