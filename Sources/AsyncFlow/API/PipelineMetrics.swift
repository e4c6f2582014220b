// PipelineMetrics.swift — a running pipeline's counts, queue depths and per-item time through
// apple/swift-metrics (opt in with PipelineOptions.metrics; published by Engine/MetricsPublisher.swift).
import CoreMetrics

/// Opt-in metrics for a pipeline through apple/swift-metrics: set ``PipelineOptions/metrics``.
///
/// Each metric carries `dimensions` plus `("layer", name)`:
/// - Counter `<label>_items`, with `("event", e)` for `e` in `received`, `emitted`, `failed`, `skipped`,
///   `retried`, `dropped` (the report's counts: their totals equal ``PipelineReport``'s);
/// - Gauge `<label>_queue_depth`: items waiting in the queue in front of the layer (not for the source);
/// - Timer `<label>_item_duration`: time in the layer's closure per item, the mean over each interval
///   (not for the source);
/// - Counter `<label>_generator_items`, with `("generator", i)`: items pulled from generator `i` of a
///   merged source (`Layer(merging:)`, counted from 0 in the order given), on the source's layer.
///
/// They are brought up to date every `interval` while the pipeline runs and once more when it ends,
/// whichever way it ends. Without a `factory`, the one bootstrapped with `MetricsSystem.bootstrap` is used.
public struct PipelineMetrics: Sendable {
    public var label: String
    public var dimensions: [(String, String)]
    public var interval: Duration
    public var factory: any MetricsFactory

    public init(
        label: String = "asyncflow", dimensions: [(String, String)] = [], interval: Duration = .seconds(1),
        factory: (any MetricsFactory)? = nil
    ) {
        self.label = label
        self.dimensions = dimensions
        self.interval = interval
        self.factory = factory ?? MetricsSystem.factory
    }
}
