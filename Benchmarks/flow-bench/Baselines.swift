// Baselines.swift — the per-item pipelines Swift users write today without AsyncFlow, for comparison:
// gen → W workers → collector, one item at a time, with AsyncStream, AsyncChannel and a TaskGroup.
import AsyncAlgorithms

enum Baselines {
    /// Source → one AsyncStream per worker (round robin: an AsyncStream has one consumer) → W worker
    /// tasks → one AsyncStream → collector. AsyncStream buffers without bound: no back-pressure.
    static func asyncStream(
        items: Int, workers: Int, work: @escaping @Sendable (Int) -> Int, collect: @escaping @Sendable (Int) -> Void
    ) async {
        let (results, resultSink) = AsyncStream<Int>.makeStream()
        async let collected: Void = {
            for await r in results { collect(r) }
        }()
        await withTaskGroup(of: Void.self) { group in
            var inputs: [AsyncStream<Int>.Continuation] = []
            for _ in 0..<workers {
                let (stream, sink) = AsyncStream<Int>.makeStream()
                inputs.append(sink)
                group.addTask {
                    for await x in stream { resultSink.yield(work(x)) }
                }
            }
            group.addTask { [inputs] in
                for i in 0..<items { inputs[i % workers].yield(i) }
                for sink in inputs { sink.finish() }
            }
        }
        resultSink.finish()
        await collected
    }

    /// Source → AsyncChannel → W worker tasks → AsyncChannel → collector (back-pressure: each send waits
    /// for its receiver).
    static func asyncChannel(
        items: Int, workers: Int, work: @escaping @Sendable (Int) -> Int, collect: @escaping @Sendable (Int) -> Void
    ) async {
        let inputs = AsyncChannel<Int>()
        let results = AsyncChannel<Int>()
        async let collected: Void = {
            for await r in results { collect(r) }
        }()
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<workers {
                group.addTask {
                    for await x in inputs { await results.send(work(x)) }
                }
            }
            group.addTask {
                for i in 0..<items { await inputs.send(i) }
                inputs.finish()
            }
        }
        results.finish()
        await collected
    }

    /// A TaskGroup with at most 2 × W child tasks in flight, one task per item; the parent collects.
    static func taskGroup(
        items: Int, workers: Int, work: @escaping @Sendable (Int) -> Int, collect: @escaping @Sendable (Int) -> Void
    ) async {
        await withTaskGroup(of: Int.self) { group in
            var inFlight = 0
            for i in 0..<items {
                if inFlight >= 2 * workers, let r = await group.next() {
                    collect(r)
                    inFlight -= 1
                }
                group.addTask { work(i) }
                inFlight += 1
            }
            for await r in group { collect(r) }
        }
    }
}
