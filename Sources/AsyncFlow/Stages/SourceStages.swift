// SourceStages.swift — the first layer: pull from a Sequence or AsyncSequence, push in batches.
//
// Invariants:
//  SR1. An element is counted as received when its batch is flushed (one atomic add per batch), and then
//      either pushed (emitted) or, when the run stops first, dropped: received == emitted + dropped.
//  SR2. Nothing is pulled after RunState.stopped is seen (checked before every pull).
//  SR3. Batching: a Sequence source pushes full batches (pulling from a Sequence does not wait). An
//      AsyncSequence source pushes each element before it awaits the next one: that await may suspend
//      for as long as the sequence likes (even until this element has gone through the pipeline), so
//      holding a pulled element across it could delay it without bound or deadlock.
import Synchronization

/// What both source kinds share: a layer that is the producer of its output link, and the batch it fills.
@usableFromInline class SourceStage<Element>: @unchecked Sendable {
    // @unchecked: immutable after init; the link and the counters are thread-safe.
    @usableFromInline let context: StageContext<Never, Element>

    @inlinable init(context: StageContext<Never, Element>) {
        self.context = context
        context.output!.addProducers(1)
    }
}

/// A source's batch of pulled elements, pushed on when full and at the end (SR1, SR3).
@usableFromInline struct SourceBatcher<Element> {
    @usableFromInline let link: Link<Element>
    @usableFromInline let counters: LayerCounters
    @usableFromInline let buffer: UnsafeMutablePointer<Element>
    @usableFromInline let capacity: Int
    @usableFromInline var count = 0

    @inlinable init(_ context: StageContext<Never, Element>, capacity: Int) {
        link = context.output!
        counters = context.counters
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
    /// and finish as the link's producer (Link L4).
    @inlinable mutating func finish() async {
        _ = await flush()
        buffer.deallocate()
        link.finishProducer()
    }

    /// Push what is pending; false when the link was closed (the rest is dropped and counted, SR1).
    @inlinable mutating func flush() async -> Bool {
        guard count > 0 else { return true }
        counters.received.add(count, ordering: .relaxed)
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

@usableFromInline
final class SequenceSourceStage<S: Sequence & Sendable>: SourceStage<S.Element>, Stage, @unchecked Sendable {
    @usableFromInline let source: S

    @inlinable init(source: S, context: StageContext<Never, S.Element>) {
        self.source = source
        super.init(context: context)
    }

    @inlinable func run() async {
        var batch = SourceBatcher(context, capacity: context.batch)
        var iterator = source.makeIterator()
        while !context.run.stopped, let element = iterator.next() {  // SR2
            if batch.add(element), !(await batch.flush()) { break }
        }
        await batch.finish()
    }
}

@usableFromInline
final class AsyncSourceStage<S: AsyncSequence & Sendable>: SourceStage<S.Element>, Stage, @unchecked Sendable {
    @usableFromInline let source: S

    @inlinable init(source: S, context: StageContext<Never, S.Element>) {
        self.source = source
        super.init(context: context)
    }

    @inlinable var awaitsPerItem: Bool { true }

    @inlinable func run() async {
        var batch = SourceBatcher(context, capacity: 1)  // SR3
        var iterator = source.makeAsyncIterator()
        do {
            while !context.run.stopped, let element = try await iterator.next() {  // SR2
                if batch.add(element), !(await batch.flush()) { break }
            }
        } catch {
            if !(error is CancellationError && context.run.stopped) {
                context.run.fail(error, layer: context.layer.name)
            }
        }
        await batch.finish()
    }
}
