// BatchLoop.swift — the loop of every stage that has an input, and the one place its accounting rules
// live:
//
//   pop a batch → count it received → drop it if the run has stopped → call the closure for each item
//   under the layer's error policy → push the results on (in input order when ordered) → count what went
//   in as emitted and what a closed link refused as dropped.
//
// A stage kind supplies only how it calls its closure (apply: a plain loop over the batch; applyEach: an
// async call per item); the loop pops and pushes by suspending a task (run, below) or by blocking a
// pool thread (runOnThread, the native backend's driver in Backends/Native).
//
// Invariants:
//  [every item accounted for] Every popped item is, by the end of its batch, emitted, skipped, failed or dropped: for
//    every layer received == emitted + skipped + failed + dropped. received, emitted and dropped are added once per
//    batch; skipped, failed and retried by the policy, per item.
//  [no call after a stop] After RunState.stopped no closure is called: a popped batch, or the rest of it, is dropped.
//  [a failure stops the run] A failure (ErrorPolicy .fail, or .retry out of attempts) stops the run; the rest of its
//    batch is dropped.
//  [each loop is one producer] Each loop is one producer of its output link: finish() frees its buffers and finishes it
//    as a producer ([the last producer closes the link]), exactly once, when the input is closed and drained.
//  [ordered results wait their turn] Ordered: a batch's results are pushed only in their turn
//    ([only the turn's holder advances], [the ordered window is bounded]); if the run stops while they wait, they are
//    dropped.
//  [busy time per batch] The time spent calling the closure is added to the layer's `busy` counter once per batch (two
//    clock reads a batch, not an item; an async closure's time includes its waits).
//  [gathered items handed over together] Gathering (a batch collector, a batch layer's gatherer: runGathering): items
//    popped are held in inBuf until it holds the batch size, or `within` has passed since the first of them was popped,
//    or the input is closed and drained; then they are handed over at once, in pop order (applyBatch). Every item held
//    is handed over or dropped ([every item accounted for], [no call after a stop]).
//  [a job under a wait yields each batch] A stage's task whose loop can go on without suspending (a source whose
//    pushes keep finding room, a loop whose pops keep finding items) yields after each batch it hands on when its
//    job runs under a pool thread's wait on a ring (Backend.underAWait): the waiter beneath it, a worker holding a
//    batch it could not push yet or waiting for items, gets its thread back within one batch, so no batch waits
//    behind a job that keeps finding work.
import Synchronization

@usableFromInline struct BatchLoop<Input, Output> {
    @usableFromInline let input: Link<Input>
    /// nil for the last layer: results (Void) are counted, not kept.
    @usableFromInline let output: Link<Output>?
    @usableFromInline let layer: LayerRuntime
    /// Where the loop runs: whether its task is a job under a pool thread's wait ([a job under a wait yields each batch]).
    @usableFromInline let backend: any Backend
    @usableFromInline let window: OrderedWindow?
    @usableFromInline let inBuf: UnsafeMutablePointer<Input>
    @usableFromInline let outBuf: UnsafeMutablePointer<Output>
    @usableFromInline var sizer: BatchSizer
    /// What the last call over a batch took, in nanoseconds (the native driver reports it per worker).
    @usableFromInline var lastNanoseconds = 0

    /// A loop taking up to `take` items per pop (adaptive: fewer when items are slow,
    /// [batches sized by measured work]); `ordered` uses the context's window, if it has one; `producing: false` leaves
    /// the output link to the stage (a gatherer whose batches are pushed by other tasks:
    /// [the batch layer is one producer]).
    @inlinable init(
        _ context: StageContext<Input, Output>, take: Int, adaptive: Bool = false, ordered: Bool = true,
        producing: Bool = true
    ) {
        self.init(context, sizer: BatchSizer(limit: take, adaptive: adaptive), ordered: ordered, producing: producing)
    }

    /// A loop whose pops `sizer` sizes (up to its limit).
    @inlinable init(
        _ context: StageContext<Input, Output>, sizer: BatchSizer, ordered: Bool = true, producing: Bool = true
    ) {
        input = context.input!
        output = producing ? context.output : nil
        layer = context.layer
        backend = context.backend
        window = ordered ? context.window : nil
        inBuf = .allocate(capacity: sizer.limit)
        outBuf = .allocate(capacity: sizer.limit)
        self.sizer = sizer
    }

