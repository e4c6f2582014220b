// HandOff.swift — the ways a link's items may skip its queue (HandOff), and what a stage offers its link
// for that: a source the consumers pull themselves (DirectSource), a collector the producers call with the
// batches they made (DirectCollector), a CPU layer the source's task carries batches through
// (DirectConsumer). Which links skip their queue is the backend's decision (Backend.handOffs): only the
// native backend's threads may wait for a lock or spin as these paths do.
//
// Invariants:
//  [one puller at a time] DirectSource: pulls happen under its lock (tried for a while, withLockSoon, then
//    waited for), so the iterator is used by one thread at a time and each pull's items take the next
//    positions (the link's queue order, for an ordered CPU layer). Each pull counts its items received and
//    emitted by the source at once ([pulled items are pushed or dropped]); nothing is pulled after
//    RunState.pullsEnded is seen, checked before every element ([no pull after the pulls end]); once the
//    iterator has ended or the pulls have, every pull returns 0 (the workers' input has ended) and the
//    iterator is released. The source's own task only finishes as the unused queue's producer, unless the
//    source is shared. While one worker is in a next() that blocks, the others wait for the lock, and
//    batches queued for the collector wait with them.
//  [one collector call at a time] DirectCollector: the layer's closure is called under one lock, by the
//    collector's task for the batches it pops from its queue, or by a CPU thread for a batch it just made.
//    That thread tries the lock for a while (withLockSoon: about as long as a few batches of a cheap
//    collector take, so two workers fall into turns instead of copying batches through the queue) and
//    otherwise pushes the batch to the queue, so it never waits long for a slow collector and the queue
//    still receives whatever it does not take; the caller that holds the lock then also calls it with a
//    few batches from the queue. Items taken directly are counted by the collector's own BatchLoop rules
//    ([every item accounted for], [no call after a stop], [a failure stops the run],
//    [busy time per batch]), and by the CPU layer as emitted, so [leftovers counted where they waited] holds. Batches are
//    called in arrival order, which for an unordered CPU layer is the only order there is; a collector
//    after an ordered layer is never called directly.
//  [links hold direct paths weakly] A direct path is owned by its stage and held weakly by its link (the
//    run's state holds the links, and the paths hold the layer's runtime, which holds the run), so no cycle
//    outlives a run; each CPU loop holds the paths strongly while it runs (the stages outlive every loop:
//    [the run outlives its stages and threads]).
//  [a shared source] The source's own task pulls batches through the same DirectSource (same lock, same
//    counting) and pushes them to the link's queue; each worker pops what the queue holds and, only when
//    it is empty, pulls a batch itself. So a cheap source costs the helper thread little (the worker pulls
//    while it would otherwise wait) and a costly one still runs beside the worker on its own thread.
//    Neither waits for the other inside the source, whose next() may block (for ever, until the collector
//    has moved on): a worker that finds the lock taken for withLockSoon's while waits on the queue
//    instead, running the pool's jobs (the collector's among them); the task that finds it taken sets
//    `taskWaits`, after which no worker starts a pull until the task has had its turn, and yields its
//    thread to the other jobs between tries (at once for a millisecond, then sleeping 0.1 to 10 ms). Once
//    the pulls return 0 a worker waits on the queue, which ends when the source's task has pushed its last
//    batch ([the last producer closes the link]). Only for an unordered CPU layer: a batch's position
//    would come from two counters. A batch the closed queue refuses is moved from the source's emitted
//    count to its dropped count, so [pulled items are pushed or dropped] holds.
//  [carried batches] When a shared source feeds a stateless CPU layer (LayerKind.cpu: not
//    `workers:state:`), the source's task may carry a batch it just pulled through the layer on its own
//    thread (DirectConsumer, CPUStage.carry), and on to the collector or the layer's output link, rather
//    than push it to the queue for a worker to copy it out on another core: the batch stays in one core's
//    cache, and both threads run every stage. The closure is called only under one of `workers` slots
//    ([one call slot per worker]), so never more than `workers` times at once, though not always on the
//    same threads. The task carries a batch only on a pool thread ([cpu loops only on pool threads]),
//    when the layer's last batch took so little per item that this one should take at most
//    carryBudgetNanoseconds (a slot is never held long from a worker: a costly layer's batches go to the
//    queue), when it fits the layer's buffers, when a slot is free within withAnySoon's while, and when its job
//    does not run under a pool thread's wait ([a job under a wait yields each batch]: the worker beneath, waiting for
//    items or for room, gets the batch through the queue rather than see a carried result take its room);
//    otherwise it pushes the batch. A carried batch is counted by the layer as a worker's is
//    ([every item accounted for], [no call after a stop], [a failure stops the run]), and its results go on (pushed as a
//    worker pushes, blocking its pool thread: [an overtaken pusher reserves the room]; or taken by the collector)
//    before the task pushes or pulls again, so before it finishes as the input
//    link's producer, which is before any worker can finish as the output link's
//    ([the last producer closes the link]): the output is open, or closed by a stop (then what it refuses is counted
//    dropped). Then the workers call the collector directly too.
import Synchronization

