import Testing

@testable import AsyncFlow

/// SplitMix64: a small seeded generator, so that one number reproduces a whole random pipeline.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A stable hash of (seed, layer, id): the decisions every worker makes about an item, the same way
/// in every run of the same seed and in the plan that predicts the outcome.
func stressHash(_ seed: UInt64, _ layer: Int, _ id: Int) -> UInt64 {
    var g = SplitMix64(seed: seed ^ (UInt64(layer) &* 0x1000_0000_01B3) ^ (UInt64(id) &* 0x9E37_79B9))
    return g.next()
}

/// The item that crosses a stress pipeline: `hops` counts the layers that passed it on, `tracked`
/// (in some runs) counts its copies' lives, so a lost or doubly freed item shows.
struct StressItem: Sendable {
    let id: Int
    var hops: Int
    let tracked: Tracked?
}

enum StressError: Error, Equatable {
    /// Thrown by layer `layer`'s closure for item `id`.
    case item(layer: Int, id: Int)
    /// Thrown by the source in place of item `at`.
    case source(at: Int)
}

/// One random pipeline: layers, capacities, policies, throws, slow items, cancellation.
/// Layer 0 is the source, 1...middles.count the middle layers, the last one the collector.
struct StressConfig: CustomStringConvertible {
    enum Kind: CustomStringConvertible {
        case cpu(workers: Int)
        case async(concurrency: Int)
        case serialSync
        case serialAsync
        /// A batch collector (Layer(batchesOf:within:)), `within` in microseconds.
        case batches(size: Int, within: Int?)
        /// A middle layer called with batches (Layer(batchesOf:within:concurrency:ordered:)).
        case batchMap(size: Int, concurrency: Int, within: Int?)

        var description: String {
            switch self {
            case .cpu(let w): "cpu(workers: \(w))"
            case .async(let c): "async(concurrency: \(c))"
            case .serialSync: "serial"
            case .serialAsync: "serial async"
            case .batches(let n, let w): "batchesOf: \(n)" + (w.map { ", within: \($0) µs" } ?? "")
            case .batchMap(let n, let c, let w):
                "batchesOf: \(n), concurrency: \(c)" + (w.map { ", within: \($0) µs" } ?? "")
            }
        }
    }

    struct Step: CustomStringConvertible {
        var kind: Kind
        var ordered: Bool
        var capacity: Int?
        var policy: ErrorPolicy
        /// Items (per 1024) whose first calls throw under .skip / .retry (.fail layers throw only for the poison).
        var throwRate: UInt64
        /// Items (per 64) that are slow in this layer.
        var slowRate: UInt64

        var description: String {
            var s = "\(kind)"
            if ordered { s += " ordered" }
            if let capacity { s += " capacity \(capacity)" }
            s += " \(policy)"
            if throwRate > 0 { s += " throws \(throwRate)/1024" }
            if slowRate > 0 { s += " slow \(slowRate)/64" }
            return s
        }
    }

    enum Source: CustomStringConvertible {
        case sequence
        case async
        /// An AsyncSequence that throws in place of item `at` (at == n: after the last item).
        case throwing(at: Int)

        var description: String {
            switch self {
            case .sequence: "Sequence"
            case .async: "AsyncSequence"
            case .throwing(let at): "AsyncSequence throwing at \(at)"
            }
        }
    }

    enum Cancel: CustomStringConvertible {
        case none
        case immediately
        /// Cancel from inside layer `layer` when it first sees item `id`.
        case atItem(layer: Int, id: Int)
        case afterMicroseconds(Int)

        var description: String {
            switch self {
            case .none: "none"
            case .immediately: "immediately"
            case .atItem(let l, let id): "in layer \(l) at item \(id)"
            case .afterMicroseconds(let us): "after \(us) µs"
            }
        }
    }

    /// How a pipelineStream's consumer ends its loop (the stream's last layer is the last step).
    enum StreamEnd: CustomStringConvertible {
        /// Reads every item.
        case readAll
        /// Leaves the loop after `after` items (1 or more; if there are that many), then calls report():
        /// with the loop's iterator released (`keepIterator` false) or still alive, as top-level code keeps it.
        case leave(after: Int, keepIterator: Bool)

        var description: String {
            switch self {
            case .readAll: "read to the end"
            case .leave(let k, let keep): "leave after \(k) items, iterator \(keep ? "kept" : "released")"
            }
        }
    }

