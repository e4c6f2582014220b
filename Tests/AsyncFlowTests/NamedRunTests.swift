import Foundation
import Synchronization
import Testing

@testable import AsyncFlow

/// A RunStore in memory, as a database would keep it: rows and checkpoints change only when a transaction
/// commits. It can die (every commit after the `crashAfter`-th fails, as if the process had been killed
/// just after it), and it can commit a transaction yet throw (a connection lost during COMMIT).
final class MemoryRunStore: RunStore {
    struct Crash: Error {}
    struct LostCommit: Error {}
    struct Conflict: Error {}

    struct State {
        /// Rows written, by id (a duplicate shows up as a second element).
        var rows: [Int: [Int]] = [:]
        var checkpoints: [String: (sequence: UInt64, text: String)] = [:]
        var commits = 0
        /// Commits after this many fail with Crash (nil: never).
        var crashAfter: Int? = nil
        /// The commit with this number is made but reported lost.
        var loseCommit: Int? = nil
    }

    /// What one transaction will write when it commits.
    final class Transaction: @unchecked Sendable {
        // @unchecked: used by the one task that runs its transaction
        var rows: [(id: Int, value: Int)] = []
        var checkpoint: (run: String, sequence: UInt64, text: String)? = nil

        func insert(_ rows: [(id: Int, value: Int)]) { self.rows += rows }
    }

    let state = Locked(State())

    func checkpoint(of run: String) async throws -> String? { state.withLock { $0.checkpoints[run]?.text } }

    func transaction(_ body: (Transaction) async throws -> Void) async throws {
        let transaction = Transaction()
        try await body(transaction)
        try state.withLock { state in
            if let crashAfter = state.crashAfter, state.commits >= crashAfter { throw Crash() }
            if let c = transaction.checkpoint {  // the save's condition, checked again at commit
                guard (state.checkpoints[c.run]?.sequence ?? 0) == c.sequence - 1 else { throw Conflict() }
                state.checkpoints[c.run] = (c.sequence, c.text)
            }
            for row in transaction.rows { state.rows[row.id, default: []].append(row.value) }
            state.commits += 1
            if state.commits == state.loseCommit { throw LostCommit() }
        }
    }

    func save(run: String, checkpoint: String, sequence: UInt64, in transaction: Transaction) async throws -> Bool {
        guard state.withLock({ ($0.checkpoints[run]?.sequence ?? 0) == sequence - 1 }) else { return false }
        transaction.checkpoint = (run, sequence, checkpoint)
        return true
    }

    /// ids with no row, and ids with more than one.
    func check(_ n: Int) -> (missing: [Int], repeated: [Int]) {
        state.withLock { state in
            ((0..<n).filter { state.rows[$0] == nil }, state.rows.filter { $0.value.count > 1 }.map(\.key).sorted())
        }
    }

    /// Let `commits` more commits through in all, then fail every one (nil: never fail).
    func crash(after commits: Int?) { state.withLock { $0.crashAfter = commits } }
    var commits: Int { state.withLock { $0.commits } }
}

/// A file's lines by number, as a ResumableSource (resumes by reading past the lines before).
struct Numbers: ResumableSource {
    let count: Int
    func items(from position: UInt64) -> [Int] { Array(Int(position)..<max(Int(position), count)) }
}

/// The same as an AsyncSequence.
struct AsyncNumbers: ResumableAsyncSource {
    let count: Int
    func items(from position: UInt64) -> AsyncStream<Int> {
        let start = Int(position)
        let count = count
        return AsyncStream { continuation in
            for i in start..<max(start, count) { continuation.yield(i) }
            continuation.finish()
        }
    }
}

/// Items made different from their ids, as a middle layer would.
func scramble(_ x: Int) -> Int { (x &* 0x9E37_79B9) ^ (x >> 3) }

/// A Sequence that is not a collection: it cannot resume.
struct Counting: Sequence, Sendable {
    let limit: Int
    let pulls: Counter
    func makeIterator() -> AnyIterator<Int> {
        var i = 0
        return AnyIterator {
            guard i < limit else { return nil }
            pulls.add(1)
            i += 1
            return i - 1
        }
    }
}

