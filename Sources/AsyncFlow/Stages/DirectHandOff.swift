// DirectHandOff.swift — batches that skip a queue. With the native backend's workers one per CPU, a CPU
// layer's threads pull a Sequence source themselves and call a sync collector with the batches they made:
// the source and the collector would otherwise run only in the workers' waits, and every batch would
// cross between cores twice more. With fewer workers than CPUs, the workers pull the source whenever its
// own task has left their queue empty, and that task carries what it pulls through a cheap stateless CPU
// layer itself. It is the native backend's because a thread here may wait for a lock or spin for tens of
// microseconds, which the pool's threads may and Swift's cooperative threads must not.
//
// Invariants:
//  [direct hand-offs only where they pay] Only where the run allows it (linkHandOffs): the native backend;
//    a run whose CPU layers' workers are at most the CPUs the pools may use (with more, a thread holding a
//    lock is often descheduled and the others wait for it); a link that joins a single (not merged) source
//    to a CPU layer, or an unordered CPU layer to the last layer when that is a serial one (not a
//    stream's). With exactly one worker per CPU both are direct ([one puller at a time],
//    [one collector call at a time]); with fewer, helper threads run the other stages beside the workers
//    ([helpers fill the spare cpus]), a source feeding an unordered CPU layer is shared ([a shared source]), and the
//    collector keeps its queue unless that CPU layer is stateless ([carried batches]). The stage on the
//    serial side offers its path only when it can: a Sequence source (DirectSource), a serial layer with a
//    sync closure and no output (DirectCollector). It sets it on the link in prepare(), before any thread
//    runs ([configuration errors before the first pull]), and never again.
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
//  [a hand-off lock says it is held] The direct paths' locks (HandOffLock) say whether they are held:
//    `held` is set just after the mutex is taken and cleared just before it is given back, relaxed, as a
//    hint only (the mutex alone orders the critical sections); a thread waiting to try the lock reads
//    `held` and tries the mutex only when it reads false, so a busy lock costs its waiters loads, not
//    system calls.
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
//    queue), when it fits the layer's buffers, and when a slot is free within withAnySoon's while;
//    otherwise it pushes the batch. A carried batch is counted by the layer as a worker's is
//    ([every item accounted for], [no call after a stop], [a failure stops the run]), and its results go on (pushed, or
//    taken by the collector) before the task pushes or pulls again, so before it finishes as the input
//    link's producer, which is before any worker can finish as the output link's
//    ([the last producer closes the link]): the output is open, or closed by a stop (then what it refuses is counted
//    dropped). Then the workers call the collector directly too.
import CFlow
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

/// [direct hand-offs only where they pay]: for each link of a run (link i joins layer i to layer i + 1), how its items
/// go.
func linkHandOffs(_ layers: [ErasedLayer], sizes: RunSizes, backend: any Backend, streaming: Bool) -> [HandOff] {
    let linkCount = sizes.links.count
    guard backend.handsOffDirectly, sizes.cpuWorkers <= sizes.cpus else {
        return Array(repeating: .queue, count: linkCount)
    }
    let onePerCPU = sizes.cpuWorkers == sizes.cpus
    return (0..<linkCount).map { i in
        guard i + 1 < layers.count else { return .queue }  // a stream's link: its consumer is not a layer
        let (from, to) = (layers[i], layers[i + 1])
        if from.isSingleSource, to.runsOnWorkers {
            if onePerCPU { return .direct }
            return to.ordered ? .queue : .shared
        }
        if case .serial = to.kind, from.runsOnWorkers, !from.ordered, i + 2 == layers.count, !streaming,
            onePerCPU || (from.isStateless && i > 0 && layers[i - 1].isSingleSource)  // [carried batches]
        {
            return .direct
        }
        return .queue
    }
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
        let consumer = link.directConsumer
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
            if let consumer, await consumer.take(buffer, count) { continue }  // [carried batches]
            let pushed = await link.push(buffer, count: count)
            if pushed < count {
                (buffer + pushed).deinitialize(count: count - pushed)
                context.counters.emitted.subtract(count - pushed, ordering: .relaxed)
                context.counters.dropped.add(count - pushed, ordering: .relaxed)
            }
        }
        buffer.deallocate()
        link.finishProducer()
    }
}

/// A lock that says whether it is held ([a hand-off lock says it is held]), for the direct paths' threads to wait on
/// with a load: a Synchronization.Mutex whose try fails asks the kernel (FUTEX_TRYLOCK_PI on Linux), a system call
/// per try for a thread that retries it for microseconds.
@usableFromInline final class HandOffLock<Value>: Sendable {
    @usableFromInline let locked: Locked<Value>
    /// [a hand-off lock says it is held]: true from just after the mutex is taken until just before it is given back; a
    /// hint only.
    @usableFromInline let held = Atomic<Bool>(false)

    @inlinable init(_ value: sending Value) {
        locked = Locked(value)
    }

    /// Run `body` under the first of `locks` found free, waiting for a while (as withLockSoon) while
    /// every one is held; nil, without calling `body`, if they all stayed taken.
    @inlinable static func withAnySoon<R: Sendable>(_ locks: [HandOffLock], _ body: (inout Value) -> R) -> R? {
        spinning {
            for lock in locks {
                if let result = lock.tryWithLock(body) { return result }
            }
            return nil
        }
    }

    /// withLockSoon, then, if the lock stayed taken, withLock: for a thread that must run `body` and
    /// would rather spin through a short hold than sleep.
    @inlinable func withLockSpinningFirst<R: Sendable>(_ body: (inout Value) -> R) -> R {
        withLockSoon(body) ?? withLock(body)
    }

    /// Run `body` under the lock, waiting for it as long as it takes.
    @inlinable func withLock<R: Sendable>(_ body: (inout Value) -> R) -> R {
        locked.withLock { value in holding(&value, body) }
    }

    /// Run `body` under the lock once it is free, waiting for a while (1,024 pauses: tens of microseconds, a few
    /// batches of a cheap closure) while another thread holds it; nil, without calling `body`, if it stayed taken
    /// ([one puller at a time], [one collector call at a time]). Waits read `held` and try the mutex only when it looks
    /// free ([a hand-off lock says it is held]).
    @inlinable func withLockSoon<R: Sendable>(_ body: (inout Value) -> R) -> R? {
        Self.spinning { tryWithLock(body) }
    }

    /// Run `body` under the lock if it is free now: `held` first, then the mutex
    /// ([a hand-off lock says it is held]); nil, without calling `body`, if it is taken.
    @inlinable func tryWithLock<R: Sendable>(_ body: (inout Value) -> R) -> R? {
        guard !held.load(ordering: .relaxed) else { return nil }
        return locked.withLockIfAvailable { value in holding(&value, body) }
    }

    /// `attempt` until it answers, with a pause between tries, 1,024 tries at most: the while that a thread
    /// waits for a hand-off lock before it gives up (withLockSoon, withAnySoon).
    @inlinable static func spinning<R>(_ attempt: () -> R?) -> R? {
        for _ in 0..<1024 {
            if let result = attempt() { return result }
            flow_spin_pause()
        }
        return nil
    }

    @inlinable func holding<R>(_ value: inout Value, _ body: (inout Value) -> R) -> R {
        held.store(true, ordering: .relaxed)
        defer { held.store(false, ordering: .relaxed) }
        return body(&value)
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
