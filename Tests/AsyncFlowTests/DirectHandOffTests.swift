import CFlow
import Foundation
import Synchronization
import Testing

@testable import AsyncFlow

/// DirectHandOff: where the native backend's CPU threads pull the source and call the collector
/// themselves, and that every item is still counted once.
extension Serial {
    @Suite("Direct hand-off")
    struct DirectHandOffTests {
        /// 0..<count, noting for every pull whether it ran outside any task (a CPU thread's direct pull).
        struct NotingRange: Sequence, Sendable {
            let count: Int
            let outsideTask: Locked<Set<Bool>>

            struct Iterator: IteratorProtocol {
                var position = 0
                let count: Int
                let outsideTask: Locked<Set<Bool>>
                mutating func next() -> Int? {
                    guard position < count else { return nil }
                    let outside = withUnsafeCurrentTask { $0 == nil }
                    outsideTask.withLock { _ = $0.insert(outside) }
                    defer { position += 1 }
                    return position
                }
            }
            func makeIterator() -> Iterator { Iterator(count: count, outsideTask: outsideTask) }
        }

        @Test("how each link hands its items on: skipped only by the native backend's, with one worker per CPU")
        func whichLinks() {
            let native = PipelineOptions.Backend.native.implementation(pool: flow_config(), startFailureAfter: 0)
            let swift = PipelineOptions.Backend.swift.implementation(pool: flow_config(), startFailureAfter: 0)
            func links(
                _ layers: [ErasedLayer], cpus: Int = 2, backend: any Backend = native, streaming: Bool = false
            ) -> [HandOff] {
                let sizes = RunSizes(layers, batchSize: 1024, defaultWorkers: 2, cpus: cpus, streaming: streaming)
                return backend.handOffs(layers, sizes: sizes, streaming: streaming)
            }
            let source = Layer(0..<10).erased(0)
            let merged = Layer(merging: 0..<5, 5..<10).erased(0)
            let cpu = Layer(workers: 2) { (x: Int) in x }.erased(1)
            let ordered = Layer(workers: 2, ordered: true) { (x: Int) in x }.erased(1)
            let one = Layer(workers: 1) { (x: Int) in x }.erased(1)
            let oneOrdered = Layer(workers: 1, ordered: true) { (x: Int) in x }.erased(1)
            let oneWithState = Layer(workers: 1, state: { 0 }) { (_: inout Int, x: Int) in x }.erased(1)
            let serial = Layer { (x: Int) in x }.erased(2)
            let collector = Layer { (_: Int) in }.erased(2)
            #expect(links([source, cpu, collector]) == [.direct, .direct])
            #expect(links([source, cpu, collector], backend: swift) == [.queue, .queue])
            // a helper thread runs the other stages: the source's task pulls too ([a shared source]), and may carry its
            // batches through a stateless layer to the collector ([carried batches])
            #expect(links([source, one, collector]) == [.shared, .direct])
            #expect(links([source, oneWithState, collector]) == [.shared, .queue])
            #expect(links([merged, one, collector]) == [.queue, .queue])  // nothing to carry
            #expect(links([source, oneOrdered, collector]) == [.queue, .queue])  // positions come from the queue
            #expect(links([source, one, collector], cpus: 1) == [.direct, .direct])
            #expect(links([source, cpu, collector], cpus: 1) == [.queue, .queue])  // more workers than CPUs
            #expect(links([source, ordered, collector]) == [.direct, .queue])  // results wait for their turn
            #expect(links([merged, cpu, collector]) == [.queue, .direct])
            #expect(links([source, cpu, serial, collector]) == [.direct, .queue, .queue])  // not the last layer
            #expect(links([source, cpu, collector], streaming: true) == [.direct, .queue, .queue])
            #expect(links([source, collector]) == [.queue])  // no CPU layer between them
        }

