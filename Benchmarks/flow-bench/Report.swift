// Report.swift — flow-bench's outputs: a table on stdout, JSON for machines, SVG plots for people.
import Foundation

enum Report {
    static func format(_ v: Double, unit: String) -> String {
        switch unit {
        case "items/s":
            return v >= 1e6 ? String(format: "%.1f M", v / 1e6) : String(format: "%.0f k", v / 1e3)
        case "ns/item": return String(format: "%.2f", v)
        case "% of one CPU": return String(format: "%.2f", v)
        default: return String(format: "%.1f", v)
        }
    }

    static func pad(_ s: String, _ n: Int, left: Bool = false) -> String {
        let count = s.count
        if count >= n { return s }
        return left ? String(repeating: " ", count: n - count) + s : s + String(repeating: " ", count: n - count)
    }

    static func table(_ r: ScenarioResult) -> String {
        var lines = ["", "## \(r.name): \(r.title)"]
        let nameWidth = max(28, (r.rows.map(\.name.count).max() ?? 0) + 2)
        let extraKeys = Array(Set(r.rows.flatMap(\.extra.keys))).sorted()
        var header = pad("row", nameWidth) + pad("median", 11, left: true) + pad("min", 11, left: true)
        header += pad("max", 11, left: true) + "  " + pad("unit", 14) + pad("ratio", 8, left: true)
        let widths = extraKeys.map { max(12, $0.count + 2) }
        for (k, w) in zip(extraKeys, widths) { header += pad(k, w, left: true) }
        lines.append(header)
        for row in r.rows {
            var line = pad(row.name, nameWidth)
            for v in [row.stat.median, row.stat.min, row.stat.max] {
                line += pad(format(v, unit: row.unit), 11, left: true)
            }
            line += "  " + pad(row.unit, 14)
            line += pad(row.ratio.map { String(format: "%.2fx", $0) } ?? "", 8, left: true)
            for (k, w) in zip(extraKeys, widths) {
                line += pad(row.extra[k].map { String(format: "%.2f", $0) } ?? "", w, left: true)
            }
            if let note = row.note { line += "  (\(note))" }
            lines.append(line)
        }
        for note in r.notes { lines.append("  " + note) }
        return lines.joined(separator: "\n")
    }

    struct Document: Codable {
        let date: String
        let cpus: Int
        let cpuModel: String
        let command: String
        let settings: [String: String]
        let scenarios: [ScenarioResult]
    }

    static func cpuModel() -> String {
        let info = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        for line in info.split(separator: "\n") where line.hasPrefix("model name") {
            return line.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "?"
        }
        return "?"
    }

    static func json(_ doc: Document, to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(doc).write(to: URL(fileURLWithPath: path))
    }

    // MARK: SVG

    /// An SVG document's opening: its size, a white background and the title.
    static func header(title: String, width: Int, height: Int) -> String {
        """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(width)" height="\(height)" font-family="sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="10" y="22" font-size="15" font-weight="bold">\(escape(title))</text>
        """
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
    }

