/// What a finished pipeline did: exact counts per layer, the errors kept, time and rate.
///
/// For every layer, `received == emitted + skipped + failed + dropped`; the first layer's `received` is
/// what was pulled from the source, and the last layer's `emitted` is what completed.
public struct PipelineReport: Sendable, CustomStringConvertible {
    public let layers: [LayerReport]
    /// Errors of skipped items (the first 16), with their layer.
    public let errors: [LayerError]
    public let elapsed: Duration
    /// A named run's start and commits (a pipeline whose last layer commits,
    /// ``Layer/init(committing:run:batchesOf:within:name:capacity:onError:_:)``); nil for the others.
    public let run: NamedRunReport?

    init(layers: [LayerReport], errors: [LayerError], elapsed: Duration, run: NamedRunReport? = nil) {
        self.layers = layers
        self.errors = errors
        self.elapsed = elapsed
        self.run = run
    }

    /// Items pulled from the source.
    public var pulled: Int { layers.first?.received ?? 0 }
    /// Items the last layer finished.
    public var completed: Int { layers.last?.emitted ?? 0 }
    public var skipped: Int { layers.reduce(0) { $0 + $1.skipped } }
    public var failed: Int { layers.reduce(0) { $0 + $1.failed } }
    /// Items abandoned because the pipeline stopped (error or cancellation) before they were finished.
    public var dropped: Int { layers.reduce(0) { $0 + $1.dropped } }
    /// Completed items per second.
    public var itemsPerSecond: Double {
        let s = elapsed.secondsDouble
        return s > 0 ? Double(completed) / s : 0
    }

    public var description: String {
        var lines = layers.map(\.description)
        lines.append("\(completed) items in \(humanDuration(elapsed)), \(humanRate(itemsPerSecond))")
        if let run { lines.append(run.description) }
        return lines.joined(separator: "\n")
    }
}

/// One layer's exact counts.
public struct LayerReport: Sendable, CustomStringConvertible {
    public let name: String
    public let received: Int
    public let emitted: Int
    public let failed: Int
    public let skipped: Int
    public let retried: Int
    public let dropped: Int
    /// Time spent in the layer's closure, summed over its workers or tasks (nil for the source). For an
    /// async closure this includes its waits.
    public let busy: Duration?
    /// For a layer whose batches are done by other processes (a distributed layer: AsyncFlowPostgres),
    /// what each of them did, by worker id; empty for the others. Batches that no worker finished (dead
    /// letters, a stopped run) are in no worker's count.
    public let workers: [WorkerCount]

    public var description: String {
        var s = "\(name): in \(received), out \(emitted)"
        if failed > 0 { s += ", failed \(failed)" }
        if skipped > 0 { s += ", skipped \(skipped)" }
        if retried > 0 { s += ", retried \(retried)" }
        if dropped > 0 { s += ", dropped \(dropped)" }
        if let busy { s += ", busy \(humanDuration(busy))" }
        if !workers.isEmpty { s += "; workers: " + workers.map(\.description).joined(separator: ", ") }
        return s
    }
}

extension LayerReport {
    /// A layer that did nothing (a named run that had finished).
    init(empty name: String, busy: Duration?) {
        self.init(
            name: name, received: 0, emitted: 0, failed: 0, skipped: 0, retried: 0, dropped: 0, busy: busy, workers: [])
    }
}

/// What one remote worker did for a layer: the batches whose results it wrote, and their items (results,
/// skipped and failed).
public struct WorkerCount: Sendable, Equatable, CustomStringConvertible {
    public let worker: String
    public private(set) var batches: Int
    public private(set) var items: Int

    @usableFromInline init(worker: String, batches: Int, items: Int) {
        self.worker = worker
        self.batches = batches
        self.items = items
    }

    @usableFromInline mutating func add(items: Int) {
        batches += 1
        self.items += items
    }

    public var description: String { "\(worker) \(items) items in \(batches) batches" }
}

/// An error a layer's closure threw for an item, with the layer's name.
public struct LayerError: Sendable, CustomStringConvertible {
    public let layer: String
    public let error: any Error

    public var description: String { "\(layer): \(error)" }
}
