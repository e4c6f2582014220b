// flow-distributed: the middle layer of a pipeline done by worker processes through PostgreSQL
// (AsyncFlowPostgres). One binary, two modes; both read DATABASE_URL.
//
//   flow-distributed coordinator --items N [--chunk C] [--ordered] [--lease-seconds S] [--max-attempts K]
//       0..<N -> the distributed layer `mix` -> a collector that sums; prints the report, then as its last
//       line `RESULT items=<completed> sum=<sum>`; exits 0 only when all N items completed (and, with
//       --ordered, arrived in input order).
//   flow-distributed worker [--threads T] [--work-us U]
//       serves `mix` until SIGTERM/SIGINT (then drains: finishes what it started, hands back the rest);
//       --work-us adds about U µs of CPU work per item without changing the result.
//   flow-distributed status
//       what the queue holds now: each coordinator run's chunks by state, results and dead letters, and the
//       workers holding claims with how long ago they renewed them.
//   flow-distributed local --items N [--threads T] [--work-us U]
//       the same pipeline with `mix` on T local threads (bench-distributed's baseline; no database).
//   flow-distributed ingest --items N --run NAME --into sqlite:PATH|postgres [--local] [--threads T] [--chunk C]
//       [--ordered] [--lease-seconds S] [--work-us U] [--rows B]
//       a named run: 0..<N -> `mix` (on workers, or on T local threads with --local) -> rows (run, id, mix(id))
//       committed B at a time (1,000 by default) into ingest_results (an SQLite file, or DATABASE_URL's
//       database) with the run's checkpoint.
//       Killed at any moment and started again with the same arguments, it resumes; last line
//       `RESULT run=NAME items=N rows=R sum=S` read back from the table; exits 0 only when the run is complete.
//       --unnamed (with --local): the same rows by a plain batch collector with no checkpoint, which does
//       not resume: what a named run costs is measured against it.
//
// mix(x) = ((x &* 2654435761) & 0xFFFF_FFFF) % 1_000_003
import AsyncFlow
import AsyncFlowPostgres
import Dispatch
import Foundation
import IngestCore
import Logging
import Synchronization

lineBufferedOutput()

/// Print `line` and flush it at once: standard output is block-buffered into a pipe or a file (a service
/// manager, `| tee`, a container's log), where a line would otherwise appear only when the process ends.
func say(_ line: some CustomStringConvertible) {
    print(line)
    fflush(nil)
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(2)
}

enum Signals {
    /// Call `action` on SIGTERM and SIGINT (instead of dying). A static function, so that the handler is
    /// not isolated to the main actor as a closure written in top-level code would be (Dispatch calls it
    /// on a thread of its own).
    static func onTermination(_ action: @escaping @Sendable () -> Void) -> [any DispatchSourceSignal] {
        [SIGTERM, SIGINT].map { signal in
            Foundation.signal(signal, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signal)
            source.setEventHandler(handler: action)
            source.resume()
            return source
        }
    }
}

let usage = """
    usage: flow-distributed coordinator --items N [--chunk C] [--ordered] [--lease-seconds S] [--max-attempts K]
           flow-distributed worker [--threads T] [--work-us U]
           flow-distributed local --items N [--threads T] [--work-us U]
           flow-distributed status
           flow-distributed ingest --items N --run NAME --into sqlite:PATH|postgres [--local [--unnamed]]
                                   [--threads T] [--chunk C] [--ordered] [--lease-seconds S] [--work-us U]
                                   [--rows B]
    """

/// The command line's flags after the mode: `--name value` pairs and bare `--ordered`.
struct Flags {
    var values: [String: String] = [:]
    var switches: Set<String> = []

    init(_ arguments: ArraySlice<String>, switches known: Set<String>, values allowed: Set<String>) {
        var rest = arguments[...]
        while let flag = rest.popFirst() {
            if known.contains(flag) {
                switches.insert(flag)
            } else if allowed.contains(flag), let value = rest.popFirst() {
                values[flag] = value
            } else {
                fail("flow-distributed: unexpected argument \"\(flag)\"\n\(usage)")
            }
        }
    }

    /// A whole number flag, at least `minimum`.
    func int(_ name: String, default value: Int?, minimum: Int) -> Int {
        guard let text = values[name] else {
            guard let value else { fail("flow-distributed: \(name) is required\n\(usage)") }
            return value
        }
        guard let n = Int(text), n >= minimum else {
            fail("flow-distributed: \(name) \(text): expected a whole number ≥ \(minimum)")
        }
        return n
    }
}

