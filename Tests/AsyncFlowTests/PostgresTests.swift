#if Postgres
    import Foundation
    import InMemoryLogging
    import Logging
    import MetricsTestKit
    import PostgresNIO
    import Synchronization
    import Testing

    @testable import AsyncFlow
    @testable import AsyncFlowPostgres

    /// The example's layer: mix(x) = ((x &* 2654435761) & 0xFFFF_FFFF) % 1_000_003.
    func mix(_ x: Int) -> Int { ((x &* 2_654_435_761) & 0xFFFF_FFFF) % 1_000_003 }

    /// AsyncFlowPostgres against a real server (PostgresCluster): the protocol's promises, each with exact
    /// counts: results exactly once and in order, policies counted, stale builds refused, lost leases
    /// fenced, dead letters, a server restart and a crash, no rows left behind.
    extension Serial {
        @Suite(
            "PostgreSQL distributed layer",
            .enabled(if: Cluster.available, "no PostgreSQL server (see PostgresCluster.swift)"),
            .timeLimit(.minutes(2)))
        struct PostgresTests {
            /// Run `workers` FlowWorkers for `layer` beside `body`, drained and awaited afterwards.
            func withWorkers<T: Sendable>(
                _ queue: PostgresWorkQueue, _ layer: DistributedLayer<Int, Int>, count: Int = 2, threads: Int? = 1,
                workerQueue: PostgresWorkQueue? = nil, _ body: ([FlowWorker<Int, Int>]) async throws -> T
            ) async throws -> T {
                let workers = (0..<count).map { _ in
                    FlowWorker(queue: workerQueue ?? queue, serving: layer, threads: threads)
                }
                let tasks = workers.map { w in Task { try await w.run() } }
                do {
                    let result = try await body(workers)
                    for w in workers { w.drain() }
                    for t in tasks { try await t.value }
                    return result
                } catch {
                    for t in tasks { t.cancel() }
                    for t in tasks { _ = await t.result }  // no worker's run outlives its test
                    throw error
                }
            }

            @Test("20,000 items through 2 workers: every result once, in input order, no rows left")
            func exactlyOnceOrdered() async throws {
                let queue = try Cluster.queue()
                let layer = DistributedLayer("mix") { (x: Int) in mix(x) }
                let n = 20_000
                let seen = Locked<[Int]>([])
                let ids = Locked<[String]>([])
                let report = try await withWorkers(queue, layer) { workers in
                    ids.withLock { $0 = workers.map(\.id) }
                    return try await pipeline(
                        Layer(0..<n), Layer(layer, on: queue, chunk: 500, ordered: true),
                        Layer { (y: Int) in seen.withLock { $0.append(y) } })
                }
                let inOrder = seen.withLock { $0 } == (0..<n).map(mix)
                #expect(inOrder)
                // every chunk counted for the worker that wrote its result
                let perWorker = report.layers[1].workers
                #expect(perWorker.reduce(0) { $0 + $1.items } == n && perWorker.reduce(0) { $0 + $1.batches } == 40)
                #expect(!perWorker.isEmpty && Set(perWorker.map(\.worker)).isSubset(of: ids.withLock { $0 }))
                #expect(report.layers[1].emitted == n && report.completed == n && report.dropped == 0)
                expectBalanced(report, pulled: n)
                let left = try await queue.counts()
                #expect(left.chunks == 0 && left.results == 0 && left.deadLetters == 0)
                await queue.shutdown()
            }

            @Test("skip, retry and fail are applied by the workers and counted in the coordinator's report")
            func policiesCounted() async throws {
                let queue = try Cluster.queue()
                let n = 10_000
                let failing = DistributedLayer("sevens") { (x: Int) throws -> Int in
                    if x % 1_000 == 7 { throw TestError.bad(x) }
                    return x
                }
                let failedOnce = Locked<Set<Int>>([])
                let flaky = DistributedLayer("eights") { (x: Int) throws -> Int in
                    if x % 1_000 == 8, failedOnce.withLock({ $0.insert(x).inserted }) { throw TestError.bad(x) }
                    return x
                }
                let sum = Atomic<Int>(0)
                let skipped = try await withWorkers(queue, failing) { _ in
                    try await pipeline(
                        Layer(0..<n), Layer(failing, on: queue, chunk: 250, onError: .skip),
                        Layer { (y: Int) in sum.add(y, ordering: .relaxed) })
                }
                #expect(skipped.layers[1].skipped == 10 && skipped.layers[1].emitted == n - 10)
                #expect(sum.load(ordering: .relaxed) == (0..<n).filter { $0 % 1_000 != 7 }.reduce(0, +))
                #expect(skipped.errors.count == 10 && "\(skipped.errors[0])".contains("bad("))
                expectBalanced(skipped, pulled: n)

                let retried = try await withWorkers(queue, flaky) { _ in
                    try await pipeline(
                        Layer(0..<n), Layer(flaky, on: queue, chunk: 250, onError: .retry(attempts: 2)),
                        Layer { (_: Int) in })
                }
                #expect(retried.layers[1].retried == 10 && retried.layers[1].emitted == n && retried.completed == n)

                let box = ReportBox()
                let once = DistributedLayer("one") { (x: Int) throws -> Int in
                    if x == 7_777 { throw TestError.bad(x) }
                    return x
                }
                do {
                    _ = try await withWorkers(queue, once) { _ in
                        try await pipeline(
                            Layer(0..<n), Layer(once, on: queue, chunk: 250), Layer { (_: Int) in },
                            options: box.options(.native))
                    }
                    Issue.record("the run did not fail")
                } catch let error as DistributedLayerError {
                    #expect(error.kind == .remote && error.layer == "one" && error.chunk != nil)
                    #expect(error.message.contains("bad("), "\(error)")
                }
                let failed = try #require(box.report.withLock { $0 })
                #expect(failed.layers[1].failed == 1)
                expectBalanced(failed, pulled: failed.layers[0].received)
                let left = try await queue.counts()
                // [a stop closes the slots], [a run leaves no rows]: a stopped run forgets its chunks
                #expect(left.chunks == 0 && left.results == 0)
                await queue.shutdown()
            }

            @Test(
                "a worker of another build is refused with an error naming both builds; the coordinator cancels cleanly"
            )
            func otherBuildRefused() async throws {
                let queue = try Cluster.queue()
                let coordinatorLayer = DistributedLayer("mix", version: "2.0") { (x: Int) in mix(x) }
                let staleLayer = DistributedLayer("mix", version: "1.0") { (x: Int) in mix(x) }
                let run = Task {
                    try await pipeline(
                        Layer(0..<1_000), Layer(coordinatorLayer, on: queue, chunk: 100), Layer { (_: Int) in })
                }
                let stale = FlowWorker(queue: queue, serving: staleLayer, threads: 1)
                do {
                    try await stale.run()
                    Issue.record("the stale worker ran")
                } catch let error as DistributedLayerError {
                    #expect(
                        error.kind == .otherBuild && "\(error)".contains("build 2.0")
                            && "\(error)".contains("build 1.0"))
                }
                #expect(stale.report.completed == 0)
                run.cancel()
                await #expect(throws: CancellationError.self) { try await run.value }
                let left = try await queue.counts()
                #expect(left.chunks == 0 && left.results == 0)
                await queue.shutdown()
            }

            @Test("a worker whose heartbeats stall loses its chunks to another; its late results are refused")
            func lostLeaseFenced() async throws {
                let queue = try Cluster.queue()
                let n = 2_000
                // the same layer (name and version) in two workers: the stalled one never renews its lease (0.2 s) and
                // takes 1.2 s a chunk; the other, taking such a chunk over, takes 1.5 s on it, so the stalled one
                // finishes first, while the chunk is under the other's claim: the fence
                // ([completions fenced by attempt]) must refuse it. (A chunk whose lease ran out but that nobody
                // claimed again is still the stalled worker's to complete.)
                let stalledStarted = Locked<Set<Int>>([])
                let slow = DistributedLayer("lease", version: "1") { (x: Int) -> Int in
                    if x % 100 == 0 {
                        stalledStarted.withLock { _ = $0.insert(x) }
                        usleep(1_200_000)
                    }
                    return mix(x)
                }
                let fast = DistributedLayer("lease", version: "1") { (x: Int) -> Int in
                    if x % 100 == 0 && stalledStarted.withLock({ $0.contains(x) }) { usleep(1_500_000) }
                    return mix(x)
                }
                let stalled = FlowWorker(queue: queue, serving: slow, threads: 1, heartbeats: false)
                let stalledRun = Task { try await stalled.run() }
                let seen = Locked<[Int]>([])
                let run = Task {
                    try await pipeline(
                        Layer(0..<n), Layer(fast, on: queue, chunk: 100, ordered: true, lease: .milliseconds(200)),
                        Layer { (y: Int) in seen.withLock { $0.append(y) } })
                }
                // the fast worker starts once the stalled one holds a chunk
                while stalled.book.withLock({ $0.holding.isEmpty }) { try await Task.sleep(for: .milliseconds(5)) }
                let report = try await withWorkers(queue, fast, count: 1) { _ in try await run.value }
                stalled.drain()
                try await stalledRun.value
                let got = seen.withLock { $0 }
                let wrong = zip(got, (0..<n).map(mix)).count { $0 != $1 }
                #expect(got.count == n && wrong == 0, "\(got.count) results, \(wrong) not mix(x) or out of order")
                #expect(report.completed == n)
                #expect(stalled.report.refused >= 1, "\(stalled.report)")  // it did finish chunks, too late
                let left = try await queue.counts()
                #expect(left.chunks == 0 && left.results == 0)
                await queue.shutdown()
            }

            @Test("drain: a worker finishes what it started and hands the rest back before run() returns")
            func drainHandsBack() async throws {
                let queue = try Cluster.queue()
                let slow = DistributedLayer("drain", version: "1") { (x: Int) -> Int in
                    if x % 10 == 0 { usleep(100_000) }
                    return mix(x)
                }
                let fast = DistributedLayer("drain", version: "1") { (x: Int) in mix(x) }
                let n = 400
                let seen = Locked<[Int]>([])
                // a lease of 60 s: only a hand-back lets another worker take a chunk during this test
                let run = Task {
                    try await pipeline(
                        Layer(0..<n),
                        Layer(fast, on: queue, chunk: 10, within: nil, ordered: true, lease: .seconds(60)),
                        Layer { (y: Int) in seen.withLock { $0.append(y) } })
                }
                let draining = FlowWorker(queue: queue, serving: slow, threads: 4)
                let drainingRun = Task { try await draining.run() }
                while draining.book.withLock({ $0.holding.count }) < 4 { try await Task.sleep(for: .milliseconds(5)) }
                draining.drain()
                try await drainingRun.value
                // nothing is left under a claim: what it held was completed or handed back (its lease cleared)
                let claimed = try await queue.rows(
                    PostgresQuery(
                        unsafeSQL: "SELECT count(*) FROM \(queue.sql.t("chunks")) WHERE lease_until IS NOT NULL"),
                    as: Int64.self)
                #expect(claimed == [0], "\(draining.report)")
                #expect(draining.report.completed >= 1)
                let report = try await withWorkers(queue, fast, count: 1) { _ in try await run.value }
                #expect(report.completed == n && seen.withLock { $0 } == (0..<n).map(mix))
                await queue.shutdown()
            }

            @Test("the fence: a completion under a claim that was taken over writes nothing; the new claim's does")
            func fence() async throws {
                let queue = try Cluster.queue()
                let layer = DistributedLayer("fence") { (x: Int) in x }
                let run = Task {
                    try await pipeline(
                        Layer(0..<10), Layer(layer, on: queue, chunk: 10, within: nil, lease: .seconds(1)),
                        Layer { (_: Int) in })
                }
                func claim(_ who: String) async throws -> [ClaimedChunk] {
                    try await queue.claim(layer: "fence", build: layer.build, limit: 1, worker: who)
                }
                func complete(_ c: ClaimedChunk, _ who: String, _ value: Int) async throws -> Int {
                    try await completeAs(queue, c, who, Array(repeating: value, count: 10))
                }
                var first = try await claim("A")
                while first.isEmpty {
                    try await Task.sleep(for: .milliseconds(10))
                    first = try await claim("A")
                }
                #expect(try await claim("B").isEmpty)  // A's lease holds
                try await Task.sleep(for: .milliseconds(1_100))
                let second = try await claim("B")  // A's lease ran out: B takes the chunk over
                #expect(second.count == 1 && second[0].key.attempt == first[0].key.attempt + 1)
                #expect(try await complete(first[0], "A", 7) == 0)  // A lost it: nothing written
                #expect(try await complete(second[0], "B", 3) == 1)
                #expect(try await complete(second[0], "B", 3) == 0)  // once
                let report = try await run.value
                #expect(report.completed == 10)
                let left = try await queue.counts()
                #expect(left.chunks == 0 && left.results == 0)
                await queue.shutdown()
            }

            /// Complete a claimed chunk with `results` as worker `who`: the results written (0 or 1).
            func completeAs(_ queue: PostgresWorkQueue, _ c: ClaimedChunk, _ who: String, _ results: [Int])
                async throws -> Int
            {
                let done = CompletedChunk(
                    key: c.key, payload: try ChunkCodec.encode(results), emitted: Int32(results.count), skipped: 0,
                    failed: 0, retried: 0, error: "", skipError: "")
                return try await queue.rows(queue.sql.complete([done], worker: who), as: (Int64, Int64).self).count
            }

            @Test("a chunk that comes back after its result was taken (a crash undid its completion) is deleted")
            func returnedChunk() async throws {
                let queue = try Cluster.queue()
                let layer = DistributedLayer("returned") { (x: Int) in x }
                let run = Task {
                    try await pipeline(
                        Layer(0..<20), Layer(layer, on: queue, chunk: 10, within: nil), Layer { (_: Int) in })
                }
                // this test is the worker: it claims both chunks, completes the first
                var claimed: [ClaimedChunk] = []
                while claimed.count < 2 {
                    claimed += try await queue.claim(layer: layer.name, build: layer.build, limit: 2, worker: "w")
                    try await Task.sleep(for: .milliseconds(10))
                }
                let (first, second) = (claimed[0], claimed[1])
                #expect(try await completeAs(queue, first, "w", Array(0..<10)) == 1)
                while try await queue.counts().results > 0 { try await Task.sleep(for: .milliseconds(10)) }
                // its result was taken; now the chunk comes back, as when a crash undoes the completion and the
                // deletion of the result, which both committed without waiting for the disk
                // ([commits need not be durable])
                try await queue.run(
                    queue.sql.submit(
                        run: first.key.run, seq: first.key.seq, layer: layer.name, build: layer.build,
                        policy: ErrorPolicy.fail.wire, items: 10, payload: first.payload, maxAttempts: 3, lease: 30))
                #expect(try await completeAs(queue, second, "w", Array(10..<20)) == 1)
                let report = try await run.value
                #expect(report.completed == 20)
                let left = try await queue.counts()
                #expect(left.chunks == 0 && left.results == 0)  // [a run leaves no rows]
                await queue.shutdown()
            }

            @Test("an error that is not a lost connection fails the run and the worker, naming it, instead of retrying")
            func databaseErrorFails() async throws {
                let queue = try Cluster.queue()
                try await queue.prepare()
                try await queue.run(PostgresQuery(unsafeSQL: "DROP TABLE \(queue.sql.t("results"))"))
                let layer = DistributedLayer("broken") { (x: Int) in x }
                do {
                    _ = try await pipeline(Layer(0..<100), Layer(layer, on: queue, chunk: 10), Layer { (_: Int) in })
                    Issue.record("the run did not fail")
                } catch let error as DistributedLayerError {
                    #expect(error.kind == .database && "\(error)".contains("taking results"), "\(error)")
                }
                try await queue.run(PostgresQuery(unsafeSQL: "DROP TABLE \(queue.sql.t("chunks"))"))
                do {
                    try await FlowWorker(queue: queue, serving: layer, threads: 1).run()
                    Issue.record("the worker ran")
                } catch let error as DistributedLayerError {
                    #expect(error.kind == .database && "\(error)".contains("claiming chunks"), "\(error)")
                }
                await queue.shutdown()
            }

            /// 10 items in one chunk of `layer`, served by no FlowWorker: the test claims it like a worker that
            /// dies each time (never completes, so each claim's lease, 0.2 s, runs out), `maxAttempts` times.
            func dyingClaims(
                _ queue: PostgresWorkQueue, _ layer: DistributedLayer<Int, Int>, maxAttempts: Int,
                onError: ErrorPolicy = .fail
            ) async throws -> PipelineReport {
                let run = Task {
                    try await pipeline(
                        Layer(0..<10),
                        Layer(
                            layer, on: queue, chunk: 10, within: nil, maxAttempts: maxAttempts,
                            lease: .milliseconds(200), onError: onError),
                        Layer { (_: Int) in })
                }
                var claims = 0
                while claims < maxAttempts {
                    claims += try await queue.claim(layer: layer.name, build: layer.build, limit: 1, worker: "dying")
                        .count
                    try await Task.sleep(for: .milliseconds(20))
                }
                return try await run.value
            }

            @Test("a chunk whose workers die maxAttempts times goes to the dead letters; its items count failed")
            func deadLetters() async throws {
                let queue = try Cluster.queue()
                let layer = DistributedLayer("poison") { (x: Int) in x }
                let report = try await dyingClaims(queue, layer, maxAttempts: 2, onError: .skip)
                #expect(report.layers[1].failed == 10 && report.layers[1].emitted == 0 && report.completed == 0)
                expectBalanced(report, pulled: 10)
                let left = try await queue.counts()
                #expect(left.chunks == 0 && left.results == 0 && left.deadLetters == 1)

                do {
                    _ = try await dyingClaims(queue, layer, maxAttempts: 1)
                    Issue.record("the run did not fail")
                } catch let error as DistributedLayerError {
                    #expect(error.kind == .deadLetter && "\(error)".contains("died 1 times"), "\(error)")
                }
                await queue.shutdown()
            }

            @Test("a claim whose answer was lost: its chunks are released at once, not left to their 60 s lease")
            func lostClaimAnswer() async throws {
                let losses = AnswerLosses()
                let workerQueue = try Cluster.queue(afterStatement: losses.afterStatement)
                let queue = try PostgresWorkQueue(
                    url: try Cluster.server().url, schema: workerQueue.schema, logger: workerQueue.logger)
                losses.lose(["\"\(queue.schema)\".claim(": 1])
                let layer = DistributedLayer("lost-claim") { (x: Int) in mix(x) }
                let n = 5_000
                let started = ContinuousClock.now
                let sum = Atomic<Int>(0)
                let report = try await withWorkers(queue, layer, count: 1, workerQueue: workerQueue) { _ in
                    try await pipeline(
                        Layer(0..<n), Layer(layer, on: queue, chunk: 100, lease: .seconds(60)),
                        Layer { (y: Int) in sum.add(y, ordering: .relaxed) })
                }
                #expect(losses.left == 0, "the claim's answer was lost")
                #expect(report.completed == n && sum.load(ordering: .relaxed) == (0..<n).reduce(0) { $0 + mix($1) })
                #expect(ContinuousClock.now - started < .seconds(60), "the lost claim's chunks waited for their lease")
                for q in [queue, workerQueue] { await q.shutdown() }
            }

            @Test("status: a run's chunks by state, its results and dead letters, and the workers holding claims")
            func queueStatus() async throws {
                let queue = try Cluster.queue()
                #expect(try await queue.status().runs.isEmpty)
                for seq in Int64(1)...4 {
                    try await queue.run(
                        queue.sql.submit(
                            run: 7, seq: seq, layer: "s", build: "b", policy: "fail", items: 10, payload: ByteBuffer(),
                            maxAttempts: 3, lease: 30))
                }
                let claimed = try await queue.claim(layer: "s", build: "b", limit: 3, worker: "w1")
                #expect(claimed.map(\.key.seq) == [1, 2, 3])
                let t = queue.sql.t
                try await queue.run(
                    PostgresQuery(
                        unsafeSQL: "UPDATE \(t("chunks")) SET lease_until = now() - interval '1 s' WHERE seq = 3"))
                let done = CompletedChunk(
                    key: claimed[0].key, payload: ByteBuffer(), emitted: 10, skipped: 0, failed: 0, retried: 0,
                    error: "",
                    skipError: "")
                _ = try await queue.rows(queue.sql.complete([done], worker: "w1"), as: (Int64, Int64).self)
                try await queue.run(
                    PostgresQuery(
                        unsafeSQL: """
                            INSERT INTO \(t("dead_letters")) (run, seq, layer, items, payload, attempts, last_worker)
                            VALUES (7, 9, 's', 10, '', 3, 'w0')
                            """))
                try await queue.run(
                    PostgresQuery(
                        unsafeSQL: "INSERT INTO \(t("named_runs")) (name, layer, run) VALUES ('nightly', 's', 7)"))
                let status = try await queue.status()
                guard let run = status.runs.first, status.runs.count == 1 else {
                    return #expect(Bool(false), "\(status)")
                }
                #expect(run.run == 7 && run.named == "nightly" && run.layer == "s")
                #expect(run.waiting == 1 && run.claimed == 1 && run.expired == 1, "\(status)")
                #expect(run.results == 1 && run.deadLetters == 1 && run.oldest != nil, "\(status)")
                #expect(status.workers.map(\.id) == ["w1"] && status.workers.first?.chunks == 2, "\(status)")
                #expect((status.workers.first?.lastRenewed ?? .seconds(99)) < .seconds(10), "\(status)")
                #expect("\(status)".contains("run 7 (named run \"nightly\", layer \"s\"): 1 waiting, 1 claimed"))

                // the same figures as gauges; a run gone from the queue has its gauges set to 0
                let metrics = TestMetrics()
                let publisher = Task {
                    await queue.publishStatus(
                        PipelineMetrics(label: "q", interval: .milliseconds(10), factory: metrics))
                }
                let run7 = [("run", "7"), ("layer", "s")]
                func gauge(_ name: String, _ dims: [(String, String)]) -> Double? {
                    (try? metrics.expectGauge("q_\(name)", dims))?.lastValue
                }
                func waitFor(_ check: () -> Bool) async {
                    let deadline = ContinuousClock.now + .seconds(10)
                    while !check() && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(10)) }
                }
                await waitFor { gauge("chunks", run7 + [("state", "waiting")]) != nil }
                for (state, n) in [("waiting", 1.0), ("claimed", 1), ("expired", 1)] {
                    #expect(gauge("chunks", run7 + [("state", state)]) == n, "\(state)")
                }
                #expect(gauge("results", run7) == 1 && gauge("dead_letters", run7) == 1)
                #expect((gauge("oldest_chunk_seconds", run7) ?? -1) >= 0)
                #expect(gauge("worker_chunks", [("worker", "w1")]) == 2)
                for table in ["chunks", "results", "dead_letters"] {
                    try await queue.run(PostgresQuery(unsafeSQL: "DELETE FROM \(t(table))"))
                }
                await waitFor { gauge("chunks", run7 + [("state", "waiting")]) == 0 }
                #expect(gauge("chunks", run7 + [("state", "waiting")]) == 0 && gauge("results", run7) == 0)
                #expect(gauge("worker_chunks", [("worker", "w1")]) == 0)
                publisher.cancel()
                await publisher.value
                await queue.shutdown()
            }

            @Test("a statement whose connection is closed under it is given up at once, not at the statement limit")
            func closedUnderAStatement() async throws {
                let queue = try Cluster.queue()
                try await queue.prepare()
                let error = await #expect(throws: PostgresWorkQueueError.self) {
                    try await queue.bounded(queue.client) { connection in
                        try await connection.close()
                        try await Task.sleep(for: .seconds(6))  // as a statement that is never answered
                    }
                }
                #expect(
                    error?.description.contains("its connection closed under it") == true,
                    "\(String(describing: error))")
                #expect(error?.transient == true)
                await queue.shutdown()
            }

            @Test("answers lost after the statement ran (results read, deleted; a burial): nothing lost, nothing twice")
            func lostAnswers() async throws {
                let losses = AnswerLosses()
                let queue = try Cluster.queue(afterStatement: losses.afterStatement)
                let layer = DistributedLayer("lost") { (x: Int) in mix(x) }
                let n = 20_000
                let sum = Atomic<Int>(0)
                let count = Atomic<Int>(0)
                // the coordinator's first two reads of results lose their answers (the results stay, so a read
                // follows each), then its first deletion of results (a deletion follows every read with rows)
                losses.lose(["SELECT seq, payload": 2, "DELETE FROM \"\(queue.schema)\".results": 1])
                let report = try await withWorkers(queue, layer) { _ in
                    try await pipeline(
                        Layer(0..<n), Layer(layer, on: queue, chunk: 500, ordered: true),
                        Layer { (y: Int) in
                            sum.add(y, ordering: .relaxed)
                            count.add(1, ordering: .relaxed)
                        })
                }
                #expect(losses.left == 0, "every injected loss happened")
                #expect(count.load(ordering: .relaxed) == n && report.completed == n && report.dropped == 0)
                #expect(sum.load(ordering: .relaxed) == (0..<n).reduce(0) { $0 + mix($1) })
                var left = try await queue.counts()
                #expect(left.chunks == 0 && left.results == 0)

                // a burial whose answer is lost: the chunk's items still count failed, and the run ends
                let poison = DistributedLayer("poison-lost") { (x: Int) in x }
                losses.lose(["INSERT INTO \"\(queue.schema)\".dead_letters": 1])
                let buried = try await dyingClaims(queue, poison, maxAttempts: 1, onError: .skip)
                #expect(losses.left == 0, "the burial's answer was lost")
                #expect(buried.layers[1].failed == 10 && buried.completed == 0)
                left = try await queue.counts()
                #expect(left.chunks == 0 && left.results == 0 && left.deadLetters == 1)
                await queue.shutdown()
            }

            @Test("a written chunk that vanished (its write was answered, then undone) is written again")
            func vanishedChunk() async throws {
                let queue = try Cluster.queue()
                let layer = DistributedLayer("vanish") { (x: Int) in mix(x) }
                let sum = Atomic<Int>(0)
                let count = Atomic<Int>(0)
                let run = Task {
                    try await pipeline(
                        Layer(0..<100), Layer(layer, on: queue, chunk: 10, within: nil, ordered: true),
                        Layer { (y: Int) in
                            sum.add(y, ordering: .relaxed)
                            count.add(1, ordering: .relaxed)
                        })
                }
                // no worker yet: all 10 chunks get written; then one disappears as an undone write would
                while try await queue.counts().chunks < 10 { try await Task.sleep(for: .milliseconds(10)) }
                try await queue.run(
                    PostgresQuery(unsafeSQL: "DELETE FROM \(queue.sql.t("chunks")) WHERE seq = 4", binds: .init()))
                #expect(try await queue.counts().chunks == 9)
                let report = try await withWorkers(queue, layer) { _ in try await run.value }
                #expect(count.load(ordering: .relaxed) == 100 && report.completed == 100 && report.dropped == 0)
                #expect(sum.load(ordering: .relaxed) == (0..<100).reduce(0) { $0 + mix($1) })
                let left = try await queue.counts()
                #expect(left.chunks == 0 && left.results == 0)
                await queue.shutdown()
            }

            /// `items` items through 2 workers (mix, chunks of 1,000, a lease of 2 s: a claim whose answer is lost in
            /// the disruption runs out soon), `disrupt` called in a task of its own once `after` results have come
            /// back: the report and the sum of the results.
            func disrupted(
                _ queue: PostgresWorkQueue, items: Int, ordered: Bool = false, after: Int,
                _ disrupt: @escaping @Sendable () throws -> Void
            ) async throws -> (report: PipelineReport, sum: Int) {
                let layer = DistributedLayer("disrupted") { (x: Int) in mix(x) }
                let sum = Atomic<Int>(0)
                let count = Atomic<Int>(0)
                let report = try await withWorkers(queue, layer) { _ in
                    try await pipeline(
                        // 32 chunks outstanding: most of the run's chunks are still to write when the server goes
                        Layer(0..<items),
                        Layer(layer, on: queue, chunk: 1_000, concurrency: 32, ordered: ordered, lease: .seconds(2)),
                        Layer { (y: Int) in
                            sum.add(y, ordering: .relaxed)
                            if count.add(1, ordering: .relaxed).newValue == after { Task.detached { try disrupt() } }
                        })
                }
                return (report, sum.load(ordering: .relaxed))
            }

            @Test(
                "a server restart or crash in the middle of a run: coordinator and workers reconnect, every result once",
                arguments: ["fast", "immediate"])
            func serverRestart(mode: String) async throws {
                let cluster = try Cluster.server()
                guard cluster.data != nil else { return }  // DATABASE_URL's server is not ours to restart
                let queue = try Cluster.queue()
                let n = 200_000
                let (report, sum) = try await disrupted(queue, items: n, ordered: true, after: 20_000) {
                    try cluster.restart(mode: mode)
                }
                #expect(report.completed == n && report.dropped == 0)
                #expect(sum == (0..<n).reduce(0) { $0 + mix($1) })
                let left = try await queue.counts()
                #expect(left.chunks == 0 && left.results == 0)
                await queue.shutdown()
            }

            @Test("the queue's sessions commit without waiting for the disk unless asked; payloads are not compressed")
            func sessionSettings() async throws {
                let queue = try Cluster.queue()
                let show = PostgresQuery(unsafeSQL: "SHOW synchronous_commit")
                #expect(try await queue.rows(show, as: String.self) == ["off"])
                let storage = try await queue.rows(
                    PostgresQuery(
                        unsafeSQL: """
                            SELECT c.relname::text, a.attstorage::text FROM pg_attribute a
                            JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                            WHERE n.nspname = '\(queue.schema)' AND a.attname = 'payload' ORDER BY 1
                            """), as: (String, String).self)
                #expect(storage.map(\.0) == ["chunks", "dead_letters", "results"])
                #expect(storage.map(\.1) == ["e", "x", "e"])  // dead letters are few: compressed is fine
                let durable = try PostgresWorkQueue(
                    url: Cluster.server().url, schema: queue.schema, synchronousCommit: true)
                #expect(try await durable.rows(show, as: String.self) == ["on"])
                await durable.shutdown()
                await queue.shutdown()
            }

            @Test("bad URLs, schemas and parameters are refused with errors that name them; passwords are masked")
            func badInput() async throws {
                #expect(throws: PostgresWorkQueueError.self) { try PostgresWorkQueue(url: "mysql://x@y/z") }
                do {
                    _ = try PostgresWorkQueue(url: "postgres://u:secret@127.0.0.1/db", schema: "Robert'); DROP")
                    Issue.record("a bad schema was taken")
                } catch let error as PostgresWorkQueueError {
                    #expect("\(error)".contains("schema:") && "\(error)".contains("lower-case"))
                }
                do {
                    _ = try PostgresWorkQueue(url: "postgres://u:secret@127.0.0.1/db?sslmode=sometimes")
                    Issue.record("a bad sslmode was taken")
                } catch let error as PostgresWorkQueueError {
                    #expect("\(error)".contains("sslmode=sometimes"))
                }
                let queue = try PostgresWorkQueue(url: "postgres://u:secret@127.0.0.1:5999/db?sslmode=require")
                #expect(queue.description == "postgres://u:***@127.0.0.1:5999/db?sslmode=require")
                await queue.shutdown()

                let real = try Cluster.queue()
                let layer = DistributedLayer("params") { (x: Int) in x }
                // the layer's own parameters are refused with the others, before any item is pulled
                let pulled = Counter()
                for (bad, parameter) in [
                    (Layer(layer, on: real, maxAttempts: 0), "maxAttempts: 0"),
                    (Layer(layer, on: real, lease: .zero), "lease: \(Duration.zero)"),
                ] {
                    do {
                        _ = try await pipeline(
                            Layer(CountingSequence(range: 0..<10, pulled: pulled)), bad, Layer { (_: Int) in })
                        Issue.record("\(parameter) was taken")
                    } catch let error as FlowConfigurationError {
                        #expect(error.layer == "params" && error.message.hasPrefix(parameter), "\(error)")
                        #expect(error.parameter == String(parameter.prefix { $0 != ":" }))
                    }
                }
                #expect(pulled.count == 0)
                await #expect(throws: DistributedLayerError.self) {
                    try await FlowWorker(queue: real, serving: layer, threads: 0).run()
                }
                await real.shutdown()
            }

            @Test("a new chunk's INSERT notifies the work channel idle workers listen on, once per chunk")
            func newChunkNotifies() async throws {
                let queue = try Cluster.queue()
                let layer = DistributedLayer("mix") { (x: Int) in mix(x) }
                let heard = Wakeup()
                let count = Counter()
                let listening = Task {
                    try await queue.client.withConnection { connection in
                        try await connection.listen(on: queue.sql.workChannel) { notifications in
                            heard.signal()  // listening now
                            for try await _ in notifications {
                                count.add(1)
                                heard.signal()
                            }
                        }
                    }
                }
                defer { listening.cancel() }
                try await queue.prepare()
                await heard.wait(for: .seconds(10))
                // no worker: the 3 chunks stay written until the run is cancelled
                let run = Task {
                    try await pipeline(
                        Layer(0..<30), Layer(layer, on: queue, chunk: 10, within: nil), Layer { (_: Int) in })
                }
                let deadline = ContinuousClock.now + .seconds(20)
                while count.count < 3 && ContinuousClock.now < deadline { await heard.wait(for: .milliseconds(100)) }
                #expect(count.count == 3)
                #expect(try await queue.counts().chunks == 3)
                run.cancel()
                _ = try? await run.value
                await queue.shutdown()
            }

            /// The most claims one worker with `threads` held at once (sampled every 2 ms) while it did 20
            /// chunks of about 30 ms (one claim a thread at a time).
            func mostClaimsHeld(threads: Int?, _ test: String = #function) async throws -> Int {
                let queue = try Cluster.queue(test)
                let layer = DistributedLayer("slow") { (x: Int) in
                    usleep(300)
                    return mix(x)
                }
                let running = Atomic<Bool>(true)
                let sampler = Task { () async throws -> Int in
                    var most = 0
                    let held = PostgresQuery(
                        unsafeSQL: "SELECT count(*) FROM \(queue.sql.t("chunks")) WHERE worker IS NOT NULL")
                    while running.load(ordering: .acquiring) {
                        let now: [Int64] = try await queue.rows(held, as: Int64.self)
                        most = max(most, Int(now.first ?? 0))
                        try await Task.sleep(for: .milliseconds(2))
                    }
                    return most
                }
                let sum = Atomic<Int>(0)
                let n = 2_000
                _ = try await withWorkers(queue, layer, count: 1, threads: threads) { _ in
                    try await pipeline(
                        Layer(0..<n), Layer(layer, on: queue, chunk: 100),
                        Layer { (y: Int) in sum.add(y, ordering: .relaxed) })
                }
                running.store(false, ordering: .releasing)
                let most = try await sampler.value
                #expect(sum.load(ordering: .relaxed) == (0..<n).reduce(0) { $0 + mix($1) })
                await queue.shutdown()
                return most
            }

            @Test("a worker with slow chunks holds few claims from its start: a dead worker's chunks wait for no queue")
            func slowChunksFewClaims() async throws {
                let most = try await mostClaimsHeld(threads: 1)
                // one running, one in the queue before the thread ([a worker claims what it can start soon]), and for a
                // moment one being completed
                #expect(most >= 1 && most <= 3, "the worker held \(most) claims at once")
            }

            @Test("a worker with threads: nil paces its claims for the threads its CPU layer gets (FLOW_WORKERS)")
            func claimsForResolvedThreads() async throws {
                setenv("FLOW_WORKERS", "3", 1)
                defer { unsetenv("FLOW_WORKERS") }
                let most = try await mostClaimsHeld(threads: nil)
                // 3 running and one claim ahead of 3 ([a worker claims what it can start soon]), and for a moment one
                // being completed
                #expect(most >= 6 && most <= 7, "the worker held \(most) claims at once")
            }

            @Test("a named run through the distributed layer: killed part-way, resumed, every row once")
            func namedRunDistributed() async throws {
                let queue = try Cluster.queue()
                let layer = DistributedLayer("mix") { (x: Int) in mix(x) }
                let store = MemoryRunStore()
                let n = 20_000
                func run() async throws -> PipelineReport {
                    try await pipeline(
                        Layer(0..<n), Layer(layer, on: queue, chunk: 250),
                        Layer(committing: store, run: "distributed", batchesOf: 400) { (values: [Int], t) in
                            t.insert(values.map { (id: $0, value: $0) })
                        })
                }
                store.crash(after: 20)
                _ = try await withWorkers(queue, layer) { _ in
                    await #expect(throws: MemoryRunStore.Crash.self) { try await run() }
                }
                store.crash(after: nil)
                let report = try await withWorkers(queue, layer) { _ in try await run() }
                #expect(report.run?.alreadyDone == 20 * 400 && report.pulled == n - 20 * 400)
                #expect(report.run?.finished == true)
                // rows are keyed by value here: mix is one-to-one on 0..<n, so each value appears once
                let values = store.state.withLock { $0.rows }
                #expect(values.count == n && values.values.allSatisfy { $0.count == 1 })
                #expect(Set(values.keys) == Set((0..<n).map(mix)))
                await queue.shutdown()
            }

            /// Rows that a coordinator killed part-way left, as coordinator run 42 of layer "mix" of the named run
            /// `name`: (1) a result for positions 0..<250 with values no worker computes (-1 - id), (2) a chunk for
            /// 250..<500 claimed by a worker that is gone, (3) a dead letter for 500..<750, (4) a result for
            /// 9,000..<9,250 whose closure failed.
            func deadCoordinatorsRows(_ queue: PostgresWorkQueue, _ layer: DistributedLayer<Int, Int>, name: String)
                async throws
            {
                let sql = queue.sql
                func insert(_ text: String, _ payload: [Int]) async throws {
                    var b = PostgresBindings(capacity: 1)
                    b.append(try ChunkCodec.encode(payload))
                    try await queue.run(PostgresQuery(unsafeSQL: text, binds: b))
                }
                try await insert(
                    """
                    INSERT INTO \(sql.t("results")) (run, seq, payload, emitted, skipped, failed, retried, error,
                        skip_error, worker) VALUES (42, 1, $1, 250, 0, 0, 0, '', '', 'w')
                    """, (0..<250).map { -1 - $0 })
                try await insert(
                    """
                    INSERT INTO \(sql.t("chunks")) (run, seq, layer, build, policy, items, payload, attempt, max_attempts,
                        lease_seconds, lease_until, worker)
                    VALUES (42, 2, 'mix', '\(layer.build)', 'fail', 250, $1, 1, 3, 30, now() + interval '1 hour', 'gone')
                    """, Array(250..<500))
                try await insert(
                    """
                    INSERT INTO \(sql.t("dead_letters")) (run, seq, layer, items, payload, attempts)
                    VALUES (42, 3, 'mix', 250, $1, 3)
                    """, Array(500..<750))
                try await insert(
                    """
                    INSERT INTO \(sql.t("results")) (run, seq, payload, emitted, skipped, failed, retried, error,
                        skip_error, worker) VALUES (42, 4, $1, 0, 0, 250, 0, 'boom', '', 'w')
                    """, [])
                for (seq, ranges) in [(1, "{0,250}"), (2, "{250,500}"), (3, "{500,750}"), (4, "{9000,9250}")] {
                    try await queue.run(
                        PostgresQuery(
                            unsafeSQL: "INSERT INTO \(sql.t("chunk_positions")) VALUES (42, \(seq), '\(ranges)')"))
                }
                try await queue.run(
                    PostgresQuery(unsafeSQL: "INSERT INTO \(sql.t("named_runs")) VALUES ('\(name)', 'mix', 42)"))
            }

            @Test("a coordinator taking a named run over keeps what the dead one's workers finished, and does the rest")
            func namedRunKeepsTheDeadCoordinatorsResults() async throws {
                let queue = try Cluster.queue()
                let calls = Atomic<Int>(0)
                let layer = DistributedLayer("mix") { (x: Int) in
                    calls.add(1, ordering: .relaxed)
                    return mix(x)
                }
                try await deadCoordinatorsRows(queue, layer, name: "adopt")
                let store = MemoryRunStore()
                let n = 10_000
                let report = try await withWorkers(queue, layer) { _ in
                    try await pipeline(
                        Layer(0..<n), Layer(layer, on: queue, chunk: 250),
                        Layer(committingWithPositions: store, run: "adopt", batchesOf: 400) {
                            (rows: [(position: UInt64, item: Int)], t) in
                            t.insert(rows.map { (id: Int($0.position), value: $0.item) })
                        })
                }
                #expect(report.completed == n && report.run?.finished == true)
                // the kept result's values, no closure call for them; every other item's closure called once
                let rows = store.state.withLock { $0.rows }
                #expect(rows.count == n && rows.values.allSatisfy { $0.count == 1 })
                #expect((0..<250).allSatisfy { rows[$0] == [-1 - $0] })
                #expect((250..<n).allSatisfy { rows[$0] == [mix($0)] })
                #expect(calls.load(ordering: .relaxed) == n - 250)
                let sql = queue.sql
                let left = try await queue.rows(
                    PostgresQuery(
                        unsafeSQL: """
                            SELECT (SELECT count(*) FROM \(sql.t("chunks"))) + (SELECT count(*) FROM \(sql.t("results")))
                                + (SELECT count(*) FROM \(sql.t("chunk_positions"))),
                                (SELECT count(*) FROM \(sql.t("dead_letters")) WHERE run = 42),
                                (SELECT run FROM \(sql.t("named_runs")) WHERE name = 'adopt' AND layer = 'mix')
                            """), as: (Int64, Int64, Int64).self)
                // no rows left but the dead letter, kept for inspection; the named run recorded with the new run
                #expect(left.first?.0 == 0 && left.first?.1 == 1 && left.first?.2 != 42, "\(left)")
                await queue.shutdown()
            }

            @Test("a coordinator whose named run another coordinator took over writes no more chunks and fails")
            func namedRunTakenOverStops() async throws {
                let queue = try Cluster.queue()
                let layer = DistributedLayer("mix") { (x: Int) in mix(x) }
                let sql = queue.sql
                let store = MemoryRunStore()
                let error = try await withWorkers(queue, layer) { _ in
                    await #expect(throws: DistributedLayerError.self) {
                        try await pipeline(
                            Layer(0..<20_000), Layer(layer, on: queue, chunk: 250, concurrency: 32),
                            Layer(committing: store, run: "taken", batchesOf: 400) { (values: [Int], t) in
                                // another coordinator takes the run over at the first commit: at most 32 chunks
                                // outstanding and a few in the queues, so most of the 80 chunks are still to write
                                try await queue.run(
                                    PostgresQuery(
                                        unsafeSQL: "UPDATE \(sql.t("named_runs")) SET run = 7 WHERE name = 'taken'"))
                                t.insert(values.map { (id: $0, value: $0) })
                            })
                    }
                }
                #expect(error?.kind == .database && error?.message.contains("another coordinator") == true, "\(error!)")
                let counts = try await queue.counts()
                #expect(counts.chunks == 0 && counts.results == 0)
                await queue.shutdown()
            }

            @Test("a distributed layer with onError: .skip cannot be part of a named run")
            func namedRunRefusesSkip() async throws {
                let queue = try Cluster.queue()
                let layer = DistributedLayer("mix") { (x: Int) in mix(x) }
                let error = await #expect(throws: FlowConfigurationError.self) {
                    try await pipeline(
                        Layer(0..<10), Layer(layer, on: queue, onError: .skip),
                        Layer(committing: MemoryRunStore(), run: "skip", batchesOf: 4) { (values: [Int], t) in
                            t.insert(values.map { (id: $0, value: $0) })
                        })
                }
                #expect(error?.parameter == "layer" && error?.layer == "mix")
                await queue.shutdown()
            }

            /// The errors a coordinator's run and then a worker's run end with against `url`, with how long each took.
            func connectionErrors(_ url: String, connectTimeout: Duration = .seconds(30), logger: Logger? = nil)
                async throws -> [(error: DistributedLayerError?, took: Duration)]
            {
                let layer = DistributedLayer("mix") { (x: Int) in mix(x) }
                var ended: [(error: DistributedLayerError?, took: Duration)] = []
                let coordinator = try Cluster.queue(url: url, logger: logger, connectTimeout: connectTimeout)
                var started = ContinuousClock.now
                let refused = await #expect(throws: DistributedLayerError.self) {
                    try await pipeline(Layer(0..<100), Layer(layer, on: coordinator, chunk: 10), Layer { (_: Int) in })
                }
                ended.append((refused, .now - started))
                await coordinator.shutdown()
                let worker = try Cluster.queue(url: url, logger: logger, connectTimeout: connectTimeout)
                started = .now
                let stopped = await #expect(throws: DistributedLayerError.self) {
                    try await FlowWorker(queue: worker, serving: layer, threads: 1).run()
                }
                ended.append((stopped, .now - started))
                await worker.shutdown()
                return ended
            }

            @Test(
                "a wrong password, an unknown database or role: coordinator and worker fail at once with the server's reason"
            )
            func refusedConnections() async throws {
                let cluster = try Cluster.server()
                let role = Cluster.passwordRole
                guard let wrong = cluster.url(user: role.name, password: "wrong-horse-battery"),
                    let noDatabase = cluster.url(user: "postgres", database: "no_such_db"),
                    let noRole = cluster.url(user: "no_such_role")
                else { return }  // DATABASE_URL's server is not ours to configure
                let refusals = [
                    (wrong, "password authentication failed for user \"\(role.name)\""),
                    (noDatabase, "database \"no_such_db\" does not exist"),
                    (noRole, "role \"no_such_role\" does not exist"),
                ]
                for (url, reason) in refusals {
                    for (error, took) in try await connectionErrors(url) {
                        #expect(
                            error?.kind == .refused && error?.message.contains(reason) == true,
                            "\(String(describing: error))")
                        #expect(error?.description.contains("wrong-horse") == false)  // the password is masked
                        #expect(took < .seconds(5), "\(took)")  // one attempt: not retried until the 30 s bound
                    }
                }
                // the right password connects
                let queue = try Cluster.queue(url: cluster.url(user: role.name, password: role.password))
                #expect(try await queue.counts().chunks == 0)
                await queue.shutdown()
            }

            @Test(
                "least privilege: the owner makes the schema; coordinator and worker roles run a layer exactly with only their grants, and are refused the rest"
            )
            func leastPrivilege() async throws {
                let cluster = try Cluster.server()
                let (ownerRole, coordinatorRole, workerRole) = ("flow_owner", "flow_coordinator", "flow_worker")
                guard let owner = cluster.url(user: ownerRole), let coordinator = cluster.url(user: coordinatorRole),
                    let worker = cluster.url(user: workerRole)
                else { return }  // DATABASE_URL's server is not ours to configure
                let admin = try Cluster.queue()
                for role in [ownerRole, coordinatorRole, workerRole] {
                    try await admin.run(
                        PostgresQuery(
                            unsafeSQL:
                                "DO $$ BEGIN CREATE ROLE \(role) LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
                        ))
                }
                try await admin.run(PostgresQuery(unsafeSQL: "GRANT CREATE ON DATABASE postgres TO \(ownerRole)"))
                await admin.shutdown()

                // a coordinator's or a worker's role cannot make the schema: both fail at once, naming the way out
                for url in [coordinator, worker] {
                    for (error, took) in try await connectionErrors(url) {
                        #expect(
                            error?.kind == .refused && error?.message.contains("PostgresWorkQueue.setUp()") == true
                                && error?.message.contains("permission denied") == true, "\(String(describing: error))")
                        #expect(took < .seconds(5), "\(took)")
                    }
                }

                // the owner makes it and grants the two roles what its privileges(...) lists
                let schema = "t_least_privilege_" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
                var quiet = Logger(label: "test")
                quiet.logLevel = .error
                let made = try PostgresWorkQueue(url: owner, schema: schema, logger: quiet)
                try await made.setUp()
                for grant in try made.privileges(coordinator: coordinatorRole, worker: workerRole) {
                    try await made.client.query(PostgresQuery(unsafeSQL: grant))
                }
                let coordinating = try PostgresWorkQueue(url: coordinator, schema: schema, logger: quiet)
                let serving = try PostgresWorkQueue(url: worker, schema: schema, logger: quiet)
                let layer = DistributedLayer("mix") { (x: Int) in mix(x) }
                let n = 5_000
                let sum = Atomic<Int>(0)
                let count = Atomic<Int>(0)
                let report = try await withWorkers(coordinating, layer, workerQueue: serving) { _ in
                    try await pipeline(
                        Layer(0..<n), Layer(layer, on: coordinating, chunk: 100),
                        Layer { (y: Int) in
                            sum.add(y, ordering: .relaxed)
                            count.add(1, ordering: .relaxed)
                        })
                }
                #expect(report.completed == n && count.load(ordering: .relaxed) == n)
                #expect(sum.load(ordering: .relaxed) == (0..<n).reduce(0) { $0 + mix($1) })
                let left = try await coordinating.counts()
                #expect(left.chunks == 0 && left.results == 0 && left.deadLetters == 0)
                #expect(try await coordinating.status().runs.isEmpty)  // a coordinator's role may read the status

                /// The SQLSTATE a statement fails with, or nil when it runs.
                func refusal(_ queue: PostgresWorkQueue, _ statement: String) async -> String? {
                    do {
                        try await queue.client.query(PostgresQuery(unsafeSQL: statement))
                        return nil
                    } catch {
                        return (error as? PSQLError)?.serverInfo?[.sqlState] ?? "\(error)"
                    }
                }
                let t = made.sql.t
                // a worker may call the protocol's functions, and nothing else: no table, no DDL
                let workerRefused = [
                    "SELECT count(*) FROM \(t("chunks"))", "SELECT count(*) FROM \(t("results"))",
                    "SELECT count(*) FROM \(t("dead_letters"))", "DELETE FROM \(t("results"))",
                    "UPDATE \(t("chunks")) SET lease_until = NULL", "DELETE FROM \(t("chunks"))",
                    """
                    INSERT INTO \(t("results")) (run, seq, payload, emitted, skipped, failed, retried, error, skip_error,
                        worker) VALUES (1, 1, '', 0, 0, 0, 0, '', '', 'w')
                    """,
                    "CREATE TABLE \(t("mine")) (x int)", "DROP TABLE \(t("chunks"))",
                    "CREATE FUNCTION \(t("mine"))() RETURNS int LANGUAGE sql AS 'SELECT 1'",
                    "ALTER FUNCTION \(t("claim"))(text, text, int4, text) SECURITY INVOKER",
                ]
                for statement in workerRefused {
                    #expect(await refusal(serving, statement) == "42501", "\(statement)")
                }
                #expect(await refusal(serving, "SELECT * FROM \(t("other_build"))('mix', 'b')") == nil)
                // a coordinator reads and writes the tables, and may not change them or act as a worker
                let coordinatorRefused = [
                    "CREATE TABLE \(t("mine")) (x int)", "DROP TABLE \(t("chunks"))",
                    "ALTER TABLE \(t("chunks")) ADD COLUMN x int", "SELECT * FROM \(t("claim"))('mix', 'b', 1, 'w')",
                ]
                for statement in coordinatorRefused {
                    #expect(await refusal(coordinating, statement) == "42501", "\(statement)")
                }
                #expect(await refusal(coordinating, "SELECT count(*) FROM \(t("dead_letters"))") == nil)
                for queue in [made, coordinating, serving] { await queue.shutdown() }
            }

            @Test("the README's grants for the default schema are what privileges(coordinator:worker:) lists")
            func readmeGrants() throws {
                let readme = try String(
                    contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
                        .appendingPathComponent("../../README.md"), encoding: .utf8)
                let documented = readme.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
                    .filter { $0.hasPrefix("GRANT") && $0.contains("\"asyncflow\"") }.map { String($0.dropLast()) }
                let queue = try PostgresWorkQueue(url: "postgres://u@127.0.0.1:5999/db")
                #expect(try queue.privileges(coordinator: "flow_coordinator", worker: "flow_worker") == documented)
                #expect(throws: PostgresWorkQueueError.self) { try queue.privileges(coordinator: "Flow", worker: "w") }
            }

            @Test("a schema of version 2 (no worker functions) is brought to this version by its first user that may")
            func schemaOfVersion2() async throws {
                let old = try Cluster.queue()
                try await old.setUp()
                let functions = ["claim", "other_build", "heartbeat", "hand_back", "release_unknown", "complete"]
                try await old.client.query(
                    PostgresQuery(
                        unsafeSQL: """
                            DO $$ DECLARE f regprocedure; BEGIN
                                FOR f IN SELECT p.oid FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                                         WHERE n.nspname = '\(old.schema)' LOOP
                                    EXECUTE 'DROP FUNCTION ' || f;
                                END LOOP;
                                UPDATE "\(old.schema)".meta SET version = 2;
                                ALTER TABLE "\(old.schema)".chunks DROP COLUMN created_at;
                            END $$
                            """))
                let queue = try PostgresWorkQueue(url: try Cluster.server().url, schema: old.schema, logger: old.logger)
                let layer = DistributedLayer("mix") { (x: Int) in mix(x) }
                let count = Atomic<Int>(0)
                let report = try await withWorkers(queue, layer) { _ in
                    try await pipeline(
                        Layer(0..<1_000), Layer(layer, on: queue, chunk: 100),
                        Layer { (_: Int) in count.add(1, ordering: .relaxed) })
                }
                #expect(report.completed == 1_000 && count.load(ordering: .relaxed) == 1_000)
                #expect(try await queue.versions() == [Statements.version])
                let made = try await queue.rows(
                    PostgresQuery(
                        unsafeSQL: """
                            SELECT p.proname::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                            WHERE n.nspname = '\(old.schema)' ORDER BY 1
                            """), as: String.self)
                #expect(made == functions.sorted())
                #expect(try await queue.status().runs.isEmpty)  // the chunks' created_at is back
                for q in [old, queue] { await q.shutdown() }
            }

            @Test(
                "the password is in nothing said: trace logs, the report, progress, metrics, errors, descriptions")
            func passwordNowhere() async throws {
                let cluster = try Cluster.server()
                let role = Cluster.passwordRole
                guard let url = cluster.url(user: role.name, password: role.password),
                    let wrong = cluster.url(user: role.name, password: "not-" + role.password)
                else { return }  // DATABASE_URL's server is not ours to configure
                let handler = InMemoryLogHandler()
                var logger = Logger(label: "secret") { _ in handler }
                logger.logLevel = .trace
                let metrics = TestMetrics()
                let snapshots = Locked<[String]>([])
                var options = PipelineOptions()
                options.logger = logger
                options.metrics = PipelineMetrics(label: "flow", interval: .milliseconds(5), factory: metrics)
                options.progress = { snapshot in snapshots.withLock { $0.append("\(snapshot)") } }
                options.progressInterval = .milliseconds(20)
                let queue = try Cluster.queue(url: url, logger: logger)
                let layer = DistributedLayer("secret") { (x: Int) in x }
                let report = try await withWorkers(queue, layer) { _ in
                    try await pipeline(
                        Layer(0..<5_000), Layer(layer, on: queue, chunk: 100), Layer { (_: Int) in }, options: options)
                }
                #expect(report.completed == 5_000)
                // a refused run: its error, as printed and as reflected
                let refused = try Cluster.queue(url: wrong, logger: logger)
                let error = await #expect(throws: DistributedLayerError.self) {
                    try await pipeline(Layer(0..<10), Layer(layer, on: refused, chunk: 5), Layer { (_: Int) in })
                }
                var said = handler.entries.map { "\($0.message) \($0.metadata)" }
                said += ["\(report)", String(reflecting: report), queue.description, refused.description]
                said += snapshots.withLock { $0 } + [error.map { "\($0) \(String(reflecting: $0))" } ?? "no error"]
                said += metrics.counters.map { "\($0.label) \($0.dimensions)" }
                said += metrics.recorders.map { "\($0.label) \($0.dimensions)" }
                said += metrics.timers.map { "\($0.label) \($0.dimensions)" }
                #expect(handler.entries.count > 20 && !snapshots.withLock { $0.isEmpty } && !metrics.counters.isEmpty)
                #expect(said.contains { $0.contains(role.name) })  // the scan reads what names the connection
                for text in said where text.contains(role.password) { Issue.record("the password in: \(text)") }
                for q in [queue, refused] { await q.shutdown() }
            }

            @Test(
                "TLS: require and verify-full with the server's CA connect; verify-full with another CA fails at once"
            )
            func tlsVerification() async throws {
                let cluster = try Cluster.server()
                guard let verified = cluster.tls("verify-full"), let encrypted = cluster.tls("require"),
                    let otherCA = cluster.tls("verify-full", otherCA: true)
                else { return }  // DATABASE_URL's server is not ours to configure
                for url in [verified, encrypted] {
                    let queue = try Cluster.queue(url: url)
                    let ssl = try await queue.rows(
                        PostgresQuery(unsafeSQL: "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"),
                        as: Bool.self)
                    #expect(ssl == [true], "\(url)")
                    await queue.shutdown()
                }
                for (error, took) in try await connectionErrors(otherCA) {
                    #expect(
                        error?.kind == .refused && error?.message.contains("CERTIFICATE_VERIFY_FAILED") == true
                            && error?.message.contains("127.0.0.1") == true, "\(String(describing: error))")
                    #expect(took < .seconds(5), "\(took)")  // one attempt: not retried until the 30 s bound
                }
            }

            @Test(
                "an unreachable database: each attempt logged with the URL masked, then the run fails at connectTimeout"
            )
            func unreachableDatabase() async throws {
                let handler = InMemoryLogHandler()
                let url = "postgres://postgres:secret-pw@127.0.0.1:\(Cluster.freePort())/postgres?sslmode=disable"
                let ended = try await connectionErrors(
                    url, connectTimeout: .seconds(1.5), logger: Logger(label: "unreachable") { _ in handler })
                for (error, took) in ended {
                    #expect(error?.kind == .unreachable, "\(String(describing: error))")
                    #expect(took >= .seconds(1.5) && took < .seconds(10), "\(took)")
                }
                let lines = handler.entries.map { "\($0.message)" }
                // each run: attempts at 0, 0.1, 0.3 and 0.7 s logged; the one at 1.5 s fails it
                let attempts = lines.filter { $0.contains("connecting to postgres://postgres:***@127.0.0.1") }
                #expect(attempts.filter { $0.contains("attempt 4:") }.count == 2, "\(attempts)")
                #expect(!attempts.contains { $0.contains("attempt 5:") }, "\(attempts)")
                #expect(!lines.contains { $0.contains("secret-pw") })
            }

            @Test("a coordinator whose chunks no worker claims says so, naming the layer and its build")
            func unclaimedChunksSaid() async throws {
                let handler = InMemoryLogHandler()
                let queue = try Cluster.queue(
                    logger: Logger(label: "unclaimed") { _ in handler }, unclaimedNotice: .seconds(1))
                let layer = DistributedLayer("lonely") { (x: Int) in mix(x) }
                let metrics = TestMetrics()
                let snapshots = Locked<[ProgressSnapshot]>([])
                var options = PipelineOptions()
                options.metrics = PipelineMetrics(label: "flow", interval: .milliseconds(50), factory: metrics)
                options.progressInterval = .milliseconds(50)
                options.progress = { snapshot in snapshots.withLock { $0.append(snapshot) } }
                let run = Task {
                    try await pipeline(
                        Layer(0..<100), Layer(layer, on: queue, chunk: 10), Layer { (_: Int) in }, options: options)
                }
                let said = { handler.entries.map { "\($0.message)" }.filter { $0.contains("no worker has claimed") } }
                for _ in 0..<100 where said().isEmpty { try await Task.sleep(for: .milliseconds(100)) }
                try await Task.sleep(for: .milliseconds(200))  // a snapshot and a publish after it was said
                run.cancel()
                _ = await run.result
                let line = try #require(said().first)
                #expect(
                    line.contains("layer \"lonely\" of build \(layer.build)") && line.contains("(10 chunks waiting)"))
                // the snapshot and the gauge say how long, from about a second (unclaimedNotice) on
                let waited = snapshots.withLock { $0 }.compactMap { $0.layers[1].unclaimed }
                #expect(waited.first.map { $0 >= .seconds(1) } == true, "\(waited)")
                #expect(snapshots.withLock { $0 }.allSatisfy { $0.layers[0].unclaimed == nil })
                let gauge = try metrics.expectGauge("flow_unclaimed_seconds", [("layer", "lonely")])
                #expect(gauge.lastValue.map { $0 >= 1 } == true, "\(gauge.values)")
                let left = try await queue.counts()
                #expect(left.chunks == 0 && left.results == 0)
                await queue.shutdown()
            }

            @Test("a server stopped mid-run: the wait is logged when it starts and when it ends; every result once")
            func serverStoppedLogged() async throws {
                let cluster = try Cluster.server()
                guard cluster.data != nil else { return }  // DATABASE_URL's server is not ours to stop
                let handler = InMemoryLogHandler()
                let queue = try Cluster.queue(logger: Logger(label: "outage") { _ in handler })
                let n = 100_000
                let (report, sum) = try await disrupted(queue, items: n, after: 10_000) { try cluster.stop(for: 3) }
                #expect(report.completed == n && sum == (0..<n).reduce(0) { $0 + mix($1) })
                let lines = handler.entries.map { "\($0.message)" }
                #expect(lines.contains { $0.contains("lost the connection to \(queue.description)") }, "\(lines)")
                #expect(
                    lines.contains { $0.contains("the connection to \(queue.description) is back after") }, "\(lines)")
                await queue.shutdown()
            }

            @Test("chunks of plain data travel as bytes, other Codable items as JSON; both read back exactly")
            func codec() throws {
                struct Point: Codable, Equatable { var x: Double, y: Int32 }
                struct Named: Codable, Equatable { var name: String, n: Int }
                let points = (0..<100).map { Point(x: Double($0) / 3, y: Int32($0)) }
                let raw = try ChunkCodec.encode(points)
                #expect(raw.readableBytes == 1 + 100 * MemoryLayout<Point>.stride)
                #expect(try ChunkCodec.decode(raw, as: Point.self) == points)
                let named = (0..<10).map { Named(name: "n\($0) ✓", n: $0) }
                let json = try ChunkCodec.encode(named)
                #expect(json.getInteger(at: 0, as: UInt8.self) == ChunkCodec.json)
                #expect(try ChunkCodec.decode(json, as: Named.self) == named)
                #expect(throws: (any Error).self) { try ChunkCodec.decode(json, as: Point.self) }
            }
        }
    }
#endif
