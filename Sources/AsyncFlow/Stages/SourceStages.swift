// SourceStages.swift — the first layer: pull from a Sequence or AsyncSequence, push in batches.
//
// Invariants:
//  [pulled items are pushed or dropped] An element is counted as received when its batch is flushed (one atomic add per
//    batch), and then either pushed (emitted) or, when the run stops first, dropped: received == emitted + dropped.
//  [no pull after the pulls end] Nothing is pulled after RunState.pullsEnded is seen (checked before every pull): the
//    run stopped or drains ([a drain only ends the pulls]). Then an AsyncSequence's pull, which may be waiting for
//    ever, is cancelled (a CancellationError from it ends the source without failing the run).
//  [an async source holds no pulled item] Batching: a Sequence source pushes full batches (pulling from a Sequence does
//    not wait). An AsyncSequence source pushes each element before it awaits the next one: that await may suspend for
//    as long as the sequence likes (even until this element has gone through the pipeline), so holding a pulled element
//    across it could delay it without bound or deadlock.
//  [merged generators take turns] A merged source (Layer(merging:)) runs one pull loop per generator, each a producer
//    of the output link, so the link closes when the last generator has ended ([the last producer closes the link]). A
//    Sequence generator yields after every batch it pushes, so generators that never suspend take turns on a shared
//    executor. Each flushed batch is also counted to its generator (counters.generators).
//  [an async source pulls on the pool] A single AsyncSequence source pulls on the backend's stage executor (the native
//    pool's, PoolExecutor), so a pipeline with a CPU layer keeps one runnable thread per CPU and Swift's cooperative
//    pool free; a next() that does not suspend costs more there (each await takes the task's status lock), one that
//    waits does not feel it. After a pull the executor resumed (it started jobs meanwhile: a hint), the task yields
//    after pushing each of that element and the next 7 that find the queue empty, so the thread takes a burst's items
//    on before the task goes into its next wait (whose timer takes microseconds to set up); a source that never
//    suspends never yields. Merged generators stay on Swift's executor.
//  A source's task also yields after each batch it pushes (or carries, [carried batches]) while its job runs under a
//    pool thread's wait on a ring ([a job under a wait yields each batch], BatchLoop.swift), so a worker that took it
//    while holding a batch gets its thread back.
import Synchronization

/// What every source kind shares: a layer that is the producer of its output link.
@usableFromInline class SourceStage<Element>: @unchecked Sendable {
    // @unchecked: immutable after init; the link and the counters are thread-safe.
    @usableFromInline let context: StageContext<Never, Element>

    /// A source whose output link has `producers` pull loops ([merged generators take turns]).
    @inlinable init(context: StageContext<Never, Element>, producers: Int = 1) {
        self.context = context
        context.output!.addProducers(producers)
    }
}

/// A source's batch of pulled elements, pushed on when full and at the end ([pulled items are pushed or dropped],
/// [an async source holds no pulled item]).
@usableFromInline struct SourceBatcher<Element> {
    @usableFromInline let link: Link<Element>
    @usableFromInline let counters: LayerCounters
    /// A merged source's generator this batcher pulls from ([merged generators take turns]).
    @usableFromInline let generator: GeneratorCount?
    @usableFromInline let buffer: UnsafeMutablePointer<Element>
    @usableFromInline let capacity: Int
    @usableFromInline var count = 0

    @inlinable init(_ context: StageContext<Never, Element>, capacity: Int, generator: Int?) {
        link = context.output!
        counters = context.counters
        self.generator = generator.map { context.counters.generators[$0] }
        self.capacity = capacity
        buffer = .allocate(capacity: capacity)
    }

    /// Add a pulled element; true when the batch is full (then flush it).
    @inlinable mutating func add(_ element: Element) -> Bool {
        (buffer + count).initialize(to: element)
        count += 1
        return count == capacity
    }

    /// The source's end, however it came: push (or count as dropped) what is pending, free the buffer,
    /// and finish as the link's producer ([the last producer closes the link]).
    @inlinable mutating func finish() async {
        _ = await flush()
        buffer.deallocate()
        link.finishProducer()
    }

    /// Push what is pending; false when the link was closed (the rest is dropped and counted,
    /// [pulled items are pushed or dropped]).
    @inlinable mutating func flush() async -> Bool {
        guard count > 0 else { return true }
        counters.received.add(count, ordering: .relaxed)
        generator?.pulled.add(count, ordering: .relaxed)
        let pushed = await link.push(buffer, count: count)
        counters.emitted.add(pushed, ordering: .relaxed)
        if pushed < count {
            (buffer + pushed).deinitialize(count: count - pushed)
            counters.dropped.add(count - pushed, ordering: .relaxed)
        }
        defer { count = 0 }
        return pushed == count
    }
}

