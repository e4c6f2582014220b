// SwiftBackend.swift — only the standard library and Swift concurrency: links are SwiftQueues, a CPU
// layer's workers are `workers` child tasks on Swift's cooperative pool, and no thread ever blocks (so
// there is nothing to park). The baseline flow-bench compares the native backend against.
//
// Invariant:
//  [every worker task returns before run] run() returns once every worker task has returned (a task group), each having
//    finished as a producer of its output link ([the last producer closes the link]).
@usableFromInline struct SwiftBackend: Backend {
    @usableFromInline func makeQueue<T>(of type: T.Type, capacity: Int) throws(FlowConfigurationError)
        -> any LinkQueue<T>
    {
        try SwiftQueue<T>(capacity: capacity)
    }

    @usableFromInline func makeWorkers(_ loops: WorkerLoops, layer: String) -> any WorkerGroup {
        TaskWorkers(loops: loops)
    }

    @usableFromInline func makeThreadParker() -> (any ThreadParking)? { nil }

    @usableFromInline var stageExecutor: (any TaskExecutor)? { nil }

    @usableFromInline func stagesEnded() {}

    @usableFromInline var jobsStarted: Int { 0 }

    /// Every link keeps its queue: a hand-off path may block a thread, and this backend blocks none.
    @usableFromInline func handOffs(_ layers: [ErasedLayer], sizes: RunSizes, streaming: Bool) -> [HandOff] {
        Array(repeating: .queue, count: sizes.links.count)
    }

    @usableFromInline var onWorkerThread: Bool { false }

    @usableFromInline var underAWait: Bool { false }
}

/// A CPU layer's workers on the `.swift` backend: child tasks ([every worker task returns before run]).
struct TaskWorkers: WorkerGroup {
    let loops: WorkerLoops

    func run(_ run: RunState) async {
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<loops.count { group.addTask { await loops.inTask() } }
        }
    }
}
