import Foundation
import Testing

@testable import AsyncFlow

/// Each bad input gives a FlowConfigurationError naming what is wrong, before any item is pulled.
extension Serial {
    @Suite("Bad input")
    struct ConfigurationTests {
        /// Runs a 3-layer pipeline with the given middle layer and options; returns the error and pulls.
        private func attempt(
            _ middle: Layer<Int, Int>, collectorCapacity: Int? = nil, options: PipelineOptions = PipelineOptions()
        ) async -> (FlowConfigurationError?, Int) {
            let pulled = Counter()
            do {
                _ = try await pipeline(
                    Layer(CountingSequence(range: 0..<100, pulled: pulled)), middle,
                    Layer(capacity: collectorCapacity) { (_: Int) in }, options: options)
                return (nil, pulled.count)
            } catch let error as FlowConfigurationError {
                return (error, pulled.count)
            } catch {
                Issue.record("unexpected error \(error)")
                return (nil, pulled.count)
            }
        }

        @Test(
            "bad layer parameters",
            arguments: [
                (Layer<Int, Int>(workers: 0) { $0 }, "workers", "workers: 0"),
                (Layer<Int, Int>(workers: -3) { $0 }, "workers", "workers: -3"),
                (Layer<Int, Int>(workers: 100_000) { $0 }, "workers", "between 1 and 4096"),
                (Layer<Int, Int>(concurrency: 0) { $0 }, "concurrency", "concurrency: 0"),
                (Layer<Int, Int>(workers: 1, capacity: 0) { $0 }, "capacity", "capacity: 0"),
                (Layer<Int, Int>(workers: 1, capacity: -5) { $0 }, "capacity", "capacity: -5"),
                (
                    Layer<Int, Int>(workers: 1, onError: .retry(attempts: -1)) { $0 }, "onError",
                    "attempts must be 0 or more"
                ),
            ])
        func badLayer(layer: Layer<Int, Int>, parameter: String, needle: String) async {
            let (error, pulled) = await attempt(layer)
            let e = error
            #expect(e != nil)
            #expect(e?.parameter == parameter)
            #expect(e?.description.contains(needle) == true, "\(String(describing: e))")
            #expect(e?.layer == "layer 1 (\(parameter == "concurrency" ? "async" : "cpu"))")
            #expect(pulled == 0)
        }

        @Test("a collector's capacity of 0")
        func collectorCapacity() async {
            let (error, pulled) = await attempt(Layer(workers: 1) { $0 }, collectorCapacity: 0)
            #expect(error?.parameter == "capacity" && error?.layer == "layer 2 (serial)")
            #expect(pulled == 0)
        }

        @Test("bad options name the option")
        func badOptions() async {
            var o = PipelineOptions()
            o.cpus = "0-x"
            var (error, pulled) = await attempt(Layer(workers: 1) { $0 }, options: o)
            #expect(error?.parameter == "PipelineOptions.cpus")
            #expect(
                error?.message
                    == "PipelineOptions.cpus=\"0-x\": not a CPU list (expected N, N-M or N-M:S, comma-separated)")
            #expect(pulled == 0)
            o = PipelineOptions()
            o.batchSize = 0
            (error, pulled) = await attempt(Layer(workers: 1) { $0 }, options: o)
            #expect(error?.parameter == "PipelineOptions.batchSize" && pulled == 0)
            o = PipelineOptions()
            o.workers = 0
            (error, pulled) = await attempt(Layer(workers: nil) { $0 }, options: o)
            #expect(error?.parameter == "PipelineOptions.workers" && pulled == 0)
            o = PipelineOptions()
            o.spinNanoseconds = -1
            (error, pulled) = await attempt(Layer(workers: 1) { $0 }, options: o)
            #expect(error?.parameter == "PipelineOptions.spinNanoseconds" && pulled == 0)
        }

        @Test(
            "bad FLOW_* variables name the variable and the value",
            arguments: [
                ("FLOW_WORKERS", "zero", "FLOW_WORKERS=\"zero\": not a whole number"),
                ("FLOW_WORKERS", "", "FLOW_WORKERS=\"\": empty"),
                ("FLOW_CPUS", "0-x", "FLOW_CPUS=\"0-x\": not a CPU list"),
                ("FLOW_CPUS", "1023", "not in this process's allowed set"),
                ("FLOW_PIN", "tight", "FLOW_PIN=\"tight\": expected none, compact or spread"),
                ("FLOW_SPIN_NS", "-5", "FLOW_SPIN_NS=\"-5\": not a whole number"),
            ])
        func badEnvironment(variable: String, value: String, needle: String) async {
            setenv(variable, value, 1)
            defer { unsetenv(variable) }
            let (error, pulled) = await attempt(Layer(workers: 1) { $0 })
            #expect(error?.parameter == variable)
            #expect(error?.message.contains(needle) == true, "\(String(describing: error))")
            #expect(pulled == 0)
        }

        @Test("FLOW_WORKERS sets the threads of a layer declared with workers: nil")
        func workersFromEnvironment() async throws {
            setenv("FLOW_WORKERS", "3", 1)
            defer { unsetenv("FLOW_WORKERS") }
            let workers = Counter()
            _ = try await pipeline(
                Layer(0..<3_000),
                Layer(workers: nil, state: { workers.add(1) }) { (_: inout Void, x: Int) -> Int in x },
                Layer { (_: Int) in }
            )
            #expect(workers.count == 3)
        }
    }
}
