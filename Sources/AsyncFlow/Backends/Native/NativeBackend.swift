// NativeBackend.swift — CFlow: links are C rings (RingQueue), a CPU layer's workers are the threads of a
// CFlow pool (optionally pinned, FLOW_* settings), and blocked threads park on a CFlow eventcount.
//
// Invariants:
//  [cpu loops only on pool threads] A CPU layer's loop runs only on its pool's C threads, never on Swift's cooperative
//    pool; so does a batch carried through it by its source's task ([carried batches], which checks the thread).
//  [no thread outlives its run] Each thread runs one loop; when the last loop has returned (each has finished as a
//    producer of its output link, [the last producer closes the link]), the task awaiting the pool is resumed, and it
//    joins every thread before run() returns: no thread outlives its run.
//  [the pool made before the run] The pool is created (and its settings checked) when the workers are made, before any
//    stage runs; it is started by run() and destroyed with the group.
//  [the pool threads run the other stages] The run's other stages prefer PoolExecutor.shared, which every pool thread
//    serves while it waits and, after its loop, until the run's other stages have ended (PoolSchedule,
//    [each job runs exactly once]): so they run on those threads.
import CFlow
import Synchronization

@usableFromInline struct NativeBackend: Backend {
    let pool: flow_config
    /// Tests only: pools fail to start after this many threads (0: never).
    let startFailureAfter: UInt32
    /// [the pool threads run the other stages]: this run, as the scheduler sees it.
    let schedule: PoolSchedule

    init(pool: flow_config, startFailureAfter: UInt32) {
        self.pool = pool
        self.startFailureAfter = startFailureAfter
        schedule = PoolSchedule(spinNanoseconds: pool.spin_ns)
    }

    @usableFromInline func makeQueue<T>(of type: T.Type, capacity: Int) throws(FlowConfigurationError)
        -> any LinkQueue<T>
    {
        try RingQueue<T>(capacity: capacity, spinNanoseconds: pool.spin_ns)
    }

    @usableFromInline func makeWorkers(_ loops: WorkerLoops, layer: String) throws(FlowConfigurationError)
        -> any WorkerGroup
    {
        let workers = try PoolWorkers(
            loops, pool: pool, layer: layer, schedule: schedule, startFailureAfter: startFailureAfter)
        // [threads counted in before any job]; PoolWorkers counts them out
        PoolExecutor.shared.addThreads(loops.count + loops.helpers)
        return workers
    }

    @usableFromInline func makeThreadParker() -> (any ThreadParking)? { EventCountParker() }

    @usableFromInline var stageExecutor: (any TaskExecutor)? { PoolExecutor.shared }

    @usableFromInline func stagesEnded() { schedule.retire() }

    @usableFromInline var jobsStarted: Int { PoolExecutor.shared.started.load(ordering: .relaxed) }

    /// [direct hand-offs only where they pay]: the CPU layers' loops run on the threads that run the other stages.
    @usableFromInline func handOffs(_ layers: [ErasedLayer], sizes: RunSizes, streaming: Bool) -> [HandOff] {
        nativeHandOffs(layers, sizes: sizes, streaming: streaming)
    }

    /// [cpu loops only on pool threads]: whether this thread runs a pool's loop ([a worker knows it is in its loop]).
    @usableFromInline var onWorkerThread: Bool { flow_current_worker() != nil }

    /// [a job under a wait yields each batch]: whether a serving ring wait of this thread is running the calling job.
    @usableFromInline var underAWait: Bool { flow_jobs_under_wait() > 0 }
}

/// What the C trampoline calls through (a @convention(c) function cannot capture): the group's loop.
final class PoolWorkers: WorkerGroup, @unchecked Sendable {
    // @unchecked: `pool` is set once in init; the C pool is thread-safe; the rest is immutable or atomic.
    let loops: WorkerLoops
    let layer: String
    let schedule: PoolSchedule
    private var pool: OpaquePointer?
    let running = Atomic<Int>(0)
    /// Threads counted in to the scheduler and not yet out ([threads counted in before any job]).
    let counted: Atomic<Int>
    let completion = Gate()  // opened by the last loop to return ([no thread outlives its run])
    /// Where each thread is, for a check that finds pool threads alive (PoolTrace).
    let trace: PoolTrace

    init(
        _ loops: WorkerLoops, pool config: flow_config, layer: String, schedule: PoolSchedule,
        startFailureAfter: UInt32
    ) throws(FlowConfigurationError) {
        self.loops = loops
        self.layer = layer
        self.schedule = schedule
        counted = Atomic(loops.count + loops.helpers)
        trace = PoolTrace(layer: layer, threads: loops.count + loops.helpers, run: schedule)
        var config = config
        config.workers = UInt32(loops.count + loops.helpers)  // the helpers run no loop (work)
        var err = flow_error()
        let ctx = Unmanaged.passUnretained(self).toOpaque()  // the pool never outlives self (deinit)
        guard flow_pool_create(&config, poolWorkerEntry, ctx, &pool, &err) == FLOW_OK else {
            throw FlowConfigurationError(parameter: "workers", message: cMessage(&err), layer: layer)
        }
        if startFailureAfter > 0 { flow_pool_inject_start_failure(pool, startFailureAfter) }
    }

    deinit {
        if let pool { flow_pool_destroy(pool) }
        trace.forget()  // threads that never started (their pool failed to start)
        // [threads counted in before any job]: threads of a run that never ran, or never started
        countOut(counted.load(ordering: .relaxed))
    }

