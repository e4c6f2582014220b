// BatchSizer.swift — how many items a loop takes per pop.
//
// Invariant:
//  [batches sized by measured work] A fixed sizer always takes `limit`. An adaptive one (CPU layers, async layers with
//    concurrency) takes `first` items first, then about `target` ns of work by the running average of the cost per
//    item, between 1 and `limit`: cheap items move in full batches; slow ones in small batches, so the last items of a
//    run are not left queued behind one busy worker while the others are idle.
@usableFromInline
struct BatchSizer: Sendable {
    @usableFromInline let limit: Int
    @usableFromInline let adaptive: Bool
    @usableFromInline let target: Double
    @usableFromInline let first: Int
    @usableFromInline var nanosecondsPerItem = 0.0

    /// CPU layers: 100 µs of work per pop, 16 items first to measure.
    @inlinable init(limit: Int, adaptive: Bool, target: Double = 100_000, first: Int = 16) {
        self.limit = limit
        self.adaptive = adaptive
        self.target = target
        self.first = first
    }

    @inlinable var size: Int {
        guard adaptive else { return limit }
        guard nanosecondsPerItem > 0 else { return min(limit, first) }  // first batch: small, to measure
        return max(1, min(limit, Int(target / nanosecondsPerItem)))
    }

    @inlinable mutating func record(items: Int, nanoseconds: Double) {
        guard adaptive, items > 0 else { return }
        let perItem = max(1, nanoseconds) / Double(items)
        nanosecondsPerItem = nanosecondsPerItem == 0 ? perItem : 0.8 * nanosecondsPerItem + 0.2 * perItem
    }
}
