import Foundation
import Synchronization
import Testing

@testable import AsyncFlow

/// Per-index atomic counters (one per item), readable after the run.
final class AtomicCounters: @unchecked Sendable {
    // @unchecked: the slots are atomics, allocated once and freed in deinit.
    let slots: UnsafeMutablePointer<Atomic<Int>>
    let count: Int

    init(_ count: Int) {
        self.count = count
        slots = .allocate(capacity: max(count, 1))
        for i in 0..<count { (slots + i).initialize(to: Atomic(0)) }
    }

    deinit {
        slots.deinitialize(count: count)
        slots.deallocate()
    }

    /// Adds one to slot `i`, returns the new value.
    func increment(_ i: Int) -> Int { slots[i].add(1, ordering: .relaxed).newValue }
    subscript(i: Int) -> Int { slots[i].load(ordering: .relaxed) }
}

/// Cancels a pipeline's task from wherever the configuration says, also before the task is known.
final class CancelSwitch: Sendable {
    let state = Locked<(task: Task<PipelineReport, any Error>?, fired: Bool)>((nil, false))

    func arm(_ task: Task<PipelineReport, any Error>) {
        let fired = state.withLock { s in
            s.task = task
            return s.fired
        }
        if fired { task.cancel() }
    }

    func fire() {
        state.withLock { s in
            s.fired = true
            return s.task
        }?.cancel()
    }

    var fired: Bool { state.withLock { $0.fired } }
}

/// Ends the process with the configuration when one run takes longer than its bound: a hang is
/// reported by the test itself (with the seed that reproduces it), not by CI's time-out.
final class Watchdog: Sendable {
    static let shared = Watchdog()
    let current = Locked<(label: String, deadline: ContinuousClock.Instant)?>(nil)

    private init() {
        Thread.detachNewThread { [self] in
            while true {
                Thread.sleep(forTimeInterval: 0.2)
                if let (label, deadline) = current.withLock({ $0 }), ContinuousClock.now > deadline {
                    FileHandle.standardError.write(Data("HANG: a run passed its time bound\n\(label)\n".utf8))
                    exit(3)
                }
            }
        }
    }

    @discardableResult func watch<R>(_ label: String, bound: Duration, _ body: () async throws -> R) async rethrows -> R
    {
        current.withLock { $0 = (label, ContinuousClock.now + bound) }
        defer { current.withLock { $0 = nil } }
        return try await body()
    }
}

/// The closures of one stress run: counters shared by every layer's workers.
final class StressRun: Sendable {
    let config: StressConfig
    /// attempts[layer]: calls per item (index 0, the source, unused).
    let attempts: [AtomicCounters]
    let delivered: AtomicCounters
    let pulled = Counter()
    /// Pulls per item id.
    let pulledIds: AtomicCounters
    let control = PipelineControl()
    let wrongHops = Counter()
    let outOfOrder = Counter()
    let lastDelivered = Atomic<Int>(-1)
    let cancel = CancelSwitch()
    /// A stream's consumer left its loop before the stream ended.
    let leftEarly = Atomic<Bool>(false)
    /// Items a stream's iterator gave after report() had ended the iteration (must stay 0).
    let afterReport = Counter()

    init(_ config: StressConfig) {
        self.config = config
        attempts = (0...config.steps.count).map { _ in AtomicCounters(config.n) }
        delivered = AtomicCounters(config.n)
        pulledIds = AtomicCounters(config.n)
    }

    /// Layer `layer`'s work on an item, before any waiting: count the call, throw as planned, cancel.
    func enter(_ layer: Int, _ item: StressItem) throws {
        let call = attempts[layer].increment(item.id)
        if case .atItem(layer, item.id) = config.cancel, call == 1 { cancel.fire() }
        if let d = config.drain, d == (layer, item.id), call == 1 { control.drain() }
        if call <= config.throwsBefore(layer: layer, id: item.id) { throw StressError.item(layer: layer, id: item.id) }
        if item.hops != layer - 1 { wrongHops.add(1) }
    }

