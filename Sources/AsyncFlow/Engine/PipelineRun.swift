// PipelineRun.swift — one run of a chain of layers: built (validated, sized, links, stages, workers) by
// init, run by execute(), ended by outcome(); a stream's consumer reports to it through consumerDone().
//
// Invariants:
//  [configuration errors before the first pull] Every configuration error (layer parameters, FLOW_* variables, options,
//    links, workers) is thrown by init, before any stage runs, so no item has been pulled.
//  [the run outlives its stages and threads] Stages run as children of one task group; execute() returns only after
//    every stage has ended and every worker thread has been joined ([no thread outlives its run]), whichever way it
//    ends. A stage that is not a CPU layer's and does not await per item (Stage.awaitsPerItem) runs on the backend's
//    stage executor (the native pool's threads, [the pool threads run the other stages]); the backend hears when the
//    last of them ended.
//  [cancelling stops the run] Cancelling the awaiting task stops the run ([a stop is for good],
//    [the stop flag before the close]): closes every link, so each stage finishes promptly; outcome() then throws
//    CancellationError.
//  [leftovers counted where they waited] Items left in a link at the end are deinitialised and counted as received and
//    dropped by the layer in front of which they waited: for every layer i > 0, received(i) == emitted(i - 1).
//  [a stream ends when its consumer is done] A stream's run ends when every stage has ended and its consumer is done
//    (consumerDone: it read to the end, left, or saw the run stop); only then is what is left in the stream's own link
//    deinitialised and moved from the last layer's emitted to its dropped count, and the report made. So the last
//    layer's `emitted` is exactly what the consumer received.
import CFlow
import Synchronization

/// Run a pipeline to its end ([configuration errors before the first pull], [the run outlives its stages and threads],
/// [cancelling stops the run], [leftovers counted where they waited]) and report.
@usableFromInline
func runPipeline(_ layers: [ErasedLayer], options: PipelineOptions) async throws -> PipelineReport {
    if let access = layers.last?.commits { return try await runNamed(layers, access: access, options: options) }
    let pipeline = try PipelineRun(layers, options: options, streaming: false)
    await pipeline.execute()
    return try pipeline.outcome()
}

final class PipelineRun: Sendable {
    let layers: [ErasedLayer]
    let options: PipelineOptions
    let run: RunState
    let counters: [LayerCounters]
    let sizes: RunSizes
    /// links[i] joins layer i to layer i + 1; when streaming, the last link is the stream's.
    let links: [any AnyLink]
    let stages: [StageHandle]
    let backend: any Backend
    let started = ContinuousClock.now
    private let elapsed = Locked<Duration?>(nil)
    /// Streaming only: opened by consumerDone ([a stream ends when its consumer is done]).
    private let consumerGate: Gate?
    /// Streaming only: the consumer left its loop before the stream ended, which cancelled the run; that
    /// is the consumer's choice, not an error: the run reports rather than throws.
    private let consumerLeft = Atomic<Bool>(false)

    /// Validate ([configuration errors before the first pull]) and build everything; when `streaming`, the last layer
    /// gets an output link too. `named`: the attempt of a named run these (positioned) layers make, whose
    /// layers and options runNamed has validated into `pool`.
    init(
        _ layers: [ErasedLayer], options: PipelineOptions, streaming: Bool = false,
        named: (run: DurableRun, pool: flow_config)? = nil
    ) throws(FlowConfigurationError) {
        self.layers = layers
        self.options = options
        consumerGate = streaming ? Gate() : nil
        let pool: flow_config
        if let named { pool = named.pool } else { pool = try validate(layers, options: options, streaming: streaming) }
        let log = options.logger.map(RunLog.init)
        run = RunState(log: log, named: named?.run)
        let backend = options.backend.implementation(pool: pool, startFailureAfter: options.poolStartFailureAfter)
        let cpus = Int(withUnsafePointer(to: pool.cpus) { flow_cpuset_count($0) })
        let sizes = RunSizes(
            layers, batchSize: options.batchSize, defaultWorkers: Int(pool.workers), cpus: cpus, streaming: streaming)
        let counters = layers.map { LayerCounters(generators: $0.generators) }
        let run = self.run
        let links: [any AnyLink] = try sizes.links.indices.map { i throws(FlowConfigurationError) in
            do throws(FlowConfigurationError) {
                let link = try layers[i].makeOutputLink(sizes.links[i], backend)
                run.register(link)
                return link
            } catch {
                // the item type is the producing layer's; a capacity is the consuming layer's (the stream's
                // link, which no layer sizes, is the last layer's)
                let owner = error.parameter == "capacity" && i + 1 < layers.count ? layers[i + 1] : layers[i]
                throw FlowConfigurationError(
                    parameter: error.parameter, message: error.message, layer: error.layer ?? owner.name)
            }
        }
        let handOffs = backend.handOffs(layers, sizes: sizes, streaming: streaming)
        var stages: [StageHandle] = []
        for (i, layer) in layers.enumerated() {
            let runtime = LayerRuntime(name: layer.name, policy: layer.onError, counters: counters[i], run: run)
            let window = layer.ordered && i < links.count ? OrderedWindow(threads: backend.makeThreadParker()) : nil
            if let window { run.register(window) }
            let stage = layer.makeStage(
                StagePlan(
                    input: i > 0 ? links[i - 1] : nil, output: i < links.count ? links[i] : nil, layer: runtime,
                    batch: sizes.batches[i], workers: sizes.workers[i], helpers: sizes.helpers[i], window: window,
                    backend: backend, inputHandOff: i > 0 ? handOffs[i - 1] : .queue,
                    outputHandOff: i < handOffs.count ? handOffs[i] : .queue))
            // [configuration errors before the first pull]: worker pools are created (not started) here
            try stage.prepare()
            stages.append(stage)
        }
        self.sizes = sizes
        self.backend = backend
        log?.started(layers, sizes: sizes, options: options, pool: pool)
        if let named { log?.resuming(named.run.report()) }
        self.counters = counters
        self.links = links
        self.stages = stages
    }

