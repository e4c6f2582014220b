// Validation.swift — every parameter of a run checked before anything is built
// ([configuration errors before the first pull]), each error naming the parameter, its value and its layer.
import CFlow

/// Check every parameter and return the pool settings: defaults, then FLOW_* variables, then options.
func validate(
    _ layers: [ErasedLayer], options: PipelineOptions, streaming: Bool
) throws(FlowConfigurationError) -> flow_config {
    if layers.count < 2 {
        let what = streaming ? "a source and a layer" : "a source and a collector"
        throw FlowConfigurationError(
            parameter: "layers", message: "a pipeline needs at least 2 layers (\(what)), got \(layers.count)")
    }
    let pool = try options.poolConfigValidated()
    for layer in layers {
        func bad(_ parameter: String, _ message: String) -> FlowConfigurationError {
            FlowConfigurationError(parameter: parameter, message: message, layer: layer.name)
        }
        switch layer.kind {
        case .cpu(let w?, _): try checkWorkers(w, parameter: "workers", layer: layer.name)
        case .async(let c) where c < 1: throw bad("concurrency", "concurrency: \(c): must be at least 1")
        case .batches(let size, let within):
            try checkBatch(size, within, bad)
            if layer.index != layers.count - 1 || streaming {
                let instead = streaming ? "pipeline(...), not pipelineStream(...)" : "pipeline(...)"
                throw bad("batchesOf", "a batch collector must be the last layer of \(instead)")
            }
        case .batchMap(let size, let within, let c):
            try checkBatch(size, within, bad)
            if c < 1 { throw bad("concurrency", "concurrency: \(c): must be at least 1") }
        default: break
        }
        if let c = layer.capacity, c < 1 {
            throw bad("capacity", "capacity: \(c): must be at least 1")
        }
        if let (parameter, message) = layer.invalid { throw bad(parameter, message) }
        if case .retry(let n) = layer.onError, n < 0 {
            throw bad("onError", "onError: .retry(attempts: \(n)): attempts must be 0 or more")
        }
    }
    if let access = layers.last?.commits { try checkNamed(layers, run: access.run) }
    return pool
}

/// A named run's layers (its last one commits): each must keep its items' source positions, the source must
/// resume, and the run must have a name.
func checkNamed(_ layers: [ErasedLayer], run: String) throws(FlowConfigurationError) {
    for layer in layers where layer.positioned == nil {
        throw FlowConfigurationError(
            parameter: layer.index == 0 ? "source" : "layer",
            message: "the named run \"\(run)\" needs "
                + (layer.index == 0
                    ? "a source that can resume: a RandomAccessCollection (an Array, a Range), a ResumableSource or a "
                        + "ResumableAsyncSource; a plain Sequence, an AsyncSequence or a merged source cannot"
                    : "layers that keep each item's source position; this kind of layer cannot be part of one yet"),
            layer: layer.name)
    }
    if run.isEmpty {
        throw FlowConfigurationError(
            parameter: "run", message: "run: \"\": a named run needs a name", layer: layers.last!.name)
    }
}

/// A batch layer's `batchesOf:` and `within:`.
func checkBatch(
    _ size: Int, _ within: Duration?, _ bad: (String, String) -> FlowConfigurationError
) throws(FlowConfigurationError) {
    if size < 1 { throw bad("batchesOf", "batchesOf: \(size): must be at least 1") }
    if let within, within <= .zero {
        throw bad("within", "within: \(within): must be more than zero (or nil: only full batches)")
    }
}

/// A worker count, whether a layer's `workers:` or PipelineOptions.workers (FLOW_WORKERS is checked by
/// CFlow's parser, with the same bounds).
func checkWorkers(_ workers: Int, parameter: String, layer: String? = nil) throws(FlowConfigurationError) {
    guard workers < 1 || workers > Int(FLOW_MAX_WORKERS) else { return }
    throw FlowConfigurationError(
        parameter: parameter, message: "workers: \(workers): must be between 1 and \(FLOW_MAX_WORKERS)", layer: layer)
}