    func cpu(_ layer: Int) -> @Sendable (StressItem) throws -> StressItem {
        { [self] item in
            try enter(layer, item)
            if config.isSlow(layer: layer, id: item.id) {
                let end = ContinuousClock.now + .microseconds(20)
                while ContinuousClock.now < end {}
            }
            return StressItem(id: item.id, hops: item.hops + 1, tracked: item.tracked)
        }
    }

    func async(_ layer: Int) -> @Sendable (StressItem) async throws -> StressItem {
        { [self] item in
            try enter(layer, item)
            if config.isSlow(layer: layer, id: item.id) {
                try? await Task.sleep(for: .microseconds(100))
            } else if item.id % 7 == 0 {
                await Task.yield()
            }
            return StressItem(id: item.id, hops: item.hops + 1, tracked: item.tracked)
        }
    }

    func collect(_ item: StressItem) {
        _ = delivered.increment(item.id)
        if lastDelivered.exchange(item.id, ordering: .relaxed) >= item.id { outOfOrder.add(1) }
    }

    func middle(_ layer: Int) -> Layer<StressItem, StressItem> {
        let s = config.steps[layer - 1]
        switch s.kind {
        case .cpu(let w):
            return Layer(workers: w, ordered: s.ordered, capacity: s.capacity, onError: s.policy, cpu(layer))
        case .async(let c):
            return Layer(concurrency: c, ordered: s.ordered, capacity: s.capacity, onError: s.policy, async(layer))
        case .serialSync:
            return Layer(capacity: s.capacity, onError: s.policy, cpu(layer))
        case .serialAsync:
            return Layer(capacity: s.capacity, onError: s.policy, async(layer))
        case .batchMap(let size, let c, let within):
            let body = async(layer)
            return Layer(
                batchesOf: size, within: within.map { .microseconds($0) }, concurrency: c, ordered: s.ordered,
                capacity: s.capacity, onError: s.policy
            ) { (items: [StressItem]) async throws in
                var out: [StressItem] = []
                for item in items { out.append(try await body(item)) }
                return out
            }
        case .batches:
            preconditionFailure("a batch collector is only drawn as the collector")
        }
    }

    func collector() -> Layer<StressItem, Void> {
        let layer = config.steps.count
        let s = config.steps[layer - 1]
        let syncBody = cpu(layer)
        let asyncBody = async(layer)
        let syncCollect: @Sendable (StressItem) throws -> Void = { [self] in collect(try syncBody($0)) }
        let asyncCollect: @Sendable (StressItem) async throws -> Void = { [self] in collect(try await asyncBody($0)) }
        switch s.kind {
        case .cpu(let w): return Layer(workers: w, capacity: s.capacity, onError: s.policy, syncCollect)
        case .async(let c): return Layer(concurrency: c, capacity: s.capacity, onError: s.policy, asyncCollect)
        case .serialSync: return Layer(capacity: s.capacity, onError: s.policy, syncCollect)
        case .serialAsync: return Layer(capacity: s.capacity, onError: s.policy, asyncCollect)
        case .batchMap:
            preconditionFailure("a batch map is only drawn as a middle layer")
        case .batches(let size, let within):
            return Layer(
                batchesOf: size, within: within.map { .microseconds($0) }, capacity: s.capacity, onError: s.policy
            ) { [self] (items: [StressItem]) async throws in
                for item in items { collect(try await asyncBody(item)) }
            }
        }
    }

    func source() -> Layer<Never, StressItem> {
        let k = config.generators
        let parts = (0..<k).map { g in
            var items = StressSource(
                n: config.n, references: config.references, pulled: pulled, ids: pulledIds, first: g, step: k)
            if case .throwing(let at) = config.source { items.throwAt = at }
            return items
        }
        switch (config.source, k) {
        case (.sequence, 1): return Layer(parts[0])
        case (.sequence, 2): return Layer(merging: parts[0], parts[1])
        case (.sequence, _): return Layer(merging: parts[0], parts[1], parts[2])
        case (_, 1): return Layer(parts[0].async)
        case (_, 2): return Layer(merging: parts[0].async, parts[1].async)
        case (_, _): return Layer(merging: parts[0].async, parts[1].async, parts[2].async)
        }
    }

