// RunLog.swift — what one run tells PipelineOptions.logger (apple/swift-log).
//
// Invariants:
//  [nothing logged per item] Nothing is logged per item: the start (one message), a drain, the failure, the end (one
//    message), and errors of skipped and retried items: the first `perLayer` of each kind in each layer (counted with
//    one atomic add per error), then only counted, and the end says how many were not logged.
//  [no item in the log] No item is logged: only layer names, kinds, sizes, pool settings, and the errors the closures
//    threw (as those errors describe themselves).
import CFlow
import Logging
import Synchronization

@usableFromInline final class RunLog: Sendable {
    @usableFromInline static let perLayer = 5
    @usableFromInline let logger: Logger

    init(_ logger: Logger) { self.logger = logger }

    /// The run's shape ([nothing logged per item]): one line of layers, the pool settings as metadata.
    func started(_ layers: [ErasedLayer], sizes: RunSizes, options: PipelineOptions, pool: flow_config) {
        let shape = layers.enumerated().map { i, layer -> String in
            var parts: [String] = []
            switch layer.kind {
            case .source(let generators, let count):
                parts.append(generators > 1 ? "source, \(generators) generators merged" : "source")
                if let count { parts.append("\(count) items") }
            case .cpu: parts.append("cpu, \(sizes.workers[i]) workers")
            case .async(let c): parts.append("async, concurrency \(c)")
            case .serial: parts.append("serial")
            case .batches(let size, let within):
                parts.append("batches of \(size)" + (within.map { " within \(humanDuration($0))" } ?? ""))
            case .batchMap(let size, let within, let c):
                parts.append("batches of \(size)" + (within.map { " within \(humanDuration($0))" } ?? ""))
                parts.append("concurrency \(c)")
            }
            if i > 0 { parts.append("queue \(sizes.links[i - 1])") }
            if layer.ordered { parts.append("ordered") }
            if layer.onError != .fail { parts.append("onError \(layer.onError)") }
            return "\(layer.name) [\(parts.joined(separator: ", "))]"
        }
        var cpus = [CChar](repeating: 0, count: 256)
        withUnsafePointer(to: pool.cpus) { flow_cpulist_format($0, &cpus, cpus.count) }
        let pin = ["none", "compact", "spread"][Int(pool.pin.rawValue)]
        let sched = ["normal", "batch", "idle"][Int(pool.sched.rawValue)]
        logger.info(
            "pipeline starting: \(shape.joined(separator: " → "))",
            metadata: [
                "backend": "\(options.backend)", "batchSize": "\(options.batchSize)",
                "cpus": "\(String(decoding: cpus.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))",
                "pin": "\(pin)", "spinNanoseconds": "\(pool.spin_ns)", "scheduling": "\(sched)", "nice": "\(pool.nice)",
                "sliceNanoseconds": "\(pool.slice_ns)",
            ])
    }

    /// An item's error that its layer's policy skipped ([nothing logged per item]).
    @usableFromInline func skipped(_ error: any Error, layer: String, counters: LayerCounters, items: Int) {
        guard counters.skipErrors.add(1, ordering: .relaxed).newValue <= Self.perLayer else { return }
        logger.warning(
            "\(layer): skipped \(items == 1 ? "an item" : "a batch of \(items) items"): \(error)",
            metadata: ["layer": "\(layer)"])
    }

    /// An item's error that its layer's policy retries ([nothing logged per item]).
    @usableFromInline func retried(_ error: any Error, layer: String, counters: LayerCounters, items: Int) {
        guard counters.retryErrors.add(1, ordering: .relaxed).newValue <= Self.perLayer else { return }
        logger.notice(
            "\(layer): retrying \(items == 1 ? "an item" : "a batch of \(items) items") after: \(error)",
            metadata: ["layer": "\(layer)"])
    }

    /// A named run's start: where it resumes, what was done before.
    func resuming(_ run: NamedRunReport) { logger.info("\(run.start)", metadata: ["run": "\(run.run)"]) }

    /// A named run that had finished: nothing runs.
    func nothingToDo(_ report: PipelineReport) {
        logger.info("pipeline finished before:\n\(report.description)", metadata: ["run": "\(report.run?.run ?? "")"])
    }

    func draining() { logger.info("pipeline draining: no more pulls; finishing what was pulled") }

    func failed(_ error: any Error, layer: String) {
        logger.error("pipeline failed in \(layer): \(error)", metadata: ["layer": "\(layer)"])
    }

    /// The end ([nothing logged per item]): how it ended, the report, and the errors not logged one by one.
    func ended(_ report: PipelineReport, counters: [LayerCounters], cancelled: Bool, failed: Bool) {
        var lines = [report.description]
        for (layer, c) in zip(report.layers, counters) {
            let errors = [c.skipErrors.load(ordering: .relaxed), c.retryErrors.load(ordering: .relaxed)]
            for (kind, n) in zip(["skipped", "retried"], errors) {
                let more = n - Self.perLayer
                if more > 0 { lines.append("\(layer.name): \(more) more \(kind) errors not logged") }
            }
        }
        let how = cancelled ? "cancelled" : failed ? "failed" : "finished"
        logger.info("pipeline \(how):\n\(lines.joined(separator: "\n"))")
    }
}