    let seed: UInt64
    let backend: PipelineOptions.Backend
    let n: Int
    let source: Source
    /// Generators merged into the source (Layer(merging:)); 1: a single source. Generator g gives the
    /// ids g, g + k, g + 2k, ... (k generators).
    let generators: Int
    /// Middle layers, then the collector (last).
    let steps: [Step]
    let batchSize: Int
    let spinNanoseconds: Int?
    let references: Bool
    let cancel: Cancel
    /// An item that always throws in one layer: fails the run unless an earlier layer skips it.
    let poison: (layer: Int, id: Int)?
    /// nil: the last step is a collector layer; otherwise the pipeline is a pipelineStream whose loop
    /// collects, ending as this says.
    let stream: StreamEnd?
    /// Drain the run (PipelineControl) from inside layer `layer` when it first sees item `id`.
    let drain: (layer: Int, id: Int)?

    var middles: Int { steps.count - 1 }

    var description: String {
        var lines = [
            "seed \(seed) (FLOW_STRESS_SEED=\(seed) FLOW_STRESS_RUNS=1 reruns it), backend \(backend), \(n) items",
            "  layer 0: \(source)" + (generators > 1 ? ", \(generators) generators merged" : ""),
        ]
        for (i, s) in steps.enumerated() { lines.append("  layer \(i + 1): \(s)") }
        let poisonText = poison.map { "layer \($0.layer) item \($0.id)" } ?? "none"
        lines.append(
            "  batch \(batchSize), spin \(spinNanoseconds.map(String.init) ?? "default"), "
                + "references \(references), cancel \(cancel), poison \(poisonText)")
        lines.append("  ends in " + (stream.map { "a pipelineStream loop: \($0)" } ?? "a collector layer"))
        if let drain { lines.append("  drained in layer \(drain.layer) at item \(drain.id)") }
        return lines.joined(separator: "\n")
    }

    /// Draw a pipeline from `seed`.
    init(seed: UInt64, backend: PipelineOptions.Backend) {
        var g = SplitMix64(seed: seed)
        self.seed = seed
        self.backend = backend
        let sizeRoll = Int.random(in: 0..<100, using: &g)
        n = sizeRoll < 3 ? 0 : sizeRoll < 25 ? Int.random(in: 1...16, using: &g) : Int.random(in: 17...400, using: &g)
        let sourceRoll = Int.random(in: 0..<100, using: &g)
        source =
            sourceRoll < 45 ? .sequence : sourceRoll < 80 ? .async : .throwing(at: Int.random(in: 0...n, using: &g))
        let allOrdered = Int.random(in: 0..<100, using: &g) < 30
        var steps: [Step] = []
        let middles = Int.random(in: 0...4, using: &g)
        for i in 0...middles {
            let last = i == middles
            let kindRoll = Int.random(in: 0..<100, using: &g)
            let kind: Kind =
                kindRoll < 35
                ? .cpu(workers: Int.random(in: 1...8, using: &g))
                : kindRoll < 70
                    ? .async(concurrency: Int.random(in: 1...16, using: &g))
                    : kindRoll < 85 ? .serialSync : .serialAsync
            let parallel: Bool = if case .cpu = kind { true } else if case .async = kind { true } else { false }
            let ordered = parallel && !last && (allOrdered || Bool.random(using: &g))
            let capRoll = Int.random(in: 0..<100, using: &g)
            let capacity: Int? =
                capRoll < 30
                ? nil : capRoll < 50 ? Int.random(in: 1...3, using: &g) : Int.random(in: 1...1024, using: &g)
            let policyRoll = Int.random(in: 0..<100, using: &g)
            let policy: ErrorPolicy =
                policyRoll < 40 ? .fail : policyRoll < 70 ? .skip : .retry(attempts: Int.random(in: 0...3, using: &g))
            steps.append(
                Step(
                    kind: kind, ordered: ordered, capacity: capacity, policy: policy,
                    throwRate: [0, 8, 64, 256].randomElement(using: &g)!,
                    slowRate: [0, 0, 1, 4].randomElement(using: &g)!))
        }
        batchSize = [1, 2, 3, 16, 64, 1024].randomElement(using: &g)!
        spinNanoseconds = [nil, 0, 1_000].randomElement(using: &g)!
        references = Int.random(in: 0..<100, using: &g) < 30
        let cancelRoll = Int.random(in: 0..<100, using: &g)
        cancel =
            cancelRoll < 55 || n == 0
            ? (cancelRoll < 5 ? .immediately : .none)
            : cancelRoll < 60
                ? .immediately
                : cancelRoll < 85
                    ? .atItem(layer: Int.random(in: 1...steps.count, using: &g), id: Int.random(in: 0..<n, using: &g))
                    : .afterMicroseconds(Int.random(in: 0...2_000, using: &g))
        var poison: (layer: Int, id: Int)? =
            n > 0 && Int.random(in: 0..<100, using: &g) < 25
            ? (Int.random(in: 1...steps.count, using: &g), Int.random(in: 0..<n, using: &g)) : nil
        // Drawn last, so the draws above stay what they were for every seed.
        let streamRoll = Int.random(in: 0..<100, using: &g)
        stream =
            streamRoll < 70
            ? nil
            : streamRoll < 85
                ? .readAll
                : .leave(after: Int.random(in: 1...max(1, n), using: &g), keepIterator: Bool.random(using: &g))
        switch (stream, steps[steps.count - 1].kind) {
        case (.some, .cpu), (.some, .async):  // a stream's last layer may be ordered
            steps[steps.count - 1].ordered = allOrdered || Bool.random(using: &g)
        default: break
        }
        // Drawn after the stream, for the same reason.
        generators = Int.random(in: 0..<100, using: &g) < 75 ? 1 : Int.random(in: 2...3, using: &g)
        if stream == nil && Int.random(in: 0..<100, using: &g) < 25 {
            // a batch collector; its errors apply to whole batches, which the per-item plan does not
            // model, so it never throws (its policy still decides nothing) and holds no poison
            let within = Bool.random(using: &g) ? Int.random(in: 50...2_000, using: &g) : nil
            steps[steps.count - 1].kind = .batches(size: Int.random(in: 1...64, using: &g), within: within)
            steps[steps.count - 1].throwRate = 0
            if poison?.layer == steps.count { poison = nil }
        }
        drain =
            n > 0 && Int.random(in: 0..<100, using: &g) < 20
            ? (Int.random(in: 1...steps.count, using: &g), Int.random(in: 0..<n, using: &g)) : nil
        if steps.count > 1 && Int.random(in: 0..<100, using: &g) < 30 {
            // a middle layer made a batch map; as for the batch collector, its errors would apply to whole
            // batches, so it never throws and holds no poison
            let j = Int.random(in: 0..<(steps.count - 1), using: &g)
            let within = Bool.random(using: &g) ? Int.random(in: 50...2_000, using: &g) : nil
            steps[j].kind = .batchMap(
                size: Int.random(in: 1...64, using: &g), concurrency: Int.random(in: 1...8, using: &g), within: within)
            steps[j].ordered = allOrdered || Bool.random(using: &g)
            steps[j].throwRate = 0
            if poison?.layer == j + 1 { poison = nil }
        }
        self.poison = poison
        self.steps = steps
    }

