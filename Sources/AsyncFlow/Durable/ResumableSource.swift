// ResumableSource.swift — sources a named run can start again part-way: a random-access collection (by
// index) and the user's own (ResumableSource, ResumableAsyncSource), each given the position to start at.
//
// Invariants:
//  [positions number the source's items] An item's position is its index in the source's order, from 0,
//    the same in every attempt of a run: `items(from: p)` gives the item at position p first.
//  [a resumed source gives only pending positions] A resumed source starts at the checkpoint's watermark and
//    passes over every position committed above it, so each position it gives is not committed; the
//    positions it passes over are at most the items that were in flight (RunProgress's ranges).
//  [a bookmark is at or below the watermark] A checkpoint's bookmark (a source's own place for a position: a file
//    line's byte offset) is for a position at or below the checkpoint's watermark: a commit takes the last bookmark
//    the source recorded at or below its new watermark, or keeps the one before (the watermark only grows). So a
//    source that starts reading at the bookmark and passes over the items up to the watermark gives every pending
//    position.
//  [the pulled mark only grows] `PullMark` holds one past the highest position pulled; it only grows, and a
//    commit reads it after its items were pulled, so a checkpoint's `pulled` covers every position it
//    commits.
import Synchronization

/// A source of a named run that can start again at any position: ``items(from:)`` gives the items from
/// that position on, in the same order every time (positions number the items from 0).
///
/// A file's lines (skip to a line), a table read in a fixed order (`ORDER BY id OFFSET $1`), a log from
/// an offset: anything that can be asked for "the items from the n-th on". An `AsyncSequence` of them
/// is a ``ResumableAsyncSource``. A random-access collection (an Array, a Range) resumes by itself.
public protocol ResumableSource: Sendable {
    associatedtype Items: Sequence & Sendable
    /// The items from `position` on ([positions number the source's items]).
    func items(from position: UInt64) -> Items
}

/// A ``ResumableSource`` whose items arrive asynchronously (a database cursor, a network log).
public protocol ResumableAsyncSource: Sendable {
    associatedtype Items: AsyncSequence & Sendable
    /// The items from `position` on ([positions number the source's items]).
    func items(from position: UInt64) -> Items
}

/// A random-access collection as a ``ResumableSource``: the items from a position are a slice.
@usableFromInline struct CollectionSource<Base: RandomAccessCollection & Sendable>: ResumableSource
where Base.SubSequence: Sendable {
    @usableFromInline let base: Base

    @inlinable init(_ base: Base) { self.base = base }

    @inlinable func items(from position: UInt64) -> Base.SubSequence {
        let offset = Int(clamping: min(position, UInt64(base.count)))
        return base[base.index(base.startIndex, offsetBy: offset)...]
    }
}

/// An item with its source position, as it travels through a named run's layers.
@usableFromInline @frozen struct Positioned<Value> {
    @usableFromInline let position: UInt64
    @usableFromInline let value: Value

    @inlinable init(_ position: UInt64, _ value: Value) {
        self.position = position
        self.value = value
    }

    /// The same position with `transform`'s result.
    @inlinable func map<T>(_ transform: (Value) throws -> T) rethrows -> Positioned<T> {
        Positioned<T>(position, try transform(value))
    }
}

extension Positioned: @unchecked Sendable where Value: Sendable {}

/// One past the highest source position pulled so far ([the pulled mark only grows]); the source sets it, each
/// commit reads it.
@usableFromInline final class PullMark: Sendable {
    @usableFromInline let end = Atomic<UInt64>(0)

    @usableFromInline init() {}

    /// Position `position` was pulled (positions come in increasing order, from one iterator).
    @inlinable func pulled(_ position: UInt64) {
        end.store(position &+ 1, ordering: .relaxed)
    }
}

/// A resumed source's items with their positions ([a resumed source gives only pending positions]): a Sequence
/// over a Sequence, an AsyncSequence over an AsyncSequence.
@usableFromInline struct ResumedItems<Base: Sendable>: Sendable {
    @usableFromInline let base: Base
    @usableFromInline let start: RunProgress
    @usableFromInline let mark: PullMark

    @inlinable init(_ base: Base, start: RunProgress, mark: PullMark) {
        self.base = base
        self.start = start
        self.mark = mark
    }

