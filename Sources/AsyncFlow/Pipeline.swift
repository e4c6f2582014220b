// Pipeline.swift — runs a chain of layers: validation, links, stages, cancellation, report.
//
// Invariants:
//  P1. Every configuration error (layer parameters, FLOW_* variables, options, pool creation) is thrown
//      before any stage runs, so no item has been pulled.
//  P2. Stages run as children of one task group; the pipeline returns only after every stage has ended
//      and every C thread has been joined (CPUStage C4), whichever way it ends.
//  P3. Cancelling the awaiting task stops the run (RunState S1/S2): closes every link, so each stage
//      finishes promptly; the pipeline then throws CancellationError.
//  P4. Items left in a link at the end are deinitialised and counted as received and dropped by the
//      layer in front of which they waited: for every layer i > 0, received(i) == emitted(i - 1).
//  P5. A stream's run ends when every stage has ended and its consumer is done (read to the end, left,
//      or saw the run stop: PipelineStream T6); only then is what is left in the stream's own link
//      deinitialised and moved from the last layer's emitted to its dropped count, and the report
//      made. So the last layer's `emitted` is exactly what the consumer received.
import CFlow
import Synchronization

/// A layer with its types erased, as the runner sees it.
@usableFromInline
struct ErasedLayer: Sendable {
    @usableFromInline typealias LinkMaker =
        @Sendable (_ capacity: Int, _ spin: Int64, _ backend: PipelineOptions.Backend) throws(FlowConfigurationError)
        -> any AnyLink
    @usableFromInline typealias StageMaker =
        @Sendable (
            _ input: (any AnyLink)?, _ output: (any AnyLink)?, _ policy: PolicyRun, _ options: PipelineOptions,
            _ workers: Int, _ pool: flow_config, _ window: OrderedWindow?
        ) -> StageHandle

    let index: Int
    let name: String
    let kind: LayerKind
    /// MemoryLayout<Input>.stride and MemoryLayout<Output>.stride: queue sizes are bounded in bytes too.
    let inputStride: Int
    let outputStride: Int
    let capacity: Int?
    let ordered: Bool
    let onError: ErrorPolicy
    let makeOutputLink: LinkMaker
    let makeStage: StageMaker

    @usableFromInline
    init(
        index: Int, name: String, kind: LayerKind, inputStride: Int, outputStride: Int, capacity: Int?, ordered: Bool,
        onError: ErrorPolicy, makeOutputLink: @escaping LinkMaker, makeStage: @escaping StageMaker
    ) {
        self.index = index
        self.name = name
        self.kind = kind
        self.inputStride = inputStride
        self.outputStride = outputStride
        self.capacity = capacity
        self.ordered = ordered
        self.onError = onError
        self.makeOutputLink = makeOutputLink
        self.makeStage = makeStage
    }
}

/// What kind of layer, with its parallelism.
@usableFromInline
enum LayerKind: Sendable {
    case source
    case cpu(workers: Int?)
    case async(concurrency: Int)
    case serial
}

extension Layer {
    @inlinable
    func erased(_ index: Int) -> ErasedLayer {
        let kindName =
            switch kind {
            case .source: "source"
            case .cpu: "cpu"
            case .async: "async"
            case .serial: "serial"
            }
        let make = makeStage
        return ErasedLayer(
            index: index, name: name ?? "layer \(index) (\(kindName))", kind: kind,
            inputStride: MemoryLayout<Input>.stride, outputStride: MemoryLayout<Output>.stride, capacity: capacity,
            ordered: ordered, onError: onError,
            makeOutputLink: { (capacity, spin, backend) throws(FlowConfigurationError) in
                try Link<Output>(capacity: capacity, spinNanoseconds: spin, backend: backend)
            },
            makeStage: { input, output, policy, options, workers, pool, window in
                make(
                    StageContext(
                        input: input.map { $0 as! Link<Input> }, output: output.map { $0 as! Link<Output> },
                        policy: policy, options: options, workers: workers, pool: pool, window: window))
            })
    }
}

/// Run a pipeline to its end (P1–P4) and report.
@usableFromInline
func runPipeline(_ layers: [ErasedLayer], options: PipelineOptions) async throws -> PipelineReport {
    let pipeline = try PipelineRun(layers, options: options, streaming: false)
    await pipeline.execute()
    return try pipeline.outcome()
}

