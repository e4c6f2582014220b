#if SQLite
    import Foundation
    import SQLiteNIO
    import Testing

    @testable import AsyncFlow
    @testable import AsyncFlowSQLite

    /// A named run into an SQLite file (SQLiteRunStore): rows and checkpoint in one transaction, a crash
    /// and a resume, exact counts read back from the table.
    extension Serial {
        @Suite("SQLite named runs")
        struct SQLiteRunStoreTests {
            struct Crash: Error {}

            @Test(
                "killed part-way and started again: every row once, the sum exact",
                arguments: PipelineOptions.Backend.allCases)
            func resumeIntoSQLite(backend: PipelineOptions.Backend) async throws {
                let path = FileManager.default.temporaryDirectory.appendingPathComponent(
                    "named-run-\(UInt32.random(in: 0...UInt32.max)).sqlite"
                ).path
                defer { try? FileManager.default.removeItem(atPath: path) }
                let db = try await SQLiteConnection.open(storage: .file(path: path))
                _ = try await db.query("CREATE TABLE rows (id INTEGER NOT NULL, value INTEGER NOT NULL)", [])
                let store = try SQLiteRunStore(connection: db)
                let n = 20_000
                let calls = Counter()
                func run(crashAt: Int?) async throws -> PipelineReport {
                    try await pipeline(
                        Layer(0..<n),
                        Layer(workers: 2) { (x: Int) in (x, scramble(x)) },
                        Layer(committing: store, run: "lite", batchesOf: 500) { rows, db in
                            let values = Array(repeating: "(?, ?)", count: rows.count).joined(separator: ", ")
                            let binds = rows.flatMap { [SQLiteData.integer($0.0), .integer($0.1)] }
                            _ = try await db.query("INSERT INTO rows (id, value) VALUES \(values)", binds)
                            calls.add(1)
                            if calls.count == crashAt { throw Crash() }  // after the insert: rolled back
                        }, options: PipelineOptions(backend: backend))
                }
                await #expect(throws: Crash.self) { try await run(crashAt: 7) }
                let report = try await run(crashAt: nil)
                #expect(report.run?.alreadyDone == 6 * 500 && report.pulled == n - 6 * 500)
                #expect(report.run?.finished == true)
                let row = try #require(
                    try await db.query("SELECT count(*) AS n, count(DISTINCT id) AS ids, sum(value) AS s FROM rows", [])
                        .first)
                #expect(row.column("n")?.integer == n && row.column("ids")?.integer == n)
                #expect(row.column("s")?.integer == (0..<n).reduce(0) { $0 &+ scramble($1) })
                let again = try await run(crashAt: nil)
                #expect(again.run?.wasFinished == true && again.pulled == 0)
                #expect(throws: SQLiteRunStoreError.self) { try SQLiteRunStore(connection: db, table: "runs; DROP") }
                try await db.close()
            }
        }
    }
#endif