        @Test(
            "the CPU threads pull a Sequence source and call a sync collector themselves, only where the run allows it",
            arguments: [
                (PipelineOptions.Backend.native, false, true, true),
                (.native, true, true, false),  // ordered: the collector takes its queue's batches
                (.swift, false, false, false),
            ])
        func handOffs(backend: PipelineOptions.Backend, ordered: Bool, pulled: Bool, direct: Bool) async throws {
            let outsideTask = Locked(Set<Bool>())
            let collectorOutside = Locked(Set<Bool>())
            let n = 100_000
            let sum = Counter()
            let previous = Locked(-1)
            let report = try await pipeline(
                Layer(NotingRange(count: n, outsideTask: outsideTask)),
                Layer(workers: nil, ordered: ordered) { (x: Int) in x },
                Layer { (x: Int) in
                    let outside = withUnsafeCurrentTask { $0 == nil }
                    collectorOutside.withLock { _ = $0.insert(outside) }
                    if ordered {
                        previous.withLock {
                            #expect(x == $0 + 1)
                            $0 = x
                        }
                    }
                    sum.add(x)
                }, options: PipelineOptions(backend: backend))
            #expect(sum.count == n * (n - 1) / 2)
            #expect(report.layers.map(\.received) == [n, n, n] && report.layers.map(\.emitted) == [n, n, n])
            expectBalanced(report, pulled: n)
            #expect(outsideTask.withLock { $0 } == [pulled])  // every pull by a CPU thread, or none
            // the first batch made always finds the collector free (nothing can be queued before a take fails)
            #expect(collectorOutside.withLock { $0.contains(true) } == direct)
        }

        @Test(
            "a collector that fails on a batch taken directly fails the run with its error; every item is counted",
            arguments: [ErrorPolicy.fail, .skip])
        func failingCollector(policy: ErrorPolicy) async throws {
            let box = ReportBox()
            let options = box.options(.native)
            let n = 50_000
            let called = Counter()
            let run = {
                try await pipeline(
                    Layer(0..<n), Layer(workers: nil) { (x: Int) in x },
                    Layer(onError: policy) { (x: Int) in
                        called.add(1)
                        if x % 1_000 == 7 && withUnsafeCurrentTask(body: { $0 == nil }) { throw TestError.bad(x) }
                    }, options: options)
            }
            if case .fail = policy {
                await #expect(throws: TestError.self) { _ = try await run() }
                let report = try #require(box.report.withLock { $0 })
                #expect(report.layers[2].failed == 1)
                #expect(report.layers[2].received < n)  // the stop dropped the rest before the collector
            } else {
                _ = try await run()
                let report = try #require(box.report.withLock { $0 })
                #expect(report.layers[2].skipped >= 1)  // at least the first batch was taken directly
                #expect(report.layers[2].skipped + report.layers[2].emitted == n)
                #expect(called.count == n)
            }
            expectBalanced(box.report.withLock { $0 }, pulled: nil)
        }

        /// The CPUs the native backend's pools may use here.
        static var cpus: Int {
            var config = flow_config()
            var error = flow_error()
            guard flow_config_init(&config, &error) == FLOW_OK else { return 0 }
            return Int(withUnsafePointer(to: config.cpus) { flow_cpuset_count($0) })
        }

        @Test(
            "with fewer workers than CPUs, the source's own task and the worker both pull it; each element once")
        func sharedSource() async throws {
            try #require(Self.cpus >= 2, "a shared source needs a CPU beside the worker")
            struct SlowNoting: Sequence, Sendable {
                let outsideTask: Locked<Set<Bool>>
                func makeIterator() -> AnyIterator<Int> {
                    var i = 0
                    return AnyIterator {
                        guard i < 3_000 else { return nil }
                        // a few µs: a worker that pulls first is still pulling when the task first tries
                        for _ in 0..<200 { flow_spin_pause() }
                        let outside = withUnsafeCurrentTask { $0 == nil }
                        outsideTask.withLock { _ = $0.insert(outside) }
                        defer { i += 1 }
                        return i
                    }
                }
            }
            let outsideTask = Locked(Set<Bool>())
            let seen = Locked([Int]())
            // Either side may pull first. The worker: the task finds the lock taken, and the worker leaves
            // it the next pull (taskWaits). The task: the queue holds one item, and so does each batch
            // beside it (a batch never holds more than the queue it stands in for), so the task pulls one
            // item and waits (outside the source's lock) for the worker to pop it; the worker finds the
            // queue empty while the task waits, and pulls. (With a roomy queue the task, holding the lock
            // a whole batch at a time, left the worker no pull after its first: under TSan, whose thread
            // starts are slow, the worker often made none.)
            let report = try await pipeline(
                Layer(SlowNoting(outsideTask: outsideTask)), Layer(workers: 1, capacity: 1) { (x: Int) in x * 2 },
                Layer { (x: Int) in seen.withLock { $0.append(x) } }, options: PipelineOptions(backend: .native))
            #expect(seen.withLock { $0.sorted() } == (0..<3_000).map { $0 * 2 })
            #expect(outsideTask.withLock { $0 } == [true, false])  // the worker's pulls, and the task's
            expectBalanced(report, pulled: 3_000)
        }

