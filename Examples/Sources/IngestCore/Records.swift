// The scenario shared by the examples: text records -> tokenise and hash (CPU-bound, per-worker scratch
// state) -> rows a collector commits to a database in batches.
import AsyncFlow
import Foundation

/// A text record, as a log line or a document would arrive.
public struct Record: Sendable {
    public let id: Int
    public let text: String
}

/// What the CPU-bound layer makes of a record: counts and a hash of its normalised tokens.
public struct Row: Sendable {
    public let id: Int
    public let tokens: Int
    public let distinctTokens: Int
    /// FNV-1a 64 over the lower-cased tokens, in order, as a signed 64-bit value (databases store those).
    public let hash: Int64
}

/// `count` records of 8 to 40 words each, the same for the same seed: a generator, not a stored list.
public struct RecordSource: Sequence, Sendable {
    public let count: Int
    public let seed: UInt64

    public init(count: Int, seed: UInt64 = 42) {
        self.count = count
        self.seed = seed
    }

    /// Exact: the progress bar shows how far along the run is, and an ETA.
    public var underestimatedCount: Int { count }

    static let words = [
        "Pipeline", "queue", "worker", "batch", "Swift", "thread", "ring", "latency", "throughput", "record",
        "token", "hash", "database", "commit", "insert", "row", "layer", "collector", "source", "async",
        "await", "task", "core", "cache", "line", "memory", "back-pressure", "order", "error", "retry",
    ]

    public func makeIterator() -> AnyIterator<Record> {
        var state = seed
        var id = 0
        return AnyIterator {
            guard id < count else { return nil }
            defer { id += 1 }
            func next() -> UInt64 {  // xorshift64
                state ^= state << 13
                state ^= state >> 7
                state ^= state << 17
                return state
            }
            let n = 8 + Int(next() % 33)
            var text = ""
            for i in 0..<n {
                if i > 0 { text += " " }
                text += Self.words[Int(next() % UInt64(Self.words.count))]
            }
            return Record(id: id, text: text)
        }
    }
}

/// Per-worker scratch state of the tokenising layer: buffers reused for every record on one thread.
public struct Tokenizer {
    var token: [UInt8] = []
    var seen: Set<UInt64> = []

    public init() {
        token.reserveCapacity(64)
        seen.reserveCapacity(64)
    }

    /// Split on spaces, lower-case, count tokens and distinct tokens, hash them (FNV-1a 64).
    public mutating func row(for record: Record) -> Row {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        var tokens = 0
        seen.removeAll(keepingCapacity: true)
        func finishToken() {
            guard !token.isEmpty else { return }
            var h: UInt64 = 0xcbf2_9ce4_8422_2325
            for b in token {
                h = (h ^ UInt64(b)) &* 0x100_0000_01b3
                hash = (hash ^ UInt64(b)) &* 0x100_0000_01b3
            }
            hash = (hash ^ 0x20) &* 0x100_0000_01b3  // token separator
            seen.insert(h)
            tokens += 1
            token.removeAll(keepingCapacity: true)
        }
        for b in record.text.utf8 {
            if b == UInt8(ascii: " ") {
                finishToken()
            } else {
                token.append(b >= 65 && b <= 90 ? b + 32 : b)
            }
        }
        finishToken()
        return Row(id: record.id, tokens: tokens, distinctTokens: seen.count, hash: Int64(bitPattern: hash))
    }
}

/// The examples' pipeline: `count` records -> rows on worker threads (`FLOW_WORKERS`, default: the CPUs
/// allowed) -> `commit`, called with batches of up to `batchSize` rows by a batch collector (a partial
/// batch waits at most 200 ms), so a slow database holds the whole pipeline back. `options` as given,
/// with a live progress bar on standard error (when it is a terminal). Returns the run's report.
public func ingest(
    count: Int, batchSize: Int = 500, options: PipelineOptions = PipelineOptions(),
    commit: @escaping @Sendable ([Row]) async throws -> Void
) async throws -> PipelineReport {
    var options = options
    options.progressBar = true
    return try await pipeline(
        Layer(RecordSource(count: count), name: "records"),
        Layer(workers: nil, state: { Tokenizer() }, name: "tokenize") { (t: inout Tokenizer, r: Record) in
            t.row(for: r)
        },
        Layer(batchesOf: batchSize, within: .milliseconds(200), name: "commit") { (rows: [Row]) in
            try await commit(rows)
        },
        options: options)
}
