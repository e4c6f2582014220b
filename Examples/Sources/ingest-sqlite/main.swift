// ingest-sqlite: generate text records, tokenise and hash them on worker threads (per-worker scratch
// state), and commit the rows to an SQLite database in batches of 500 (a batch collector), with a live
// progress bar, logs and the final report. The pipeline runs as a service (AsyncFlowServiceLifecycle):
// SIGTERM or SIGINT drains it, so every record it pulled is stored before it exits. Checks at the end
// that the table holds exactly one row per record finished (all of them unless a signal came) and that
// nothing was dropped. With `--metrics`, Prometheus can scrape the run's metrics (swift-metrics +
// swift-prometheus) at http://HOST:PORT/metrics, and the final exposition is checked against the report.
//
//   swift run -c release ingest-sqlite [records (100000)] [database file (ingest.sqlite)]
//       [--metrics HOST:PORT [--linger SECONDS]]
import AsyncFlow
import AsyncFlowServiceLifecycle
import Foundation
import IngestCore
import Logging
import MetricsEndpoint
import SQLiteNIO
import ServiceLifecycle

lineBufferedOutput()

var arguments = Array(CommandLine.arguments.dropFirst())
guard let flags = MetricsFlags.extract(from: &arguments), arguments.count <= 2,
    let count = arguments.first.map({ Int($0) }) ?? 100_000, count >= 0
else {
    FileHandle.standardError.write(
        Data("usage: ingest-sqlite [records (a whole number)] [database file] \(MetricsFlags.usage)\n".utf8))
    exit(2)
}
let endpoint = try await flags.start(label: "ingest")
let path = arguments.dropFirst().first ?? "ingest.sqlite"
try? FileManager.default.removeItem(atPath: path)

let db: SQLiteConnection = try await SQLiteConnection.open(storage: .file(path: path))
/// Run one statement (the async overload: top-level code would otherwise pick the future-returning one).
@discardableResult
@Sendable func sql(_ statement: String, _ binds: [SQLiteData] = []) async throws -> [SQLiteRow] {
    try await db.query(statement, binds)
}

try await sql("PRAGMA journal_mode=WAL")
try await sql(
    "CREATE TABLE rows (id INTEGER PRIMARY KEY, tokens INTEGER NOT NULL, distinct_tokens INTEGER NOT NULL, hash INTEGER NOT NULL)"
)

/// One transaction, one multi-row INSERT.
@Sendable func commit(_ batch: [Row]) async throws {
    let values = Array(repeating: "(?, ?, ?, ?)", count: batch.count).joined(separator: ", ")
    let binds = batch.flatMap { r -> [SQLiteData] in
        [.integer(r.id), .integer(r.tokens), .integer(r.distinctTokens), .integer(Int(r.hash))]
    }
    try await sql("BEGIN")
    try await sql("INSERT INTO rows (id, tokens, distinct_tokens, hash) VALUES \(values)", binds)
    try await sql("COMMIT")
}

let logger = Logger(label: "ingest-sqlite")
var options = PipelineOptions()
options.metrics = endpoint?.pipelineMetrics
options.logger = logger
let service = PipelineService(options: options) { options in
    try await ingest(count: count, options: options, commit: commit)
}
// a run that ends by itself ends the group too (the default would call that a failure)
let job = ServiceGroupConfiguration.ServiceConfiguration(
    service: service, successTerminationBehavior: .gracefullyShutdownGroup)
let group = ServiceGroup(
    configuration: .init(services: [job], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
try await group.run()  // returns when the run has ended: done, or drained by a signal
guard let report = service.report else { exit(1) }
let metricsAgree = try await endpoint?.finish(checking: report, linger: flags.linger) ?? true

let stored = try await sql("SELECT COUNT(*) AS n FROM rows").first?.column("n")?.integer ?? -1
try await db.close() as Void  // the async close (not the future-returning one)
let drained = service.isDraining
print(
    "\(path): \(stored) rows for \(report.completed) records finished of \(report.pulled) pulled"
        + (drained ? " (drained by a signal; \(count) asked for)" : ""))
let whole = drained || report.completed == count
exit(stored == report.completed && report.dropped == 0 && whole && metricsAgree ? 0 : 1)