    func run(options: PipelineOptions) async throws -> PipelineReport {
        let m = (0..<config.middles).map { middle($0 + 1) }
        if let end = config.stream {
            let last = middle(config.steps.count)  // the stream's last layer: the collector's kind, no collect
            switch config.middles {
            case 0: return try await consume(pipelineStream(source(), last, options: options), end)
            case 1: return try await consume(pipelineStream(source(), m[0], last, options: options), end)
            case 2: return try await consume(pipelineStream(source(), m[0], m[1], last, options: options), end)
            case 3: return try await consume(pipelineStream(source(), m[0], m[1], m[2], last, options: options), end)
            default:
                return try await consume(pipelineStream(source(), m[0], m[1], m[2], m[3], last, options: options), end)
            }
        }
        switch config.middles {
        case 0: return try await pipeline(source(), collector(), options: options)
        case 1: return try await pipeline(source(), m[0], collector(), options: options)
        case 2: return try await pipeline(source(), m[0], m[1], collector(), options: options)
        case 3: return try await pipeline(source(), m[0], m[1], m[2], collector(), options: options)
        default: return try await pipeline(source(), m[0], m[1], m[2], m[3], collector(), options: options)
        }
    }
}

extension StressRun {
    /// A stream's consumer: collects each item, leaves when `end` says, then asks for the report.
    func consume(_ stream: PipelineStream<StressItem>, _ end: StressConfig.StreamEnd) async throws -> PipelineReport {
        var taken = 0
        let limit: Int? = if case .leave(let k, _) = end { k } else { nil }
        func take(_ item: StressItem) -> Bool {  // false: leave the loop now
            collect(item)
            taken += 1
            if taken == limit { leftEarly.store(true, ordering: .relaxed) }
            return taken != limit
        }
        if case .leave(_, keepIterator: true) = end {
            var iterator = stream.makeAsyncIterator()
            while let item = try await iterator.next(), take(item) {}
            let report = try await stream.report()  // [a report from the consumer leaves]: ends the loop left above
            if try await iterator.next() != nil { afterReport.add(1) }
            return report
        }
        do {  // the iterator is released at the end of this scope: the consumer leaves ([the consumer is done once])
            for try await item in stream where !take(item) { break }
        }
        return try await stream.report()
    }
}

/// Items first, first + step, ... below n, counted as they are pulled; as an AsyncSequence it may throw in
/// place of item `throwAt` (if that is one of its ids, or the first past its last).
struct StressSource: Sequence, Sendable {
    let n: Int
    let references: Bool
    let pulled: Counter
    let ids: AtomicCounters?
    let first: Int
    let step: Int
    var throwAt: Int?

    init(n: Int, references: Bool, pulled: Counter, ids: AtomicCounters? = nil, first: Int = 0, step: Int = 1) {
        self.n = n
        self.references = references
        self.pulled = pulled
        self.ids = ids
        self.first = first
        self.step = step
    }

    func item(_ id: Int) -> StressItem {
        pulled.add(1)
        _ = ids?.increment(id)
        return StressItem(id: id, hops: 0, tracked: references ? Tracked(id) : nil)
    }

    func makeIterator() -> AnyIterator<StressItem> {
        var id = first
        return AnyIterator {
            guard id < n else { return nil }
            defer { id += step }
            return item(id)
        }
    }

    var async: Async { Async(source: self) }

