// ingest-sqlite: generate text records, tokenise and hash them on worker threads (per-worker scratch
// state), and commit the rows to an SQLite database in batches of 500, with a live progress line and
// the final report. Checks at the end that the table holds exactly one row per record. With `--metrics`,
// Prometheus can scrape the run's metrics (swift-metrics + swift-prometheus) at http://HOST:PORT/metrics,
// and the final exposition is checked against the report.
//
//   swift run -c release ingest-sqlite [records (100000)] [database file (ingest.sqlite)]
//       [--metrics HOST:PORT [--linger SECONDS]]
import AsyncFlow
import Foundation
import IngestCore
import MetricsEndpoint
import SQLiteNIO

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
func sql(_ statement: String, _ binds: [SQLiteData] = []) async throws -> [SQLiteRow] {
    try await db.query(statement, binds)
}

try await sql("PRAGMA journal_mode=WAL")
try await sql(
    "CREATE TABLE rows (id INTEGER PRIMARY KEY, tokens INTEGER NOT NULL, distinct_tokens INTEGER NOT NULL, hash INTEGER NOT NULL)"
)

/// One transaction, one multi-row INSERT.
func commit(_ batch: [Row]) async throws {
    let values = Array(repeating: "(?, ?, ?, ?)", count: batch.count).joined(separator: ", ")
    let binds = batch.flatMap { r -> [SQLiteData] in
        [.integer(r.id), .integer(r.tokens), .integer(r.distinctTokens), .integer(Int(r.hash))]
    }
    try await sql("BEGIN")
    try await sql("INSERT INTO rows (id, tokens, distinct_tokens, hash) VALUES \(values)", binds)
    try await sql("COMMIT")
}

let report = try await ingest(
    count: count, metrics: endpoint?.pipelineMetrics, commit: commit)
print(report)
let metricsAgree = try await endpoint?.finish(checking: report, linger: flags.linger) ?? true

let stored = try await sql("SELECT COUNT(*) AS n FROM rows").first?.column("n")?.integer ?? -1
try await db.close() as Void  // the async close (not the future-returning one)
print("\(path): \(stored) rows for \(count) records")
exit(stored == count && metricsAgree ? 0 : 1)