let arguments = CommandLine.arguments.dropFirst()
let mode = arguments.first
let flags = Flags(
    arguments.dropFirst(), switches: ["--ordered", "--local", "--unnamed"],
    values: [
        "--items", "--chunk", "--lease-seconds", "--max-attempts", "--threads", "--work-us", "--run", "--into",
        "--rows",
    ])

/// --work-us: CPU work added per item (a worker's own setting; the result does not depend on it).
let workMicros =
    mode == "worker" || mode == "local" || mode == "ingest" ? flags.int("--work-us", default: 0, minimum: 0) : 0

@inline(never) func spin(micros: Int) {
    guard micros > 0 else { return }
    let end = ContinuousClock.now + .microseconds(micros)
    var x = 0
    while ContinuousClock.now < end { x &+= 1 }
    withExtendedLifetime(x) {}
}

@Sendable func mix(_ x: Int) -> Int {
    spin(micros: workMicros)
    return ((x &* 2_654_435_761) & 0xFFFF_FFFF) % 1_000_003
}

/// The layer, declared once for both modes.
let mixLayer = DistributedLayer("mix", mix)

/// The database (not needed by `local`).
func connect() -> PostgresWorkQueue {
    // notices (a named run taken over) and warnings (a lost connection, retried) to standard output
    var logger = Logger(label: "AsyncFlowPostgres") { StreamLogHandler.standardOutput(label: $0) }
    logger.logLevel = .notice
    do { return try PostgresWorkQueue(logger: logger) } catch { fail("flow-distributed: \(error)") }
}

switch mode {
case "local":
    // the same pipeline with the layer on local threads: the benchmark's baseline
    let items = flags.int("--items", default: nil, minimum: 0)
    let threads = flags.int("--threads", default: 2, minimum: 1)
    let total = Atomic<Int>(0)
    let report = try await pipeline(
        Layer(0..<items, name: "items"), Layer(workers: threads, name: "mix", mix),
        Layer(name: "sum") { (y: Int) in total.add(y, ordering: .relaxed) })
    say(report)
    say("RESULT items=\(report.completed) sum=\(total.load(ordering: .relaxed))")
    exit(report.completed == items ? 0 : 1)

case "coordinator":
    let items = flags.int("--items", default: nil, minimum: 0)
    let chunk = flags.int("--chunk", default: 1_000, minimum: 1)
    let lease = flags.int("--lease-seconds", default: 30, minimum: 1)
    let attempts = flags.int("--max-attempts", default: 3, minimum: 1)
    let ordered = flags.switches.contains("--ordered")
    final class Totals: @unchecked Sendable {  // only the collector's one task touches it
        var sum = 0
        var count = 0
        var inOrder = true
    }
    let totals = Totals()
    let queue = connect()
    say("coordinator: \(items) items in chunks of \(chunk), lease \(lease) s, \(attempts) attempts, \(queue)")
    do {
        let report = try await pipeline(
            Layer(0..<items, name: "items"),
            Layer(mixLayer, on: queue, chunk: chunk, ordered: ordered, maxAttempts: attempts, lease: .seconds(lease)),
            Layer(name: "sum") { (y: Int) in
                if ordered && y != ((totals.count &* 2_654_435_761) & 0xFFFF_FFFF) % 1_000_003 {
                    totals.inOrder = false
                }
                totals.sum &+= y
                totals.count += 1
            })
        say(report)
    } catch {
        say("coordinator: the run failed: \(error)")
    }
    say("RESULT items=\(totals.count) sum=\(totals.sum)")
    exit(totals.count == items && totals.inOrder ? 0 : 1)

case "ingest":
    try await ingest()

case "status":
    do { say(try await connect().status()) } catch { fail("flow-distributed: status: \(error)") }
    exit(0)

case "worker":
    let threads = flags.values["--threads"] == nil ? nil : flags.int("--threads", default: nil, minimum: 1)
    let worker = FlowWorker(queue: connect(), serving: mixLayer, threads: threads)
    // SIGTERM / SIGINT: drain (finish what was started, hand back the rest), then exit 0
    let sources = Signals.onTermination { worker.drain() }
    // the id at once, also into a file or a pipe (bench-distributed reads it)
    let threadCount = threads.map(String.init) ?? "default"
    say("worker \(worker.id): serving mix, \(threadCount) threads, +\(workMicros) µs an item")
    do {
        try await worker.run()
        say("worker \(worker.id): drained: \(worker.report)")
        withExtendedLifetime(sources) {}
        exit(0)
    } catch {
        say("worker \(worker.id): \(error) (\(worker.report))")
        exit(1)
    }

default:
    fail(usage)
}
