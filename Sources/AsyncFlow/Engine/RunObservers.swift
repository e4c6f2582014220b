// RunObservers.swift — what watches a run from beside it: the progress handler and the metrics sampler
// (PipelineOptions.progress, .metrics), as tasks started with the run and finished after it.
//
// Invariant:
//  V1. finish() is called once, after every stage has ended and the leftovers are counted: it stops the
//      tasks, then publishes the final metrics (MetricsPublisher M1) and calls progress with the final
//      snapshot, so both end with the report's exact figures.
struct RunObservers {
    let run: PipelineRun
    let progress: Task<Void, Never>?
    let publisher: MetricsPublisher?
    let sampler: Task<Void, Never>?

    init(_ run: PipelineRun) {
        self.run = run
        let options = run.options
        progress = options.progress.map { handler in
            Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: options.progressInterval)
                    if Task.isCancelled { break }
                    handler(run.snapshot(final: false))
                }
            }
        }
        let publisher = options.metrics.map {
            MetricsPublisher($0, layerNames: run.layers.map(\.name), generators: run.layers[0].generators)
        }
        self.publisher = publisher
        sampler = publisher.map { publisher in
            Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: options.metrics!.interval)
                    publisher.publish(run.counters, depths: run.links.map(\.depth))
                }
            }
        }
    }

    /// V1.
    func finish() async {
        progress?.cancel()
        if let sampler, let publisher {
            sampler.cancel()
            await sampler.value
            publisher.publish(run.counters, depths: run.links.map(\.depth))
        }
        if let handler = run.options.progress { handler(run.snapshot(final: true)) }
    }
}