/// One run of a pipeline: built (validated, links, stages, pools) by init, run by execute().
final class PipelineRun: Sendable {
    let layers: [ErasedLayer]
    let options: PipelineOptions
    let run = RunState()
    let counters: [LayerCounters]
    /// links[i] joins layer i to layer i + 1; when streaming, the last link is the stream's.
    let links: [any AnyLink]
    let stages: [StageHandle]
    let started = ContinuousClock.now
    private let elapsed = Locked<Duration?>(nil)
    /// Streaming only: opened by the stream's consumer when it is done (P5).
    let consumerDone: Gate?
    /// Streaming only: the consumer left its loop before the stream ended, which cancelled the run;
    /// that is the consumer's choice, not an error: the run reports rather than throws (PipelineStream T3).
    let consumerLeft = Atomic<Bool>(false)

    /// Validate (P1) and build everything; when `streaming`, the last layer gets an output link too.
    init(_ layers: [ErasedLayer], options: PipelineOptions, streaming: Bool) throws(FlowConfigurationError) {
        self.layers = layers
        self.options = options
        consumerDone = streaming ? Gate() : nil
        let pool = try validate(layers, options: options, streaming: streaming)
        let counters = layers.map { _ in LayerCounters() }
        let run = self.run
        // Link i's capacity is layer i + 1's (the stream's: room for a few batches).
        let links: [any AnyLink] = try (0..<(layers.count - (streaming ? 0 : 1))).map {
            i throws(FlowConfigurationError) in
            let capacity: Int =
                i + 1 < layers.count
                ? layers[i + 1].capacity
                    ?? defaultCapacity(layers[i + 1], batch: options.batchSize, defaultWorkers: pool.workers)
                : queueCapacity(batch: options.batchSize, stride: layers[i].outputStride)
            do throws(FlowConfigurationError) {
                let link = try layers[i].makeOutputLink(capacity, pool.spin_ns, options.backend)
                run.register(link)
                return link
            } catch {
                throw FlowConfigurationError(
                    parameter: error.parameter, message: error.message, layer: error.layer ?? layers[i].name)
            }
        }
        var stages: [StageHandle] = []
        for (i, layer) in layers.enumerated() {
            let policy = PolicyRun(policy: layer.onError, counters: counters[i], run: run, layer: layer.name)
            let workers: Int = if case .cpu(let w) = layer.kind { w ?? Int(pool.workers) } else { 1 }
            let window: OrderedWindow? =
                layer.ordered && i < links.count ? OrderedWindow(backend: options.backend) : nil
            if let window { run.register(window) }
            let stage = layer.makeStage(
                i > 0 ? links[i - 1] : nil, i < links.count ? links[i] : nil, policy, options, workers, pool, window)
            try stage.prepare()  // P1: pools are created (not started) here
            stages.append(stage)
        }
        self.counters = counters
        self.links = links
        self.stages = stages
    }

