import CFlow
import Foundation
import Synchronization
import Testing

@testable import AsyncFlow

/// Layer(batchesOf:within:): batch sizes, order, error policies counted in items, the `within` deadline,
/// and the timed pop underneath it.
extension Serial {
    @Suite("Batch collector")
    struct BatchCollectorTests {
        /// Every batch the collector was handed, in the order it was handed them.
        final class Batches: Sendable {
            let list = Locked<[[Int]]>([])
            func add(_ batch: [Int]) { list.withLock { $0.append(batch) } }
            var all: [[Int]] { list.withLock { $0 } }
        }

        @Test("batches are full but the last, each item in one batch", arguments: PipelineOptions.Backend.allCases)
        func fullBatches(backend: PipelineOptions.Backend) async throws {
            let n = 10_003
            let batches = Batches()
            let report = try await pipeline(
                Layer(0..<n),
                Layer(workers: 2) { (x: Int) in x },
                Layer(batchesOf: 100) { (items: [Int]) async in batches.add(items) },
                options: PipelineOptions(backend: backend))
            let sizes = batches.all.map(\.count)
            #expect(sizes.count == 101)
            #expect(sizes.dropLast().allSatisfy { $0 == 100 } && sizes.last == 3)
            #expect(batches.all.flatMap { $0 }.sorted() == Array(0..<n))
            #expect(report.layers.map(\.received) == [n, n, n] && report.layers[2].emitted == n)
            #expect(report.completed == n && report.dropped == 0)
            expectBalanced(report, pulled: n)
        }

        @Test("batches come in arrival order, items in input order", arguments: PipelineOptions.Backend.allCases)
        func arrivalOrder(backend: PipelineOptions.Backend) async throws {
            let n = 50_000
            let batches = Batches()
            _ = try await pipeline(
                Layer(0..<n), Layer(batchesOf: 64) { (items: [Int]) in batches.add(items) },
                options: PipelineOptions(backend: backend))
            #expect(batches.all.flatMap { $0 } == Array(0..<n))
        }

        @Test(".skip skips whole batches, counted in items", arguments: PipelineOptions.Backend.allCases)
        func skipBatches(backend: PipelineOptions.Backend) async throws {
            let n = 10_003
            let batches = Batches()
            let report = try await pipeline(
                Layer(0..<n),
                Layer(batchesOf: 100, onError: .skip) { (items: [Int]) in
                    if let x = items.first(where: { $0 % 1_000 == 0 }) { throw TestError.bad(x) }
                    batches.add(items)
                }, options: PipelineOptions(backend: backend))
            // batches 0, 10, ..., 90 (100 items each) and the last one (10,000..<10,003) hold a multiple of 1,000
            #expect(report.skipped == 1_003 && report.layers[1].skipped == 1_003)
            #expect(report.layers[1].emitted == n - 1_003 && report.failed == 0)
            #expect(report.errors.count == 11)
            let firstError = report.errors.first?.error as? TestError
            #expect(firstError == .bad(0))
            let kept: [Int] = (0..<10_000).filter { (x: Int) -> Bool in x / 100 % 10 != 0 }
            #expect(batches.all.flatMap { $0 } == kept)
            expectBalanced(report, pulled: n)
        }

        @Test(".retry calls again with the same batch, counted in items", arguments: PipelineOptions.Backend.allCases)
        func retryBatches(backend: PipelineOptions.Backend) async throws {
            let n = 1_050
            let failedOnce = Locked<Set<Int>>([])
            let calls = Counter()
            let batches = Batches()
            let report = try await pipeline(
                Layer(0..<n),
                Layer(batchesOf: 100, onError: .retry(attempts: 1)) { (items: [Int]) in
                    calls.add(1)
                    // each batch fails its first call: the retry must bring the very same items
                    if failedOnce.withLock({ $0.insert(items[0]).inserted }) { throw TestError.bad(items[0]) }
                    batches.add(items)
                }, options: PipelineOptions(backend: backend))
            #expect(calls.count == 22)
            #expect(report.layers[1].retried == n && report.layers[1].emitted == n)
            #expect(report.failed == 0 && report.skipped == 0)
            #expect(batches.all.flatMap { $0 } == Array(0..<n))
            expectBalanced(report, pulled: n)
        }

