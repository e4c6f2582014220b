// PipelineStream+Arity.swift — pipelineStream entry points, one per length (2 to 8 layers).

/// The outputs of the last of 2 layers as an `AsyncSequence`, instead of a collector.
///
/// `for try await x in pipelineStream(...)` runs the pipeline as it is iterated. Configuration errors
/// and the first `.fail` error are thrown from the loop; leaving the loop early stops the pipeline, and
/// ``PipelineStream/report()`` then counts what was left unread as dropped.
@inlinable
public func pipelineStream<T0: Sendable, T1: Sendable>(
    _ l0: Layer<Never, T0>,
    _ l1: Layer<T0, T1>,
    options: PipelineOptions = PipelineOptions()
) -> PipelineStream<T1> {
    PipelineStream(layers: [l0.erased(0), l1.erased(1)], options: options)
}

/// The outputs of the last of 3 layers as an `AsyncSequence`, instead of a collector.
///
/// `for try await x in pipelineStream(...)` runs the pipeline as it is iterated. Configuration errors
/// and the first `.fail` error are thrown from the loop; leaving the loop early stops the pipeline, and
/// ``PipelineStream/report()`` then counts what was left unread as dropped.
@inlinable
public func pipelineStream<T0: Sendable, T1: Sendable, T2: Sendable>(
    _ l0: Layer<Never, T0>,
    _ l1: Layer<T0, T1>,
    _ l2: Layer<T1, T2>,
    options: PipelineOptions = PipelineOptions()
) -> PipelineStream<T2> {
    PipelineStream(layers: [l0.erased(0), l1.erased(1), l2.erased(2)], options: options)
}

/// The outputs of the last of 4 layers as an `AsyncSequence`, instead of a collector.
///
/// `for try await x in pipelineStream(...)` runs the pipeline as it is iterated. Configuration errors
/// and the first `.fail` error are thrown from the loop; leaving the loop early stops the pipeline, and
/// ``PipelineStream/report()`` then counts what was left unread as dropped.
@inlinable
public func pipelineStream<T0: Sendable, T1: Sendable, T2: Sendable, T3: Sendable>(
    _ l0: Layer<Never, T0>,
    _ l1: Layer<T0, T1>,
    _ l2: Layer<T1, T2>,
    _ l3: Layer<T2, T3>,
    options: PipelineOptions = PipelineOptions()
) -> PipelineStream<T3> {
    PipelineStream(layers: [l0.erased(0), l1.erased(1), l2.erased(2), l3.erased(3)], options: options)
}

/// The outputs of the last of 5 layers as an `AsyncSequence`, instead of a collector.
///
/// `for try await x in pipelineStream(...)` runs the pipeline as it is iterated. Configuration errors
/// and the first `.fail` error are thrown from the loop; leaving the loop early stops the pipeline, and
/// ``PipelineStream/report()`` then counts what was left unread as dropped.
@inlinable
public func pipelineStream<T0: Sendable, T1: Sendable, T2: Sendable, T3: Sendable, T4: Sendable>(
    _ l0: Layer<Never, T0>,
    _ l1: Layer<T0, T1>,
    _ l2: Layer<T1, T2>,
    _ l3: Layer<T2, T3>,
    _ l4: Layer<T3, T4>,
    options: PipelineOptions = PipelineOptions()
) -> PipelineStream<T4> {
    PipelineStream(layers: [l0.erased(0), l1.erased(1), l2.erased(2), l3.erased(3), l4.erased(4)], options: options)
}

/// The outputs of the last of 6 layers as an `AsyncSequence`, instead of a collector.
///
/// `for try await x in pipelineStream(...)` runs the pipeline as it is iterated. Configuration errors
/// and the first `.fail` error are thrown from the loop; leaving the loop early stops the pipeline, and
/// ``PipelineStream/report()`` then counts what was left unread as dropped.
@inlinable
public func pipelineStream<T0: Sendable, T1: Sendable, T2: Sendable, T3: Sendable, T4: Sendable, T5: Sendable>(
    _ l0: Layer<Never, T0>,
    _ l1: Layer<T0, T1>,
    _ l2: Layer<T1, T2>,
    _ l3: Layer<T2, T3>,
    _ l4: Layer<T3, T4>,
    _ l5: Layer<T4, T5>,
    options: PipelineOptions = PipelineOptions()
) -> PipelineStream<T5> {
    PipelineStream(
        layers: [l0.erased(0), l1.erased(1), l2.erased(2), l3.erased(3), l4.erased(4), l5.erased(5)], options: options)
}

/// The outputs of the last of 7 layers as an `AsyncSequence`, instead of a collector.
///
/// `for try await x in pipelineStream(...)` runs the pipeline as it is iterated. Configuration errors
/// and the first `.fail` error are thrown from the loop; leaving the loop early stops the pipeline, and
/// ``PipelineStream/report()`` then counts what was left unread as dropped.
@inlinable
public func pipelineStream<
    T0: Sendable, T1: Sendable, T2: Sendable, T3: Sendable, T4: Sendable, T5: Sendable, T6: Sendable
>(
    _ l0: Layer<Never, T0>,
    _ l1: Layer<T0, T1>,
    _ l2: Layer<T1, T2>,
    _ l3: Layer<T2, T3>,
    _ l4: Layer<T3, T4>,
    _ l5: Layer<T4, T5>,
    _ l6: Layer<T5, T6>,
    options: PipelineOptions = PipelineOptions()
) -> PipelineStream<T6> {
    PipelineStream(
        layers: [l0.erased(0), l1.erased(1), l2.erased(2), l3.erased(3), l4.erased(4), l5.erased(5), l6.erased(6)],
        options: options)
}

/// The outputs of the last of 8 layers as an `AsyncSequence`, instead of a collector.
///
/// `for try await x in pipelineStream(...)` runs the pipeline as it is iterated. Configuration errors
/// and the first `.fail` error are thrown from the loop; leaving the loop early stops the pipeline, and
/// ``PipelineStream/report()`` then counts what was left unread as dropped.
@inlinable
public func pipelineStream<
    T0: Sendable, T1: Sendable, T2: Sendable, T3: Sendable, T4: Sendable, T5: Sendable, T6: Sendable, T7: Sendable
>(
    _ l0: Layer<Never, T0>,
    _ l1: Layer<T0, T1>,
    _ l2: Layer<T1, T2>,
    _ l3: Layer<T2, T3>,
    _ l4: Layer<T3, T4>,
    _ l5: Layer<T4, T5>,
    _ l6: Layer<T5, T6>,
    _ l7: Layer<T6, T7>,
    options: PipelineOptions = PipelineOptions()
) -> PipelineStream<T7> {
    PipelineStream(
        layers: [
            l0.erased(0), l1.erased(1), l2.erased(2), l3.erased(3), l4.erased(4), l5.erased(5), l6.erased(6),
            l7.erased(7),
        ], options: options)
}
