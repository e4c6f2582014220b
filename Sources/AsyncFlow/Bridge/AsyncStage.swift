// AsyncStage.swift — an async layer: `concurrency` Swift tasks, each popping from the input link,
// awaiting the user's closure per item, and pushing results. With concurrency 1 it is the serial async
// layer (a collector with an async closure): one task, items in input order, popped in batches.
//
// Invariants:
//  A1. At most `concurrency` closure calls are in flight: each task holds one batch and calls the closure
//      for one item at a time. With concurrency > 1 a task pops one item at a time, so a slow item never
//      holds others back from idle tasks.
//  A2. Waiting for input or for space suspends the task (Link L3); no thread is blocked.
//  A3. Accounting as in CPUStage C3: every popped item is emitted, skipped, failed or dropped.
//  A4. Each task is one producer of the output link (Link L4).
//  A5. After RunState.stopped, no closure is called: popped items are dropped.
import CFlow
import Synchronization

@usableFromInline final class AsyncStage<Input, Output>: Stage, @unchecked Sendable {
    // @unchecked: immutable after init; the links and counters are thread-safe.
    @usableFromInline let context: StageContext<Input, Output>
    @usableFromInline let concurrency: Int
    @usableFromInline let body: @Sendable (Input) async throws -> Output

    @inlinable init(
        context: StageContext<Input, Output>, concurrency: Int,
        body: @escaping @Sendable (Input) async throws -> Output
    ) {
        self.context = context
        self.concurrency = concurrency
        self.body = body
        context.output?.addProducers(concurrency)
    }

    @inlinable func run() async {
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<concurrency {
                group.addTask { await self.loop() }
            }
        }
    }

    @inlinable func loop() async {
        let take = concurrency == 1 ? context.batch : 1  // A1
        let input = context.input!
        let output = context.output
        let counters = context.counters
        let run = context.run
        let policy = context.policy
        let window = concurrency > 1 ? context.window : nil  // one task is in order already
        let buffers = BatchBuffers<Input, Output>(capacity: take)
        let (inBuf, outBuf) = (buffers.input, buffers.output)
        defer { buffers.release(finishing: output) }
        while true {
            var position: UInt64 = 0
            let k =
                window == nil
                ? await input.pop(into: inBuf, max: take) : await input.pop(into: inBuf, max: take, position: &position)
            if k == 0 { return }
            counters.received.add(k, ordering: .relaxed)
            var made = 0
            var i = 0
            while i < k {
                if run.stopped {  // A5
                    (inBuf + i).deinitialize(count: k - i)
                    counters.dropped.add(k - i, ordering: .relaxed)
                    break
                }
                let item = (inBuf + i).move()
                i += 1
                let start = ContinuousClock.now
                let outcome = await policy.callAsync { try await self.body(item) }
                counters.busy.add((ContinuousClock.now - start).wholeNanoseconds, ordering: .relaxed)
                switch outcome {
                case .value(let v):
                    if output != nil { (outBuf + made).initialize(to: v) }
                    made += 1
                case .skipped, .failed:
                    break
                }
            }
            await pushOn(  // ordered: in input order (OrderedWindow O1, O2)
                outBuf, made: made, to: output, counters: counters, window: window, position: position, inputCount: k,
                run: run)
        }
    }
}
