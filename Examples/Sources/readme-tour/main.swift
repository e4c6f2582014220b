// readme-tour: every Swift snippet of the repository's README.md, run as written, each followed by
// checks of what it must have done (exact counts). `.ci/readme-snippets` fails CI when a README snippet
// is not found here line for line (indentation aside), so the README cannot drift from code that runs.
//
//   swift run readme-tour
import AsyncFlow
import AsyncFlowPostgres
import AsyncFlowSQLite
import AsyncFlowServiceLifecycle
import Foundation
import Logging
import SQLiteNIO
import ServiceLifecycle
import Synchronization

nonisolated(unsafe) var failures = 0
func check(_ condition: Bool, _ what: String) {
    if !condition {
        failures += 1
        FileHandle.standardError.write(Data("readme-tour: FAILED: \(what)\n".utf8))
    }
}

// What the snippets assume exists in the reader's program.

struct BadLine: Error { let line: String }

/// An event as a CSV line `id,city` or JSON `{"id":…,"city":…}` carries it.
struct Event: Decodable, Sendable {
    var id: Int
    var city: String
    var country: String? = nil

    init(csvLine line: String) throws {
        let fields = line.split(separator: ",")
        guard fields.count == 2, let id = Int(fields[0]) else { throw BadLine(line: line) }
        self.id = id
        self.city = String(fields[1])
    }
}

/// A slow lookup service: 1 ms a call; `failFirst` ids fail once before they succeed.
actor GeoService {
    var attempts: [Int: Int] = [:]
    let failFirst: Set<Int>
    init(failFirst: Set<Int> = []) { self.failFirst = failFirst }

    struct Unavailable: Error {}

    func locate(_ e: Event) async throws -> Event {
        try await Task.sleep(for: .milliseconds(1))
        attempts[e.id, default: 0] += 1
        if failFirst.contains(e.id) && attempts[e.id] == 1 { throw Unavailable() }
        var located = e
        located.country = e.city == "Lyon" ? "FR" : "DE"
        return located
    }

    /// One request for many ids: the city of each, in order.
    var requests = 0
    func cities(of ids: [Int]) async throws -> [String] {
        requests += 1
        try await Task.sleep(for: .milliseconds(1))
        return ids.map { $0 % 2 == 0 ? "Lyon" : "Köln" }
    }
}

actor Database {
    var rows: [Int: Event] = [:]
    var transactions = 0
    func insert(_ e: Event) { rows[e.id] = e }
    func insert(contentsOf events: [Event]) throws {
        transactions += 1
        for e in events { rows[e.id] = e }
    }
}

/// One of three generators of the same type: every third number below 30,000.
func shard(_ i: Int) -> StrideTo<Int> { stride(from: i, to: 30_000, by: 3) }

func csvLines(_ n: Int) -> [String] { (0..<n).map { "\($0),\($0 % 2 == 0 ? "Lyon" : "Köln")" } }

func slowScore(_ x: Int) -> Int {
    var h = UInt64(x)
    for _ in 0..<20_000 { h = h &* 6_364_136_223_846_793_005 &+ 1 }
    return Int(h & 0xff)
}

func render(_ page: Int) -> String { "page \(page): \(slowScore(page % 7))" }

// MARK: - What it is

do {
    let total = Atomic<Int>(0)
    let report = try await pipeline(
        Layer(0..<1_000_000),  // a source: any Sequence or AsyncSequence
        Layer(workers: 2) { (x: Int) in x &* 2 },  // CPU-bound: C threads, a C loop over batches
        Layer { (x: Int) in total.add(x, ordering: .relaxed) }  // the collector: one serial task
    )
    print(report)  // per layer: in, out, failed, skipped, retried, dropped; time; items/s
    check(total.load(ordering: .relaxed) == 999_999 * 1_000_000, "the first example's sum")
    check(
        report.completed == 1_000_000 && report.layers.map(\.emitted) == [1_000_000, 1_000_000, 1_000_000],
        "first example")
}

// MARK: - Sources, CPU-bound layers, async layers, the collector