    /// The position of the item just pulled, or nil when it is committed; the mark is set for a pending one.
    @inlinable static func pending(_ skipping: inout PositionSkipper, mark: PullMark) -> UInt64? {
        guard let position = skipping.next() else { return nil }
        mark.pulled(position)
        return position
    }
}

extension ResumedItems: Sequence where Base: Sequence {
    @inlinable func makeIterator() -> Iterator {
        Iterator(base: base.makeIterator(), skipping: PositionSkipper(start), mark: mark)
    }

    @usableFromInline struct Iterator: IteratorProtocol {
        @usableFromInline var base: Base.Iterator
        @usableFromInline var skipping: PositionSkipper
        @usableFromInline let mark: PullMark

        @inlinable init(base: Base.Iterator, skipping: PositionSkipper, mark: PullMark) {
            self.base = base
            self.skipping = skipping
            self.mark = mark
        }

        @inlinable mutating func next() -> Positioned<Base.Element>? {
            while let value = base.next() {
                if let position = ResumedItems.pending(&skipping, mark: mark) { return Positioned(position, value) }
            }
            return nil
        }
    }
}

extension ResumedItems: AsyncSequence where Base: AsyncSequence {
    @inlinable func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: base.makeAsyncIterator(), skipping: PositionSkipper(start), mark: mark)
    }

    @usableFromInline struct AsyncIterator: AsyncIteratorProtocol {
        @usableFromInline var base: Base.AsyncIterator
        @usableFromInline var skipping: PositionSkipper
        @usableFromInline let mark: PullMark

        @inlinable init(base: Base.AsyncIterator, skipping: PositionSkipper, mark: PullMark) {
            self.base = base
            self.skipping = skipping
            self.mark = mark
        }

        @inlinable mutating func next() async throws -> Positioned<Base.Element>? {
            while let value = try await base.next() {
                if let position = ResumedItems.pending(&skipping, mark: mark) { return Positioned(position, value) }
            }
            return nil
        }
    }
}

/// The positions a resumed source walks from the watermark on, telling which to give and which (committed
/// above the watermark) to pass over ([a resumed source gives only pending positions]).
@usableFromInline struct PositionSkipper {
    @usableFromInline var position: UInt64
    /// The committed ranges still ahead, in order.
    @usableFromInline var ahead: ArraySlice<Range<UInt64>>

    @inlinable init(_ start: RunProgress) {
        position = start.watermark
        ahead = start.above[...]
    }

    /// The position of the item just pulled, or nil when it is committed (pass it over).
    @inlinable mutating func next() -> UInt64? {
        let p = position
        position &+= 1
        guard let range = ahead.first, p >= range.lowerBound else { return p }
        if position == range.upperBound { ahead.removeFirst() }
        return nil
    }
}

/// Where a source can be read again from: a position, and the source's own place for that position's item
/// (for ``FileLines``, the byte offset its line starts at). A named run keeps the last one its source recorded
/// at or below its watermark in its checkpoint ([a bookmark is at or below the watermark]).
public struct SourceBookmark: Sendable, Hashable {
    public let position: UInt64
    public let offset: UInt64

    public init(position: UInt64, offset: UInt64) {
        self.position = position
        self.offset = offset
    }

    /// `POSITION@OFFSET`, as a checkpoint's text holds it.
    init?(_ text: Substring) {
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, let position = UInt64(parts[0]), let offset = UInt64(parts[1]) else { return nil }
        self.init(position: position, offset: offset)
    }
}

/// The bookmarks a named run's source recorded as it read, in position order, for the commits to take from
/// ([a bookmark is at or below the watermark]).
final class SourceBookmarks: Sendable {
    let recorded = Locked<[SourceBookmark]>([])

    /// The source read the item at `bookmark.position` (positions recorded in increasing order).
    func record(_ bookmark: SourceBookmark) { recorded.withLock { $0.append(bookmark) } }

    /// The last bookmark recorded at or below `watermark`, if any; those before it are let go.
    func latest(atOrBelow watermark: UInt64) -> SourceBookmark? {
        recorded.withLock { recorded in
            guard let last = recorded.lastIndex(where: { $0.position <= watermark }) else { return nil }
            recorded.removeFirst(last)
            return recorded.first
        }
    }
}
