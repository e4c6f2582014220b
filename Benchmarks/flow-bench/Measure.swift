// Measure.swift — timing, statistics, process figures (RSS, CPU time) and calibrated work for flow-bench.
import CFlow
import Foundation

/// The median, min and max of repeated measurements.
struct Stat: Codable {
    let median: Double
    let min: Double
    let max: Double
    let runs: Int

    init(_ samples: [Double]) {
        let s = samples.sorted()
        median = s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
        min = s.first ?? 0
        max = s.last ?? 0
        runs = s.count
    }
}

/// Seconds taken by `body`.
func seconds(_ body: () async throws -> Void) async rethrows -> Double {
    let start = flow_now_ns()
    try await body()
    return Double(flow_now_ns() - start) / 1e9
}

/// CPU time (user + system) this process has used, in seconds (getrusage).
func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    func s(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
    return s(usage.ru_utime) + s(usage.ru_stime)
}

/// A field of /proc/self/status in KiB ("VmHWM", "VmRSS").
func procStatusKiB(_ field: String) -> Int {
    let text = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? -1
    }
    return -1
}

/// Reset the peak-RSS mark (VmHWM) to the current RSS (Linux: `echo 5 > /proc/self/clear_refs`).
func resetPeakRSS() -> Bool {
    guard let f = fopen("/proc/self/clear_refs", "w") else { return false }
    defer { fclose(f) }
    return fputs("5", f) >= 0
}

/// CPUs this process may use.
func allowedCPUs() -> Int {
    var set = flow_cpuset()
    guard flow_cpuset_allowed(&set, nil) == FLOW_OK else { return 1 }
    return Int(flow_cpuset_count(&set))
}

/// A CPU-bound loop whose length is calibrated to a number of nanoseconds on this machine.
struct Work: Sendable {
    let iterations: Int

    /// Iterations that take about `nanoseconds` here (median of a few calibration rounds).
    static func calibrated(nanoseconds: Double) -> Work {
        // probe size and seed come from the clock, so the optimiser cannot fold the probe into a constant
        let probe = 200_000 + Int(flow_now_ns() % 7)
        var perIteration: [Double] = []
        for _ in 0..<7 {
            let start = flow_now_ns()
            blackHole(Work(iterations: probe).run(Int(truncatingIfNeeded: start)))
            perIteration.append(Double(flow_now_ns() - start) / Double(probe))
        }
        return Work(iterations: max(1, Int(nanoseconds / Stat(perIteration).median)))
    }

    @inline(never)
    func run(_ seed: Int) -> Int {
        var x = UInt64(truncatingIfNeeded: seed) | 1
        for _ in 0..<iterations {  // xorshift: a dependent chain the optimiser cannot fold into a formula
            x ^= x << 13
            x ^= x >> 7
            x ^= x << 17
        }
        return Int(truncatingIfNeeded: x)
    }
}

/// Consumes a value observably, so the work that made it cannot be optimised away.
@inline(never) func blackHole(_ value: Int) {
    if value == 0x5EED_5EED_5EED { say("") }
}

/// A one-line progress display on stderr, shown only when stderr is a terminal.
final class Progress: @unchecked Sendable {
    // @unchecked: used from the benchmark's main task only.
    let enabled = isatty(2) == 1
    var total = 0
    var done = 0

    func step(_ label: String) {
        guard enabled else { return }
        done += 1
        let width = 30
        let filled = total > 0 ? min(width, done * width / total) : 0
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        FileHandle.standardError.write("\r\u{1B}[K[\(bar)] \(done)/\(total) \(label)".data(using: .utf8)!)
    }

    func finish() {
        guard enabled else { return }
        FileHandle.standardError.write("\r\u{1B}[K".data(using: .utf8)!)
    }
}

/// A line on stdout, written at once (print buffers when stdout is a pipe).
func say(_ line: String) {
    FileHandle.standardOutput.write((line + "\n").data(using: .utf8)!)
}