/// Pull a Sequence to its end, or until the run stops, pushing full batches ([pulled items are pushed or dropped],
/// [no pull after the pulls end], [an async source holds no pulled item]); as one `generator` of a merged source, yield
/// after each batch ([merged generators take turns]).
@inlinable func pullSequence<S: Sequence>(_ source: S, _ context: StageContext<Never, S.Element>, generator: Int?)
    async
{
    var batch = SourceBatcher(context, capacity: context.batch, generator: generator)
    var iterator = source.makeIterator()
    while !context.run.pullsEnded, let element = iterator.next() {  // [no pull after the pulls end]
        if batch.add(element) {
            guard await batch.flush() else { break }
            // [merged generators take turns], [a job under a wait yields each batch]
            if generator != nil || context.backend.underAWait { await Task.yield() }
        }
    }
    await batch.finish()
}

/// Pull an AsyncSequence to its end, or until the run stops or it throws (which fails the run), pushing
/// each element before awaiting the next ([an async source holds no pulled item]).
@inlinable func pullAsync<S: AsyncSequence & Sendable>(
    _ source: S, _ context: StageContext<Never, S.Element>, generator: Int?
)
    async
{
    let run = context.run
    let backend = context.backend
    let executor = generator == nil ? backend.stageExecutor : nil  // [an async source pulls on the pool]
    // [no pull after the pulls end]: the pull runs in a task of its own, cancelled when the pulls end (a drain or a
    // stop) or this task is cancelled
    let pulling = Task(executorPreference: executor) {
        var batch = SourceBatcher(context, capacity: 1, generator: generator)  // [an async source holds no pulled item]
        var iterator = source.makeAsyncIterator()
        let onPool = executor != nil
        var jobs = onPool ? backend.jobsStarted : 0
        var yields = 0
        do {
            while !run.pullsEnded, let element = try await iterator.next() {
                // [an async source pulls on the pool]: a pull the executor resumed (it started jobs meanwhile), and the
                // few after it
                if onPool && backend.jobsStarted != jobs { yields = 8 }
                let yielding = yields > 0 && context.output!.depth == 0
                if batch.add(element), !(await batch.flush()) { break }
                if yielding { yields -= 1 }
                // [a job under a wait yields each batch]: one element is a batch here
                if yielding || backend.underAWait { await Task.yield() }
                if onPool { jobs = backend.jobsStarted }
            }
        } catch {
            if !(error is CancellationError && run.pullsEnded) {
                run.fail(error, layer: context.layer.name)
            }
        }
        await batch.finish()
    }
    run.onPullsEnd { pulling.cancel() }
    await withTaskCancellationHandler {
        await pulling.value
    } onCancel: {
        pulling.cancel()
    }
}

/// A source with one generator, `source`.
@usableFromInline class SingleSourceStage<Source: Sendable, Element>: SourceStage<Element>, @unchecked Sendable {
    // @unchecked: immutable after init; the link and the counters are thread-safe.
    @usableFromInline let source: Source

    @inlinable init(source: Source, context: StageContext<Never, Element>) {
        self.source = source
        super.init(context: context)
    }
}

@usableFromInline
final class SequenceSourceStage<S: Sequence & Sendable>: SingleSourceStage<S, S.Element>, Stage, @unchecked Sendable {
    // @unchecked: `puller` is written in prepare(), before run(); the rest is immutable.
    /// [direct hand-offs only where they pay]: the CPU layer's threads pull this source themselves, through `puller`.
    @usableFromInline var puller: DirectSource<S.Element>?

    @inlinable func prepare() throws(FlowConfigurationError) {
        guard context.outputHandOff != .queue else { return }
        let puller = DirectSource.pulling(source, layer: context.layer, shared: context.outputHandOff == .shared)
        self.puller = puller
        context.output!.direct.source = puller  // held weakly ([links hold direct paths weakly])
    }

    @inlinable func run() async {
        switch context.outputHandOff {
        case .queue: await pullSequence(source, context, generator: nil)
        case .direct: context.output!.finishProducer()  // [one puller at a time]: the queue stays unused
        case .shared: await puller!.pushPulls(context)  // [a shared source]
        }
    }
}

@usableFromInline
final class AsyncSourceStage<S: AsyncSequence & Sendable>: SingleSourceStage<S, S.Element>, Stage,
    @unchecked Sendable
{
    @inlinable func run() async { await pullAsync(source, context, generator: nil) }
}

/// A merged source ([merged generators take turns]): one child task per generator.
@usableFromInline
final class MergedSourceStage<Element>: SourceStage<Element>, Stage, @unchecked Sendable {
    /// One generator's pull loop (pullSequence or pullAsync over it), given the context and its index.
    @usableFromInline typealias Generator = @Sendable (StageContext<Never, Element>, _ index: Int) async -> Void
    @usableFromInline let generators: [Generator]
    @usableFromInline let awaits: Bool

    @inlinable init(context: StageContext<Never, Element>, generators: [Generator], awaitsPerItem: Bool) {
        self.generators = generators
        awaits = awaitsPerItem
        super.init(context: context, producers: generators.count)
    }

    @inlinable var awaitsPerItem: Bool { awaits }

    @inlinable func run() async {
        await withTaskGroup(of: Void.self) { group in
            for (i, generator) in generators.enumerated() {
                group.addTask { await generator(self.context, i) }
            }
        }
    }
}
