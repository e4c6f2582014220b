// Stage.swift — what the runner needs from each layer's running form, and what a stage is given.
import CFlow

/// A layer being run. The runner calls prepare() on every stage (configuration errors surface here,
/// before any item is pulled), then run() on all of them concurrently.
protocol Stage: AnyObject, Sendable {
    func prepare() throws(FlowConfigurationError)
    /// Move items from input to output until the input is closed and drained or the run is stopped;
    /// then finish as a producer of the output link. Never throws: failures go to RunState.
    func run() async
    /// Busy time from the C pool, for CPU stages (nil elsewhere).
    var poolBusyNanoseconds: Int? { get }
}

extension Stage {
    func prepare() throws(FlowConfigurationError) {}
    var poolBusyNanoseconds: Int? { nil }
}

/// Everything a stage is built from.
struct StageContext<Input, Output>: @unchecked Sendable {
    // @unchecked: the links and RunState are thread-safe; the rest is immutable.
    let input: Link<Input>?
    /// nil for the last layer: its outputs (Void) are counted and dropped.
    let output: Link<Output>?
    let policy: PolicyRun
    let batch: Int
    let workers: Int
    let pool: flow_config

    var run: RunState { policy.run }
    var counters: LayerCounters { policy.counters }
}
