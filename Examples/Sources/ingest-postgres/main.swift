// ingest-postgres: the ingest-sqlite scenario with PostgreSQL (vapor/postgres-nio) as the database:
// text records -> tokenise and hash on worker threads -> rows committed in transactions of 500, with a
// live progress line and the final report; checks at the end that the table holds one row per record.
// `--metrics HOST:PORT` serves the run's Prometheus metrics, as in ingest-sqlite.
//
//   DATABASE_URL=postgres://user:password@127.0.0.1:5432/database swift run -c release ingest-postgres [records]
//       [--metrics HOST:PORT [--linger SECONDS]]
import AsyncFlow
import Foundation
import IngestCore
import Logging
import MetricsEndpoint
import PostgresNIO

lineBufferedOutput()

func fail(_ message: String, code: Int32 = 2) -> Never {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(code)
}

guard let url = ProcessInfo.processInfo.environment["DATABASE_URL"] else {
    fail("ingest-postgres: set DATABASE_URL=postgres://user:password@host:5432/database")
}
guard let parts = URLComponents(string: url), parts.scheme == "postgres" || parts.scheme == "postgresql",
    let host = parts.host, !host.isEmpty
else { fail("ingest-postgres: DATABASE_URL=\"\(url)\": expected postgres://user:password@host:port/database") }
var arguments = Array(CommandLine.arguments.dropFirst())
guard let flags = MetricsFlags.extract(from: &arguments), arguments.count <= 1,
    let count = arguments.first.map({ Int($0) }) ?? 100_000, count >= 0
else { fail("usage: ingest-postgres [records (a whole number)] \(MetricsFlags.usage)") }
let endpoint = try await flags.start(label: "ingest")

var logger = Logger(label: "ingest-postgres")
// postgres-nio warns when the first query leases a connection before client.run() (a sibling task below)
// has started; the lease waits for it, so that warning is noise here. Errors are still logged.
logger.logLevel = .error
let database = parts.path.count > 1 ? String(parts.path.dropFirst()) : nil
let client = PostgresClient(
    configuration: .init(
        host: host, port: parts.port ?? 5432, username: parts.user ?? "postgres", password: parts.password,
        database: database, tls: .disable),
    backgroundLogger: logger)

/// One transaction, one multi-row INSERT with bound parameters.
@Sendable func commit(_ batch: [Row]) async throws {
    var binds = PostgresBindings(capacity: batch.count * 4)
    var values: [String] = []
    for (i, r) in batch.enumerated() {
        values.append("($\(4 * i + 1), $\(4 * i + 2), $\(4 * i + 3), $\(4 * i + 4))")
        binds.append(r.id)
        binds.append(r.tokens)
        binds.append(r.distinctTokens)
        binds.append(r.hash)
    }
    let insert = PostgresQuery(
        unsafeSQL: "INSERT INTO ingest_rows (id, tokens, distinct_tokens, hash) VALUES "
            + values.joined(separator: ", "), binds: binds)
    _ = try await client.withTransaction(logger: logger) { connection in
        try await connection.query(insert, logger: logger)
    }
}

let (stored, report) = try await withThrowingTaskGroup(of: Void.self) { group in
    group.addTask { await client.run() }  // the connection pool lives as long as this task
    defer { group.cancelAll() }
    try await client.query("DROP TABLE IF EXISTS ingest_rows")
    try await client.query(
        "CREATE TABLE ingest_rows (id BIGINT PRIMARY KEY, tokens INT NOT NULL, distinct_tokens INT NOT NULL, hash BIGINT NOT NULL)"
    )
    var options = PipelineOptions()
    options.metrics = endpoint?.pipelineMetrics
    let report = try await ingest(count: count, options: options, commit: commit)
    print(report)
    var stored = -1
    for try await n in try await client.query("SELECT COUNT(*) FROM ingest_rows").decode(Int.self) { stored = n }
    return (stored, report)
}
let metricsAgree = try await endpoint?.finish(checking: report, linger: flags.linger) ?? true
print("ingest_rows: \(stored) rows for \(count) records")
exit(stored == count && metricsAgree ? 0 : 1)
