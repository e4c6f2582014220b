/// A view of a running pipeline, handed to ``PipelineOptions/progress`` (and drawn by
/// ``PipelineOptions/progressBar``).
public struct ProgressSnapshot: Sendable, CustomStringConvertible {
    /// Per layer, in pipeline order.
    public let layers: [LayerProgress]
    /// Items waiting in the queue in front of each layer after the first (approximate).
    public let queueDepths: [Int]
    /// The capacity of each of those queues.
    public let queueCapacities: [Int]
    public let elapsed: Duration
    /// Items per second finished by the last layer since the start.
    public let rate: Double
    /// Whether this is the final call, after the pipeline ended.
    public let isFinal: Bool
    /// Items pulled from each generator of a merged source (`Layer(merging:)`), in the order given;
    /// empty for a single source. They add up to the first layer's `received`.
    public let generators: [Int]
    /// Items the source will give, when known up front (a `RandomAccessCollection` source, such as an
    /// Array or a Range, or a Sequence whose `underestimatedCount` says; merged ones when all do); nil
    /// otherwise.
    public let expected: Int?
    /// Items that went all the way: finished by the last layer, or skipped or failed on the way.
    public let finished: Int

    public struct LayerProgress: Sendable {
        public let name: String
        public let received: Int
        public let emitted: Int
        /// A distributed layer's remote workers so far (``LayerReport/workers``); empty for the others.
        public let workers: [WorkerCount]
        /// How long a distributed layer's chunks have waited with no worker claiming any (its coordinator
        /// checks when no result has come for 10 s); nil when none waits unclaimed, and for other layers.
        public let unclaimed: Duration?
    }

    /// The time left at the rate so far, when the source's count is known and items have finished.
    public var eta: Duration? {
        guard let expected, finished > 0, !isFinal else { return nil }
        let seconds = elapsed.secondsDouble * Double(max(0, expected - finished)) / Double(finished)
        return .nanoseconds(Int64(seconds * 1e9))
    }

    /// Each queue's fill, 0...1.
    public var queueFill: [Double] {
        zip(queueDepths, queueCapacities).map { $1 > 0 ? min(1, Double($0) / Double($1)) : 0 }
    }

    public var description: String {
        var parts = layers.map { "\($0.name) \($0.received)→\($0.emitted)" }.joined(separator: " | ")
        if !generators.isEmpty { parts += " (generators " + generators.map(String.init).joined(separator: "+") + ")" }
        return "\(parts) | queues \(queueDepths) | \(humanDuration(elapsed)) | \(humanRate(rate))"
    }
}
