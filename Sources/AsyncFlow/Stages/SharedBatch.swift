// SharedBatch.swift — the batch one task of an async layer has popped, which the layer's other tasks may take part of
// once the input has ended ([async items move in shared batches]), so a task whose closure has slowed down does not
// keep the last items of a run to itself while the others are idle.
//
// Invariants:
//  [each shared item taken once] `state` packs (generation: 32 bits, next: 16, end: 16); the batch's items not yet
//    taken are items[next..<end]. The owner takes from the front (next + 1), a taker from the back (end - k), each with
//    one CAS on `state`, so every item is taken once, by one task.
//  [takers see only published batches] publish() stores a new generation after the items are in the buffer (release); a
//    taker loads `state` (acquire) before it moves items out, and its CAS against an older batch fails (the generation
//    differs), so it never takes from a batch it did not see published.
//  [no refill while a taker copies] A taker announces itself in `takers` before it loads `state` and leaves after it
//    has moved its items out. The owner refills or frees its buffer only after retire(): it has seen the batch empty
//    and then `takers == 0` (sequentially consistent on both sides, so a taker that arrives later sees the batch empty,
//    or a newer batch).
import Synchronization

@usableFromInline final class SharedBatch<Item>: @unchecked Sendable {
    // @unchecked: `items` is written by the owner before its first publish() ([takers see only published batches]
    // orders it for takers).
    @usableFromInline let state = Atomic<UInt64>(0)
    @usableFromInline let takers = Atomic<Int>(0)
    @usableFromInline var items: UnsafeMutablePointer<Item>?

    /// The most items a batch may hold (16 bits of `state` each for next and end).
    @inlinable static var limit: Int { 4_096 }

    @inlinable init() {}

    @inlinable static func unpack(_ s: UInt64) -> (next: Int, end: Int) {
        (Int((s >> 16) & 0xFFFF), Int(s & 0xFFFF))
    }

    /// The owner: the buffer its batches are popped into (before the first publish).
    @inlinable func attach(_ buffer: UnsafeMutablePointer<Item>) { items = buffer }

    /// The owner: items[0..<count] are a new batch ([takers see only published batches]).
    @inlinable func publish(_ count: Int) {
        let generation = (state.load(ordering: .relaxed) >> 32) &+ 1
        state.store((generation << 32) | UInt64(count), ordering: .releasing)
    }

    /// The owner: the index of the next item of its batch, or nil when none is left ([each shared item taken once]).
    @inlinable func takeFront() -> Int? {
        var s = state.load(ordering: .sequentiallyConsistent)
        while true {
            let (next, end) = Self.unpack(s)
            if next == end { return nil }
            let (done, now) = state.compareExchange(
                expected: s, desired: s + (1 << 16), ordering: .sequentiallyConsistent)
            if done { return next }
            s = now
        }
    }

    /// The owner: takes every item left (after a stop), as a range of indices.
    @inlinable func takeRest() -> Range<Int> {
        var s = state.load(ordering: .sequentiallyConsistent)
        while true {
            let (next, end) = Self.unpack(s)
            let empty = (s & ~UInt64(0xFFFF_FFFF)) | (UInt64(end) << 16) | UInt64(end)
            let (done, now) = state.compareExchange(expected: s, desired: empty, ordering: .sequentiallyConsistent)
            if done { return next..<end }
            s = now
        }
    }

    /// The owner, once takeFront() has returned nil: waits until no taker is still moving items out of its buffer
    /// ([no refill while a taker copies]). Takers move a few items and leave, so this wait is short and rare; it
    /// yields, so a taker on the same thread gets to finish.
    @inlinable func retire() async {
        while takers.load(ordering: .sequentiallyConsistent) != 0 { await Task.yield() }
    }

    /// A taker: moves up to `max` of this batch's items, half of those left (rounded up), from the back
    /// into `buffer`. Returns how many.
    @inlinable func take(into buffer: UnsafeMutablePointer<Item>, max: Int) -> Int {
        takers.add(1, ordering: .sequentiallyConsistent)
        defer { takers.subtract(1, ordering: .releasing) }
        var s = state.load(ordering: .sequentiallyConsistent)
        while true {
            let (next, end) = Self.unpack(s)
            let k = min(max, (end - next + 1) / 2)
            if k == 0 { return 0 }
            let (done, now) = state.compareExchange(
                expected: s, desired: s - UInt64(k), ordering: .sequentiallyConsistent)
            if done {
                buffer.moveInitialize(from: items! + (end - k), count: k)
                return k
            }
            s = now
        }
    }

    /// A taker: takes from the batch with the most items left among `batches`, into `buffer`.
    @inlinable static func take(from batches: [SharedBatch], into buffer: UnsafeMutablePointer<Item>, max: Int) -> Int {
        while true {
            var best: SharedBatch?
            var most = 0
            for batch in batches {
                let (next, end) = unpack(batch.state.load(ordering: .relaxed))
                if end - next > most {
                    most = end - next
                    best = batch
                }
            }
            guard let best else { return 0 }
            let k = best.take(into: buffer, max: max)
            if k > 0 { return k }  // else its owner took them first: look again
        }
    }
}