        @Test("a shared source blocked in next() does not hold back items it gave before (no worker waits on it)")
        func sharedSourceBlocked() async throws {
            try #require(Self.cpus >= 2, "a shared source needs a CPU beside the worker")
            // From its third batch on, the source waits until the collector has seen an item: whatever
            // thread pulls it then blocks, and the other must still run the collector (10 s at most here)
            struct Waiting: Sequence, Sendable {
                let collected: DispatchSemaphore
                let stalled: Locked<Bool>
                func makeIterator() -> AnyIterator<Int> {
                    var i = 0
                    return AnyIterator {
                        guard i < 3_000 else { return nil }
                        if i == 2_048, collected.wait(timeout: .now() + 10) == .timedOut {
                            stalled.withLock { $0 = true }
                        }
                        defer { i += 1 }
                        return i
                    }
                }
            }
            let collected = DispatchSemaphore(value: 0)
            let stalled = Locked(false)
            let first = Atomic<Bool>(true)
            let count = Counter()
            let report = try await pipeline(
                Layer(Waiting(collected: collected, stalled: stalled)), Layer(workers: 1) { (x: Int) in x },
                Layer { (_: Int) in
                    count.add(1)
                    if first.exchange(false, ordering: .relaxed) { collected.signal() }
                }, options: PipelineOptions(backend: .native))
            #expect(!stalled.withLock { $0 }, "the collector waited for the blocked source")
            #expect(count.count == 3_000)
            expectBalanced(report, pulled: 3_000)
        }

        @Test("a run that stops while the source's task and the worker share the source counts every item")
        func sharedSourceStop() async throws {
            try #require(Self.cpus >= 2, "a shared source needs a CPU beside the worker")
            let box = ReportBox()
            let n = 2_000_000
            await #expect(throws: TestError.self) {
                _ = try await pipeline(
                    Layer(0..<n), Layer(workers: 1) { (x: Int) in x },
                    Layer { (x: Int) in if x == n / 2 { throw TestError.bad(x) } }, options: box.options(.native))
            }
            let report = try #require(box.report.withLock { $0 })
            #expect(report.layers[2].failed == 1)
            #expect(report.layers[0].received < n)  // the stop ended the pulls
            expectBalanced(report, pulled: nil)
        }

        /// A CPU layer's closure, as its calls saw it: how many overlapped, which pool threads made them.
        final class CallWatch: Sendable {
            let inFlight = Atomic<Int>(0)
            let overlapped = Atomic<Bool>(false)
            let offPool = Atomic<Bool>(false)
            /// Calls by a thread of the pool's other than its workers' (index >= workers): carried ([carried batches]).
            let byHelper = Atomic<Int>(0)
            let workers: UInt32

            init(workers: UInt32) { self.workers = workers }

            func call<R>(_ body: () -> R) -> R {
                if inFlight.add(1, ordering: .acquiringAndReleasing).newValue > workers {
                    overlapped.store(true, ordering: .relaxed)
                }
                if let worker = flow_current_worker() {
                    if flow_worker_index(worker) >= workers { byHelper.add(1, ordering: .relaxed) }
                } else {
                    offPool.store(true, ordering: .relaxed)
                }
                defer { inFlight.subtract(1, ordering: .acquiringAndReleasing) }
                return body()
            }
        }