    /// Horizontal bars, one group per row, one bar per series; whiskers for min–max of a single series.
    static func bars(
        title: String, unit: String, rows: [(name: String, values: [Double], min: Double?, max: Double?)],
        series: [String], log: Bool
    ) -> String {
        let colors = ["#2b6cb0", "#dd6b20", "#38a169", "#805ad5"]
        let labelWidth = 270.0
        let plotWidth = 520.0
        let barHeight = 16.0
        let groupHeight = barHeight * Double(series.count) + 10
        let height = 70 + groupHeight * Double(rows.count) + 30
        let all = rows.flatMap { $0.values + [$0.max ?? 0] }.filter { $0 > 0 }
        let hi = (all.max() ?? 1) * 1.1
        let lo = log ? max((all.min() ?? 1) / 2, hi / 1e6) : 0
        func x(_ v: Double) -> Double {
            guard v > 0 else { return labelWidth }
            let f =
                log
                ? (Foundation.log10(max(v, lo)) - Foundation.log10(lo)) / (Foundation.log10(hi) - Foundation.log10(lo))
                : v / hi
            return labelWidth + f * plotWidth
        }
        var svg = """
            \(header(title: title, width: Int(labelWidth + plotWidth + 120), height: Int(height)))
            <text x="10" y="42" fill="#555">\(escape(unit))\(log ? " (log scale)" : "")</text>

            """
        for (i, row) in rows.enumerated() {
            let top = 60 + groupHeight * Double(i)
            svg +=
                "<text x=\"\(labelWidth - 8)\" y=\"\(top + groupHeight / 2)\" text-anchor=\"end\">\(escape(row.name))</text>\n"
            for (j, v) in row.values.enumerated() {
                let y = top + Double(j) * barHeight
                svg +=
                    "<rect x=\"\(labelWidth)\" y=\"\(y)\" width=\"\(max(1, x(v) - labelWidth))\" height=\"\(barHeight - 3)\" fill=\"\(colors[j % colors.count])\"/>\n"
                svg +=
                    "<text x=\"\(x(v) + 4)\" y=\"\(y + barHeight - 5)\" fill=\"#333\">\(escape(format(v, unit: unit)))</text>\n"
            }
            if series.count == 1, let mn = row.min, let mx = row.max {
                let y = top + barHeight / 2 - 1
                svg +=
                    "<line x1=\"\(x(mn))\" y1=\"\(y)\" x2=\"\(x(mx))\" y2=\"\(y)\" stroke=\"black\" stroke-width=\"1.5\"/>\n"
            }
        }
        if series.count > 1 {
            for (j, name) in series.enumerated() {
                let lx = labelWidth + Double(j) * 110
                svg +=
                    "<rect x=\"\(lx)\" y=\"\(height - 22)\" width=\"12\" height=\"12\" fill=\"\(colors[j % colors.count])\"/>"
                svg += "<text x=\"\(lx + 16)\" y=\"\(height - 12)\">\(escape(name))</text>\n"
            }
        }
        return svg + "</svg>\n"
    }

    /// Lines: efficiency against worker count, one line per (backend, work).
    static func lines(title: String, points: [String: [(Double, Double)]]) -> String {
        let colors = ["#2b6cb0", "#dd6b20", "#38a169", "#805ad5", "#c53030", "#319795"]
        let left = 60.0
        let top = 50.0
        let width = 520.0
        let height = 300.0
        let maxX = max(2, points.values.flatMap { $0.map(\.0) }.max() ?? 2)
        func px(_ v: Double) -> Double { left + (v - 1) / (maxX - 1) * width }
        func py(_ v: Double) -> Double { top + height - min(v, 1.2) / 1.2 * height }
        var svg = """
            \(header(title: title, width: Int(left + width + 230), height: Int(top + height + 50)))
            <line x1="\(left)" y1="\(py(0))" x2="\(left + width)" y2="\(py(0))" stroke="black"/>
            <line x1="\(left)" y1="\(top)" x2="\(left)" y2="\(py(0))" stroke="black"/>
            <line x1="\(left)" y1="\(py(1))" x2="\(left + width)" y2="\(py(1))" stroke="#aaa" stroke-dasharray="4"/>
            <text x="\(left - 8)" y="\(py(1) + 4)" text-anchor="end">100%</text>
            <text x="\(left - 8)" y="\(py(0.5) + 4)" text-anchor="end">50%</text>
            <text x="\(left + width / 2)" y="\(top + height + 35)" text-anchor="middle">workers</text>

            """
        for w in 1...Int(maxX) {
            svg += "<text x=\"\(px(Double(w)))\" y=\"\(top + height + 16)\" text-anchor=\"middle\">\(w)</text>\n"
        }
        for (i, key) in points.keys.sorted().enumerated() {
            let pts = points[key]!.sorted { $0.0 < $1.0 }
            let path = pts.map { "\(px($0.0)),\(py($0.1))" }.joined(separator: " ")
            let c = colors[i % colors.count]
            svg += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(c)\" stroke-width=\"2\"/>\n"
            for p in pts { svg += "<circle cx=\"\(px(p.0))\" cy=\"\(py(p.1))\" r=\"3\" fill=\"\(c)\"/>\n" }
            svg +=
                "<text x=\"\(left + width + 12)\" y=\"\(top + 14 + Double(i) * 18)\" fill=\"\(c)\">\(escape(key))</text>\n"
        }
        return svg + "</svg>\n"
    }

