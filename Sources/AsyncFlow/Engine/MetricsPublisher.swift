// MetricsPublisher.swift — publishes a run's counters through apple/swift-metrics (PipelineMetrics).
//
// Invariants:
//  [metrics sampled never per item] Metrics are published from the layer counters by one sampler task every `interval`,
//    and once more after every stage has ended ([observers end with the report's figures]): nothing is added on the
//    per-item path, and the counters' totals equal the final report's counts.
//  [metric publishes never overlap] publish() runs under `last`'s lock, so the sampler and the final publish never
//    interleave and each increment is the difference since the previous publish (never negative: the counts only grow).
//    The per-worker counters' lock is taken only inside it.
import CoreMetrics

/// Publishes one run's counters ([metrics sampled never per item], [metric publishes never overlap]).
final class MetricsPublisher: Sendable {
    static let events = ["received", "emitted", "failed", "skipped", "retried", "dropped"]

    struct LayerMetrics {
        let counters: [Counter]  // in `events` order
        let depth: Gauge?
        let duration: CoreMetrics.Timer?
    }

    let layers: [LayerMetrics]
    /// A merged source's per-generator counters (empty for a single source).
    let generators: [Counter]
    /// What was published last, per layer: the six counts, then busy nanoseconds; then one more row: the
    /// generators' counts.
    let last: Locked<[[Int]]>
    /// A distributed layer's per-worker counters (`<label>_worker_items`, made when a worker first
    /// appears) and the items published for each; touched only under `last`'s lock ([metric publishes never overlap]).
    let workers = Locked<[WorkerKey: (counter: Counter, items: Int)]>([:])
    /// A distributed layer's `<label>_unclaimed_seconds` gauge, made when its chunks first wait unclaimed
    /// (LayerCounters.unclaimed), then recorded at every publish; touched only under `last`'s lock.
    let unclaimed = Locked<[Int: Gauge]>([:])
    let options: PipelineMetrics
    let layerNames: [String]

    struct WorkerKey: Hashable {
        let layer: Int
        let worker: String
    }

    init(_ options: PipelineMetrics, layerNames: [String], generators: Int) {
        self.options = options
        self.layerNames = layerNames
        layers = layerNames.enumerated().map { i, name in
            let dims = options.dimensions + [("layer", name)]
            return LayerMetrics(
                counters: Self.events.map {
                    Counter(
                        label: "\(options.label)_items", dimensions: dims + [("event", $0)], factory: options.factory)
                },
                depth: i == 0
                    ? nil : Gauge(label: "\(options.label)_queue_depth", dimensions: dims, factory: options.factory),
                duration: i == 0
                    ? nil
                    : CoreMetrics.Timer(
                        label: "\(options.label)_item_duration", dimensions: dims, factory: options.factory))
        }
        self.generators = (0..<generators).map {
            Counter(
                label: "\(options.label)_generator_items",
                dimensions: options.dimensions + [("layer", layerNames[0]), ("generator", String($0))],
                factory: options.factory)
        }
        last = Locked(
            layerNames.map { _ in Array(repeating: 0, count: Self.events.count + 1) } + [
                Array(repeating: 0, count: generators)
            ])
    }

    /// Publish what changed since the last call; `depths[i]` is the queue in front of layer i + 1.
    func publish(_ counters: [LayerCounters], depths: [Int]) {
        last.withLock { last in
            for (i, c) in counters.enumerated() {
                let now = [
                    c.received.load(ordering: .relaxed), c.emitted.load(ordering: .relaxed),
                    c.failed.load(ordering: .relaxed), c.skipped.load(ordering: .relaxed),
                    c.retried.load(ordering: .relaxed), c.dropped.load(ordering: .relaxed),
                    c.busy.load(ordering: .relaxed),
                ]
                let m = layers[i]
                for e in 0..<Self.events.count where now[e] > last[i][e] {
                    m.counters[e].increment(by: now[e] - last[i][e])
                }
                // items the closure finished with this interval: emitted, failed or skipped
                let items = (now[1] + now[2] + now[3]) - (last[i][1] + last[i][2] + last[i][3])
                if let duration = m.duration, items > 0 {
                    duration.recordNanoseconds((now[6] - last[i][6]) / items)
                }
                if i > 0, i - 1 < depths.count { m.depth?.record(depths[i - 1]) }
                last[i] = now
                for count in c.workerCounts { publish(count, layer: i) }
                publishUnclaimed(c.unclaimed.load(ordering: .relaxed), layer: i)
            }
            let g = counters.count
            for (k, count) in counters[0].generators.enumerated() {
                let now = count.pulled.load(ordering: .relaxed)
                if now > last[g][k] { generators[k].increment(by: now - last[g][k]) }
                last[g][k] = now
            }
        }
    }

    /// How long a distributed layer's chunks have waited unclaimed, in seconds (0: none), once they first have
    /// (called under `last`'s lock).
    private func publishUnclaimed(_ nanoseconds: Int, layer: Int) {
        unclaimed.withLock { gauges in
            guard nanoseconds > 0 || gauges[layer] != nil else { return }
            let gauge =
                gauges[layer]
                ?? Gauge(
                    label: "\(options.label)_unclaimed_seconds",
                    dimensions: options.dimensions + [("layer", layerNames[layer])], factory: options.factory)
            gauges[layer] = gauge
            gauge.record(Double(nanoseconds) / 1e9)
        }
    }

    /// A remote worker's items since the last publish (called under `last`'s lock).
    private func publish(_ count: WorkerCount, layer: Int) {
        workers.withLock { workers in
            let key = WorkerKey(layer: layer, worker: count.worker)
            let entry =
                workers[key]
                ?? (
                    Counter(
                        label: "\(options.label)_worker_items",
                        dimensions: options.dimensions + [("layer", layerNames[layer]), ("worker", count.worker)],
                        factory: options.factory), 0
                )
            if count.items > entry.items { entry.counter.increment(by: count.items - entry.items) }
            workers[key] = (entry.counter, count.items)
        }
    }
}