    /// How many of the first calls of layer `layer` (1-based) for item `id` throw; Int.max: all of them.
    func throwsBefore(layer: Int, id: Int) -> Int {
        if let poison, poison.layer == layer && poison.id == id { return Int.max }
        let step = steps[layer - 1]
        let h = stressHash(seed, layer, id)
        guard h % 1024 < step.throwRate else { return 0 }
        switch step.policy {
        case .fail: return 0
        case .skip: return 1
        case .retry(let a): return a == 0 ? 0 : 1 + Int((h >> 20) % UInt64(a))
        }
    }

    func isSlow(layer: Int, id: Int) -> Bool {
        (stressHash(seed, layer, id) >> 40) % 64 < steps[layer - 1].slowRate
    }

    /// Every layer from the source to the collector keeps input order, so the collector must see
    /// increasing ids (serial layers and ordered parallel ones keep order; a collector must be serial, a
    /// stream's last layer may be ordered).
    var keepsOrder: Bool {
        steps.allSatisfy { step in
            switch step.kind {
            case .serialSync, .serialAsync, .batches, .batchMap(_, 1, _): true
            case .cpu, .async, .batchMap: step.ordered
            }
        } && generators == 1
    }
}

/// What a run of a configuration must do when nothing stops it early: computed from the config alone.
struct StressPlan {
    /// Per item: delivered by the collector.
    var delivered: [Bool]
    /// Per layer (index 1...): items skipped and retries made.
    var skipped: [Int]
    var retried: [Int]
    /// attempts[layer][id]: calls of the layer's closure for the item.
    var attempts: [[Int]]
    /// Some item fails the run (.fail, or .retry with its attempts spent).
    var fatal: Bool

    init(_ c: StressConfig) {
        let layers = c.steps.count
        delivered = Array(repeating: false, count: c.n)
        skipped = Array(repeating: 0, count: layers + 1)
        retried = Array(repeating: 0, count: layers + 1)
        attempts = Array(repeating: Array(repeating: 0, count: c.n), count: layers + 1)
        fatal = false
        for id in 0..<c.n {
            var alive = true
            for layer in 1...layers where alive {
                let t = c.throwsBefore(layer: layer, id: id)
                let retries = if case .retry(let a) = c.steps[layer - 1].policy { a } else { 0 }
                if t == 0 {
                    attempts[layer][id] = 1
                } else if case .skip = c.steps[layer - 1].policy {
                    attempts[layer][id] = 1
                    skipped[layer] += 1
                    alive = false
                } else if t <= retries {
                    attempts[layer][id] = t + 1
                    retried[layer] += t
                } else {
                    attempts[layer][id] = retries + 1
                    retried[layer] += retries
                    fatal = true
                    alive = false
                }
            }
            delivered[id] = alive
        }
    }
}
