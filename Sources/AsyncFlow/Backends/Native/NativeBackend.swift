// NativeBackend.swift — CFlow: links are C rings (RingQueue), a CPU layer's workers are the threads of a
// CFlow pool (optionally pinned, FLOW_* settings), and blocked threads park on a CFlow eventcount.
//
// Invariants:
//  N1. A CPU layer's loop runs only on its pool's C threads, never on Swift's cooperative pool.
//  N2. Each thread runs one loop; when the last loop has returned (each has finished as a producer of its
//      output link, Link L4), the task awaiting the pool is resumed, and it joins every thread before
//      run() returns: no thread outlives its run.
//  N3. The pool is created (and its settings checked) when the workers are made, before any stage runs;
//      it is started by run() and destroyed with the group.
import CFlow
import Synchronization

@usableFromInline struct NativeBackend: Backend {
    let pool: flow_config
    /// Tests only: pools fail to start after this many threads (0: never).
    let startFailureAfter: UInt32

    @usableFromInline func makeQueue<T>(of type: T.Type, capacity: Int) throws(FlowConfigurationError)
        -> any LinkQueue<T>
    {
        try RingQueue<T>(capacity: capacity, spinNanoseconds: pool.spin_ns)
    }

    @usableFromInline func makeWorkers(_ loops: WorkerLoops, layer: String) throws(FlowConfigurationError)
        -> any WorkerGroup
    {
        try PoolWorkers(loops, pool: pool, layer: layer, startFailureAfter: startFailureAfter)
    }

    @usableFromInline func makeThreadParker() -> (any ThreadParking)? { EventCountParker() }
}

/// What the C trampoline calls through (a @convention(c) function cannot capture): the group's loop.
final class PoolWorkers: WorkerGroup, @unchecked Sendable {
    // @unchecked: `pool` is set once in init; the C pool is thread-safe; the rest is immutable or atomic.
    let loops: WorkerLoops
    let layer: String
    private var pool: OpaquePointer?
    let running = Atomic<Int>(0)
    let completion = Gate()  // opened by the last loop to return (N2)

    init(_ loops: WorkerLoops, pool config: flow_config, layer: String, startFailureAfter: UInt32)
        throws(FlowConfigurationError)
    {
        self.loops = loops
        self.layer = layer
        var config = config
        config.workers = UInt32(loops.count)
        var err = flow_error()
        let ctx = Unmanaged.passUnretained(self).toOpaque()  // the pool never outlives self (deinit)
        guard flow_pool_create(&config, poolWorkerEntry, ctx, &pool, &err) == FLOW_OK else {
            throw FlowConfigurationError(parameter: "workers", message: cMessage(&err), layer: layer)
        }
        if startFailureAfter > 0 { flow_pool_inject_start_failure(pool, startFailureAfter) }
    }

    deinit {
        if let pool { flow_pool_destroy(pool) }
    }

    func run(_ run: RunState) async {
        guard let pool else { return }
        running.store(loops.count, ordering: .relaxed)
        var err = flow_error()
        if flow_pool_start(pool, &err) != FLOW_OK {
            // The run fails, which closes every link, so the workers that did start leave their loops;
            // join them here (briefly blocking this thread, on this failure path only).
            run.fail(FlowConfigurationError(parameter: "workers", message: cMessage(&err), layer: layer), layer: layer)
            flow_pool_join(pool)
            return
        }
        await completion.wait()
        flow_pool_join(pool)  // N2: every thread has left its loop; join is immediate
    }

    /// One pool thread: the loop, then (the last one) resume the task awaiting the pool (N2).
    func work(_ worker: OpaquePointer) {
        loops.onThread(worker)
        if running.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 { completion.open() }
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
            let key = flow_parker_prepare(parker)  // announce, then re-check (CFlow parker.c I1)
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
