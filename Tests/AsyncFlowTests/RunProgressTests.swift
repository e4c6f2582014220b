import Testing

@testable import AsyncFlow

/// A named run's progress as a value ([committed is the watermark and above],
/// [above stays sorted and apart], [a position commits once]), checked against a plain set of positions.
@Suite("Run progress")
struct RunProgressTests {
    /// The gaps below `end` of a plain set of committed positions, as ranges.
    func gaps(_ committed: Set<UInt64>, below end: UInt64) -> [Range<UInt64>] {
        var gaps: [Range<UInt64>] = []
        var start: UInt64? = nil
        for p in 0..<end {
            if committed.contains(p) {
                if let s = start { gaps.append(s..<p) }
                start = nil
            } else if start == nil {
                start = p
            }
        }
        if let s = start { gaps.append(s..<end) }
        return gaps
    }

    @Test("commits in order move the watermark; nothing is kept above it")
    func inOrder() {
        var progress = RunProgress()
        for p: UInt64 in 0..<1_000 {
            let fresh = progress.commit(p)
            #expect(fresh)
        }
        progress.commit(1_000..<5_000)
        #expect(progress.watermark == 5_000 && progress.above.isEmpty && progress.committed == 5_000)
        #expect(progress.encoded == "5000")
    }

    @Test("out of order: ranges above the watermark merge, and join it when the gap before them closes")
    func outOfOrder() {
        var progress = RunProgress()
        progress.commit(5)
        progress.commit(7..<9)
        #expect(progress.above == [5..<6, 7..<9] && progress.watermark == 0)
        progress.commit(6)  // closes the gap between two ranges
        #expect(progress.above == [5..<9])
        progress.commit(1..<3)
        #expect(progress.above == [1..<3, 5..<9] && progress.encoded == "0;1-3,5-9")
        progress.commit(0)  // reaches the watermark: 0..<3 joins it
        #expect(progress.watermark == 3 && progress.above == [5..<9])
        progress.commit(3..<5)
        #expect(progress.watermark == 9 && progress.above.isEmpty && progress.committed == 9)
    }

    @Test("a position committed twice is refused and counted; the value stays as it was")
    func repeats() {
        var progress = RunProgress()
        progress.commit(0..<10)
        progress.commit(20..<30)
        let before = progress
        let repeated = progress.commit(5..<25)  // 5..<10 and 20..<25 were committed; 10..<20 is new
        #expect(repeated == 10)
        #expect(progress.watermark == 30 && progress.above.isEmpty)
        let fresh = progress.commit(3)
        #expect(!fresh)
        let all = progress.commit(0..<30)
        #expect(all == 30)
        #expect(progress.committed == 30 && before.committed == 20)
    }

    @Test(
        "random orders within a window of items in flight: exact at every step, and at most a window of gaps kept",
        arguments: [1, 7, 64, 1_000])
    func randomWindows(window: Int) throws {
        var generator = SplitMix64(seed: UInt64(window))
        let n: UInt64 = 20_000
        // items leave the source in order and are committed in any order, at most `window` in flight
        var inFlight: [UInt64] = []
        var next: UInt64 = 0
        var progress = RunProgress()
        var reference = Set<UInt64>()
        var mostKept = 0
        while reference.count < Int(n) {
            while inFlight.count < window, next < n {
                inFlight.append(next)
                next += 1
            }
            let p = inFlight.remove(at: Int(generator.next() % UInt64(inFlight.count)))
            let fresh = progress.commit(p)
            #expect(fresh)
            reference.insert(p)
            mostKept = max(mostKept, progress.above.count)
            if generator.next() % 512 == 0 {  // now and then, the whole value against the reference
                #expect(progress.committed == UInt64(reference.count))
                #expect(progress.pending(below: n) == gaps(reference, below: n))
                let probe = generator.next() % n
                #expect(progress.isCommitted(probe) == reference.contains(probe))
                #expect(try RunProgress(encoded: progress.encoded) == progress)
            }
        }
        #expect(progress.watermark == n && progress.above.isEmpty && progress.pending(below: n).isEmpty)
        #expect(mostKept <= max(0, window - 1))  // a gap needs an item in flight before it
    }

    @Test("random ranges, overlapping what is committed: the new and repeated counts and the value are exact")
    func randomRanges() throws {
        var generator = SplitMix64(seed: 11)
        let n: UInt64 = 2_000
        var progress = RunProgress()
        var reference = Set<UInt64>()
        while reference.count < Int(n) {
            let start = generator.next() % n
            let range = start..<min(n, start + generator.next() % 40 + 1)
            let expected = UInt64(range.count { reference.contains($0) })
            let repeated = progress.commit(range)
            #expect(repeated == expected, "\(range) into \(progress)")
            reference.formUnion(range)
            #expect(progress.committed == UInt64(reference.count))
            #expect(progress.pending(below: n) == gaps(reference, below: n))
            #expect(try RunProgress(encoded: progress.encoded) == progress)
        }
        #expect(progress.watermark == n && progress.above.isEmpty)
    }

    @Test("pending lists the gaps a resumed run must still do, below the source's end")
    func pending() throws {
        let progress = try RunProgress(watermark: 10, above: [12..<15, 20..<21])
        #expect(progress.pending(below: 25) == [10..<12, 15..<20, 21..<25])
        #expect(progress.pending(below: 13) == [10..<12])
        #expect(progress.pending(below: 5).isEmpty)
        #expect(progress.committed == 14)
    }

    @Test("a saved progress reads back as it was; text that is not one is refused, naming it")
    func encoding() throws {
        for text in ["0", "42", "42;50-60", "0;1-2,4-9,100-1000"] {
            #expect(try RunProgress(encoded: text).encoded == text)
        }
        #expect(throws: RunProgressError.self) { try RunProgress(encoded: "") }
        for bad in ["x", "-1", "5;", "5;3-4", "5;7-6", "5;7-7", "5;7-8,8-9", "5;9-10,7-8", "5;7-8;9", "5;7"] {
            do {
                _ = try RunProgress(encoded: bad)
                Issue.record("\"\(bad)\" was read as a progress")
            } catch {
                #expect(error.description.contains(bad), "\(error)")
            }
        }
        #expect(throws: RunProgressError.self) { try RunProgress(watermark: 10, above: [10..<12]) }  // touches it
    }
}
