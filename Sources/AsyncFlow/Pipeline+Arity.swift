// Pipeline+Arity.swift — the public entry points, one per pipeline length (2 to 8 layers).
// Generated shape: the first layer is a source (Input == Never), the last returns Void, and each
// layer's Output is the next one's Input. All of them run through runPipeline.

/// Run a pipeline of 2 layers to completion and report what it did.
///
/// The first layer is a source, the last returns `Void` (the collector). Throws a
/// ``FlowConfigurationError`` for bad parameters before any item is pulled, the first error a layer
/// throws under ``ErrorPolicy/fail`` (the original error value), or `CancellationError` when the awaiting
/// task is cancelled. Every C thread the pipeline started has been joined when it returns or throws.
/// The report may be ignored: with the default policy nothing is skipped silently.
@inlinable @discardableResult
public func pipeline<T0: Sendable>(
    _ l0: Layer<Never, T0>,
    _ l1: Layer<T0, Void>,
    options: PipelineOptions = PipelineOptions()
) async throws -> PipelineReport {
    try await runPipeline([l0.erased(0), l1.erased(1)], options: options)
}

/// Run a pipeline of 3 layers to completion and report what it did.
///
/// The first layer is a source, the last returns `Void` (the collector). Throws a
/// ``FlowConfigurationError`` for bad parameters before any item is pulled, the first error a layer
/// throws under ``ErrorPolicy/fail`` (the original error value), or `CancellationError` when the awaiting
/// task is cancelled. Every C thread the pipeline started has been joined when it returns or throws.
/// The report may be ignored: with the default policy nothing is skipped silently.
@inlinable @discardableResult
public func pipeline<T0: Sendable, T1: Sendable>(
    _ l0: Layer<Never, T0>,
    _ l1: Layer<T0, T1>,
    _ l2: Layer<T1, Void>,
    options: PipelineOptions = PipelineOptions()
) async throws -> PipelineReport {
    try await runPipeline([l0.erased(0), l1.erased(1), l2.erased(2)], options: options)
}

/// Run a pipeline of 4 layers to completion and report what it did.
///
/// The first layer is a source, the last returns `Void` (the collector). Throws a
/// ``FlowConfigurationError`` for bad parameters before any item is pulled, the first error a layer
/// throws under ``ErrorPolicy/fail`` (the original error value), or `CancellationError` when the awaiting
/// task is cancelled. Every C thread the pipeline started has been joined when it returns or throws.
/// The report may be ignored: with the default policy nothing is skipped silently.
@inlinable @discardableResult
public func pipeline<T0: Sendable, T1: Sendable, T2: Sendable>(
    _ l0: Layer<Never, T0>,
    _ l1: Layer<T0, T1>,
    _ l2: Layer<T1, T2>,
    _ l3: Layer<T2, Void>,
    options: PipelineOptions = PipelineOptions()
) async throws -> PipelineReport {
    try await runPipeline([l0.erased(0), l1.erased(1), l2.erased(2), l3.erased(3)], options: options)
}

/// Run a pipeline of 5 layers to completion and report what it did.
///
/// The first layer is a source, the last returns `Void` (the collector). Throws a
/// ``FlowConfigurationError`` for bad parameters before any item is pulled, the first error a layer
/// throws under ``ErrorPolicy/fail`` (the original error value), or `CancellationError` when the awaiting
/// task is cancelled. Every C thread the pipeline started has been joined when it returns or throws.
/// The report may be ignored: with the default policy nothing is skipped silently.
@inlinable @discardableResult
public func pipeline<T0: Sendable, T1: Sendable, T2: Sendable, T3: Sendable>(
    _ l0: Layer<Never, T0>,
    _ l1: Layer<T0, T1>,
    _ l2: Layer<T1, T2>,
    _ l3: Layer<T2, T3>,
    _ l4: Layer<T3, Void>,
    options: PipelineOptions = PipelineOptions()
) async throws -> PipelineReport {
    try await runPipeline([l0.erased(0), l1.erased(1), l2.erased(2), l3.erased(3), l4.erased(4)], options: options)
}

