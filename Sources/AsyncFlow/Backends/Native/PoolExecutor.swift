// PoolExecutor.swift — the native backend's scheduler: a TaskExecutor whose jobs the pool threads run
// whenever they would otherwise wait. The run's other stages (the source, serial and async layers, the
// collector) are tasks that prefer it, so their jobs run on the pool's threads while the CPU layer
// runs, instead of adding runnable threads from Swift's cooperative pool. (Measured 2026-11-30: the
// serial and async layers' jobs run here; a sync Sequence source's first job still starts on the global
// executor, under investigation: see issue #11's notes.)
//
// Invariants:
//  X1. A job is queued by enqueue and run exactly once: by a pool thread that waits on a ring (CFlow
//      ring.c RW4, which runs queued jobs before it spins or parks), or, once every pool thread has
//      left its loop, on Swift's global executor: the last thread to leave hands the queue over there
//      under the lock, and later jobs go there directly (forwarding).
//  X2. enqueue notifies `parker` after queuing, and a pool thread parks only after announcing itself on
//      it and re-checking `pending` (RW4): a queued job always wakes a parked thread.
//  X3. Threads are counted in (`serving`) when the workers are made, before any task can enqueue, and
//      out as each leaves its loop (or all at once when the pool failed to start): no job is queued
//      for threads that will never run it.
//  X4. A job is run on the thread that dequeued it, outside the lock, with this executor as the task's.
import CFlow
import Synchronization

@usableFromInline final class PoolExecutor: TaskExecutor, @unchecked Sendable {
    // @unchecked: the queue lives under `state`'s lock; `pending` is atomic; `parker` is thread-safe C.
    struct State {
        var jobs: [UnownedJob] = []
        var head = 0
        var serving = 0
        /// Until a pool's threads are counted in, and after the last has left (X1, X3).
        var forwarding = true
    }
    private let state = Mutex(State())
    /// Jobs queued and not yet taken: read without the lock by waiting threads (X2).
    private let queued = Atomic<Int>(0)
    let parker = flow_parker_create()!
    /// What the C wait loops call back (ring.c flow_jobs); `ctx` is this executor, unretained (the
    /// executor outlives its pool's threads: PipelineRun keeps its backend until every stage ended).
    let jobs = UnsafeMutablePointer<flow_jobs>.allocate(capacity: 1)

    init() {
        jobs.initialize(
            to: flow_jobs(
                run_one: poolExecutorRunOne, pending: poolExecutorPending,
                ctx: Unmanaged.passUnretained(self).toOpaque(), parker: parker))
    }

    deinit {
        jobs.deallocate()
        flow_parker_destroy(parker)
    }

    @usableFromInline func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let queuedHere = state.withLock { s -> Bool in
            if s.forwarding { return false }
            s.jobs.append(job)
            queued.add(1, ordering: .releasing)
            return true
        }
        if queuedHere {
            flow_parker_notify(parker, 1)  // X2
        } else {
            globalConcurrentExecutor.enqueue(ExecutorJob(job))  // X1: no pool thread is left
        }
    }

    /// Run one queued job on this (pool) thread; false when none is queued (X1, X4).
    func runOne() -> Bool {
        if queued.load(ordering: .acquiring) == 0 { return false }
        let job = state.withLock { s -> UnownedJob? in
            guard s.head < s.jobs.count else { return nil }
            let job = s.jobs[s.head]
            s.head += 1
            if s.head == s.jobs.count {
                s.jobs.removeAll(keepingCapacity: true)
                s.head = 0
            }
            queued.subtract(1, ordering: .relaxed)
            return job
        }
        guard let job else { return false }
        job.runSynchronously(on: asUnownedTaskExecutor())
        return true
    }

    var pending: Bool { queued.load(ordering: .acquiring) > 0 }

    /// X3: `count` more threads will serve (a pool's workers, counted when they are made).
    func addThreads(_ count: Int) {
        state.withLock { s in
            s.serving += count
            s.forwarding = false
        }
    }

    /// X3, X1: `count` threads have left their loops (or will never start); when none is left, what is
    /// queued goes to the global executor, and so does every later job.
    func removeThreads(_ count: Int) {
        let left = state.withLock { s -> [UnownedJob] in
            s.serving -= count
            guard s.serving == 0 else { return [] }
            s.forwarding = true
            let left = Array(s.jobs[s.head...])
            s.jobs = []
            s.head = 0
            queued.store(0, ordering: .relaxed)
            return left
        }
        for job in left { globalConcurrentExecutor.enqueue(ExecutorJob(job)) }
    }
}

private func poolExecutorRunOne(_ context: UnsafeMutableRawPointer?) -> Int32 {
    Unmanaged<PoolExecutor>.fromOpaque(context!).takeUnretainedValue().runOne() ? 1 : 0
}

private func poolExecutorPending(_ context: UnsafeMutableRawPointer?) -> Int32 {
    Unmanaged<PoolExecutor>.fromOpaque(context!).takeUnretainedValue().pending ? 1 : 0
}
