/// One stage of a pipeline: a source, a CPU-bound layer on C worker threads, an async layer of Swift
/// tasks, or a serial async layer such as the collector.
///
/// `Input` is what the layer receives (`Never` for a source); `Output` is what it passes on (`Void`
/// for the last layer). Layers are values: describing one does nothing until ``pipeline(_:_:options:)``
/// runs it. Bad parameters (`workers: 0`, `capacity: 0`, ...) are reported by `pipeline` as a
/// ``FlowConfigurationError`` before any item is pulled.
public struct Layer<Input: Sendable, Output: Sendable>: Sendable {
    enum Kind: Sendable {
        case source
        case cpu(workers: Int?)
        case async(concurrency: Int)
        case serial
    }

    let kind: Kind
    let name: String?
    let ordered: Bool
    let capacity: Int?
    let onError: ErrorPolicy
    /// Builds the stage that runs this layer, between its input link (nil for a source) and its output
    /// link (nil when `Output` is `Void` and the layer is last).
    let makeStage: @Sendable (StageContext<Input, Output>) -> any Stage
}

extension Layer where Input == Never {
    /// A source layer over any `Sequence`: its elements enter the pipeline in order, in batches.
    public init<S: Sequence & Sendable>(_ source: S, name: String? = nil) where S.Element == Output {
        self.init(
            kind: .source, name: name, ordered: false, capacity: nil, onError: .fail,
            makeStage: { SequenceSourceStage(source: source, context: $0) })
    }

    /// A source layer over any `AsyncSequence`. An error it throws fails the pipeline and is rethrown.
    public init<S: AsyncSequence & Sendable>(_ source: S, name: String? = nil) where S.Element == Output {
        self.init(
            kind: .source, name: name, ordered: false, capacity: nil, onError: .fail,
            makeStage: { AsyncSourceStage(source: source, context: $0) })
    }
}

extension Layer {
    /// A CPU-bound layer: `body` runs on `workers` C threads (pinned as `FLOW_PIN` / the options say),
    /// called per item from a C loop over a batch. It never runs on Swift's cooperative pool.
    ///
    /// - Parameters:
    ///   - workers: threads for this layer; `nil` takes `FLOW_WORKERS` (default: the CPUs allowed).
    ///   - capacity: the bounded queue in front of this layer; `nil` picks one from workers and batch size.
    public init(
        workers: Int?, name: String? = nil, ordered: Bool = false, capacity: Int? = nil,
        onError: ErrorPolicy = .fail, _ body: @escaping @Sendable (Input) throws -> Output
    ) {
        self.init(
            workers: workers, state: { () }, name: name, ordered: ordered, capacity: capacity, onError: onError,
            { (_: inout Void, item: Input) throws -> Output in try body(item) })
    }

    /// A CPU-bound layer with per-worker state: `state` runs once on each worker thread, and that
    /// worker's calls of `body` get it `inout` (scratch buffers, an encoder, a connection).
    public init<State>(
        workers: Int?, state: @escaping @Sendable () -> State, name: String? = nil, ordered: Bool = false,
        capacity: Int? = nil, onError: ErrorPolicy = .fail,
        _ body: @escaping @Sendable (inout State, Input) throws -> Output
    ) {
        self.init(
            kind: .cpu(workers: workers), name: name, ordered: ordered, capacity: capacity, onError: onError,
            makeStage: { CPUStage(context: $0, makeState: state, body: body) })
    }

    /// An async layer (I/O: API calls, database writes): Swift tasks, at most `concurrency` items in
    /// flight. Waiting for items never blocks a thread.
    public init(
        concurrency: Int, name: String? = nil, ordered: Bool = false, capacity: Int? = nil,
        onError: ErrorPolicy = .fail, _ body: @escaping @Sendable (Input) async throws -> Output
    ) {
        self.init(
            kind: .async(concurrency: concurrency), name: name, ordered: ordered, capacity: capacity,
            onError: onError, makeStage: { AsyncStage(context: $0, concurrency: concurrency, body: body) })
    }

    /// A serial async layer: one task calls `body` for each item in order. With `Output == Void` this
    /// is the collector that ends a pipeline.
    public init(
        name: String? = nil, capacity: Int? = nil, onError: ErrorPolicy = .fail,
        _ body: @escaping @Sendable (Input) async throws -> Output
    ) {
        self.init(
            kind: .serial, name: name, ordered: false, capacity: capacity, onError: onError,
            makeStage: { AsyncStage(context: $0, concurrency: 1, body: body) })
    }
}