    /// Run every stage to its end ([the run outlives its stages and threads]), stopping on cancellation
    /// ([cancelling stops the run]), then settle the leftovers ([leftovers counted where they waited],
    /// [a stream ends when its consumer is done]).
    func execute() async {
        let observers = RunObservers(self)
        let run = self.run
        options.control?.attach(run)
        defer { options.control?.detach(run) }
        await withTaskCancellationHandler {
            await withTaskGroup(of: Void.self) { group in
                let backend = self.backend
                let onExecutor = zip(stages, layers).map { !$1.runsOnWorkers && !$0.awaitsPerItem }
                let preferring = Locked(onExecutor.count { $0 })
                if !onExecutor.contains(true) { backend.stagesEnded() }  // none: the pool threads need not stay
                for (i, stage) in stages.enumerated() {
                    if let executor = backend.stageExecutor, onExecutor[i] {
                        group.addTask(executorPreference: executor) {  // [the run outlives its stages and threads]
                            await stage.run()
                            if preferring.withLock({ left in
                                left -= 1
                                return left == 0
                            }) {
                                backend.stagesEnded()
                            }
                        }
                    } else {
                        group.addTask { await stage.run() }
                    }
                }
            }
        } onCancel: {
            run.cancel()  // [cancelling stops the run]
        }
        // [leftovers counted where they waited] (the stream's link is its consumer's)
        for (i, link) in links.enumerated() where i + 1 < counters.count {
            let left = link.drainDropped()
            counters[i + 1].received.add(left, ordering: .relaxed)
            counters[i + 1].dropped.add(left, ordering: .relaxed)
        }
        // [a stream ends when its consumer is done]: a stream's run ends when its consumer is done with it
        if let consumerGate {
            await consumerGate.wait()
            dropUndelivered(links.last!.drainDropped())
        }
        elapsed.withLock { $0 = ContinuousClock.now - started }
        await observers.finish()
    }

    /// Streaming only ([a stream ends when its consumer is done]): the consumer is done, holding `undelivered` items it
    /// will not hand out. When it `left` before the stream ended, the run is cancelled, and reports rather than throws.
    func consumerDone(undelivered: Int, left: Bool) {
        dropUndelivered(undelivered)
        if left {
            consumerLeft.store(true, ordering: .relaxed)  // before cancel(): read after the run
            run.cancel()
        }
        consumerGate!.open()
    }

    /// Items the last layer emitted that its stream's consumer never received: dropped instead.
    private func dropUndelivered(_ count: Int) {
        counters.last!.emitted.subtract(count, ordering: .relaxed)
        counters.last!.dropped.add(count, ordering: .relaxed)
    }

    /// After execute(): the report, or the error that ended the run (not the cancellation a stream's
    /// consumer made by leaving its loop). The report goes to PipelineOptions.onReport either way.
    func outcome() throws -> PipelineReport {
        let report = makeReport()
        options.onReport?(report)
        run.log?.ended(report, counters: counters, cancelled: run.cancelled, failed: run.failure != nil)
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
                    busy: i == 0 ? nil : .nanoseconds(c.busy.load(ordering: .relaxed)), workers: c.workerCounts)
            }, errors: run.keptErrors, elapsed: elapsed.withLock { $0 } ?? (ContinuousClock.now - started),
            run: run.named?.report())
    }

    func snapshot(final: Bool) -> ProgressSnapshot {
        let elapsed = ContinuousClock.now - started
        let seconds = elapsed.secondsDouble
        let done = counters.last!.emitted.load(ordering: .relaxed)
        let lost = counters.reduce(0) { $0 + $1.skipped.load(ordering: .relaxed) + $1.failed.load(ordering: .relaxed) }
        return ProgressSnapshot(
            layers: zip(layers, counters).map {
                .init(
                    name: $0.name, received: $1.received.load(ordering: .relaxed),
                    emitted: $1.emitted.load(ordering: .relaxed), workers: $1.workerCounts, unclaimed: $1.unclaimedFor)
            },
            queueDepths: links.map(\.depth), queueCapacities: links.map(\.capacity), elapsed: elapsed,
            rate: seconds > 0 ? Double(done) / seconds : 0, isFinal: final,
            generators: counters[0].generators.map { $0.pulled.load(ordering: .relaxed) },
            expected: layers[0].expectedCount, finished: done + lost)
    }
}