/// How the items of a link go from its producers to its consumers ([direct hand-offs only where they pay]).
@usableFromInline enum HandOff: Sendable {
    /// Through the link's queue.
    case queue
    /// Skipping the queue: the consumers pull the source ([one puller at a time]), or the producers call the collector
    /// ([one collector call at a time]).
    case direct
    /// A source's own task pulls into the queue, and the consumers pull too whenever it is empty ([a shared source]).
    case shared
}

/// The paths around one link's queue that its stages offer ([links hold direct paths weakly]): each is set by
/// its stage's prepare(), before any stage runs ([configuration errors before the first pull]), and never
/// again, so the loops that read it afterwards see it set or never set; each is held weakly.
@usableFromInline final class DirectPaths<T>: @unchecked Sendable {
    // @unchecked: written only in prepare(), before the run's tasks and threads start (which orders the
    // writes before every read), and read-only after.
    /// The source its consumers pull from themselves ([one puller at a time], [a shared source]).
    @usableFromInline weak var source: DirectSource<T>?
    /// The collector its producers may call directly ([one collector call at a time]).
    @usableFromInline weak var collector: DirectCollector<T>?
    /// The CPU layer its source's task may hand batches to ([carried batches]).
    @usableFromInline weak var consumer: DirectConsumer<T>?

    @inlinable init() {}
}

/// A source that the consumers of its link pull from themselves ([one puller at a time]). Its closure is made where the
/// source's type is known (in the user's module: see StageHandle), so its loop is specialised.
@usableFromInline final class DirectSource<Element>: Sendable {
    /// Pull up to `max` items into uninitialised `buffer`; the count, 0 once the source has ended (or its
    /// pulls have), and the position of the first.
    @inlinable func pull(_ buffer: UnsafeMutablePointer<Element>, _ max: Int, _ position: inout UInt64) -> Int {
        pullBatch(buffer, max, &position, true)!
    }

    /// pull, unless the lock stays taken for withLockSoon's while (another thread is in the source's
    /// next(), which may block): then nil, having pulled nothing ([a shared source]).
    @inlinable func pullIfFree(_ buffer: UnsafeMutablePointer<Element>, _ max: Int, _ position: inout UInt64)
        -> Int?
    {
        pullBatch(buffer, max, &position, false)
    }

    /// pull, waiting for the lock as long as it takes when `wait`, else nil if it stayed taken.
    @usableFromInline let pullBatch:
        @Sendable (_ buffer: UnsafeMutablePointer<Element>, _ max: Int, _ position: inout UInt64, _ wait: Bool)
            -> Int?

    /// [a shared source]: the source's own task pulls into the link's queue too; its consumers pop that first.
    @usableFromInline let shared: Bool
    /// [a shared source]: the source's task found a worker in the source and waits for its turn (a hint, relaxed).
    @usableFromInline let taskWaits = Atomic<Bool>(false)

    @inlinable init(
        shared: Bool, pullBatch: @escaping @Sendable (UnsafeMutablePointer<Element>, Int, inout UInt64, Bool) -> Int?
    ) {
        self.shared = shared
        self.pullBatch = pullBatch
    }

    /// [one puller at a time] for a Sequence source of the layer `layer`; [a shared source] when `shared`.
    @inlinable static func pulling<S: Sequence & Sendable>(_ source: S, layer: LayerRuntime, shared: Bool)
        -> DirectSource
    where S.Element == Element {
        let state = HandOffLock(PullState(iterator: source.makeIterator()))
        return DirectSource(shared: shared) { buffer, max, position, wait in
            let run = layer.run
            let pull = { (s: inout PullState<S.Iterator>) -> (Int, UInt64) in
                guard var iterator = s.iterator else { return (0, s.next) }
                var count = 0
                var ended = false
                while count < max {
                    guard !run.pullsEnded, let element = iterator.next() else {  // [no pull after the pulls end]
                        ended = true
                        break
                    }
                    (buffer + count).initialize(to: element)
                    count += 1
                }
                s.iterator = ended ? nil : iterator
                let first = s.next
                s.next += UInt64(count)
                return (count, first)
            }
            // [one puller at a time]: a pull holds the lock for a batch's worth of next() calls, so a puller that finds
            // it taken re-tries for a while before it sleeps on it
            guard let (count, first) = state.withLockSoon(pull) ?? (wait ? state.withLock(pull) : nil) else {
                return nil
            }
            position = first
            // [pulled items are pushed or dropped]: every pulled item goes on
            layer.counters.received.add(count, ordering: .relaxed)
            layer.counters.emitted.add(count, ordering: .relaxed)
            return count
        }
    }

