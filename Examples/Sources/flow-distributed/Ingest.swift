// The `ingest` mode: a named run whose rows go to SQLite or PostgreSQL with the run's checkpoint
// (AsyncFlowSQLite, AsyncFlowPostgres), resumed where its committed rows end when started again.
import AsyncFlow
import AsyncFlowPostgres
import AsyncFlowSQLite
import Foundation
import Logging
import PostgresNIO
import SQLiteNIO

/// Where the rows go: the table `ingest_results(run, id, value)`, with no unique constraint on (run, id),
/// so a row written twice would show as a second row.
enum Sink {
    case sqlite(SQLiteRunStore)
    case postgres(PostgresRunStore)

    static let create =
        "CREATE TABLE IF NOT EXISTS ingest_results (run TEXT NOT NULL, id BIGINT NOT NULL, value BIGINT NOT NULL)"

    static func open(_ into: String) async throws -> Sink {
        if into == "postgres" {
            let store = try PostgresRunStore.connect()
            try await store.client.query(PostgresQuery(unsafeSQL: create))
            return .postgres(store)
        }
        guard into.hasPrefix("sqlite:"), into.count > 7 else {
            fail("flow-distributed: --into \(into): expected sqlite:PATH or postgres")
        }
        let db = try await SQLiteConnection.open(storage: .file(path: String(into.dropFirst(7))))
        _ = try await db.query("PRAGMA journal_mode=WAL", [])
        _ = try await db.query("PRAGMA busy_timeout=10000", [])
        _ = try await db.query(create, [])
        return .sqlite(try SQLiteRunStore(connection: db))
    }

    /// Rows and the sum of their values for `run`, read back from the table.
    func totals(run: String) async throws -> (rows: Int, sum: Int) {
        let sql = "SELECT count(*), CAST(coalesce(sum(value), 0) AS BIGINT) FROM ingest_results WHERE run = "
        switch self {
        case .sqlite(let store):
            let row = try await store.connection.query(sql + "?", [.text(run)]).first
            return (row?.columns[0].data.integer ?? -1, row?.columns[1].data.integer ?? -1)
        case .postgres(let store):
            var binds = PostgresBindings(capacity: 1)
            binds.append(run)
            let rows = try await store.client.query(PostgresQuery(unsafeSQL: sql + "$1", binds: binds))
            for try await (count, sum) in rows.decode((Int64, Int64).self) { return (Int(count), Int(sum)) }
            return (-1, -1)
        }
    }

    func close() async throws {
        switch self {
        case .sqlite(let store): try await store.connection.close()
        case .postgres(let store): await store.shutdown()
        }
    }
}

/// The rows (run, id, value) of a batch in one multi-row INSERT.
func insert(_ rows: [(id: Int, value: Int)], run: String, into db: SQLiteConnection) async throws {
    let values = Array(repeating: "(?, ?, ?)", count: rows.count).joined(separator: ", ")
    let binds = rows.flatMap { [SQLiteData.text(run), .integer($0.id), .integer($0.value)] }
    _ = try await db.query("INSERT INTO ingest_results (run, id, value) VALUES \(values)", binds)
}

func insert(_ rows: [(id: Int, value: Int)], run: String, into connection: PostgresConnection) async throws {
    var binds = PostgresBindings(capacity: 3)
    binds.append(run)
    binds.append(rows.map { Int64($0.id) })
    binds.append(rows.map { Int64($0.value) })
    try await connection.query(
        PostgresQuery(
            unsafeSQL: "INSERT INTO ingest_results SELECT $1, * FROM unnest($2::int8[], $3::int8[])", binds: binds),
        logger: ingestLogger)
}

/// The collector: each batch's rows committed with the run's checkpoint. The id is the item's source
/// position (the source is 0..<N), which the collector is given beside the value, so the middle layer
/// stays `mix` (Int -> Int) locally and on the workers.
func collector(_ sink: Sink, run: String, rows size: Int) -> Layer<Int, Void> {
    let within = Duration.milliseconds(50)
    switch sink {
    case .sqlite(let store):
        return Layer(committingWithPositions: store, run: run, batchesOf: size, within: within, name: "rows") {
            rows, db in try await insert(rows.map { (Int($0.position), $0.item) }, run: run, into: db)
        }
    case .postgres(let store):
        return Layer(committingWithPositions: store, run: run, batchesOf: size, within: within, name: "rows") {
            rows, connection in try await insert(rows.map { (Int($0.position), $0.item) }, run: run, into: connection)
        }
    }
}

/// --unnamed (what a named run costs is measured against it): the same rows in the same transactions, by a
/// plain batch collector, with no checkpoint; the middle layer passes the id on beside the value.
func unnamedCollector(_ sink: Sink, run: String, rows size: Int) -> Layer<(Int, Int), Void> {
    Layer(batchesOf: size, within: .milliseconds(50), name: "rows") { rows in
        let rows = rows.map { (id: $0.0, value: $0.1) }
        switch sink {
        case .sqlite(let store): try await store.transaction { try await insert(rows, run: run, into: $0) }
        case .postgres(let store): try await store.transaction { try await insert(rows, run: run, into: $0) }
        }
    }
}

let ingestLogger = Logger(label: "flow-distributed")

@MainActor func ingest() async throws {
    let items = flags.int("--items", default: nil, minimum: 0)
    guard let run = flags.values["--run"], !run.isEmpty else {
        fail("flow-distributed: --run NAME is required\n\(usage)")
    }
    guard let into = flags.values["--into"] else { fail("flow-distributed: --into is required\n\(usage)") }
    let local = flags.switches.contains("--local")
    if flags.switches.contains("--unnamed") && !local {
        fail("flow-distributed: --unnamed goes with --local\n\(usage)")
    }
    let ordered = flags.switches.contains("--ordered")
    let rows = flags.int("--rows", default: 1_000, minimum: 1)
    let sink: Sink
    do { sink = try await Sink.open(into) } catch { fail("flow-distributed: --into \(into): \(error)") }
    let middle: Layer<Int, Int>
    if local {
        middle = Layer(workers: flags.int("--threads", default: 2, minimum: 1), name: "mix", ordered: ordered, mix)
    } else {
        let chunk = flags.int("--chunk", default: 1_000, minimum: 1)
        let lease = flags.int("--lease-seconds", default: 30, minimum: 1)
        middle = Layer(mixLayer, on: connect(), chunk: chunk, ordered: ordered, lease: .seconds(lease))
    }
    say("ingest: run \(run), \(items) items into \(into), mix on \(local ? "local threads" : "workers")")
    // the log says at once where the run resumes (and, at the end, the report)
    var options = PipelineOptions()
    options.logger = Logger(label: "ingest") { StreamLogHandler.standardOutput(label: $0) }
    var finished = false
    do {
        if flags.switches.contains("--unnamed") {
            let pairs = Layer<Int, (Int, Int)>(workers: flags.int("--threads", default: 2, minimum: 1), name: "mix") {
                ($0, mix($0))
            }
            let report = try await pipeline(
                Layer(0..<items, name: "items"), pairs, unnamedCollector(sink, run: run, rows: rows), options: options)
            finished = report.completed == items
        } else {
            let report = try await pipeline(
                Layer(0..<items, name: "items"), middle, collector(sink, run: run, rows: rows), options: options)
            finished = report.run?.finished == true
        }
    } catch {
        say("ingest: the run stopped: \(error)")
    }
    let (count, sum) = try await sink.totals(run: run)
    try await sink.close()
    say("RESULT run=\(run) items=\(items) rows=\(count) sum=\(sum)")
    exit(finished && count == items ? 0 : 1)
}