    struct Async: AsyncSequence, Sendable {
        let source: StressSource
        struct AsyncIterator: AsyncIteratorProtocol {
            let source: StressSource
            var id: Int
            mutating func next() async throws -> StressItem? {
                if id == source.throwAt { throw StressError.source(at: id) }
                guard id < source.n else { return nil }
                defer { id += source.step }
                if id % 50 == 49 { await Task.yield() }
                return source.item(id)
            }
        }
        func makeAsyncIterator() -> AsyncIterator { AsyncIterator(source: source, id: source.first) }
    }
}

extension Serial {
    @Suite("Randomized exactly-once")
    struct StressTests {
        static let runs = Int(ProcessInfo.processInfo.environment["FLOW_STRESS_RUNS"] ?? "") ?? 2_000
        static let firstSeed = UInt64(ProcessInfo.processInfo.environment["FLOW_STRESS_SEED"] ?? "") ?? 20_261_127

        @Test(
            "random pipelines deliver every item once or account for it, keep order, end, leak nothing",
            arguments: PipelineOptions.Backend.allCases)
        func randomPipelines(backend: PipelineOptions.Backend) async throws {
            let watchdog = Watchdog.shared
            let aliveBefore = Tracked.alive.load(ordering: .relaxed)
            var tally: [String: Int] = [:]
            for i in 0..<Self.runs {
                let config = StressConfig(seed: Self.firstSeed &+ UInt64(i), backend: backend)
                let outcome = await watchdog.watch(config.description, bound: .seconds(60)) {
                    await runOnce(config)
                }
                guard let outcome else { return }  // the failure is recorded with the configuration
                tally[outcome, default: 0] += 1
                guard expectNoPoolThreads("after the run\n\(config)") else { return }
                guard Tracked.alive.load(ordering: .relaxed) == aliveBefore else {
                    Issue.record(
                        "items leaked or freed twice: \(Tracked.alive.load(ordering: .relaxed) - aliveBefore)\n\(config)"
                    )
                    return
                }
            }
            print("stress \(backend): \(Self.runs) runs from seed \(Self.firstSeed):", tally.sorted { $0.key < $1.key })
        }

        /// Runs one configuration and checks it; returns how it ended, or nil after recording a failure.
        func runOnce(_ config: StressConfig) async -> String? {
            let run = StressRun(config)
            let box = ReportBox()
            var options = box.options(config.backend)
            options.batchSize = config.batchSize
            options.spinNanoseconds = config.spinNanoseconds
            options.control = run.control
            let task = Task { try await run.run(options: options) }
            run.cancel.arm(task)
            switch config.cancel {
            case .immediately: run.cancel.fire()
            case .afterMicroseconds(let us):
                try? await Task.sleep(for: .microseconds(us))
                run.cancel.fire()
            case .none, .atItem: break
            }
            let result = await task.result
            return check(config, run, result, box.report.withLock { $0 })
        }