    /// [a shared source]: the source's own task, pulling batches into its output link until the pulls return 0, then
    /// finishing as its producer. A batch the closed link refuses (in part) moves from emitted to dropped.
    @inlinable func pushPulls(_ context: StageContext<Never, Element>) async {
        let link = context.output!
        // [carried batches]; held while this task runs ([links hold direct paths weakly])
        let consumer = link.direct.consumer
        let buffer = UnsafeMutablePointer<Element>.allocate(capacity: context.batch)
        var busySince: ContinuousClock.Instant? = nil
        var pause = Duration.microseconds(100)
        while true {
            var position: UInt64 = 0
            guard let count = pullIfFree(buffer, context.batch, &position) else {
                // [a shared source]: a worker is in the source, whose next() may block: no worker starts another pull
                // until this task has had its turn, and this thread runs the other jobs meanwhile, re-trying after each
                // for a millisecond, then less and less often; once the pulls have ended
                // ([no pull after the pulls end]) there is nothing left to take (and a cancelled task's sleeps do not
                // wait)
                if context.run.pullsEnded { break }
                taskWaits.store(true, ordering: .relaxed)
                let since = busySince ?? .now
                busySince = since
                if ContinuousClock.now - since < .milliseconds(1) {
                    await Task.yield()
                } else {
                    try? await Task.sleep(for: pause)
                    pause = min(pause * 2, .milliseconds(10))
                }
                continue
            }
            taskWaits.store(false, ordering: .relaxed)
            (busySince, pause) = (nil, .microseconds(100))
            if count == 0 { break }
            // [carried batches], not under a wait ([a job under a wait yields each batch]): the worker beneath, waiting
            // for items or for room, gets the batch through the queue, and no carried result takes its room
            var carried = false
            if let consumer, !context.backend.underAWait { carried = await consumer.take(buffer, count) }
            if !carried {
                let pushed = await link.push(buffer, count: count)
                if pushed < count {
                    (buffer + pushed).deinitialize(count: count - pushed)
                    context.counters.emitted.subtract(count - pushed, ordering: .relaxed)
                    context.counters.dropped.add(count - pushed, ordering: .relaxed)
                }
            }
            // [a job under a wait yields each batch]: a worker that took this task's job while it held a batch
            // gets its thread back
            if context.backend.underAWait { await Task.yield() }
        }
        buffer.deallocate()
        link.finishProducer()
    }
}

/// A Sequence source's iterator and its next position, under DirectSource's lock ([one puller at a time]).
@usableFromInline struct PullState<Iterator: IteratorProtocol> {
    /// nil once the source has ended or its pulls have (released then).
    @usableFromInline var iterator: Iterator?
    @usableFromInline var next: UInt64 = 0

    @inlinable init(iterator: Iterator) {
        self.iterator = iterator
    }
}

/// A serial layer that a producer of its link may call directly ([one collector call at a time]); its closure is made
/// where the layer's types are known (SerialStage), like DirectSource's.
@usableFromInline final class DirectCollector<Element>: Sendable {
    /// Take `buffer[0..<count]` and call the layer with it once nobody else is calling it; false, taking
    /// nothing, when somebody still is after tens of microseconds (withLockSoon).
    @usableFromInline let take: @Sendable (_ buffer: UnsafeMutablePointer<Element>, _ count: Int) -> Bool

    @inlinable init(take: @escaping @Sendable (UnsafeMutablePointer<Element>, Int) -> Bool) {
        self.take = take
    }
}

/// A CPU layer that the task of the source feeding it may hand a batch it just pulled to, to be carried
/// through the layer on that task's thread ([carried batches]); its closure is made where the layer's types are known
/// (CPUStage), like DirectSource's.
@usableFromInline final class DirectConsumer<Element>: Sendable {
    /// Carry `buffer[0..<count]` through the layer and on (its items are moved out), or return false,
    /// taking nothing, when it should not be done here now ([carried batches]).
    @usableFromInline let take: @Sendable (_ buffer: UnsafeMutablePointer<Element>, _ count: Int) async -> Bool

    @inlinable init(take: @escaping @Sendable (UnsafeMutablePointer<Element>, Int) async -> Bool) {
        self.take = take
    }
}
