// RunProgress.swift — how far a named run has got, as one small value that a collector can save in the
// same transaction as the rows it writes: the source positions committed so far. With unordered parallel
// layers items reach the collector out of order, so progress is not one position: it is a low watermark
// and the committed positions above it, which are bounded by what can be in flight.
//
// Invariants:
//  [committed is the watermark and above] A position is committed exactly when it is below `watermark` or
//    inside one of the ranges of `above`: nothing else is remembered, so a resume neither repeats a
//    committed item nor skips an uncommitted one.
//  [above stays sorted and apart] `above` is sorted, its ranges are non-empty, none starts at or below
//    the watermark, and no two touch: a commit that closes a gap merges ranges, and one that reaches the
//    watermark moves it. So the value has one form for each set of committed positions, and its size is
//    the number of gaps, at most the items that were in flight.
//  [a position commits once] Committing a position that is already committed is refused (it is counted,
//    never applied twice): in an exactly-once run it means a row was written twice.

/// The source positions of a named run that are committed: every position below ``watermark``, and the
/// ranges in ``above``. Positions number the source's items from 0, in the order the source gives them.
///
/// A collector that writes to a database saves the progress in the same transaction as its rows (its
/// ``encoded`` form is one short string), so what was committed and where the source resumes can never
/// disagree. On a resume the source skips every committed position: ``pending(below:)`` lists the ones
/// still to do.
public struct RunProgress: Sendable, Hashable, CustomStringConvertible {
    /// Every position below it is committed.
    public private(set) var watermark: UInt64
    /// The committed positions above the watermark, as sorted ranges that neither touch each other nor
    /// the watermark ([above stays sorted and apart]).
    public private(set) var above: [Range<UInt64>]

    /// Nothing committed.
    public init() {
        watermark = 0
        above = []
    }

    /// A progress read back: `above` must be sorted, non-empty ranges above the watermark that do not
    /// touch (as ``above`` gives them).
    public init(watermark: UInt64, above: [Range<UInt64>]) throws(RunProgressError) {
        var last = watermark
        for range in above {
            guard !range.isEmpty, range.lowerBound > last else {
                throw RunProgressError(
                    "ranges above the watermark \(watermark) must be non-empty, sorted and apart: \(above)")
            }
            last = range.upperBound
        }
        self.watermark = watermark
        self.above = above
    }

    /// How many positions are committed.
    public var committed: UInt64 {
        above.reduce(watermark) { $0 + UInt64($1.count) }
    }

    /// Whether `position` is committed ([committed is the watermark and above]).
    public func isCommitted(_ position: UInt64) -> Bool {
        if position < watermark { return true }
        let i = firstRange(endingAfter: position)
        return i < above.count && above[i].contains(position)
    }

    /// Commit the positions `positions`; returns how many of them were committed already, which are left
    /// as they are ([a position commits once]).
    @discardableResult
    public mutating func commit(_ positions: Range<UInt64>) -> UInt64 {
        var repeated: UInt64 = 0
        var rest = positions
        while !rest.isEmpty {
            if rest.lowerBound < watermark {  // the part below the watermark (which may have just moved)
                let cut = min(watermark, rest.upperBound)
                repeated += cut - rest.lowerBound
                rest = cut..<rest.upperBound
                continue
            }
            let i = firstRange(endingAfter: rest.lowerBound)
            if i < above.count, above[i].lowerBound <= rest.lowerBound {  // the start lies in a committed range
                let cut = min(above[i].upperBound, rest.upperBound)
                repeated += cut - rest.lowerBound
                rest = cut..<rest.upperBound
                continue
            }
            // rest starts in a gap, which ends at the next committed range (or never)
            let gapEnd = i < above.count ? min(above[i].lowerBound, rest.upperBound) : rest.upperBound
            insert(rest.lowerBound..<gapEnd, at: i)
            rest = gapEnd..<rest.upperBound
        }
        return repeated
    }

    /// Commit one position; false if it was committed already ([a position commits once]).
    @discardableResult
    public mutating func commit(_ position: UInt64) -> Bool {
        commit(position..<(position + 1)) == 0
    }

    /// The positions below `end` not yet committed, as sorted ranges: what a resumed run must still do.
    public func pending(below end: UInt64) -> [Range<UInt64>] {
        var gaps: [Range<UInt64>] = []
        var from = watermark
        for range in above {
            if from >= end { break }
            if range.lowerBound > from { gaps.append(from..<min(range.lowerBound, end)) }
            from = range.upperBound
        }
        if from < end { gaps.append(from..<end) }
        return gaps
    }

    /// The progress as one short string (`"1000"`, `"1000;1002-1005,1010-1011"`: the watermark, then the
    /// ranges above it, each `start-end` with `end` exclusive), to save beside the rows it covers.
    public var encoded: String {
        above.isEmpty
            ? String(watermark)
            : "\(watermark);" + above.map { "\($0.lowerBound)-\($0.upperBound)" }.joined(separator: ",")
    }

    /// A progress saved with ``encoded``.
    public init(encoded text: String) throws(RunProgressError) {
        let parts = text.split(separator: ";", omittingEmptySubsequences: false)
        guard parts.count <= 2, let watermark = UInt64(parts[0]) else {
            throw RunProgressError("\"\(text)\" is not a run's progress (expected WATERMARK[;START-END,...])")
        }
        var above: [Range<UInt64>] = []
        if parts.count == 2 {
            for item in parts[1].split(separator: ",", omittingEmptySubsequences: false) {
                let bounds = item.split(separator: "-", omittingEmptySubsequences: false)
                guard bounds.count == 2, let start = UInt64(bounds[0]), let end = UInt64(bounds[1]), start <= end else {
                    throw RunProgressError("\"\(text)\": \"\(item)\" is not a range START-END")
                }
                above.append(start..<end)
            }
        }
        do { try self.init(watermark: watermark, above: above) } catch {
            throw RunProgressError("\"\(text)\": \(error.description)")
        }
    }

    public var description: String {
        above.isEmpty
            ? "\(watermark) committed"
            : "\(committed) committed: below \(watermark), and \(above.count) ranges above it"
    }

    /// The index of the first range of `above` whose end is past `position` (above.count if none).
    private func firstRange(endingAfter position: UInt64) -> Int {
        var (low, high) = (0, above.count)
        while low < high {
            let mid = (low + high) / 2
            if above[mid].upperBound <= position { low = mid + 1 } else { high = mid }
        }
        return low
    }

    /// Add `range`, which lies in the gap before above[i], merging it with its neighbours and the
    /// watermark where they touch ([above stays sorted and apart]).
    private mutating func insert(_ range: Range<UInt64>, at i: Int) {
        var range = range
        var i = i
        if i < above.count, above[i].lowerBound == range.upperBound {
            range = range.lowerBound..<above[i].upperBound
            above.remove(at: i)
        }
        if i > 0, above[i - 1].upperBound == range.lowerBound {
            range = above[i - 1].lowerBound..<range.upperBound
            above.remove(at: i - 1)
            i -= 1
        }
        if range.lowerBound == watermark {
            watermark = range.upperBound
        } else {
            above.insert(range, at: i)
        }
    }
}

/// A run's progress could not be read: the text or the ranges are not a progress (``RunProgress``).
public struct RunProgressError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String

    init(_ message: String) { description = message }
}