/// Run a pipeline of 6 layers to completion and report what it did.
///
/// The first layer is a source, the last returns `Void` (the collector). Throws a
/// ``FlowConfigurationError`` for bad parameters before any item is pulled, the first error a layer
/// throws under ``ErrorPolicy/fail`` (the original error value), or `CancellationError` when the awaiting
/// task is cancelled. Every C thread the pipeline started has been joined when it returns or throws.
/// The report may be ignored: with the default policy nothing is skipped silently.
@inlinable @discardableResult
public func pipeline<T0: Sendable, T1: Sendable, T2: Sendable, T3: Sendable, T4: Sendable>(
    _ l0: Layer<Never, T0>,
    _ l1: Layer<T0, T1>,
    _ l2: Layer<T1, T2>,
    _ l3: Layer<T2, T3>,
    _ l4: Layer<T3, T4>,
    _ l5: Layer<T4, Void>,
    options: PipelineOptions = PipelineOptions()
) async throws -> PipelineReport {
    try await runPipeline(
        [l0.erased(0), l1.erased(1), l2.erased(2), l3.erased(3), l4.erased(4), l5.erased(5)], options: options)
}

/// Run a pipeline of 7 layers to completion and report what it did.
///
/// The first layer is a source, the last returns `Void` (the collector). Throws a
/// ``FlowConfigurationError`` for bad parameters before any item is pulled, the first error a layer
/// throws under ``ErrorPolicy/fail`` (the original error value), or `CancellationError` when the awaiting
/// task is cancelled. Every C thread the pipeline started has been joined when it returns or throws.
/// The report may be ignored: with the default policy nothing is skipped silently.
@inlinable @discardableResult
public func pipeline<T0: Sendable, T1: Sendable, T2: Sendable, T3: Sendable, T4: Sendable, T5: Sendable>(
    _ l0: Layer<Never, T0>,
    _ l1: Layer<T0, T1>,
    _ l2: Layer<T1, T2>,
    _ l3: Layer<T2, T3>,
    _ l4: Layer<T3, T4>,
    _ l5: Layer<T4, T5>,
    _ l6: Layer<T5, Void>,
    options: PipelineOptions = PipelineOptions()
) async throws -> PipelineReport {
    try await runPipeline(
        [l0.erased(0), l1.erased(1), l2.erased(2), l3.erased(3), l4.erased(4), l5.erased(5), l6.erased(6)],
        options: options)
}

/// Run a pipeline of 8 layers to completion and report what it did.
///
/// The first layer is a source, the last returns `Void` (the collector). Throws a
/// ``FlowConfigurationError`` for bad parameters before any item is pulled, the first error a layer
/// throws under ``ErrorPolicy/fail`` (the original error value), or `CancellationError` when the awaiting
/// task is cancelled. Every C thread the pipeline started has been joined when it returns or throws.
/// The report may be ignored: with the default policy nothing is skipped silently.
@inlinable @discardableResult
public func pipeline<T0: Sendable, T1: Sendable, T2: Sendable, T3: Sendable, T4: Sendable, T5: Sendable, T6: Sendable>(
    _ l0: Layer<Never, T0>,
    _ l1: Layer<T0, T1>,
    _ l2: Layer<T1, T2>,
    _ l3: Layer<T2, T3>,
    _ l4: Layer<T3, T4>,
    _ l5: Layer<T4, T5>,
    _ l6: Layer<T5, T6>,
    _ l7: Layer<T6, Void>,
    options: PipelineOptions = PipelineOptions()
) async throws -> PipelineReport {
    try await runPipeline(
        [
            l0.erased(0), l1.erased(1), l2.erased(2), l3.erased(3), l4.erased(4), l5.erased(5), l6.erased(6),
            l7.erased(7),
        ], options: options)
}
