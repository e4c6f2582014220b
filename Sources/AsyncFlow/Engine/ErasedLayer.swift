// ErasedLayer.swift — a layer with its item types erased, as the runner sees it: its parameters, and
// closures (made in the user's module, so specialised for the item types) that build its output link
// and its stage.

/// A layer with its types erased, as the runner sees it.
@usableFromInline
struct ErasedLayer: Sendable {
    @usableFromInline typealias LinkMaker =
        @Sendable (_ capacity: Int, _ backend: any Backend) throws(FlowConfigurationError) -> any AnyLink
    @usableFromInline typealias StageMaker = @Sendable (StagePlan) -> StageHandle

    let index: Int
    let name: String
    let kind: LayerKind
    /// MemoryLayout<Input>.stride and MemoryLayout<Output>.stride: queue sizes are bounded in bytes too.
    let inputStride: Int
    let outputStride: Int
    let capacity: Int?
    let ordered: Bool
    let onError: ErrorPolicy
    /// See Layer.invalid.
    let invalid: (parameter: String, message: String)?
    let makeOutputLink: LinkMaker
    let makeStage: StageMaker
    /// The layer in a named run (its items carry their source positions); nil when it cannot be part of one.
    let positioned: PositionedForm?
    /// A committing collector's run and store (it makes the pipeline a named run); nil for other layers.
    let commits: RunAccess?

    @usableFromInline
    init(
        index: Int, name: String, kind: LayerKind, inputStride: Int, outputStride: Int, capacity: Int?, ordered: Bool,
        onError: ErrorPolicy, invalid: (parameter: String, message: String)?, makeOutputLink: @escaping LinkMaker,
        makeStage: @escaping StageMaker, positioned: PositionedForm?, commits: RunAccess?
    ) {
        self.index = index
        self.name = name
        self.kind = kind
        self.inputStride = inputStride
        self.outputStride = outputStride
        self.capacity = capacity
        self.ordered = ordered
        self.onError = onError
        self.invalid = invalid
        self.makeOutputLink = makeOutputLink
        self.makeStage = makeStage
        self.positioned = positioned
        self.commits = commits
    }
}

/// A layer's form in a named run: its stage and output link over Positioned items (DurableRun.swift).
@usableFromInline
struct PositionedForm: Sendable {
    @usableFromInline typealias StageMaker = @Sendable (StagePlan, DurableRun) -> StageHandle

    let inputStride: Int
    let outputStride: Int
    let makeOutputLink: ErasedLayer.LinkMaker
    let makeStage: StageMaker

    @usableFromInline
    init(
        inputStride: Int, outputStride: Int, makeOutputLink: @escaping ErasedLayer.LinkMaker,
        makeStage: @escaping StageMaker
    ) {
        self.inputStride = inputStride
        self.outputStride = outputStride
        self.makeOutputLink = makeOutputLink
        self.makeStage = makeStage
    }
}

/// What kind of layer, with its parallelism.
@usableFromInline
enum LayerKind: Sendable {
    /// A source: one generator, or `generators` merged (Layer(merging:)); `count`: the items it will
    /// give, when known up front (a RandomAccessCollection's count), for the progress bar's ETA.
    case source(generators: Int, count: Int?)
    /// `stateless`: the closure keeps no per-worker state, so any of the pool's threads may call it, at
    /// most `workers` at once ([carried batches]).
    case cpu(workers: Int?, stateless: Bool)
    case async(concurrency: Int)
    case serial
    /// A batch collector (Layer(batchesOf:within:)).
    case batches(size: Int, within: Duration?)
    /// A middle layer called with batches (Layer(batchesOf:concurrency:), BatchMapStage).
    case batchMap(size: Int, within: Duration?, concurrency: Int)
}

extension Layer {
    @inlinable
    func erased(_ index: Int) -> ErasedLayer {
        let kindName =
            switch kind {
            case .source: "source"
            case .cpu: "cpu"
            case .async: "async"
            case .serial: "serial"
            case .batches: "batches"
            case .batchMap: "batch map"
            }
        let make = makeStage
        let positioned = positionedStage.map { make in
            PositionedForm(
                inputStride: MemoryLayout<Positioned<Input>>.stride,
                outputStride: MemoryLayout<Positioned<Output>>.stride,
                makeOutputLink: { (capacity, backend) throws(FlowConfigurationError) in
                    try Link<Positioned<Output>>(capacity: capacity, backend: backend)
                }, makeStage: make)
        }
        return ErasedLayer(
            index: index, name: name ?? "layer \(index) (\(kindName))", kind: kind,
            inputStride: MemoryLayout<Input>.stride, outputStride: MemoryLayout<Output>.stride, capacity: capacity,
            ordered: ordered, onError: onError, invalid: invalid,
            makeOutputLink: { (capacity, backend) throws(FlowConfigurationError) in
                try Link<Output>(capacity: capacity, backend: backend)
            },
            makeStage: { plan in make(StageContext(plan)) }, positioned: positioned, commits: commits)
    }
}

extension ErasedLayer {
    /// This layer in `run`: built over positioned items ([positions number the source's items]); a source's count is
    /// what is left to do. Only for a layer with a positioned form (runNamed checks).
    func positioned(in run: DurableRun) -> ErasedLayer {
        let form = positioned!
        var kind = kind
        if case .source(let generators, let count?) = kind {
            let left = UInt64(count) - min(UInt64(count), run.start.progress.committed)
            kind = .source(generators: generators, count: Int(left))
        }
        return ErasedLayer(
            index: index, name: name, kind: kind, inputStride: form.inputStride, outputStride: form.outputStride,
            capacity: capacity, ordered: ordered, onError: onError, invalid: invalid,
            makeOutputLink: form.makeOutputLink, makeStage: { form.makeStage($0, run) }, positioned: form,
            commits: commits)
    }

    /// A merged source's generators (each counted apart in progress and metrics); 0 for other layers.
    var generators: Int {
        if case .source(let g, _) = kind, g > 1 { return g }
        return 0
    }

    /// A source's item count when known up front (see LayerKind.source).
    var expectedCount: Int? {
        if case .source(_, let count) = kind { return count }
        return nil
    }

    /// A source with one generator (not merged).
    var isSingleSource: Bool {
        if case .source(generators: 1, _) = kind { return true }
        return false
    }

    /// A CPU layer whose closure keeps no per-worker state (LayerKind.cpu).
    var isStateless: Bool {
        if case .cpu(_, let stateless) = kind { return stateless }
        return false
    }

    /// A CPU layer: its loops run where the backend runs workers, not as a stage task
    /// ([the run outlives its stages and threads]).
    var runsOnWorkers: Bool {
        if case .cpu = kind { return true }
        return false
    }
}