        @Test(
            ".fail, or .retry out of attempts, fails the whole batch and the run",
            arguments: PipelineOptions.Backend.allCases, [ErrorPolicy.fail, .retry(attempts: 2)])
        func failBatch(backend: PipelineOptions.Backend, policy: ErrorPolicy) async throws {
            let box = ReportBox()
            let calls = Counter()
            await #expect(throws: TestError.bad(500)) {
                _ = try await pipeline(
                    Layer(0..<100_000),
                    Layer(batchesOf: 100, onError: policy) { (items: [Int]) in
                        calls.add(1)
                        if items[0] == 500 { throw TestError.bad(500) }
                    }, options: box.options(backend))
            }
            let report = box.report.withLock { $0 }
            #expect(report?.layers[1].failed == 100)
            #expect(report?.layers[1].emitted == 500)
            #expect(report?.layers[1].retried == (policy == .fail ? 0 : 200))
            #expect(calls.count == (policy == .fail ? 6 : 8))
            expectBalanced(report, pulled: nil)
        }

        @Test(
            "within: a partial batch is handed over while the source is still open", .timeLimit(.minutes(1)),
            arguments: PipelineOptions.Backend.allCases)
        func withinDeadline(backend: PipelineOptions.Backend) async throws {
            // The test drives the source: it sends 3 items, then waits for the collector to have them all.
            // Without `within` the collector would wait for 97 more that never come (a hang, not a pass).
            let (source, feed) = AsyncStream<Int>.makeStream()
            let (seen, seeing) = AsyncStream<[Int]>.makeStream()
            async let report = pipeline(
                Layer(source),
                Layer(batchesOf: 100, within: .milliseconds(5)) { (items: [Int]) in seeing.yield(items) },
                options: PipelineOptions(backend: backend))
            var handed = seen.makeAsyncIterator()
            for round in 0..<3 {
                let items = Array(round * 3..<round * 3 + 3)
                for x in items { feed.yield(x) }
                var got: [Int] = []
                while got.count < items.count, let batch = await handed.next() { got += batch }
                #expect(got == items, "round \(round)")
            }
            feed.yield(9)
            feed.finish()
            #expect(await handed.next() == [9])
            let r = try await report
            seeing.finish()
            #expect(await handed.next() == nil)
            #expect(r.layers[1].received == 10 && r.layers[1].emitted == 10)
        }

        @Test(
            "a pop with a deadline leaves nothing behind that outlives its link",
            arguments: PipelineOptions.Backend.allCases)
        func timedPopOutlivesLink(backend: PipelineOptions.Backend) async throws {
            // Each wait is ended by a push, then the link is freed at once: the wait's timer task, cancelled
            // then, still runs afterwards, and must not reach into the freed queue (the stress suite
            // crashed in flow_ring_unawait on a destroyed ring before the timer held its queue).
            let one = UnsafeMutablePointer<Int>.allocate(capacity: 1)
            defer { one.deallocate() }
            for round in 0..<500 {
                let link = try Link<Int>(
                    capacity: 4, backend: backend.implementation(pool: flow_config(), startFailureAfter: 0))
                async let popped = link.pop(into: one, max: 1, until: .now + .seconds(30))
                await Task.yield()
                let item = UnsafeMutablePointer<Int>.allocate(capacity: 1)
                item.initialize(to: round)
                #expect(await link.push(item, count: 1) == 1)
                item.deallocate()
                #expect(await popped == 1 && one.pointee == round)
            }
        }

        @Test(
            "a pop with a deadline takes each item once, timing out between them",
            arguments: PipelineOptions.Backend.allCases)
        func timedPopRaces(backend: PipelineOptions.Backend) async throws {
            // Deadlines of a few microseconds race the pushes: a wait must end exactly once (a double
            // resume traps), by the push, the close or the timer, and an item is never lost or taken twice.
            let link = try Link<Int>(
                capacity: 64, backend: backend.implementation(pool: flow_config(), startFailureAfter: 0))
            let n = 20_000
            async let pushed: Int = {
                let one = UnsafeMutablePointer<Int>.allocate(capacity: 1)
                defer { one.deallocate() }
                var done = 0
                for x in 0..<n {
                    one.initialize(to: x)
                    done += await link.push(one, count: 1)
                    if x % 7 == 0 { await Task.yield() }
                    // a pause the consumer's short deadlines must meet (without it the pusher may stay ahead
                    // throughout, and no pop times out)
                    if x % 1_000 == 999 { try? await Task.sleep(for: .microseconds(300)) }
                }
                link.close()
                return done
            }()
            var next = 0
            var wrong = 0
            var timeouts = 0
            let buffer = UnsafeMutablePointer<Int>.allocate(capacity: 16)
            defer { buffer.deallocate() }
            while true {
                guard let k = await link.pop(into: buffer, max: 16, until: .now + .microseconds(next % 3 * 5)) else {
                    timeouts += 1
                    continue
                }
                if k == 0 { break }
                for i in 0..<k {
                    if buffer[i] != next { wrong += 1 }
                    next += 1
                }
            }
            #expect(await pushed == n)
            #expect(next == n && wrong == 0)
            #expect(timeouts > 0)
        }
    }
}