        func check(
            _ c: StressConfig, _ run: StressRun, _ result: Result<PipelineReport, any Error>, _ report: PipelineReport?
        ) -> String? {
            var problems: [String] = []
            func expect(_ ok: Bool, _ what: @autoclosure () -> String) { if !ok { problems.append(what()) } }
            let plan = StressPlan(c)
            let layers = c.steps.count
            let delivered = (0..<c.n).filter { run.delivered[$0] > 0 }
            expect(delivered.allSatisfy { run.delivered[$0] == 1 }, "an item was delivered twice")
            expect(run.wrongHops.count == 0, "\(run.wrongHops.count) items skipped a layer")
            expect(run.afterReport.count == 0, "the stream gave an item after report() ended its loop")
            if c.keepsOrder { expect(run.outOfOrder.count == 0, "\(run.outOfOrder.count) items out of order") }
            guard let report else { return fail(c, ["no report"]) }
            expect(report.layers.count == layers + 1, "report has \(report.layers.count) layers")
            for l in report.layers {
                expect(l.received == l.emitted + l.failed + l.skipped + l.dropped, "unbalanced: \(l)")
            }
            for (a, b) in zip(report.layers, report.layers.dropFirst()) {
                expect(b.received == a.emitted, "\(a.name) emitted \(a.emitted), \(b.name) received \(b.received)")
            }
            expect(report.pulled == run.pulled.count, "pulled \(run.pulled.count), report says \(report.pulled)")
            expect(report.completed == delivered.count, "delivered \(delivered.count), report says \(report.completed)")
            for layer in 1...layers {
                for id in 0..<c.n where run.attempts[layer][id] > plan.attempts[layer][id] {
                    expect(
                        false,
                        "layer \(layer) called \(run.attempts[layer][id]) times for item \(id), planned \(plan.attempts[layer][id])"
                    )
                }
            }
            expect(delivered.allSatisfy { plan.delivered[$0] }, "an item was delivered that should not have been")
            let outcome: String
            switch result {
            case .success where run.leftEarly.load(ordering: .relaxed):
                outcome = "stream left"  // leaving is the consumer's choice: a report, not an error
            case .success where run.control.isDraining:
                // everything pulled is finished as planned; nothing dropped, nothing pulled twice
                outcome = "drained"
                let pulledIds = (0..<c.n).filter { run.pulledIds[$0] > 0 }
                expect(pulledIds.allSatisfy { run.pulledIds[$0] == 1 }, "an item was pulled twice")
                expect(report.dropped == 0, "drained, but \(report.dropped) dropped")
                expect(
                    report.pulled == report.completed + report.skipped + report.failed,
                    "drained: pulled \(report.pulled) != completed + skipped + failed")
                expect(
                    delivered == pulledIds.filter { plan.delivered[$0] },
                    "drained: delivered \(delivered.count), planned \(pulledIds.filter { plan.delivered[$0] }.count) of the pulled"
                )
            case .success:
                outcome = "completed"
                expect(!plan.fatal, "completed, but an item should have failed the run")
                if case .throwing = c.source { expect(false, "completed, but the source threw") }
                expect(
                    delivered.count == plan.delivered.filter { $0 }.count,
                    "delivered \(delivered.count) of \(plan.delivered.filter { $0 }.count)")
                expect(report.pulled == c.n, "pulled \(report.pulled) of \(c.n)")
                for layer in 1...layers {
                    let l = report.layers[layer]
                    expect(
                        l.skipped == plan.skipped[layer],
                        "\(l.name): skipped \(l.skipped), planned \(plan.skipped[layer])")
                    expect(
                        l.retried == plan.retried[layer],
                        "\(l.name): retried \(l.retried), planned \(plan.retried[layer])")
                    expect(l.failed == 0 && l.dropped == 0, "\(l.name): failed or dropped in a completed run")
                    for id in 0..<c.n where run.attempts[layer][id] != plan.attempts[layer][id] {
                        expect(
                            false,
                            "layer \(layer) called \(run.attempts[layer][id]) times for item \(id), planned \(plan.attempts[layer][id])"
                        )
                    }
                }
            case .failure(let error as StressError):
                switch error {
                case .item(let layer, let id):
                    outcome = "failed"
                    expect(c.poison.map { $0 == (layer, id) } ?? false, "threw \(error), not the poison item's error")
                case .source(let at):
                    outcome = "source threw"
                    if case .throwing(at) = c.source {} else { expect(false, "threw \(error)") }
                    // the generator that threw gave none of its ids from `at` on (the others go on until stopped)
                    let k = c.generators
                    expect(
                        delivered.allSatisfy { $0 < at || $0 % k != at % k }, "delivered an item the source never gave")
                }
            case .failure(is CancellationError):
                outcome = "cancelled"
                expect(run.cancel.fired, "CancellationError without a cancellation")
            case .failure(let error):
                return fail(c, ["threw an unexpected error: \(error)"])
            }
            return problems.isEmpty ? outcome : fail(c, problems + ["report:\n\(report)"])
        }

        func fail(_ c: StressConfig, _ problems: [String]) -> String? {
            Issue.record(Comment(rawValue: (problems + ["configuration:", c.description]).joined(separator: "\n")))
            return nil
        }
    }
}
