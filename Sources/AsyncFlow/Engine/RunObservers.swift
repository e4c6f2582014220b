// RunObservers.swift — what watches a run from beside it: the progress handler, the progress bar and the
// metrics sampler (PipelineOptions.progress, .progressBar, .metrics), as tasks started with the run and
// finished after it.
//
// Invariant:
//  [observers end with the report's figures] finish() is called once, after every stage has ended and the leftovers are
//    counted: it stops the tasks (and waits for the bar's), then publishes the final metrics
//    ([metrics sampled never per item]), calls progress with the final snapshot and draws it as the bar's last line, so
//    all end with the report's exact figures.
struct RunObservers {
    let run: PipelineRun
    let progress: Task<Void, Never>?
    let bar: ProgressBar?
    let barTask: Task<Void, Never>?
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
        let bar = options.progressBar ? ProgressBar(descriptor: options.progressBarDescriptor) : nil
        self.bar = bar
        barTask = bar.map { bar in
            Task {
                while !Task.isCancelled {
                    bar.draw(run.snapshot(final: false))
                    try? await Task.sleep(for: ProgressBar.interval)
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

    /// [observers end with the report's figures].
    func finish() async {
        progress?.cancel()
        barTask?.cancel()
        await barTask?.value
        if let sampler, let publisher {
            sampler.cancel()
            await sampler.value
            publisher.publish(run.counters, depths: run.links.map(\.depth))
        }
        if run.options.progress != nil || bar != nil {
            let final = run.snapshot(final: true)
            run.options.progress?(final)
            bar?.draw(final)
        }
    }
}