extension Serial {
    @Suite("Named runs")
    struct NamedRunTests {
        /// source → a middle layer (mix) → a committing collector of (id, scramble(id)) rows.
        func ingest(
            _ n: Int, into store: MemoryRunStore, run: String = "ingest", workers: Int = 2, batch: Int = 100,
            options: PipelineOptions = PipelineOptions(), slow: Bool = false
        ) async throws -> PipelineReport {
            try await pipeline(
                Layer(0..<n),
                Layer(workers: workers) { (x: Int) in
                    if slow && x % 97 == 0 { usleep(50) }
                    return (x, scramble(x))
                },
                Layer(committing: store, run: run, batchesOf: batch) { rows, transaction in
                    transaction.insert(rows.map { (id: $0.0, value: $0.1) })
                },
                options: options)
        }

        @Test("a first run commits every row once and finishes", arguments: PipelineOptions.Backend.allCases)
        func firstRun(backend: PipelineOptions.Backend) async throws {
            let store = MemoryRunStore()
            let report = try await ingest(10_000, into: store, options: PipelineOptions(backend: backend))
            let (missing, repeated) = store.check(10_000)
            #expect(missing.isEmpty && repeated.isEmpty)
            #expect(report.pulled == 10_000 && report.completed == 10_000)
            let run = try #require(report.run)
            #expect(run.alreadyDone == 0 && run.doneAgain == 0 && run.resumedAt == 0 && !run.wasFinished)
            #expect(run.finished && run.committed == 10_000 && run.commits == store.commits)
            let saved = try RunCheckpoint(encoded: try #require(try await store.checkpoint(of: "ingest")))
            #expect(saved.finished && saved.progress.watermark == 10_000 && saved.progress.above.isEmpty)
            #expect(saved.sequence == UInt64(store.commits) && saved.pulled == 10_000)
        }

        @Test("a finished run started again does no work")
        func finishedRun() async throws {
            let store = MemoryRunStore()
            _ = try await ingest(1_000, into: store)
            let calls = Counter()
            let report = try await pipeline(
                Layer(0..<1_000),
                Layer(workers: 2) { (x: Int) in
                    calls.add(1)
                    return (x, scramble(x))
                },
                Layer(committing: store, run: "ingest", batchesOf: 100) { rows, transaction in
                    transaction.insert(rows.map { (id: $0.0, value: $0.1) })
                })
            #expect(calls.count == 0 && report.pulled == 0)
            #expect(report.run?.wasFinished == true && report.run?.committed == 1_000)
            #expect(store.check(1_000) == ([], []))
        }

        @Test(
            "killed after a commit and started again, every row is there once",
            arguments: PipelineOptions.Backend.allCases)
        func resumeAfterCrash(backend: PipelineOptions.Backend) async throws {
            let n = 20_000
            let store = MemoryRunStore()
            store.crash(after: 37)
            await #expect(throws: MemoryRunStore.Crash.self) {
                try await ingest(n, into: store, options: PipelineOptions(backend: backend))
            }
            let before = try RunCheckpoint(encoded: try #require(try await store.checkpoint(of: "ingest")))
            #expect(before.progress.committed == 3_700 && !before.finished)
            store.crash(after: nil)
            let report = try await ingest(n, into: store, options: PipelineOptions(backend: backend))
            #expect(store.check(n) == ([], []))
            // the source gave exactly the positions not committed
            #expect(report.pulled == n - 3_700 && report.completed == n - 3_700)
            let run = try #require(report.run)
            #expect(run.alreadyDone == 3_700 && run.resumedAt == before.progress.watermark && run.finished)
            #expect(run.doneAgain == before.pulled - 3_700)
        }

        @Test(
            "random kills and layer timings: no row repeated, none missing",
            arguments: PipelineOptions.Backend.allCases)
        func randomKills(backend: PipelineOptions.Backend) async throws {
            var generator = SystemRandomNumberGenerator()
            for round in 0..<4 {
                let n = Int.random(in: 5_000...30_000, using: &generator)
                let store = MemoryRunStore()
                var attempts = 0
                var committedBefore: UInt64 = 0
                while true {
                    attempts += 1
                    let batch = Int.random(in: 1...300, using: &generator)
                    let crashing = attempts <= 6
                    store.crash(after: crashing ? store.commits + Int.random(in: 0...20, using: &generator) : nil)
                    var options = PipelineOptions(backend: backend)
                    options.batchSize = [16, 128, 1024].randomElement(using: &generator)!
                    do {
                        let report = try await ingest(
                            n, into: store, workers: Int.random(in: 1...3, using: &generator), batch: batch,
                            options: options, slow: Bool.random(using: &generator))
                        #expect(report.pulled == n - Int(committedBefore), "round \(round), attempt \(attempts)")
                        #expect(report.run?.alreadyDone == committedBefore && report.run?.finished == true)
                        break
                    } catch is MemoryRunStore.Crash {
                        #expect(crashing)
                    }
                    let saved = try await store.checkpoint(of: "ingest").map { try RunCheckpoint(encoded: $0) }
                    committedBefore = saved?.progress.committed ?? 0
                    #expect(store.check(n).repeated.isEmpty, "round \(round), attempt \(attempts)")
                }
                let (missing, repeated) = store.check(n)
                #expect(
                    missing.isEmpty && repeated.isEmpty,
                    "round \(round): \(missing.count) missing, \(repeated.count) twice")
            }
        }

