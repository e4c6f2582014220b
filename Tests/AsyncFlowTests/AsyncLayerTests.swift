import Synchronization
import Testing

@testable import AsyncFlow

/// Async layers with `concurrency` move items in batches ([async items move in shared batches]); these pin what
/// batching must not cost: no item kept behind a busy task, each item taken once.
extension Serial {
    @Suite("Async layers in batches")
    struct AsyncLayerTests {
        @Test(
            "idle tasks take the items a busy task holds once the input has ended",
            .timeLimit(.minutes(1)), arguments: PipelineOptions.Backend.allCases)
        func idleTasksTakeHeldItems(backend: PipelineOptions.Backend) async throws {
            // Cheap items move in batches of hundreds. The call that starts as the n/2-th waits until every
            // other item is done: items left in its task's batch can only be done by the other tasks.
            let n = 20_000
            let started = Counter()
            let done = Counter()
            let sum = Counter()
            let waitedInVain = Counter()
            let report = try await pipeline(
                Layer(0..<n),
                Layer(concurrency: 4) { (x: Int) async -> Int in
                    if started.value.add(1, ordering: .relaxed).newValue == n / 2 {
                        let clock = ContinuousClock()
                        let deadline = clock.now + .seconds(20)
                        while done.count < n - 1 && clock.now < deadline {
                            try? await Task.sleep(for: .milliseconds(1))
                        }
                        if done.count < n - 1 { waitedInVain.add(1) }
                    }
                    done.add(1)
                    return x
                },
                Layer { (x: Int) in sum.add(x) }, options: PipelineOptions(backend: backend))
            #expect(waitedInVain.count == 0, "items stayed in the busy task's batch")
            #expect(done.count == n)
            #expect(sum.count == n * (n - 1) / 2)
            #expect(report.layers.map(\.emitted) == [n, n, n])
            expectBalanced(report, pulled: n)
        }

        @Test("a shared batch gives each item to one task: its owner from the front, takers from the back")
        func sharedBatchTakesOnce() async throws {
            let batches = 3_000
            let share = SharedBatch<Int>()
            let ownerDone = Counter()
            let (seen, taken) = await withTaskGroup(of: (owner: Bool, items: [Int]).self) { group in
                for _ in 0..<2 {
                    group.addTask {
                        var got: [Int] = []
                        let into = UnsafeMutablePointer<Int>.allocate(capacity: 64)
                        defer { into.deallocate() }
                        while ownerDone.count == 0 {
                            let k = share.take(into: into, max: 64)
                            got.append(contentsOf: UnsafeBufferPointer(start: into, count: k))
                            if k == 0 { await Task.yield() }
                        }
                        return (false, got)
                    }
                }
                group.addTask {
                    let buffer = UnsafeMutablePointer<Int>.allocate(capacity: 300)
                    // after the last retire(): no taker is moving items ([no refill while a taker copies])
                    defer { buffer.deallocate() }
                    share.attach(buffer)
                    var got: [Int] = []
                    for b in 0..<batches {
                        let count = 1 + (b * 7919) % 300
                        for i in 0..<count { (buffer + i).initialize(to: b * 1_000 + i) }
                        share.publish(count)
                        while let i = share.takeFront() {
                            got.append((buffer + i).move())
                            if i % 16 == 0 { await Task.yield() }  // give the takers a chance mid-batch
                        }
                        await share.retire()
                    }
                    ownerDone.add(1)
                    return (true, got)
                }
                var all: [Int] = []
                var taken = 0
                for await part in group {
                    all += part.items
                    if !part.owner { taken += part.items.count }
                }
                return (all, taken)
            }
            let expected = (0..<batches).flatMap { b in (0..<(1 + (b * 7919) % 300)).map { b * 1_000 + $0 } }
            #expect(seen.count == expected.count)
            let exactlyOnce = seen.sorted() == expected  // a Bool: the arrays are too long to print
            #expect(exactlyOnce, "every item taken once")
            #expect(taken > 0, "the takers took part")
        }
    }
}
