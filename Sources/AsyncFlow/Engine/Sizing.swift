// Sizing.swift — every worker count, queue capacity and batch size of a run, computed here and nowhere
// else (RunSizes, made once by PipelineRun).
//
// Invariants:
//  [batches bounded in bytes] A batch buffer takes at most batchByteBudget bytes: large items move in smaller batches.
//  [default queues hold four batches] A default queue holds four batches per parallel consumer, and at least 1,024
//    items unless those would take more than linkByteBudget; a `capacity:` given by the user is taken as it is.
//  [batches no larger than their queues] A capacity bounds what is in flight: a stage's batch is at most the capacity
//    of each queue beside it, so a batch that skips a queue (a direct pull, a batch carried or handed to the collector)
//    holds no more than that queue would, and every stage holds at most one batch beyond the queues. So a run holds at
//    most its queues' capacities plus one batch per loop.
//  [helpers fill the spare cpus] The CPU layers' workers and the helper threads together are at most the CPUs the pools
//    may use (when the workers alone are fewer): the first CPU layer's pool gets the difference, at most one helper per
//    other layer, so the other stages run beside the workers rather than only when they wait (the native backend's
//    scheduler, PoolExecutor).

/// Bytes one batch buffer may take: large items move in smaller batches, so a stage's buffers stay
/// about this size whatever the item type (a 64 KiB item moves 64 at a time, an Int 1024).
let batchByteBudget = 4 << 20

/// Bytes a queue of small items may take before its default capacity stops at 1,024 items.
let linkByteBudget = 16 << 20

/// The batch size for items of `stride` bytes: `batchSize`, or fewer so a batch fits batchByteBudget
/// ([batches bounded in bytes]).
func batchLimit(_ batchSize: Int, stride: Int) -> Int {
    min(batchSize, max(1, batchByteBudget / max(1, stride)))
}

/// A default queue for items of `stride` bytes popped by `callers` parallel callers
/// ([default queues hold four batches]).
func queueCapacity(batch: Int, stride: Int, callers: Int = 1) -> Int {
    let stride = max(1, stride)
    return max(min(1024, linkByteBudget / stride), 4 * batchLimit(batch, stride: stride) * max(1, callers))
}

/// The queue in front of a layer when none is given: popped by its workers or tasks
/// ([default queues hold four batches]).
func defaultCapacity(_ layer: ErasedLayer, batch: Int, defaultWorkers: Int) -> Int {
    queueCapacity(
        batch: batch, stride: layer.inputStride, callers: parallelism(of: layer, defaultWorkers: defaultWorkers))
}

/// A layer's parallel loops: a CPU layer's workers, an async layer's concurrency, else 1.
func parallelism(of layer: ErasedLayer, defaultWorkers: Int) -> Int {
    switch layer.kind {
    case .cpu(let w, _): w ?? defaultWorkers
    case .async(let c): c
    case .source, .serial, .batches, .batchMap: 1  // a batch map's one gatherer pops
    }
}

/// The sizes of one run.
@usableFromInline struct RunSizes: Sendable {
    /// Per layer: its parallel loops (Backend workers for a CPU layer).
    let workers: [Int]
    /// Per layer: threads a CPU layer's pool adds that only run the other stages ([helpers fill the spare cpus]); 0 for
    /// the rest.
    let helpers: [Int]
    /// The CPU layers' workers, together (what [helpers fill the spare cpus] and [direct hand-offs only where they pay]
    /// compare with the CPUs).
    let cpuWorkers: Int
    /// The CPUs the pools may use.
    let cpus: Int
    /// Per layer: items per batch buffer of its stage.
    let batches: [Int]
    /// Per link: link i joins layer i to layer i + 1; when streaming, the last link is the stream's.
    let links: [Int]
    /// The stream consumer's batch (its buffer), when streaming.
    let streamBatch: Int

    init(_ layers: [ErasedLayer], batchSize: Int, defaultWorkers: Int, cpus: Int, streaming: Bool) {
        let workers = layers.map { parallelism(of: $0, defaultWorkers: defaultWorkers) }
        self.workers = workers
        cpuWorkers = cpuLayerWorkers(layers, workers: workers)
        self.cpus = cpus
        helpers = schedulerHelpers(layers, workers: workers, cpus: cpus)
        let links = (0..<(layers.count - (streaming ? 0 : 1))).map { i in
            i + 1 < layers.count
                ? layers[i + 1].capacity
                    ?? defaultCapacity(layers[i + 1], batch: batchSize, defaultWorkers: defaultWorkers)
                : queueCapacity(batch: batchSize, stride: layers[i].outputStride)  // the stream's: a few batches
        }
        self.links = links
        batches = layers.indices.map { i in
            // [batches no larger than their queues]
            let beside = [i > 0 ? links[i - 1] : nil, i < links.count ? links[i] : nil].compactMap { $0 }
            return beside.reduce(batchLimit(batchSize, stride: max(layers[i].inputStride, layers[i].outputStride)), min)
        }
        streamBatch = batchLimit(batchSize, stride: layers.last!.outputStride)
    }
}

/// The CPU layers' workers, together.
func cpuLayerWorkers(_ layers: [ErasedLayer], workers: [Int]) -> Int {
    layers.indices.filter { layers[$0].runsOnWorkers }.reduce(0) { $0 + workers[$1] }
}

/// [helpers fill the spare cpus]: per layer, the helper threads its pool adds.
func schedulerHelpers(_ layers: [ErasedLayer], workers: [Int], cpus: Int) -> [Int] {
    guard let first = layers.firstIndex(where: \.runsOnWorkers) else { return layers.map { _ in 0 } }
    let spare = max(0, cpus - cpuLayerWorkers(layers, workers: workers))
    let others = layers.count { !$0.runsOnWorkers }
    return layers.indices.map { $0 == first ? min(spare, others) : 0 }
}