    /// A log-log line chart: one polyline per key through its (x, y) points.
    static func curve(title: String, points: [String: [(Double, Double)]], xLabel: String, yLabel: String) -> String {
        let colors = ["#2b6cb0", "#dd6b20", "#38a169", "#805ad5", "#c53030", "#319795"]
        let (left, top, width, height) = (70.0, 50.0, 520.0, 300.0)
        let xs = points.values.flatMap { $0.map(\.0) }.filter { $0 > 0 }
        let ys = points.values.flatMap { $0.map(\.1) }.filter { $0 > 0 }
        let (x0, x1) = (log10(xs.min() ?? 1).rounded(.down), max(log10(xs.max() ?? 10).rounded(.up), 1))
        let (y0, y1) = (log10(ys.min() ?? 1).rounded(.down), max(log10(ys.max() ?? 10).rounded(.up), 1))
        func px(_ v: Double) -> Double { left + (log10(max(v, 1e-9)) - x0) / max(x1 - x0, 1) * width }
        func py(_ v: Double) -> Double { top + height - (log10(max(v, 1e-9)) - y0) / max(y1 - y0, 1) * height }
        var svg = """
            \(header(title: title, width: Int(left + width + 300), height: Int(top + height + 50)))
            <line x1="\(left)" y1="\(top + height)" x2="\(left + width)" y2="\(top + height)" stroke="black"/>
            <line x1="\(left)" y1="\(top)" x2="\(left)" y2="\(top + height)" stroke="black"/>
            <text x="\(left + width / 2)" y="\(top + height + 35)" text-anchor="middle">\(escape(xLabel)) (log)</text>
            <text x="12" y="\(top - 10)">\(escape(yLabel)) (log)</text>

            """
        for e in stride(from: x0, through: x1, by: 1) {
            svg +=
                "<text x=\"\(px(pow(10, e)))\" y=\"\(top + height + 16)\" text-anchor=\"middle\">1e\(Int(e))</text>\n"
        }
        for e in stride(from: y0, through: y1, by: 1) {
            let y = py(pow(10, e))
            svg +=
                "<text x=\"\(left - 8)\" y=\"\(y + 4)\" text-anchor=\"end\">\(escape(format(pow(10, e), unit: "")))</text>\n"
            svg += "<line x1=\"\(left)\" y1=\"\(y)\" x2=\"\(left + width)\" y2=\"\(y)\" stroke=\"#eee\"/>\n"
        }
        for (i, key) in points.keys.sorted().enumerated() {
            let pts = points[key]!.sorted { $0.0 < $1.0 }
            let c = colors[(i / 2) % colors.count]
            let dash = key.hasSuffix("p50") ? " stroke-dasharray=\"5\"" : ""
            let path = pts.map { "\(px($0.0)),\(py($0.1))" }.joined(separator: " ")
            svg += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(c)\" stroke-width=\"2\"\(dash)/>\n"
            for p in pts { svg += "<circle cx=\"\(px(p.0))\" cy=\"\(py(p.1))\" r=\"3\" fill=\"\(c)\"/>\n" }
            svg +=
                "<text x=\"\(left + width + 12)\" y=\"\(top + 14 + Double(i) * 18)\" fill=\"\(c)\">\(escape(key))</text>\n"
        }
        return svg + "</svg>\n"
    }

    static func svg(_ r: ScenarioResult) -> String {
        switch r.name {
        case "scaling":
            var points: [String: [(Double, Double)]] = [:]
            for row in r.rows {
                guard let w = row.extra["workers"], let e = row.extra["efficiency"], let ns = row.extra["work_ns"]
                else { continue }
                let backend = row.name.split(separator: " ").first.map(String.init) ?? row.name
                points["\(backend) \(Int(ns / 1000)) µs", default: []].append((w, e))
            }
            return lines(title: "Parallel efficiency — \(r.title)", points: points)
        case "latency":
            var points: [String: [(Double, Double)]] = [:]
            for row in r.rows {
                guard let rate = row.extra["rate_items_per_s"] else { continue }
                let impl = String(row.name.prefix { $0 != "@" }).trimmingCharacters(in: .whitespaces)
                for key in ["p50", "p99"] {
                    points["\(impl) \(key)", default: []].append((rate, row.extra["\(key)_us"] ?? 0))
                }
            }
            return curve(
                title: "Latency — \(r.title)", points: points, xLabel: "offered items/s", yLabel: "µs")
        case "coexist":
            let keys = ["p50_us", "p99_us", "max_us"]
            return bars(
                title: "Coexist — \(r.title)", unit: "µs late",
                rows: r.rows.map { row in (row.name, keys.map { row.extra[$0] ?? 0 }, nil, nil) },
                series: ["p50", "p99", "max"], log: true)
        default:
            let unit = r.rows.first?.unit ?? ""
            return bars(
                title: "\(r.name.capitalized) — \(r.title)", unit: unit,
                rows: r.rows.map { ($0.name, [$0.stat.median], $0.stat.min, $0.stat.max) }, series: ["median"],
                log: r.name == "throughput")
        }
    }
}