    /// The loop on a Swift task: pop (suspending while the input is empty), `call` the closure for the
    /// batch (apply or applyEach), deliver, until the input is closed and drained ([each loop is one producer]).
    @inlinable mutating func run(_ call: (inout Self, _ count: Int) async -> Int) async {
        while true {
            var position: UInt64 = 0
            let count = await input.pop(into: inBuf, max: sizer.size, position: &position)
            if count == 0 { break }
            guard admit(count) else { continue }
            let made = await call(&self, count)
            await deliver(made, of: count, at: position)
            if backend.underAWait { await Task.yield() }  // [a job under a wait yields each batch]
        }
        finish()
    }

    /// run for the tasks of an async layer ([async items move in shared batches]): each pops into a batch the others
    /// may take part of (`mine`, one of `all`); once the input has ended, a task takes from the others' batches until
    /// none has items left. Unordered only: taken items leave their batch's position.
    @inlinable mutating func runSharing(
        _ mine: SharedBatch<Input>, among all: [SharedBatch<Input>],
        _ call: (inout Self, _ count: Int) async -> Int
    ) async {
        mine.attach(inBuf)
        while true {
            var position: UInt64 = 0
            var count = await input.pop(into: inBuf, max: sizer.size, position: &position)
            if count == 0 {
                // the input has ended: items another task holds (counted received by it) are taken here
                count = SharedBatch.take(from: all, into: inBuf, max: sizer.limit)
                if count == 0 { break }
                if layer.run.stopped {
                    drop(from: 0, to: count)
                    continue
                }
            } else {
                guard admit(count) else { continue }
            }
            mine.publish(count)
            let made = await call(&self, count)
            await mine.retire()
            await deliver(made, of: count, at: position)
        }
        finish()
    }

    /// The loop of a batch collector ([gathered items handed over together]): pop into inBuf until it holds
    /// `sizer.limit` items, `within` has passed since the first, or the input has ended; then `call` it with that
    /// count.
    @inlinable mutating func runGathering(within: Duration?, _ call: (inout Self, _ count: Int) async -> Void) async {
        let size = sizer.limit
        var held = 0
        var due = ContinuousClock.now
        while true {
            let popped: Int
            if held > 0, within != nil {
                guard let k = await input.pop(into: inBuf + held, max: size - held, until: due) else {
                    await call(&self, held)  // the first held item has waited `within`
                    held = 0
                    if backend.underAWait { await Task.yield() }  // [a job under a wait yields each batch]
                    continue
                }
                popped = k
            } else {
                popped = await input.pop(into: inBuf + held, max: size - held)
            }
            if popped == 0 { break }
            layer.counters.received.add(popped, ordering: .relaxed)
            if held == 0, let within { due = .now + within }
            held += popped
            if held == size || layer.run.stopped {
                await call(&self, held)
                held = 0
                if backend.underAWait { await Task.yield() }  // [a job under a wait yields each batch]
            }
        }
        if held > 0 { await call(&self, held) }
        finish()
    }

    /// Call `body` once with the `count` held items as an array, under the error policy
    /// ([gathered items handed over together], [no call after a stop], [busy time per batch];
    /// [a batch call counts in items]): they are emitted, skipped or failed together, or dropped after a stop.
    @inlinable func applyBatch(_ count: Int, _ body: ([Input]) async throws -> Void) async {
        guard !layer.run.stopped else { return drop(from: 0, to: count) }
        let items = takeHeld(count)
        let start = ContinuousClock.now
        if case .value = await layer.callAsync(items: count, { try await body(items) }) {
            layer.counters.emitted.add(count, ordering: .relaxed)
        }
        layer.counters.busy.add((ContinuousClock.now - start).wholeNanoseconds, ordering: .relaxed)
    }

    /// The `count` items held in inBuf, moved into an array.
    @inlinable func takeHeld(_ count: Int) -> [Input] {
        [Input](unsafeUninitializedCapacity: count) { buffer, initialized in
            buffer.baseAddress!.moveInitialize(from: inBuf, count: count)
            initialized = count
        }
    }

    /// Count a popped batch as received; false when the run has stopped and it was dropped instead
    /// ([every item accounted for], [no call after a stop]).
    @inlinable func admit(_ count: Int, in items: UnsafeMutablePointer<Input>? = nil) -> Bool {
        layer.counters.received.add(count, ordering: .relaxed)
        guard layer.run.stopped else { return true }
        drop(from: 0, to: count, in: items ?? inBuf)
        return false
    }

    /// A layer's closure over one batch: `apply` with it, made where the closure is known (Layer's
    /// initialisers, in the caller's module), so that loop is specialised for it and can inline it.
    @usableFromInline typealias Apply =
        @Sendable (inout Self, _ count: Int, _ items: UnsafeMutablePointer<Input>?) -> Int