        @Test("a commit made but reported lost is read back, not repeated")
        func lostCommit() async throws {
            let store = MemoryRunStore()
            store.state.withLock { $0.loseCommit = 5 }
            let report = try await ingest(5_000, into: store)
            #expect(store.check(5_000) == ([], []))
            #expect(report.completed == 5_000 && report.failed == 0 && report.run?.finished == true)
        }

        @Test("another process's commit stops the run: RunTakenOverError")
        func takenOver() async throws {
            let store = MemoryRunStore()
            let n = 50_000
            let other = Counter()
            let error = await #expect(throws: RunTakenOverError.self) {
                try await pipeline(
                    Layer(0..<n),
                    Layer(workers: 2) { (x: Int) in (x, scramble(x)) },
                    Layer(committing: store, run: "ingest", batchesOf: 100) { rows, transaction in
                        transaction.insert(rows.map { (id: $0.0, value: $0.1) })
                        if other.value.add(1, ordering: .relaxed).newValue == 10 {  // another process commits
                            store.state.withLock { $0.checkpoints["ingest"]!.sequence += 1 }
                        }
                    })
            }
            #expect(error?.run == "ingest" && error?.expected == 9)
            // what was committed before stays, once
            #expect(store.check(n).repeated.isEmpty && store.commits == 9)
        }

        @Test("resumable sources of the user's own, sync and async, resume", arguments: [false, true])
        func userSources(async: Bool) async throws {
            let n = 8_000
            let store = MemoryRunStore()
            func run() async throws -> PipelineReport {
                let collector = Layer<(Int, Int), Void>(committing: store, run: "own", batchesOf: 64) {
                    rows, transaction in transaction.insert(rows.map { (id: $0.0, value: $0.1) })
                }
                let middle = Layer<Int, (Int, Int)>(concurrency: 3) { x in (x, scramble(x)) }
                return async
                    ? try await pipeline(Layer(resumable: AsyncNumbers(count: n)), middle, collector)
                    : try await pipeline(Layer(resumable: Numbers(count: n)), middle, collector)
            }
            store.crash(after: 50)
            await #expect(throws: MemoryRunStore.Crash.self) { try await run() }
            store.crash(after: nil)
            let report = try await run()
            #expect(store.check(n) == ([], []))
            #expect(report.pulled == n - 50 * 64 && report.run?.alreadyDone == 50 * 64)
        }

        @Test("a collector with positions gets each item's source position, the same in every attempt")
        func withPositions() async throws {
            let store = MemoryRunStore()
            let source = (0..<6_000).map { $0 * 3 }  // items are not their positions
            let wrong = Counter()
            func run() async throws -> PipelineReport {
                try await pipeline(
                    Layer(source),
                    Layer(workers: 3) { (x: Int) in x + 1 },
                    Layer(committingWithPositions: store, run: "positions", batchesOf: 128) { rows, transaction in
                        for row in rows where source[Int(row.position)] + 1 != row.item { wrong.add(1) }
                        transaction.insert(rows.map { (id: Int($0.position), value: $0.item) })
                    })
            }
            store.crash(after: 10)
            await #expect(throws: MemoryRunStore.Crash.self) { try await run() }
            store.crash(after: nil)
            let report = try await run()
            #expect(wrong.count == 0 && store.check(6_000) == ([], []))
            #expect(report.pulled == 6_000 - 1_280 && report.run?.alreadyDone == 1_280)
        }

