// FlowBench.swift — `swift run -c release flow-bench`: AsyncFlow against what Swift users can do without it.
import ArgumentParser
import AsyncFlow
import Foundation

@main
struct FlowBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flow-bench",
        abstract: "Measures AsyncFlow (native CFlow and .swift backends) against per-item Swift pipelines.",
        discussion: """
            Scenarios: \(Scenarios.all.joined(separator: ", ")) (all by default). Each figure is the median of \
            several runs (min and max shown), every row of a scenario measured in this one process.
            The FLOW_* variables (FLOW_WORKERS, FLOW_CPUS, FLOW_PIN, FLOW_SPIN_NS, ...) apply to the native backend.
            """)

    @Argument(help: "Scenarios to run (default: all).")
    var scenarios: [String] = []

    @Flag(help: "Run every scenario small (seconds), to check the bench still works.")
    var quick = false

    @Option(help: "Runs per figure (default: 5, or 3 with --quick).")
    var runs: Int?

    @Option(help: "Workers of the middle layer (default: the CPUs this process may use).")
    var workers: Int?

    @Option(help: "Also write the results as JSON to this file.")
    var json: String?

    @Option(help: "Also write SVG plots (one per scenario) into this directory.")
    var svg: String?

    func validate() throws {
        for s in scenarios where !Scenarios.all.contains(s) {
            throw ValidationError("unknown scenario '\(s)'; expected one of: \(Scenarios.all.joined(separator: ", "))")
        }
        if let runs, runs < 1 || runs > 99 { throw ValidationError("--runs \(runs): must be between 1 and 99") }
        if let workers, workers < 1 { throw ValidationError("--workers \(workers): must be at least 1") }
    }

    func run() async throws {
        do {
            try PipelineOptions().validate()  // a bad FLOW_* variable is a clear error, before anything runs
        } catch {
            throw ValidationError("\(error)")
        }
        let settings = Settings(quick: quick, runs: runs ?? (quick ? 3 : 5), workers: workers ?? allowedCPUs())
        let chosen = scenarios.isEmpty ? Scenarios.all : scenarios
        let progress = Progress()
        progress.total = chosen.map { stepCount($0, settings) }.reduce(0, +)
        let date = ISO8601DateFormatter().string(from: Date())
        say(
            "# flow-bench \(date): \(allowedCPUs()) CPUs (\(Report.cpuModel())), workers \(settings.workers), runs \(settings.runs)\(quick ? ", quick" : "")"
        )
        var results: [ScenarioResult] = []
        for name in chosen {
            let result: ScenarioResult
            switch name {
            case "throughput": result = try await Scenarios.throughput(settings, progress)
            case "scaling": result = try await Scenarios.scaling(settings, progress)
            case "coexist": result = try await Scenarios.coexist(settings, progress)
            case "latency": result = try await Scenarios.latency(settings, progress)
            case "memory": result = try await Scenarios.memory(settings, progress)
            case "idle": result = try await Scenarios.idle(settings, progress)
            default: result = try await Scenarios.ring(settings, progress)
            }
            progress.finish()
            say(Report.table(result))
            results.append(result)
        }
        if let json {
            let doc = Report.Document(
                date: date, cpus: allowedCPUs(), cpuModel: Report.cpuModel(),
                command: CommandLine.arguments.joined(separator: " "),
                settings: ["runs": "\(settings.runs)", "workers": "\(settings.workers)", "quick": "\(quick)"],
                scenarios: results)
            try Report.json(doc, to: json)
            say("\nJSON: \(json)")
        }
        if let svg {
            try FileManager.default.createDirectory(atPath: svg, withIntermediateDirectories: true)
            for r in results {
                let path = (svg as NSString).appendingPathComponent("\(r.name).svg")
                try Report.svg(r).write(toFile: path, atomically: true, encoding: .utf8)
            }
            say("SVG: \(svg)/{\(results.map(\.name).joined(separator: ","))}.svg")
        }
    }

    /// Progress steps a scenario will take (for the bar).
    func stepCount(_ name: String, _ s: Settings) -> Int {
        switch name {
        case "throughput": return 9 * s.runs
        case "scaling": return 2 * 2 * allowedCPUs() * s.runs
        case "latency": return 3 * (Scenarios.offeredRates.count + 1) * s.runs
        case "coexist": return 8 * s.runs
        case "memory": return 2 * 2 * s.runs
        case "idle": return 2 * s.runs
        default: return 8 * s.runs
        }
    }
}
