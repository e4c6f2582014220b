// ProgressBar.swift — PipelineOptions.progressBar: a live line on a terminal, redrawn in place.
//
// Invariants:
//  [the bar only on a terminal] Nothing is written unless the descriptor is a terminal (isatty), checked once at the
//    start.
//  [each redraw erases its line] Each redraw is one write of "\r" + the line + "\e[K" (erase to the end of the line),
//    so a shorter line leaves no characters of a longer one; the line is cut to the terminal's width so it never wraps
//    (a wrapped line cannot be redrawn with "\r"). The last draw ends with a newline.
//  [draws never interleave] Redrawn at most every `interval` (100 ms) by one task; the final draw happens after that
//    task has ended ([observers end with the report's figures]), so draws never interleave.
#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

struct ProgressBar: Sendable {
    static let interval = Duration.milliseconds(100)
    let descriptor: Int32

    /// A bar on `descriptor`, or nil when it is not a terminal ([the bar only on a terminal]).
    init?(descriptor: Int32) {
        guard isatty(descriptor) == 1 else { return nil }
        self.descriptor = descriptor
    }

    /// Draw the snapshot in place ([each redraw erases its line]); the final one ends the line.
    func draw(_ snapshot: ProgressSnapshot) {
        var line = Self.line(snapshot)
        if let width = terminalWidth(), line.count >= width { line = String(line.prefix(max(0, width - 1))) }
        var text = "\r" + line + "\u{1B}[K"
        if snapshot.isFinal { text += "\n" }
        let bytes = Array(text.utf8)
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress! + written, $0.count - written) }
            if n <= 0 { break }
            written += n
        }
    }

    /// The line for a snapshot: done (of the expected count), rate, each queue's fill, time, ETA.
    static func line(_ s: ProgressSnapshot) -> String {
        var done = humanCount(Double(s.finished))
        if let expected = s.expected, expected > 0 {
            let percent = min(100, s.finished * 100 / expected)
            done += " / \(humanCount(Double(expected))) (\(percent)%)"
        }
        var parts = [(s.isFinal ? "done " : "") + done + " items", humanRate(s.rate)]
        if !s.isFinal && !s.queueFill.isEmpty {
            parts.append("queues " + s.queueFill.map { "\(Int(($0 * 100).rounded()))%" }.joined(separator: " "))
        }
        parts.append(humanDuration(s.elapsed))
        if let eta = s.eta { parts.append("ETA " + humanDuration(eta)) }
        return parts.joined(separator: " | ")
    }

    /// Columns of the terminal, if it says.
    private func terminalWidth() -> Int? {
        var size = winsize()
        guard ioctl(descriptor, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 else { return nil }
        return Int(size.ws_col)
    }
}
