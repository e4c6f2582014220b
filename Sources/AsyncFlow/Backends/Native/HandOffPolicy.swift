// HandOffPolicy.swift — which links of a run skip their queue on the native backend (Backends/HandOff.swift).
// With the workers one per CPU, a CPU layer's threads pull a Sequence source themselves and call a sync
// collector with the batches they made: the source and the collector would otherwise run only in the
// workers' waits, and every batch would cross between cores twice more. With fewer workers than CPUs,
// the workers pull the source whenever its own task has left their queue empty, and that task carries
// what it pulls through a cheap stateless CPU layer itself.
//
// Invariant:
//  [direct hand-offs only where they pay] Only where the run allows it (nativeHandOffs): the native backend;
//    a run whose CPU layers' workers are at most the CPUs the pools may use (with more, a thread holding a
//    lock is often descheduled and the others wait for it); a link that joins a single (not merged) source
//    to a CPU layer, or an unordered CPU layer to the last layer when that is a serial one (not a
//    stream's). With exactly one worker per CPU both are direct ([one puller at a time],
//    [one collector call at a time]); with fewer, helper threads run the other stages beside the workers
//    ([helpers fill the spare cpus]), a source feeding an unordered CPU layer is shared ([a shared source]), and the
//    collector keeps its queue unless that CPU layer is stateless ([carried batches]). The stage on the
//    serial side offers its path only when it can: a Sequence source (DirectSource), a serial layer with a
//    sync closure and no output (DirectCollector). It sets it on the link in prepare(), before any thread
//    runs ([configuration errors before the first pull]), and never again.

/// [direct hand-offs only where they pay]: on the native backend, for each link of a run (link i joins layer i to layer i + 1), how its items
/// go.
func nativeHandOffs(_ layers: [ErasedLayer], sizes: RunSizes, streaming: Bool) -> [HandOff] {
    let linkCount = sizes.links.count
    guard sizes.cpuWorkers <= sizes.cpus else {
        return Array(repeating: .queue, count: linkCount)
    }
    let onePerCPU = sizes.cpuWorkers == sizes.cpus
    return (0..<linkCount).map { i in
        guard i + 1 < layers.count else { return .queue }  // a stream's link: its consumer is not a layer
        let (from, to) = (layers[i], layers[i + 1])
        if from.isSingleSource, to.runsOnWorkers {
            if onePerCPU { return .direct }
            return to.ordered ? .queue : .shared
        }
        if case .serial = to.kind, from.runsOnWorkers, !from.ordered, i + 2 == layers.count, !streaming,
            onePerCPU || (from.isStateless && i > 0 && layers[i - 1].isSingleSource)  // [carried batches]
        {
            return .direct
        }
        return .queue
    }
}
