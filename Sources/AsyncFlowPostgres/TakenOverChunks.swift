// TakenOverChunks.swift — the chunks a named run's coordinator took over from the coordinator run before it
// ([a taking-over coordinator keeps what was done], Coordinator.swift), found by their items' source positions,
// and how a chunk's positions are kept in the database (as ranges). A value type: the coordinator holds it
// under a lock.
//
// Invariants:
//  [a taken-over chunk's items are found by position] A taken-over chunk holds the items at its positions, in its
//    order: the item at a chunk's i-th position gets the chunk's i-th result. Each position is taken once (a
//    resumed source gives a pending position once), and a chunk is let go once all its positions were taken,
//    so what the coordinator holds for taken-over chunks only shrinks. Positions committed before the take-over
//    are never asked for; their chunks are let go when the layer ends.
#if Postgres  // the package trait that brings postgres-nio (Package.swift)
    /// The chunks taken over, each with `Pending` (what waits for the chunk's results).
    struct TakenOverChunks<Pending: Sendable>: Sendable {
        /// Where each position not yet taken is: its chunk and its index there.
        private var places: [UInt64: (seq: Int64, index: Int)] = [:]
        /// The chunks with positions not yet taken: what waits for their results, and how many are left.
        private var chunks: [Int64: (pending: Pending, left: Int)] = [:]

        /// No chunk taken over.
        init() {}

        /// `taken`: each chunk's seq and its positions, in its order; `pending(seq, count)` makes what waits for
        /// the results of a chunk of `count` items.
        init(_ taken: [(seq: Int64, positions: [UInt64])], pending: (Int64, Int) -> Pending) {
            for (seq, positions) in taken where !positions.isEmpty {
                chunks[seq] = (pending(seq, positions.count), positions.count)
                for (index, position) in positions.enumerated() { places[position] = (seq, index) }
            }
        }

        /// The chunks not let go yet.
        var seqs: [Int64] { Array(chunks.keys) }

        /// One item of a call that belongs to a taken-over chunk.
        struct Taken: Sendable {
            /// The item's index in the call, its chunk, and its index in the chunk.
            let item: Int
            let seq: Int64
            let index: Int
            let pending: Pending
        }

        /// Which of a call's items (at `positions`) belong to taken-over chunks
        /// ([a taken-over chunk's items are found by position]); chunks whose last position this takes are let go.
        mutating func take(_ positions: [UInt64]) -> [Taken] {
            guard !places.isEmpty else { return [] }
            var taken: [Taken] = []
            for (item, position) in positions.enumerated() {
                guard let (seq, index) = places.removeValue(forKey: position), let chunk = chunks[seq] else { continue }
                taken.append(Taken(item: item, seq: seq, index: index, pending: chunk.pending))
                if chunk.left == 1 { chunks[seq] = nil } else { chunks[seq]?.left -= 1 }
            }
            return taken
        }
    }

    /// A chunk's positions as the database keeps them ([a named run's chunks keep their positions]): runs of
    /// consecutive positions, each as its first and one past its last (a chunk's items mostly come in source order,
    /// so a chunk of 1,000 is usually one range).
    enum PositionRanges {
        static func encode(_ positions: [UInt64]) -> [Int64] {
            var ranges: [Int64] = []
            var start: UInt64? = nil
            var end: UInt64 = 0
            for p in positions {
                if start != nil, p == end {
                    end += 1
                    continue
                }
                if let s = start { ranges += [Int64(bitPattern: s), Int64(bitPattern: end)] }
                start = p
                end = p &+ 1
            }
            if let s = start { ranges += [Int64(bitPattern: s), Int64(bitPattern: end)] }
            return ranges
        }

        /// The positions `ranges` holds, or nil when it is not a list of ranges.
        static func decode(_ ranges: [Int64]) -> [UInt64]? {
            guard ranges.count.isMultiple(of: 2) else { return nil }
            var positions: [UInt64] = []
            for i in stride(from: 0, to: ranges.count, by: 2) {
                let (lower, upper) = (UInt64(bitPattern: ranges[i]), UInt64(bitPattern: ranges[i + 1]))
                guard lower < upper, upper - lower <= UInt64(Int32.max) else { return nil }
                positions += lower..<upper
            }
            return positions
        }
    }
#endif