let geo = GeoService()
let db = Database()
do {
    let numbers = Layer(1...100_000)  // any Sequence: pulled lazily, in batches
    let (lines, feed) = AsyncStream.makeStream(of: String.self)
    let incoming = Layer(lines, name: "incoming")  // any AsyncSequence: the run ends when it ends

    let parse = Layer(workers: 4, name: "parse") { (line: String) throws -> Event in
        try Event(csvLine: line)  // on 4 C threads, called per item from a C loop
    }
    let decode = Layer(workers: nil, state: JSONDecoder.init) { (decoder: inout JSONDecoder, json: Data) in
        try decoder.decode(Event.self, from: json)  // one decoder per worker thread, reused
    }

    let enrich = Layer(concurrency: 16, name: "enrich") { (e: Event) async throws -> Event in
        try await geo.locate(e)  // Swift tasks, at most 16 calls in flight
    }
    let store = Layer(name: "store") { (e: Event) async throws in await db.insert(e) }  // serial: the collector

    for line in csvLines(500) { feed.yield(line) }
    feed.finish()
    let report = try await pipeline(incoming, parse, enrich, store)

    check(
        report.layers.map(\.name) == ["incoming", "parse", "enrich", "store"],
        "layer names \(report.layers.map(\.name))")
    check(report.completed == 500, "500 events stored, not \(report.completed)")
    let rows = await db.rows
    check(rows.count == 500 && rows[7]?.city == "Köln" && rows[8]?.country == "FR", "the stored rows")

    // The other two layers, run too.
    let sum = Atomic<Int>(0)
    _ = try await pipeline(numbers, Layer { (n: Int) in sum.add(n, ordering: .relaxed) })
    check(sum.load(ordering: .relaxed) == 100_000 * 100_001 / 2, "numbers")
    let json = (0..<300).map { Data(#"{"id":\#($0),"city":"Lyon"}"#.utf8) }
    let decoded = Atomic<Int>(0)
    let r = try await pipeline(
        Layer(json), decode, Layer { (e: Event) in decoded.add(e.id, ordering: .relaxed) })
    check(r.completed == 300 && decoded.load(ordering: .relaxed) == 299 * 300 / 2, "decode")
}

// MARK: - Order

do {
    let pages = Array(0..<5_000)
    let received = Mutex<[String]>([])
    try await pipeline(
        Layer(pages),
        Layer(workers: 4, ordered: true) { (page: Int) in render(page) },  // results leave in input order
        Layer { (html: String) in received.withLock { $0.append(html) } }
    )
    check(received.withLock { $0 } == pages.map(render), "ordered output")
}

// MARK: - Errors

do {
    let flaky = GeoService(failFirst: [3, 30, 300])
    let lines = csvLines(1_000) + ["not a line", "x,y,z"]
    let stored = Atomic<Int>(0)

    let lenient = Layer(workers: 2, onError: .skip) { (line: String) in try Event(csvLine: line) }
    let patient = Layer(concurrency: 8, onError: .retry(attempts: 3)) { (e: Event) in try await flaky.locate(e) }
    let report = try await pipeline(
        Layer(lines), lenient, patient, Layer { (_: Event) in stored.add(1, ordering: .relaxed) })
    print(report.skipped, report.errors)  // 2 lines skipped, their errors with the layer's name

    check(report.skipped == 2 && report.errors.count == 2, "skipped \(report.skipped)")
    check(
        report.layers[2].retried == 3 && stored.load(ordering: .relaxed) == 1_000, "retried \(report.layers[2].retried)"
    )
    do {
        try await pipeline(
            Layer(lines), Layer(workers: 2) { (line: String) in try Event(csvLine: line) }, Layer { (_: Event) in })
        check(false, "the default policy (.fail) must throw")
    } catch let error as BadLine {
        check(["not a line", "x,y,z"].contains(error.line), "the closure's own error is rethrown")
    }
}

// MARK: - Cancellation and the report of a run that did not finish

do {
    let numbers = Layer(1...100_000)
    let lastReport = Mutex<PipelineReport?>(nil)
    let total = Atomic<Int>(0)

    var options = PipelineOptions()
    options.onReport = { report in lastReport.withLock { $0 = report } }  // also when the run fails or is cancelled
    let run = Task {
        try await pipeline(
            numbers, Layer(workers: 2) { slowScore($0) }, Layer { total.add($0, ordering: .relaxed) }, options: options)
    }
    try await Task.sleep(for: .milliseconds(50))
    run.cancel()  // pipeline throws CancellationError: no closure runs after it, every thread is joined
    let result = await run.result

    check((try? result.get()) == nil, "a cancelled run throws")
    let report = lastReport.withLock { $0 }
    check(
        report.map { $0.pulled < 100_000 && $0.layers.allSatisfy { $0.received == $0.emitted + $0.dropped } } == true,
        "the cancelled run's report balances")
}

// MARK: - Progress

do {
    let snapshots = Atomic<Int>(0)
    let finals = Atomic<Int>(0)
    var options = PipelineOptions()
    options.progress = { snapshot in print(snapshot) }  // per layer: counts, queue depth; rate, elapsed
    options.progressInterval = .milliseconds(500)

    let show = options.progress!
    options.progress = { snapshot in
        show(snapshot)
        snapshots.add(1, ordering: .relaxed)
        if snapshot.isFinal { finals.add(1, ordering: .relaxed) }
    }
    try await pipeline(Layer(0..<20_000), Layer(workers: 2) { slowScore($0) }, Layer { (_: Int) in }, options: options)
    check(finals.load(ordering: .relaxed) == 1 && snapshots.load(ordering: .relaxed) >= 1, "progress")
}

// MARK: - A stream instead of a collector

do {
    let numbers = Layer(1...100_000)
    var seen = 0
    let squares = pipelineStream(numbers, Layer(workers: 2) { (n: Int) in n * n })
    for try await square in squares {  // runs the pipeline while the loop runs
        if square > 1_000_000 { break }  // leaving the loop stops the run
        seen += 1
    }
    let report = try await squares.report()
    check(report.pulled < 100_000, "leaving the loop stopped the source (pulled \(report.pulled))")
    check(report.layers.allSatisfy { $0.received == $0.emitted + $0.dropped }, "the stream's report balances")
    check(
        report.layers[1].emitted == seen + 1, "the loop received \(seen + 1), report says \(report.layers[1].emitted)")
}

// MARK: - Metrics (the factory is swift-metrics' bootstrapped one; ingest-sqlite --metrics serves it)

do {
    var options = PipelineOptions()
    options.metrics = PipelineMetrics(label: "ingest", dimensions: [("service", "api")])  // factory: MetricsSystem's
    let r = try await pipeline(Layer(0..<1_000), Layer { (_: Int) in }, options: options)
    check(r.completed == 1_000, "a run with metrics on")
}

// MARK: - A few generators, batched commits, drain, services

do {
    let shards = Layer(merging: shard(0), shard(1), shard(2), name: "shards")  // three generators, one source
    let merged = Atomic<Int>(0)
    let r = try await pipeline(shards, Layer { (n: Int) in merged.add(n, ordering: .relaxed) })
    check(r.pulled == 30_000 && merged.load(ordering: .relaxed) == 29_999 * 30_000 / 2, "three shards merged")

    let cities = Layer(batchesOf: 100, concurrency: 4, ordered: true) { (ids: [Int]) async throws in
        try await geo.cities(of: ids)  // one request for 100 ids, 4 requests in flight
    }
    let named = Mutex([String]())
    let r1 = try await pipeline(Layer(0..<1_000), cities, Layer { (c: String) in named.withLock { $0.append(c) } })
    let expected = (0..<1_000).map { $0 % 2 == 0 ? "Lyon" : "Köln" }
    let requests = await geo.requests
    check(r1.completed == 1_000 && named.withLock { $0 } == expected && requests == 10, "batches in the middle")

    let db = Database()  // a fresh one
    let save = Layer(batchesOf: 500, within: .milliseconds(200), name: "save") { (events: [Event]) async throws in
        try await db.insert(contentsOf: events)  // one transaction per batch
    }
    let r2 = try await pipeline(
        Layer(0..<10_000), Layer(workers: 2) { (n: Int) in try Event(csvLine: "\(n),Lyon") }, save)
    let (rows, transactions) = await (db.rows.count, db.transactions)
    check(r2.completed == 10_000 && rows == 10_000 && transactions == 20, "batches of 500: \(transactions)")

    // Drain an endless source from another task once 1,000 items are done.
    var options = PipelineOptions()
    let control = PipelineControl()
    options.control = control
    let done = Atomic<Int>(0)
    Task {
        while done.load(ordering: .relaxed) < 1_000 { try await Task.sleep(for: .milliseconds(1)) }
        control.drain()  // from any task or thread: stop pulling, finish what was pulled, return the report
    }
    let drained = try await pipeline(
        Layer(0...), Layer(workers: 2) { slowScore($0) }, Layer { (_: Int) in done.add(1, ordering: .relaxed) },
        options: options)
    check(
        drained.dropped == 0 && drained.pulled == drained.completed && drained.completed >= 1_000,
        "drained: \(drained.pulled) pulled, \(drained.completed) completed, \(drained.dropped) dropped")
}

do {
    let shards = Layer(merging: shard(0), shard(1), shard(2), name: "shards")
    let save = Layer(batchesOf: 500, within: .milliseconds(200), name: "save") { (events: [Event]) async throws in
        try await db.insert(contentsOf: events)
    }
    let options = PipelineOptions()
    let logger = Logger(label: "readme-tour")
    let ingest = PipelineService(options: options) { options in
        try await pipeline(
            shards, Layer(workers: 2) { (n: Int) in try Event(csvLine: "\(n),Lyon") }, save, options: options)
    }
    let job = ServiceGroupConfiguration.ServiceConfiguration(
        service: ingest, successTerminationBehavior: .gracefullyShutdownGroup)  // its end ends the group
    let group = ServiceGroup(
        configuration: .init(services: [job], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
    try await group.run()  // SIGTERM: drained, nothing pulled is lost; ingest.report has the counts
    check(ingest.report?.completed == 30_000 && ingest.report?.dropped == 0, "the service's run")
}

// MARK: - AsyncFlowPostgres (only with DATABASE_URL: CI runs the tour again once its server is up)

/// The README's worker lines, in a task the tour cancels when the coordinator is done.
func serve(_ queue: PostgresWorkQueue, _ score: DistributedLayer<Int, Int>) async throws {
    // a worker, on any machine: the same code started in worker mode, until worker.drain() (on SIGTERM)
    let worker = FlowWorker(queue: queue, serving: score)
    try await worker.run()
}

if ProcessInfo.processInfo.environment["DATABASE_URL"] != nil {
    // the worker: the same declaration (name and build) in another value, as another process has it
    let served = DistributedLayer("score") { (x: Int) in x * x }
    let total = Atomic<Int>(0)
    let serving = Task { try await serve(try PostgresWorkQueue(), served) }

    let score = DistributedLayer("score") { (x: Int) in x * x }  // declared once, in code both sides run

    // the coordinator: an ordinary pipeline (DATABASE_URL; the tables live in the schema "asyncflow")
    let queue = try PostgresWorkQueue()
    let report = try await pipeline(
        Layer(0..<100_000), Layer(score, on: queue, chunk: 1_000, ordered: true),
        Layer { (y: Int) in total.add(y, ordering: .relaxed) })
    serving.cancel()
    _ = await serving.result
    let squares = (0..<100_000).reduce(0) { $0 + $1 * $1 }
    check(report.completed == 100_000 && total.load(ordering: .relaxed) == squares, "a distributed layer")
    print("readme-tour: the distributed layer ran through \(queue)")
}

// MARK: - Named runs

/// The README's named run, in a function: top-level code would pick sqlite-nio's future-returning overloads.
func nightlyRun(scoresPath: String) async throws -> (PipelineReport, SQLiteConnection) {
    let db = try await SQLiteConnection.open(storage: .file(path: scoresPath))
    _ = try await db.query("CREATE TABLE IF NOT EXISTS scores (id INTEGER NOT NULL, score INTEGER NOT NULL)", [])
    let store = try SQLiteRunStore(connection: db)  // AsyncFlowSQLite; PostgresRunStore likewise
    let nightly = try await pipeline(
        Layer(0..<10_000),  // resumes by index
        Layer(workers: 2) { (x: Int) in (x, x % 97) },
        Layer(committing: store, run: "scores-2026-12-07", batchesOf: 500) { rows, db in
            let values = rows.map { "(\($0.0), \($0.1))" }.joined(separator: ", ")
            _ = try await db.query("INSERT INTO scores (id, score) VALUES \(values)", [])
        })
    print(nightly.run!)  // run "scores-2026-12-07": started; 21 commits, 10000 committed, finished
    return (nightly, db)
}

do {
    let scoresPath = FileManager.default.temporaryDirectory.appendingPathComponent(
        "readme-tour-\(UInt32.random(in: 0...UInt32.max)).sqlite"
    ).path
    defer { try? FileManager.default.removeItem(atPath: scoresPath) }
    for attempt in 0..<2 {  // the second start finds the run finished
        let (nightly, db) = try await nightlyRun(scoresPath: scoresPath)
        let rows: [SQLiteRow] = try await db.query("SELECT count(DISTINCT id) AS ids, count(*) AS n FROM scores", [])
        check(
            rows.first?.column("ids")?.integer == 10_000 && rows.first?.column("n")?.integer == 10_000,
            "a named run's rows")
        check(
            attempt == 0
                ? nightly.run?.finished == true && nightly.run?.commits == 21 && nightly.completed == 10_000
                : nightly.run?.wasFinished == true && nightly.pulled == 0,
            "a named run, attempt \(attempt): \(nightly.run.map { "\($0)" } ?? "no run")")
        try await db.close() as Void
    }
}

// MARK: - Progress bar and logging

do {
    var options = PipelineOptions()
    options.progressBar = true  // 120 k / 400 k (30%) items | 96.8 k items/s | queues 12% 100% | 1.24 s | ETA 2.90 s
    options.logger = Logger(label: "ingest")  // start, first errors per layer, drain, failure, report
    let r = try await pipeline(
        Layer(0..<20_000), Layer(workers: 2) { slowScore($0) }, Layer { (_: Int) in }, options: options)
    check(r.completed == 20_000, "a run with a progress bar and a logger")
}

if failures > 0 {
    FileHandle.standardError.write(Data("readme-tour: \(failures) check(s) failed\n".utf8))
    exit(1)
}
print("readme-tour: every README snippet ran and did what it says")
