// PoolExecutor.swift — the native backend's scheduler: a TaskExecutor whose jobs the pool threads run whenever they
// would otherwise wait. A run's other stages that call sync closures (a Sequence source, serial layers, a sync
// collector) and a single AsyncSequence source ([an async source pulls on the pool]) are tasks that prefer it, so on a
// pipeline with a CPU layer they run on the pool's threads, one runnable thread per worker (plus helpers,
// [helpers fill the spare cpus]), and Swift's cooperative pool is left free. Layers with async closures stay on the
// global executor: on a task with an executor preference each await costs a status lock (Stage.awaitsPerItem).
//
// There is one, for the process (`shared`), never freed: a task keeps its executor preference for as
// long as it lives, and a task a stage leaves behind (a timer's wake-up after a cancelled sleep, an
// unstructured Task made in a closure) may enqueue long after its run; and the threads of every run
// serve the jobs of every run (one scheduler).
//
// Invariants:
//  [each job runs exactly once] A job is queued by enqueue and run exactly once: by a pool thread that waits on a ring
//    ([a serving waiter misses no job], which runs queued jobs before it spins or parks) or has left its loop and
//    serves until its run's stages have ended (serve(until:)); or, while no pool thread serves, on Swift's global
//    executor: the last thread out hands the queue over there under the lock, and jobs enqueued while none serves go
//    there directly (forwarding).
//  [a queued job wakes a parked thread] enqueue notifies `parker` after queuing, and a pool thread parks only after
//    announcing itself on it and re-checking `pending` ([a serving waiter misses no job]; serve(until:) likewise, and
//    also its run's `retired`, which PoolSchedule.retire() sets before it notifies every thread): a queued job always
//    wakes a parked thread, and retiring a run wakes its threads to leave.
//  [threads counted in before any job] Threads are counted in (`serving`) when a run's workers are made, before any of
//    its tasks can enqueue, and out as each leaves, or, for threads that never started (the pool failed to start, or
//    the run never ran), when the pool is joined or dropped (PoolWorkers): no job is queued for threads that will never
//    run it.
//  [a job runs where it was dequeued] A job is run on the thread that dequeued it, outside the lock, with this executor
//    as the task's.
import CFlow
import Synchronization

@usableFromInline final class PoolExecutor: TaskExecutor, @unchecked Sendable {
    /// The process's (see the top of this file).
    static let shared = PoolExecutor()

    // @unchecked: the queue lives under `state`'s lock; `queued` is atomic; `parker` and `jobs` are
    // C objects made once and never freed (the parker is thread-safe, `jobs` is not written again).
    struct State {
        var jobs: [UnownedJob] = []
        var head = 0
        var serving = 0
        /// While no pool thread is counted in ([each job runs exactly once], [threads counted in before any job]).
        var forwarding = true
    }
    private let state = Locked(State())  // Locked: a Mutex ThreadSanitizer can see
    /// Jobs queued and not yet taken: read without the lock by waiting threads ([a queued job wakes a parked thread]).
    private let queued = Atomic<Int>(0)
    let parker = flow_parker_create()!
    /// What the C wait loops call back (ring.c flow_jobs); `ctx` is this executor, unretained (it is
    /// never freed).
    let jobs = UnsafeMutablePointer<flow_jobs>.allocate(capacity: 1)

    private init() {
        jobs.initialize(
            to: flow_jobs(
                run_one: poolExecutorRunOne, pending: poolExecutorPending,
                ctx: Unmanaged.passUnretained(self).toOpaque(), parker: parker))
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
            flow_parker_notify(parker, 1)  // [a queued job wakes a parked thread]
        } else {
            globalConcurrentExecutor.enqueue(ExecutorJob(job))  // [each job runs exactly once]: no pool thread is left
        }
    }

    /// Run one queued job on this (pool) thread; false when none is queued ([each job runs exactly once],
    /// [a job runs where it was dequeued]).
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
        started.add(1, ordering: .relaxed)
        job.runSynchronously(on: asUnownedTaskExecutor())
        return true
    }

    var pending: Bool { queued.load(ordering: .acquiring) > 0 }

    /// How many jobs the pool threads have started (relaxed, a hint: Backend.jobsStarted).
    let started = Atomic<Int>(0)

    /// [threads counted in before any job]: `count` more threads will serve (a pool's workers, counted when they are
    /// made).
    func addThreads(_ count: Int) {
        state.withLock { s in
            s.serving += count
            s.forwarding = false
        }
    }

    /// [threads counted in before any job], [each job runs exactly once]: `count` threads have left (or will never
    /// start); when none is left, what is queued goes to the global executor, and so does every job enqueued until
    /// threads are counted in again.
    func removeThreads(_ count: Int) {
        guard count > 0 else { return }
        forward { s in
            s.serving -= count
            return s.serving == 0
        }
    }

    /// A pool thread whose loop has ended (or a helper): run jobs until its run's stages have ended
    /// ([each job runs exactly once], [a queued job wakes a parked thread]); with none queued, spin for the run's
    /// budget (as ring waits do, [spins bounded in time]), then park.
    func serve(until run: PoolSchedule) {
        while !run.retired.load(ordering: .acquiring) {
            if runOne() || spin(run) { continue }
            let key = flow_parker_prepare(parker)
            // re-check after announcing ([a queued job wakes a parked thread])
            if run.retired.load(ordering: .acquiring) || pending {
                flow_parker_cancel(parker)
                continue
            }
            _ = flow_parker_wait(parker, key, FLOW_FOREVER)
        }
    }

    /// Re-check for a job or the run's end for the run's spin budget; true when one came.
    private func spin(_ run: PoolSchedule) -> Bool {
        guard run.spinNanoseconds > 0 else { return false }
        let end = flow_now_ns() + UInt64(run.spinNanoseconds)
        repeat {
            for _ in 0..<16 { flow_spin_pause() }
            if pending || run.retired.load(ordering: .relaxed) { return true }
        } while flow_now_ns() < end
        return false
    }

    /// Under the lock, when `decide` says so: switch to forwarding and hand what is queued to the global
    /// executor ([each job runs exactly once]).
    private func forward(when decide: (inout State) -> Bool) {
        let left = state.withLock { s -> [UnownedJob] in
            guard decide(&s) else { return [] }
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

/// One native run's schedule on the pool: retired when the last of the stages that prefer the executor has ended,
/// which lets the run's pool threads leave ([each job runs exactly once], [a queued job wakes a parked thread]).
final class PoolSchedule: Sendable {
    let retired = Atomic<Bool>(false)
    /// How long a serving thread re-checks before it parks (FLOW_SPIN_NS).
    let spinNanoseconds: Int64

    init(spinNanoseconds: Int64) {
        self.spinNanoseconds = spinNanoseconds
    }

    func retire() {
        retired.store(true, ordering: .releasing)
        // [a queued job wakes a parked thread]: every thread re-checks its run
        flow_parker_notify(PoolExecutor.shared.parker, Int32.max)
    }
}
