// A Prometheus scrape endpoint for the examples: swift-metrics bootstrapped with swift-prometheus's
// factory, and `GET /metrics` served over HTTP/1.1 (SwiftNIO) in the Prometheus text format, so a
// pipeline's `PipelineOptions.metrics` can be watched by Prometheus while it runs.
import AsyncFlow
import CoreMetrics
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus

/// Serves one registry's metrics at `http://host:port/metrics` until ``stop()``, for pipelines that
/// publish under `label`.
public final class MetricsEndpoint: Sendable {
    public let registry: PrometheusCollectorRegistry
    public let label: String
    let channel: any Channel
    let host: String

    /// Bootstraps swift-metrics with a Prometheus factory over a new registry (once per process) and
    /// starts serving it. `<label>_item_duration` (a pipeline's time per item, a histogram here) gets
    /// buckets from 1 µs to 1 s: Prometheus' defaults start at 5 ms, above most per-item times.
    public static func bootstrap(host: String, port: Int, label: String) async throws -> MetricsEndpoint {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets["\(label)_item_duration"] = [
            .microseconds(1), .microseconds(10), .microseconds(100), .milliseconds(1), .milliseconds(10),
            .milliseconds(100), .seconds(1),
        ]
        MetricsSystem.bootstrap(factory)
        return try await MetricsEndpoint(registry: registry, label: label, host: host, port: port)
    }

    public init(registry: PrometheusCollectorRegistry, label: String, host: String, port: Int) async throws {
        self.registry = registry
        self.label = label
        self.host = host
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(ScrapeHandler(registry: registry))
                }
            }
            .bind(host: host, port: port).get()
    }

    /// `host:port` it listens on (with the port the system chose when `port` was 0).
    public var address: String { "\(host):\(channel.localAddress?.port ?? 0)" }

    /// What a pipeline sets as `PipelineOptions.metrics` to be served here.
    public var pipelineMetrics: PipelineMetrics { PipelineMetrics(label: label) }

    public func stop() async throws {
        try await channel.close()
    }

    /// After a run: checks that the exposition's item counters equal `report` (printing any mismatch to
    /// standard error), serves for `linger` more so a scraper sees the final values, then stops.
    /// Returns whether they agreed.
    public func finish(checking report: PipelineReport, linger: Duration) async throws -> Bool {
        let mismatches = exposition(registry.emitToString(), disagreesWith: report, label: label)
        for m in mismatches { FileHandle.standardError.write(Data("metrics: \(m)\n".utf8)) }
        print(
            "metrics: \(label)_items at http://\(address)/metrics \(mismatches.isEmpty ? "equal" : "differ from") the report"
        )
        try await Task.sleep(for: linger)
        try await stop()
        return mismatches.isEmpty
    }
}

/// `--metrics HOST:PORT` (serve Prometheus metrics there while the program runs) and `--linger SECONDS`
/// (keep serving that long after the run), taken out of a program's arguments.
public struct MetricsFlags: Sendable {
    public var host: String?
    public var port = 0
    public var linger: Duration = .zero

    public static let usage = "[--metrics HOST:PORT [--linger SECONDS]]"

    /// Removes the two flags from `arguments`; nil when one is malformed (or `--linger` comes alone).
    public static func extract(from arguments: inout [String]) -> MetricsFlags? {
        var flags = MetricsFlags()
        var rest: [String] = []
        var i = arguments.startIndex
        while i < arguments.endIndex {
            let flag = arguments[i]
            guard flag == "--metrics" || flag == "--linger" else {
                rest.append(flag)
                i += 1
                continue
            }
            guard i + 1 < arguments.endIndex else { return nil }
            let value = arguments[i + 1]
            i += 2
            if flag == "--linger" {
                guard let seconds = Int(value), seconds >= 0 else { return nil }
                flags.linger = .seconds(seconds)
            } else {
                guard let colon = value.lastIndex(of: ":"), let port = Int(value[value.index(after: colon)...]),
                    (0...65535).contains(port)
                else { return nil }
                flags.host = String(value[..<colon])
                flags.port = port
            }
        }
        if flags.host == nil && flags.linger != .zero { return nil }  // --linger needs --metrics
        arguments = rest
        return flags
    }

    /// Bootstraps swift-metrics and starts the endpoint when `--metrics` was given.
    public func start(label: String) async throws -> MetricsEndpoint? {
        guard let host else { return nil }
        let endpoint = try await MetricsEndpoint.bootstrap(host: host, port: port, label: label)
        FileHandle.standardError.write(Data("metrics: serving http://\(endpoint.address)/metrics\n".utf8))
        return endpoint
    }
}

/// Answers `GET /metrics` with the registry's text exposition, anything else with 404.
final class ScrapeHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let registry: PrometheusCollectorRegistry
    var request: HTTPRequestHead?

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): request = head
        case .body: break
        case .end:
            guard let head = request else { return }
            request = nil
            let found = head.method == .GET && head.uri.split(separator: "?").first == "/metrics"
            let body = found ? registry.emitToBuffer() : Array("only GET /metrics is served here\n".utf8)
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "text/plain; version=0.0.4; charset=utf-8")
            headers.add(name: "Content-Length", value: "\(body.count)")
            if !head.isKeepAlive { headers.add(name: "Connection", value: "close") }
            let status: HTTPResponseStatus = found ? .ok : .notFound
            context.write(
                wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))),
                promise: nil)
            context.write(
                wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
            let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
            if !head.isKeepAlive {
                written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            }
        }
    }
}

/// Checks a Prometheus text exposition against a run's report: for every layer and every event, the
/// sample `<label>_items{layer="…",event="…"}` must equal the report's count. Returns the mismatches,
/// one line each (empty when all agree).
public func exposition(_ text: String, disagreesWith report: PipelineReport, label: String) -> [String] {
    var samples: [String: String] = [:]
    for line in text.split(separator: "\n") where line.hasPrefix("\(label)_items{") {
        guard let space = line.lastIndex(of: " ") else { continue }
        samples[String(line[..<space])] = String(line[line.index(after: space)...])
    }
    var mismatches: [String] = []
    for layer in report.layers {
        let counts = [
            ("received", layer.received), ("emitted", layer.emitted), ("failed", layer.failed),
            ("skipped", layer.skipped), ("retried", layer.retried), ("dropped", layer.dropped),
        ]
        for (event, count) in counts {
            let name = "\(label)_items{layer=\"\(layer.name)\",event=\"\(event)\"}"
            if samples[name] != "\(count)" {
                mismatches.append("\(name): exposition \(samples[name] ?? "missing"), report \(count)")
            }
        }
    }
    return mismatches
}