        @Test("an item skipped in a middle layer has no row; the run still finishes")
        func skippedItems() async throws {
            struct Odd: Error {}
            let store = MemoryRunStore()
            let report = try await pipeline(
                Layer(0..<1_000),
                Layer(workers: 2, onError: .skip) { (x: Int) in
                    if x % 100 == 7 { throw Odd() }
                    return (x, scramble(x))
                },
                Layer(committing: store, run: "skips", batchesOf: 50) { rows, transaction in
                    transaction.insert(rows.map { (id: $0.0, value: $0.1) })
                })
            let (missing, repeated) = store.check(1_000)
            #expect(missing == Array(stride(from: 7, to: 1_000, by: 100)) && repeated.isEmpty)
            #expect(report.skipped == 10 && report.run?.finished == true && report.run?.committed == 990)
        }

        @Test("a drained named run is not finished, and its next start completes it")
        func drained() async throws {
            let store = MemoryRunStore()
            let control = PipelineControl()
            var options = PipelineOptions()
            options.control = control
            let n = 100_000
            let first = try await pipeline(
                Layer(0..<n),
                Layer(workers: 2) { (x: Int) in (x, scramble(x)) },
                Layer(committing: store, run: "drain", batchesOf: 100) { rows, transaction in
                    transaction.insert(rows.map { (id: $0.0, value: $0.1) })
                    if rows.contains(where: { $0.0 == 5_000 }) { control.drain() }
                }, options: options)
            #expect(first.run?.finished == false && first.dropped == 0 && first.completed < n)
            let second = try await ingest(n, into: store, run: "drain")
            #expect(second.run?.finished == true && second.run?.alreadyDone == UInt64(first.completed))
            #expect(store.check(n) == ([], []))
        }

