import Foundation
import Testing

@testable import AsyncFlow

#if canImport(Glibc)
    import Glibc
#endif

/// Figures for people, and the progress bar on a (pseudo-)terminal.
extension Serial {
    @Suite("Progress bar and human figures")
    struct ProgressBarTests {
        @Test("durations, rates and counts read as people write them")
        func humanFigures() {
            #expect(humanDuration(.milliseconds(3_098)) == "3.10 s")
            #expect(humanDuration(.nanoseconds(412)) == "412 ns")
            #expect(humanDuration(.nanoseconds(12_340)) == "12.3 µs")
            #expect(humanDuration(.microseconds(4_560)) == "4.56 ms")
            #expect(humanDuration(.seconds(125)) == "2 min 05 s")
            #expect(humanDuration(.seconds(7_260)) == "2 h 1 min")
            #expect(humanRate(96_812) == "96.8 k items/s")
            #expect(humanCount(812) == "812" && humanCount(999.6) == "1.00 k" && humanCount(1_234_567) == "1.23 M")
            #expect(humanCount(0) == "0" && humanCount(2.5) == "2.50" && humanCount(3e9) == "3.00 G")
        }

        @Test("a report prints rounded times and rates, not raw durations")
        func reportText() async throws {
            let report = try await pipeline(
                Layer(0..<1_000), Layer(workers: 1) { (x: Int) in x }, Layer { (_: Int) in })
            let text = report.description
            #expect(!text.contains("seconds"), "\(text)")
            #expect(text.contains("1000 items in ") && text.hasSuffix(" items/s"), "\(text)")
        }

        /// Runs a pipeline with the bar drawn on `descriptor`.
        func runWithBar(_ descriptor: Int32, items: Int = 10_000) async throws {
            var options = PipelineOptions()
            options.progressBar = true
            options.progressBarDescriptor = descriptor
            _ = try await pipeline(
                Layer(0..<items), Layer(workers: 2) { (x: Int) in x }, Layer { (_: Int) in }, options: options)
        }

        /// Everything readable from `fd` now (non-blocking).
        func readAvailable(_ fd: Int32) -> String {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            var bytes: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
                if n <= 0 { break }
                bytes += chunk[0..<n]
            }
            return String(decoding: bytes, as: UTF8.self)
        }

        @Test("on a terminal: redrawn in place, each draw erases the rest of the line, finished with a newline")
        func onATerminal() async throws {
            var primary: Int32 = -1
            var secondary: Int32 = -1
            var size = winsize(ws_row: 24, ws_col: 60, ws_xpixel: 0, ws_ypixel: 0)
            #expect(openpty(&primary, &secondary, nil, nil, &size) == 0)
            defer {
                close(primary)
                close(secondary)
            }
            try await runWithBar(secondary)
            // the terminal turns "\n" into "\r\n"; compare scalars ("\r\n" is one Character in Swift)
            let out = readAvailable(primary).replacingOccurrences(of: "\r\n", with: "\n")
            let draws = out.unicodeScalars.split(separator: "\r").map { String(String.UnicodeScalarView($0)) }
            #expect(draws.count >= 2, "\(out.debugDescription)")  // the first draw at the start, the final one
            for draw in draws {
                // [each redraw erases its line]: every draw erases what a longer line before it left, and fits in 60
                // columns
                #expect(draw.hasSuffix("\u{1B}[K") || draw.hasSuffix("\u{1B}[K\n"), "\(draw.debugDescription)")
                #expect(
                    draw.replacingOccurrences(of: "\u{1B}[K", with: "").trimmingCharacters(in: .newlines).count < 60)
            }
            let last = draws.last ?? ""
            #expect(last.hasPrefix("done 10.0 k / 10.0 k (100%) items | "), "\(last.debugDescription)")
            #expect(last.hasSuffix("\n") && draws.dropLast().allSatisfy { !$0.contains("\n") })
        }

        @Test("not a terminal (a pipe, a log file): nothing is written")
        func notATerminal() async throws {
            var fds: [Int32] = [0, 0]
            #expect(pipe(&fds) == 0)
            defer { close(fds[0]) }
            try await runWithBar(fds[1])
            close(fds[1])
            #expect(readAvailable(fds[0]) == "")
        }

        @Test("a source's count is known when it is cheap and safe to know, and never traps")
        func sourceCounts() {
            #expect(knownCount(0..<10) == 10 && knownCount(1...100_000) == 100_000 && knownCount([1, 2, 3]) == 3)
            #expect(knownCount(Int.min...Int.max) == nil && knownCount(Int.min..<0) == nil)  // would trap
            #expect(knownCount(UInt64(0)..<UInt64.max) == nil)  // a range of another type: not counted
            #expect(knownCount(0...) == nil && knownCount((0..<10).lazy.filter { $0 > 3 }) == nil)
            #expect(knownCount(DrainTests.Naturals(pulled: Counter())) == nil)  // a Sequence that does not say
        }

        @Test("the line shows the count expected, each queue's fill and an ETA while running")
        func lineContents() {
            let running = ProgressSnapshot(
                layers: [], queueDepths: [512, 0], queueCapacities: [1024, 4], elapsed: .seconds(2), rate: 50_000,
                isFinal: false, generators: [], expected: 400_000, finished: 100_000)
            #expect(
                ProgressBar.line(running)
                    == "100 k / 400 k (25%) items | 50.0 k items/s | queues 50% 0% | 2.00 s | ETA 6.00 s")
            let unknown = ProgressSnapshot(
                layers: [], queueDepths: [], queueCapacities: [], elapsed: .milliseconds(1_500), rate: 812,
                isFinal: true, generators: [], expected: nil, finished: 1_218)
            #expect(ProgressBar.line(unknown) == "done 1.22 k items | 812 items/s | 1.50 s")
        }
    }
}
