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

/// What a collector's closure costs by itself: one call per item in a plain loop on one thread, no
/// pipeline. Each closure passes through `opaque` first, so the optimiser cannot see (and inline) it, as
/// a pipeline's stage cannot see the user's closure.
enum CallFloor {
    /// `value`, out of the optimiser's sight (never inlined, never optimised).
    @inline(never) @_optimize(none) static func opaque<T>(_ value: T) -> T { value }

    /// 0..<n through a sync closure.
    @inline(never) static func syncCalls(_ n: Int, _ sum: Sum) {
        let call = opaque { (x: Int) in sum.add(x) }
        for i in 0..<n { call(i &* 2) }  // the values a collector gets after x * 2
    }

    /// 0..<n through an async closure that never suspends (the call's own cost).
    @inline(never) static func asyncCalls(_ n: Int, _ sum: Sum) async {
        let call = opaque { @Sendable (x: Int) async in sum.add(x) }
        for i in 0..<n { await call(i &* 2) }
    }
}