    /// Run every stage to its end (P2), stopping on cancellation (P3), then settle the leftovers (P4).
    func execute() async {
        let progress = options.progress.map { handler in
            Task { [options] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: options.progressInterval)
                    if Task.isCancelled { break }
                    handler(self.snapshot(final: false))
                }
            }
        }
        let publisher = options.metrics.map { MetricsPublisher($0, layerNames: layers.map(\.name)) }
        let sampler = options.metrics.map { metrics in
            Task { [links, counters] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: metrics.interval)
                    publisher!.publish(counters, depths: links.map(\.depth))
                }
            }
        }
        let run = self.run
        await withTaskCancellationHandler {
            await withTaskGroup(of: Void.self) { group in
                for stage in stages {
                    group.addTask { await stage.run() }  // P2
                }
            }
        } onCancel: {
            run.cancel()  // P3
        }
        for (i, link) in links.enumerated() where i + 1 < counters.count {  // P4 (the stream's link is its consumer's)
            let left = link.drainDropped()
            counters[i + 1].received.add(left, ordering: .relaxed)
            counters[i + 1].dropped.add(left, ordering: .relaxed)
        }
        if let consumerDone {  // P5: a stream's run ends when its consumer is done with it
            await consumerDone.wait()
            let unread = links.last!.drainDropped()
            counters.last!.emitted.subtract(unread, ordering: .relaxed)
            counters.last!.dropped.add(unread, ordering: .relaxed)
        }
        progress?.cancel()
        elapsed.withLock { $0 = ContinuousClock.now - started }
        if let sampler {
            sampler.cancel()
            await sampler.value
            publisher!.publish(counters, depths: links.map(\.depth))  // M1: the final counts
        }
        if let handler = options.progress { handler(snapshot(final: true)) }
    }

    /// After execute(): the report, or the error that ended the run (not the cancellation a stream's
    /// consumer made by leaving its loop). The report goes to PipelineOptions.onReport either way.
    func outcome() throws -> PipelineReport {
        let report = makeReport()
        options.onReport?(report)
        if run.cancelled && !consumerLeft.load(ordering: .relaxed) { throw CancellationError() }
        if let failure = run.failure { throw failure.error }
        return report
    }

    func makeReport() -> PipelineReport {
        PipelineReport(
            layers: layers.enumerated().map { i, layer in
                let c = counters[i]
                return LayerReport(
                    name: layer.name, received: c.received.load(ordering: .relaxed),
                    emitted: c.emitted.load(ordering: .relaxed), failed: c.failed.load(ordering: .relaxed),
                    skipped: c.skipped.load(ordering: .relaxed), retried: c.retried.load(ordering: .relaxed),
                    dropped: c.dropped.load(ordering: .relaxed),
                    busy: i == 0 ? nil : .nanoseconds(c.busy.load(ordering: .relaxed)))
            }, errors: run.keptErrors, elapsed: elapsed.withLock { $0 } ?? (ContinuousClock.now - started))
    }

    func snapshot(final: Bool) -> ProgressSnapshot {
        let elapsed = ContinuousClock.now - started
        let seconds = elapsed.secondsDouble
        let done = counters.last!.emitted.load(ordering: .relaxed)
        return ProgressSnapshot(
            layers: zip(layers, counters).map {
                .init(
                    name: $0.name, received: $1.received.load(ordering: .relaxed),
                    emitted: $1.emitted.load(ordering: .relaxed))
            },
            queueDepths: links.map(\.depth), elapsed: elapsed, rate: seconds > 0 ? Double(done) / seconds : 0,
            isFinal: final)
    }
}

/// Bytes a queue of small items may take before its default capacity stops at 1,024 items.
let linkByteBudget = 16 << 20

/// The queue in front of a layer when none is given (see queueCapacity).
func defaultCapacity(_ layer: ErasedLayer, batch: Int, defaultWorkers: UInt32) -> Int {
    let parallel: Int =
        switch layer.kind {
        case .cpu(let w): w ?? Int(defaultWorkers)
        case .async(let c): c
        case .source, .serial: 1
        }
    return queueCapacity(batch: batch, stride: layer.inputStride, callers: parallel)
}

/// A default queue for items of `stride` bytes popped by `callers` parallel callers (a pipelineStream's
/// consumer is one): room for four batches per caller, and at least 1,024 items unless those would take
/// more than linkByteBudget (large items).
func queueCapacity(batch: Int, stride: Int, callers: Int = 1) -> Int {
    let stride = max(1, stride)
    return max(min(1024, linkByteBudget / stride), 4 * batchLimit(batch, stride: stride) * max(1, callers))
}

/// Check every parameter (P1) and build the pool configuration.
private func validate(
    _ layers: [ErasedLayer], options: PipelineOptions, streaming: Bool
) throws(FlowConfigurationError) -> flow_config {
    if layers.count < 2 {
        let what = streaming ? "a source and a layer" : "a source and a collector"
        throw FlowConfigurationError(
            parameter: "layers", message: "a pipeline needs at least 2 layers (\(what)), got \(layers.count)")
    }
    let pool = try options.poolConfigValidated()
    for layer in layers {
        func bad(_ parameter: String, _ message: String) -> FlowConfigurationError {
            FlowConfigurationError(parameter: parameter, message: message, layer: layer.name)
        }
        switch layer.kind {
        case .cpu(let w?) where w < 1 || w > Int(FLOW_MAX_WORKERS):
            throw bad("workers", "workers: \(w): must be between 1 and \(FLOW_MAX_WORKERS)")
        case .async(let c) where c < 1:
            throw bad("concurrency", "concurrency: \(c): must be at least 1")
        default: break
        }
        if let c = layer.capacity, c < 1 {
            throw bad("capacity", "capacity: \(c): must be at least 1")
        }
        if case .retry(let n) = layer.onError, n < 0 {
            throw bad("onError", "onError: .retry(attempts: \(n)): attempts must be 0 or more")
        }
    }
    return pool
}