        @Test("a source that cannot resume is refused before any pull")
        func refusedSource() async throws {
            let store = MemoryRunStore()
            let pulls = Counter()
            let error = await #expect(throws: FlowConfigurationError.self) {
                try await pipeline(
                    Layer(Counting(limit: 100, pulls: pulls)),
                    Layer(committing: store, run: "lazy", batchesOf: 10) { (rows: [Int], transaction) in
                        transaction.insert(rows.map { (id: $0, value: $0) })
                    })
            }
            #expect(error?.parameter == "source" && error?.message.contains("can resume") == true)
            #expect(pulls.count == 0 && store.commits == 0)
        }

        @Test("a checkpoint round-trips its text; a bad one is refused by name")
        func checkpointText() throws {
            var checkpoint = RunCheckpoint()
            checkpoint.progress.commit(0..<10)
            checkpoint.progress.commit(12..<15)
            checkpoint.sequence = 3
            checkpoint.pulled = 20
            #expect(checkpoint.encoded == "3 20 open 10;12-15")
            #expect(try RunCheckpoint(encoded: checkpoint.encoded) == checkpoint)
            #expect(throws: RunProgressError.self) { try RunCheckpoint(encoded: "3 20 closed 10") }
            #expect(throws: RunProgressError.self) { try RunCheckpoint(encoded: "3 20 open 10;15-12") }
            checkpoint.bookmark = SourceBookmark(position: 8, offset: 123)
            #expect(checkpoint.encoded == "3 20 open 10;12-15 8@123")
            #expect(try RunCheckpoint(encoded: checkpoint.encoded) == checkpoint)
            #expect(throws: RunProgressError.self) { try RunCheckpoint(encoded: "3 20 open 10 8-123") }
            // [a bookmark is at or below the watermark]
            #expect(throws: RunProgressError.self) { try RunCheckpoint(encoded: "3 20 open 10 11@123") }
        }

        /// A file of `lines` lines (line i is "line i", some of them varied: empty, CRLF, one longer than the
        /// reader's buffer, the last without `\n`) and what its lines are.
        func linesFile(_ lines: Int) throws -> (path: String, lines: [String]) {
            var expected: [String] = []
            var text = ""
            for i in 0..<lines {
                let line =
                    i % 500 == 7 ? "" : i == 2_100 ? "long " + String(repeating: "x", count: 600_000) : "line \(i)"
                expected.append(line)
                text += line + (i % 300 == 5 ? "\r\n" : i == lines - 1 ? "" : "\n")
            }
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("lines-\(UUID()).txt").path
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            return (path, expected)
        }

        @Test("a file's lines from any position, exactly: empty, CRLF, longer than the buffer, no last newline")
        func fileLines() async throws {
            let (path, expected) = try linesFile(3_000)
            defer { unlink(path) }
            let source = try FileLines(path)
            for start in [0, 1, 7, 2_100, 2_101, 2_999, 3_000, 3_500] {
                var lines: [String] = []
                for try await line in source.items(from: UInt64(start)) { lines.append(line) }
                #expect(lines == Array(expected[min(start, expected.count)...]), "from \(start)")
            }
            let error = #expect(throws: FileLinesError.self) { try FileLines(path + ".missing") }
            #expect(error?.description.contains(path + ".missing") == true)
        }

        /// A named run over `path`'s lines into `store`: rows (position, the number the line ends with, or -1).
        func ingestLines(_ path: String, into store: MemoryRunStore) async throws -> PipelineReport {
            try await pipeline(
                Layer(resumable: try FileLines(path)),
                Layer(workers: 2) { (line: String) in Int(line.split(separator: " ").last ?? "") ?? -1 },
                Layer(committingWithPositions: store, run: "lines", batchesOf: 100) { rows, transaction in
                    transaction.insert(rows.map { (id: Int($0.position), value: $0.item) })
                })
        }

        /// A named run over a file of 20,000 lines (linesFile) killed after its 57th commit: the file, its lines
        /// and the store; the store lets the next run commit.
        func killedLinesRun() async throws -> (path: String, lines: [String], store: MemoryRunStore) {
            let (path, lines) = try linesFile(20_000)
            let store = MemoryRunStore()
            store.crash(after: 57)
            await #expect(throws: MemoryRunStore.Crash.self) { try await ingestLines(path, into: store) }
            store.crash(after: nil)
            return (path, lines, store)
        }

        @Test("a named run over a file's lines resumes at a bookmarked byte offset, not by reading from the start")
        func fileLinesResumeByOffset() async throws {
            let (path, expected, store) = try await killedLinesRun()
            defer { unlink(path) }
            let saved = try RunCheckpoint(encoded: try #require(try await store.checkpoint(of: "lines")))
            let bookmark = try #require(saved.bookmark)
            // a line a multiple of 1,024 at or below the watermark, where that line starts
            #expect(bookmark.position % 1_024 == 0 && bookmark.position <= saved.progress.watermark)
            #expect(bookmark.position > 0 && saved.progress.watermark - bookmark.position < 1_024)
            let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            let before = bytes.prefix(Int(bookmark.offset))
            #expect(
                before.last == UInt8(ascii: "\n")
                    && before.filter { $0 == UInt8(ascii: "\n") }.count == bookmark.position)
            // the lines before the bookmark lose their newlines (but the one before it): a reader that counted
            // lines from the start would now find other lines at every position
            var changed = bytes
            for i in 0..<Int(bookmark.offset) - 1 where changed[i] == UInt8(ascii: "\n") {
                changed[i] = UInt8(ascii: ";")
            }
            try changed.write(to: URL(fileURLWithPath: path))
            let report = try await ingestLines(path, into: store)
            #expect(report.run?.finished == true && report.run?.alreadyDone == 5_700)
            #expect(store.check(20_000) == ([], []))
            let rows = store.state.withLock { $0.rows }
            let numbers = expected.map { Int($0.split(separator: " ").last ?? "") ?? -1 }
            #expect((0..<20_000).allSatisfy { rows[$0] == [numbers[$0]] })
        }

        @Test("a file changed under a named run (its bookmark no longer starts a line) fails the run, naming the file")
        func fileLinesChanged() async throws {
            let (path, _, store) = try await killedLinesRun()
            defer { unlink(path) }
            // one byte more at the start: every line starts one byte later
            let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            try (Data("x".utf8) + bytes).write(to: URL(fileURLWithPath: path))
            let error = await #expect(throws: FileLinesError.self) { try await ingestLines(path, into: store) }
            #expect(error?.path == path && error?.message.contains("the file changed") == true)
        }
    }
}