    /// Call `transform` for each of the `count` popped items (in inBuf, or `items`) under the error policy, in a plain
    /// loop, keeping the results in outBuf ([every item accounted for], [a failure stops the run],
    /// [busy time per batch]). Returns how many results were made.
    @inlinable mutating func apply(
        _ count: Int, from items: UnsafeMutablePointer<Input>? = nil, _ transform: (Input) throws -> Output
    ) -> Int {
        let start = ContinuousClock.now
        let items = items ?? inBuf
        let keep = output != nil
        var made = 0
        var i = 0
        while i < count {
            let item = (items + i).move()
            i &+= 1
            let result: Output
            do { result = try transform(item) } catch {
                // the error policy, out of line: this loop is the per-item path of every sync layer
                switch layer.call(after: error, { try transform(item) }) {
                case .value(let v):
                    result = v
                case .skipped:
                    continue
                case .failed:
                    drop(from: i, to: count, in: items)  // [a failure stops the run]
                    i = count
                    continue
                }
            }
            if keep { (outBuf + made).initialize(to: result) }
            made &+= 1
        }
        record(count, since: start)
        return made
    }

    /// apply with an async closure: one call per item, the stop checked before each ([no call after a stop],
    /// [a failure stops the run], [busy time per batch]).
    @inlinable mutating func applyEach(_ count: Int, _ transform: (Input) async throws -> Output) async -> Int {
        let start = ContinuousClock.now
        let keep = output != nil
        var made = 0
        for i in 0..<count {
            if layer.run.stopped {
                // [no call after a stop]; after a failure ([a failure stops the run]) too, which stopped the run
                drop(from: i, to: count)
                break
            }
            let item = (inBuf + i).move()
            if case .value(let v) = await layer.callAsync({ try await transform(item) }) {
                if keep { (outBuf + made).initialize(to: v) }
                made += 1
            }
        }
        record(count, since: start)
        return made
    }

    /// applyEach for a batch other tasks may take part of (runSharing): the items are taken from the front
    /// of `mine` one at a time ([each shared item taken once]), so the ones taken by others are never called here.
    @inlinable mutating func applyShared(
        _ mine: SharedBatch<Input>, _ transform: (Input) async throws -> Output
    ) async -> Int {
        let start = ContinuousClock.now
        let keep = output != nil
        var made = 0
        var called = 0
        while true {
            if layer.run.stopped {
                let rest = mine.takeRest()
                drop(from: rest.lowerBound, to: rest.upperBound)  // [no call after a stop], [a failure stops the run]
                break
            }
            guard let i = mine.takeFront() else { break }
            let item = (inBuf + i).move()
            called += 1
            if case .value(let v) = await layer.callAsync({ try await transform(item) }) {
                if keep { (outBuf + made).initialize(to: v) }
                made += 1
            }
        }
        record(called, since: start)
        return made
    }

    /// [busy time per batch], and the adaptive sizer's measure ([batches sized by measured work]).
    @inlinable mutating func record(_ items: Int, since start: ContinuousClock.Instant) {
        lastNanoseconds = (ContinuousClock.now - start).wholeNanoseconds
        layer.counters.busy.add(lastNanoseconds, ordering: .relaxed)
        sizer.record(items: items, nanoseconds: Double(lastNanoseconds))
    }

    /// Push the `made` results of a batch of `count` popped at `position`, in turn when ordered
    /// ([ordered results wait their turn]), suspending while the output is full.
    @inlinable func deliver(_ made: Int, of count: Int, at position: UInt64) async {
        guard let output else { return settle(made: made, pushed: made) }
        if let window, !(await window.waitTurn(position, run: layer.run)) { return settle(made: made, pushed: 0) }
        settle(made: made, pushed: await output.push(outBuf, count: made))
        window?.advance(from: position, by: count)
    }

    /// Count a batch's push: what went in is emitted, what a closed link refused is dropped
    /// ([every item accounted for]).
    @inlinable func settle(made: Int, pushed: Int) {
        if pushed < made {
            (outBuf + pushed).deinitialize(count: made - pushed)
            layer.counters.dropped.add(made - pushed, ordering: .relaxed)
        }
        layer.counters.emitted.add(pushed, ordering: .relaxed)
    }

    /// Deinitialise popped items `from..<to` (of inBuf, or `items`) and count them as dropped.
    @inlinable func drop(from: Int, to: Int, in items: UnsafeMutablePointer<Input>? = nil) {
        ((items ?? inBuf) + from).deinitialize(count: to - from)
        layer.counters.dropped.add(to - from, ordering: .relaxed)
    }

    /// [each loop is one producer]: free the buffers and finish as a producer of the output link.
    @inlinable func finish() {
        inBuf.deallocate()
        outBuf.deallocate()
        output?.finishProducer()
    }
}
