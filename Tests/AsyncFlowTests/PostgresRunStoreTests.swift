#if Postgres
    import Foundation
    import PostgresNIO
    import Testing

    @testable import AsyncFlow
    @testable import AsyncFlowPostgres

    /// A named run into PostgreSQL (PostgresRunStore): rows and checkpoint in one transaction, a crash and a
    /// resume, exact counts read back from the table.
    extension Serial {
        @Suite(
            "PostgreSQL named runs",
            .enabled(if: Cluster.available, "no PostgreSQL server (see PostgresCluster.swift)"),
            .timeLimit(.minutes(2)))
        struct PostgresRunStoreTests {
            struct Crash: Error {}

            @Test("a store that makes its own pool: a wrong password fails the run at once, before any pull")
            func refusedStore() async throws {
                let cluster = try Cluster.server()
                guard let wrong = cluster.url(user: Cluster.passwordRole.name, password: "wrong-horse-battery") else {
                    return  // DATABASE_URL's server is not ours to configure
                }
                let store = try PostgresRunStore.connect(url: wrong)
                let pulls = Counter()
                let started = ContinuousClock.now
                let error = await #expect(throws: PostgresWorkQueueError.self) {
                    try await pipeline(
                        Layer(0..<100),
                        Layer(workers: 1) { (x: Int) in
                            pulls.add(1)
                            return x
                        },
                        Layer(committing: store, run: "refused", batchesOf: 10) { (_: [Int], _) in })
                }
                #expect(
                    error?.kind == .refused && error?.description.contains("password authentication failed") == true)
                #expect(error?.description.contains("wrong-horse") == false)
                #expect(pulls.count == 0 && ContinuousClock.now - started < .seconds(5))
                await store.shutdown()
            }

            @Test("killed part-way and started again: every row once, the sum exact", arguments: [false, true])
            func resumeIntoPostgres(ordered: Bool) async throws {
                let queue = try Cluster.queue()
                let client = queue.client
                let suffix = String(UInt32.random(in: 0...UInt32.max), radix: 36)
                let (rowsTable, runsTable) = ("rows_\(suffix)", "runs_\(suffix)")
                try await client.query(
                    PostgresQuery(
                        unsafeSQL:
                            "CREATE TABLE \(rowsTable) (run text NOT NULL, id int8 NOT NULL, value int8 NOT NULL)"))
                let store = try PostgresRunStore(client: client, table: runsTable)
                let n = 30_000
                let calls = Counter()
                func run(crashAt: Int?) async throws -> PipelineReport {
                    try await pipeline(
                        Layer(0..<n),
                        Layer(workers: 2, ordered: ordered) { (x: Int) in (x, scramble(x)) },
                        Layer(committing: store, run: "pg", batchesOf: 700) { rows, connection in
                            var binds = PostgresBindings(capacity: 2)
                            binds.append(rows.map { Int64($0.0) })
                            binds.append(rows.map { Int64($0.1) })
                            try await connection.query(
                                PostgresQuery(
                                    unsafeSQL:
                                        "INSERT INTO \(rowsTable) SELECT 'pg', * FROM unnest($1::int8[], $2::int8[])",
                                    binds: binds), logger: store.logger)
                            calls.add(1)
                            if calls.count == crashAt { throw Crash() }  // after the insert: rolled back
                        })
                }
                await #expect(throws: Crash.self) { try await run(crashAt: 11) }
                let report = try await run(crashAt: nil)
                #expect(report.run?.alreadyDone == 10 * 700 && report.pulled == n - 10 * 700)
                #expect(report.run?.finished == true && report.run?.committed == UInt64(n))
                let counts = try await client.query(
                    PostgresQuery(unsafeSQL: "SELECT count(*), count(DISTINCT id), sum(value)::int8 FROM \(rowsTable)"))
                for try await (rows, ids, sum) in counts.decode((Int64, Int64, Int64).self) {
                    #expect(rows == Int64(n) && ids == Int64(n))
                    #expect(sum == (0..<n).reduce(Int64(0)) { $0 + Int64(scramble($1)) })
                }
                // started again: nothing to do
                let again = try await run(crashAt: nil)
                #expect(again.run?.wasFinished == true && again.pulled == 0)
                await queue.shutdown()
            }

            @Test(
                "a commit the store refuses rolls its rows back: another process's checkpoint, a save the server fails")
            func refusedCommits() async throws {
                let queue = try Cluster.queue()
                let client = queue.client
                let suffix = String(UInt32.random(in: 0...UInt32.max), radix: 36)
                let (rowsTable, runsTable) = ("rows_\(suffix)", "runs_\(suffix)")
                @Sendable func sql(_ text: String) async throws -> [Int64] {
                    var values: [Int64] = []
                    for try await value in try await client.query(PostgresQuery(unsafeSQL: text)).decode(Int64.self) {
                        values.append(value)
                    }
                    return values
                }
                _ = try await sql("CREATE TABLE \(rowsTable) (id int8 NOT NULL)")
                let store = try PostgresRunStore(client: client, table: runsTable)
                let n = 10_000
                let calls = Counter()
                /// Batches of 100; on the 5th batch, after its rows, `meddle` changes the runs table from
                /// another connection.
                func run(_ meddle: String?) async throws -> PipelineReport {
                    calls.value.store(0, ordering: .relaxed)
                    return try await pipeline(
                        Layer(0..<n),
                        Layer(workers: 2) { (x: Int) in x },
                        Layer(committing: store, run: "refused", batchesOf: 100) { rows, connection in
                            var binds = PostgresBindings(capacity: 1)
                            binds.append(rows.map { Int64($0) })
                            try await connection.query(
                                PostgresQuery(
                                    unsafeSQL: "INSERT INTO \(rowsTable) SELECT * FROM unnest($1::int8[])",
                                    binds: binds), logger: store.logger)
                            if calls.value.add(1, ordering: .relaxed).newValue == 5, let meddle {
                                _ = try await sql(meddle)
                            }
                        })
                }
                // another process committed for the run: this one's save finds checkpoint 5, not 4
                let takenOver = await #expect(throws: RunTakenOverError.self) {
                    try await run("UPDATE \(runsTable) SET sequence = 5, checkpoint = '5' || substr(checkpoint, 2)")
                }
                #expect(takenOver?.expected == 4 && takenOver?.found?.hasPrefix("5 ") == true)
                #expect(try await sql("SELECT count(*) FROM \(rowsTable)") == [400])
                // the save itself fails (the server's error), the rows roll back
                _ = try await sql("UPDATE \(runsTable) SET sequence = 4, checkpoint = '4' || substr(checkpoint, 2)")
                let failed = await #expect(throws: PSQLError.self) {
                    try await run("ALTER TABLE \(runsTable) RENAME COLUMN checkpoint TO moved")
                }
                #expect(String(reflecting: failed).contains("checkpoint"))
                #expect(try await sql("SELECT count(*) FROM \(rowsTable)") == [800])
                // put back, the run resumes after its eight committed batches and finishes exactly
                _ = try await sql("ALTER TABLE \(runsTable) RENAME COLUMN moved TO checkpoint")
                let report = try await run(nil)
                #expect(report.run?.alreadyDone == 800 && report.run?.finished == true)
                #expect(try await sql("SELECT count(*) - count(DISTINCT id) FROM \(rowsTable)") == [0])
                #expect(try await sql("SELECT count(*) FROM \(rowsTable)") == [Int64(n)])
                await queue.shutdown()
            }
        }
    }
#endif
