#!/usr/bin/env python3
"""Writes Sources/AsyncFlow/Pipeline+Arity.swift and PipelineStream+Arity.swift: one public entry point
per pipeline length (2 to 8 layers), since each layer's Output must be the next one's Input. Run it after
changing the shape of those entry points, then `swift format format -i` the two files."""
import os

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

out = ['''// Pipeline+Arity.swift — the public entry points, one per pipeline length (2 to 8 layers).
// Generated shape: the first layer is a source (Input == Never), the last returns Void, and each
// layer's Output is the next one's Input. All of them run through runPipeline.
''']
for n in range(2, 9):
    ts = [f"T{i}" for i in range(n - 1)]
    generics = ", ".join(f"{t}: Sendable" for t in ts)
    params = [f"_ l0: Layer<Never, T0>"]
    for i in range(1, n - 1):
        params.append(f"_ l{i}: Layer<T{i-1}, T{i}>")
    params.append(f"_ l{n-1}: Layer<T{n-2}, Void>")
    erased = ", ".join(f"l{i}.erased({i})" for i in range(n))
    doc = '''
/// Run a pipeline of %d layers to completion and report what it did.
///
/// The first layer is a source, the last returns `Void` (the collector). Throws a
/// ``FlowConfigurationError`` for bad parameters before any item is pulled, the first error a layer
/// throws under ``ErrorPolicy/fail`` (the original error value), or `CancellationError` when the awaiting
/// task is cancelled. Every C thread the pipeline started has been joined when it returns or throws.
/// The report may be ignored: with the default policy nothing is skipped silently.''' % n
    out.append(doc + f"\n@inlinable @discardableResult\npublic func pipeline<{generics}>(\n    " + ",\n    ".join(params) +
               ",\n    options: PipelineOptions = PipelineOptions()\n) async throws -> PipelineReport {\n" +
               f"    try await runPipeline([{erased}], options: options)\n}}\n")
open(os.path.join(root, 'Sources/AsyncFlow/Pipeline+Arity.swift'), 'w').write("\n".join(out))

out = ['''// PipelineStream+Arity.swift — pipelineStream entry points, one per length (2 to 8 layers).
''']
for n in range(2, 9):
    ts = [f"T{i}" for i in range(n)]
    generics = ", ".join(f"{t}: Sendable" for t in ts)
    params = [f"_ l0: Layer<Never, T0>"] + [f"_ l{i}: Layer<T{i-1}, T{i}>" for i in range(1, n)]
    erased = ", ".join(f"l{i}.erased({i})" for i in range(n))
    doc = '''
/// The outputs of the last of %d layers as an `AsyncSequence`, instead of a collector.
///
/// `for try await x in pipelineStream(...)` runs the pipeline as it is iterated. Configuration errors
/// and the first `.fail` error are thrown from the loop; leaving the loop early stops the pipeline, and
/// ``PipelineStream/report()`` then counts what was left unread as dropped.''' % n
    out.append(doc + f"\n@inlinable\npublic func pipelineStream<{generics}>(\n    " + ",\n    ".join(params) +
               f",\n    options: PipelineOptions = PipelineOptions()\n) -> PipelineStream<T{n-1}> {{\n" +
               f"    PipelineStream(layers: [{erased}], options: options)\n}}\n")
open(os.path.join(root, 'Sources/AsyncFlow/PipelineStream+Arity.swift'), 'w').write("\n".join(out))