        @Test(
            "a cheap stateless layer's batches are carried by the source's task too: on pool threads only, never more calls at once than workers, each item once"
        )
        func carried() async throws {
            try #require(Self.cpus >= 2, "carried batches need a CPU beside the worker")
            let n = 100_000
            let watch = CallWatch(workers: 1)
            // small batches keep a batch under the carrier's budget even under the sanitizers; whether the
            // source's task gets to pull depends on the threads' timing, so a few runs may be needed
            var runs = 0
            while watch.byHelper.load(ordering: .relaxed) == 0, runs < 20 {
                runs += 1
                let sum = Counter()
                var options = PipelineOptions(backend: .native)
                options.batchSize = 64
                let report = try await pipeline(
                    Layer(0..<n), Layer(workers: 1) { (x: Int) in watch.call { x * 2 } },
                    Layer { (x: Int) in sum.add(x) }, options: options)
                #expect(sum.count == n * (n - 1))
                #expect(report.layers.map(\.received) == [n, n, n] && report.layers.map(\.emitted) == [n, n, n])
                expectBalanced(report, pulled: n)
            }
            #expect(watch.byHelper.load(ordering: .relaxed) > 0, "no batch was carried in \(runs) runs")
            let (overlapped, offPool) = (
                watch.overlapped.load(ordering: .relaxed), watch.offPool.load(ordering: .relaxed)
            )
            #expect(!overlapped, "two calls of a 1-worker layer overlapped")
            #expect(!offPool, "a call was made off the pool's threads")
        }

        @Test(
            "no batch is carried through a layer with per-worker state, or one whose batches take longer than the carrier's budget",
            arguments: [false, true])
        func notCarried(stateful: Bool) async throws {
            try #require(Self.cpus >= 2, "carried batches need a CPU beside the worker")
            let watch = CallWatch(workers: 1)
            let n = stateful ? 100_000 : 400
            let states = Atomic<Int>(0)
            let makeState: @Sendable () -> Int = {
                states.add(1, ordering: .relaxed)
                return 0
            }
            let middle =
                stateful
                ? Layer(workers: 1, state: makeState) { (calls: inout Int, x: Int) in
                    calls += 1
                    return watch.call { x }
                }
                : Layer(workers: 1) { (x: Int) in
                    watch.call {
                        let end = flow_now_ns() + 50_000  // 50 µs: one item is over the budget
                        while flow_now_ns() < end {}
                        return x
                    }
                }
            let sum = Counter()
            var options = PipelineOptions(backend: .native)
            options.batchSize = 64
            let report = try await pipeline(Layer(0..<n), middle, Layer { (x: Int) in sum.add(x) }, options: options)
            #expect(sum.count == n * (n - 1) / 2)
            let (byHelper, overlapped) = (
                watch.byHelper.load(ordering: .relaxed), watch.overlapped.load(ordering: .relaxed)
            )
            #expect(byHelper == 0)
            #expect(!overlapped)
            #expect(states.load(ordering: .relaxed) == (stateful ? 1 : 0))
            expectBalanced(report, pulled: n)
        }

        @Test("a slow Sequence pulled by every worker gives each element once, in order to an ordered layer")
        func slowSource() async throws {
            struct Slow: Sequence, Sendable {
                func makeIterator() -> AnyIterator<Int> {
                    var i = 0
                    return AnyIterator {
                        guard i < 3_000 else { return nil }
                        for _ in 0..<200 { flow_spin_pause() }  // a few µs: workers meet at the source's lock
                        defer { i += 1 }
                        return i
                    }
                }
            }
            let seen = Locked([Int]())
            let report = try await pipeline(
                Layer(Slow()), Layer(workers: nil, ordered: true) { (x: Int) in x * 2 },
                Layer { (x: Int) in seen.withLock { $0.append(x) } })
            #expect(seen.withLock { $0 } == (0..<3_000).map { $0 * 2 })
            expectBalanced(report, pulled: 3_000)
        }
    }
}
