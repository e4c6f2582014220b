// HumanUnits.swift — figures for people: `3.10 s`, `96.8 k items/s`, `12.3 k` (reports, progress, logs).

/// Three significant digits with a k / M / G suffix: 812, 96.8 k, 1.23 M.
func humanCount(_ value: Double) -> String {
    let units: [(Double, String)] = [(1e9, " G"), (1e6, " M"), (1e3, " k")]
    for (scale, suffix) in units where abs(value) >= scale * 0.9995 {
        return threeDigits(value / scale) + suffix
    }
    return abs(value) < 100 && value != value.rounded() ? threeDigits(value) : String(Int(value.rounded()))
}

/// A rate of items per second: `96.8 k items/s`.
func humanRate(_ itemsPerSecond: Double) -> String { humanCount(itemsPerSecond) + " items/s" }

/// A duration with three significant digits in a fitting unit: 412 ns, 12.3 µs, 4.56 ms, 3.10 s, 2 min 05 s.
func humanDuration(_ d: Duration) -> String {
    let s = d.secondsDouble
    if s >= 60 {
        let whole = Int(s.rounded())
        let hours = whole / 3600
        let minutes = whole / 60 % 60
        let seconds = String(whole % 60)
        let ss = seconds.count == 1 ? "0" + seconds : seconds
        return hours > 0 ? "\(hours) h \(minutes) min" : "\(minutes) min \(ss) s"
    }
    if s >= 0.9995 { return threeDigits(s) + " s" }
    if s >= 0.9995e-3 { return threeDigits(s * 1e3) + " ms" }
    if s >= 0.9995e-6 { return threeDigits(s * 1e6) + " µs" }
    return "\(d.wholeNanoseconds) ns"
}

/// `value` (0.9995 ..< 999.5) with three significant digits: 1.23, 12.3, 123.
private func threeDigits(_ value: Double) -> String {
    let magnitude = abs(value)
    let decimals = magnitude >= 99.95 ? 0 : magnitude >= 9.995 ? 1 : 2
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let scaled = Int((value * scale).rounded())
    guard decimals > 0 else { return String(scaled) }
    let sign = scaled < 0 ? "-" : ""
    let digits = String(abs(scaled))
    let padded = String(repeating: "0", count: max(0, decimals + 1 - digits.count)) + digits
    return sign + padded.dropLast(decimals) + "." + padded.suffix(decimals)
}