    /// [threads counted in before any job]: `count` of this pool's threads will serve no more.
    func countOut(_ count: Int) {
        counted.subtract(count, ordering: .relaxed)
        PoolExecutor.shared.removeThreads(count)
    }

    func run(_ run: RunState) async {
        guard let pool else { return }
        running.store(loops.count + loops.helpers, ordering: .relaxed)
        var err = flow_error()
        if flow_pool_start(pool, &err) != FLOW_OK {
            // The run fails, which closes every link, so the workers that did start leave their loops;
            // join them here (briefly blocking this thread, on this failure path only).
            run.fail(FlowConfigurationError(parameter: "workers", message: cMessage(&err), layer: layer), layer: layer)
            flow_pool_join(pool)
            // [threads counted in before any job]: the threads that never started
            countOut(counted.load(ordering: .relaxed))
            return
        }
        await completion.wait()
        flow_pool_join(pool)  // [no thread outlives its run]: every thread has left its loop; join is immediate
    }

    /// One pool thread: the loop, serving the scheduler while it waits and until the run's other stages have ended
    /// ([the pool threads run the other stages]), then (the last one) resume the task awaiting the pool
    /// ([no thread outlives its run]).
    func work(_ worker: OpaquePointer) {
        let index = Int(flow_worker_index(worker))
        if index < loops.count {  // else a helper ([helpers fill the spare cpus]): it only serves
            trace.enter(.loop, thread: index)
            loops.onThread(PoolThread(worker: worker, jobs: PoolExecutor.shared.jobs))
        }
        trace.enter(.serving, thread: index)
        PoolExecutor.shared.serve(until: schedule)
        trace.enter(.left, thread: index)
        countOut(1)
        if running.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 { completion.open() }
    }
}

/// A pool thread, as its loop sees it: its flow_worker (per-worker counters) and the jobs it serves
/// while it waits (PoolExecutor).
@usableFromInline struct PoolThread {
    @usableFromInline let worker: OpaquePointer
    @usableFromInline let jobs: UnsafePointer<flow_jobs>
    /// Which of its layer's workers this thread is: 0 ..< workers.
    @usableFromInline let index: Int

    init(worker: OpaquePointer, jobs: UnsafeMutablePointer<flow_jobs>) {
        self.worker = worker
        self.jobs = UnsafePointer(jobs)
        index = Int(flow_worker_index(worker))
    }
}

/// The C entry point of every pool thread: ctx is the unretained PoolWorkers that owns the pool.
private func poolWorkerEntry(_ worker: OpaquePointer?, _ context: UnsafeMutableRawPointer?) {
    Unmanaged<PoolWorkers>.fromOpaque(context!).takeUnretainedValue().work(worker!)
}

/// An ordered window's parker for pool threads: the eventcount protocol on a CFlow parker.
final class EventCountParker: ThreadParking, @unchecked Sendable {
    // @unchecked: the parker is a thread-safe C object, created in init and destroyed in deinit.
    let parker = flow_parker_create()!

    deinit { flow_parker_destroy(parker) }

    func park(until ready: () -> Bool) {
        while !ready() {
            let key = flow_parker_prepare(parker)  // announce, then re-check ([announce before re-checking])
            if ready() {
                flow_parker_cancel(parker)
                return
            }
            _ = flow_parker_wait(parker, key, FLOW_FOREVER)
        }
    }

    func wakeAll() { flow_parker_notify(parker, Int32.max) }
}

/// The message of a C error record.
func cMessage(_ err: inout flow_error) -> String {
    withUnsafeBytes(of: &err.message) { raw in
        String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
    }
}

/// Where a pool's threads are (in their loop, serving the scheduler, gone), kept while any is there: what
/// a check that finds pool threads alive after a run can name (the layer says which run they belong to).
final class PoolTrace: Sendable {
    enum Phase { case starting, loop, serving, left }

    /// The traces of pools with a thread not yet gone, process-wide.
    private static let live = Locked<[ObjectIdentifier: PoolTrace]>([:])
    let layer: String
    let run: PoolSchedule
    private let phases: Locked<[Phase]>

    init(layer: String, threads: Int, run: PoolSchedule) {
        self.layer = layer
        self.run = run
        phases = Locked(Array(repeating: .starting, count: threads))
    }

    /// Thread `index` moves to `phase`; the pool is listed from its first thread's start to its last
    /// thread's leaving.
    func enter(_ phase: Phase, thread index: Int) {
        let (first, last) = phases.withLock { phases in
            let first = !phases.contains { $0 != .starting }
            phases[index] = phase
            return (first, phases.allSatisfy { $0 == .left })
        }
        if first { Self.live.withLock { $0[ObjectIdentifier(self)] = self } }
        if last { forget() }
    }

    /// The pool is gone (its threads joined, or some never started).
    func forget() { _ = Self.live.withLock { $0.removeValue(forKey: ObjectIdentifier(self)) } }

    /// One line per pool with threads running: its layer, whether its run retired, each thread's phase.
    static func describeLive() -> [String] {
        live.withLock { Array($0.values) }.map { trace in
            "layer '\(trace.layer)' (run retired: \(trace.run.retired.load(ordering: .relaxed))), threads: "
                + trace.phases.withLock { $0 }.enumerated().map { "\($0) \($1)" }.joined(separator: ", ")
        }
    }
}
