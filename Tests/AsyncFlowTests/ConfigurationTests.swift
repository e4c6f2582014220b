import CFlow
import CFlowChecks
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
                (Layer<Int, Int>(concurrency: -2) { $0 }, "concurrency", "concurrency: -2"),
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

        @Test(
            "a batch collector's bad size, bad within, or place before the end of a stream",
            arguments: [
                (Layer<Int, Void>(batchesOf: 0) { _ in }, "batchesOf", "batchesOf: 0: must be at least 1"),
                (Layer<Int, Void>(batchesOf: -1) { _ in }, "batchesOf", "batchesOf: -1: must be at least 1"),
                (Layer<Int, Void>(batchesOf: 10, within: .zero) { _ in }, "within", "must be more than zero"),
                (Layer<Int, Void>(batchesOf: 10, within: .seconds(-1)) { _ in }, "within", "must be more than zero"),
            ])
        func badBatchCollector(layer: Layer<Int, Void>, parameter: String, needle: String) async throws {
            let pulled = Counter()
            let error = await #expect(throws: FlowConfigurationError.self) {
                _ = try await pipeline(Layer(CountingSequence(range: 0..<100, pulled: pulled)), layer)
            }
            #expect(error?.parameter == parameter && error?.layer == "layer 1 (batches)")
            #expect(error?.message.contains(needle) == true, "\(String(describing: error))")
            #expect(pulled.count == 0)
            let streamError = await #expect(throws: FlowConfigurationError.self) {
                for try await _ in pipelineStream(Layer(0..<100), Layer(batchesOf: 10) { (_: [Int]) in }) {}
            }
            #expect(
                streamError?.message
                    == "a batch collector must be the last layer of pipeline(...), not pipelineStream(...)")
        }

        @Test(
            "a capacity no queue can hold is an error naming the layer whose capacity it is",
            arguments: PipelineOptions.Backend.allCases)
        func capacityTooLarge(backend: PipelineOptions.Backend) async {
            let options = PipelineOptions(backend: backend)
            var (error, pulled) = await attempt(
                Layer(workers: 1, name: "score", capacity: 1 << 41) { $0 }, options: options)
            #expect(error?.parameter == "capacity")
            #expect(error?.layer == "score", "\(String(describing: error))")  // not the source that feeds it
            #expect(error?.message.contains("must be between 1 and 2^40") == true, "\(String(describing: error))")
            #expect(pulled == 0)
            // in range as a count, too large in bytes (2^39 items of 8 bytes)
            (error, pulled) = await attempt(
                Layer(workers: 1, name: "score", capacity: 1 << 39) { $0 }, options: options)
            #expect(error?.parameter == "capacity" && error?.layer == "score", "\(String(describing: error))")
            #expect(pulled == 0)
        }

        /// What `probe` gives on a CPU layer's workers, and on an async collector (Swift's cooperative
        /// pool), in one run.
        func seenOnThreads<Value: Hashable & Sendable>(
            _ options: PipelineOptions, _ probe: @escaping @Sendable () -> Value
        ) async throws -> (workers: Set<Value>, collector: Set<Value>) {
            let workers = Locked(Set<Value>())
            let collector = Locked(Set<Value>())
            _ = try await pipeline(
                Layer(0..<10_000),
                Layer(workers: 2) { (x: Int) in
                    let value = probe()
                    workers.withLock { _ = $0.insert(value) }
                    return x
                },
                Layer { (_: Int) async in
                    let value = probe()
                    collector.withLock { _ = $0.insert(value) }
                }, options: options)
            return (workers.withLock { $0 }, collector.withLock { $0 })
        }

        /// A setting of the CPU layer's workers, as `probe` reads it on their threads, over four runs: by
        /// default, with `option` (the options' override), with `variable`=`value` in the environment, and
        /// with both (the option wins). When `app` is given, the async collector (a thread of Swift's
        /// cooperative pool) sees it in every run: the setting is the workers' alone.
        func expectWorkerSetting<Value: Hashable & Sendable>(
            _ probe: @escaping @Sendable () -> Value, app: Value?, byDefault: Value, option: PipelineOptions,
            optionGives: Value, variable: String, value: String, environmentGives: Value,
            sourceLocation: SourceLocation = #_sourceLocation
        ) async throws {
            func expectSeen(_ options: PipelineOptions, _ want: Value) async throws {
                let seen = try await seenOnThreads(options, probe)
                #expect(seen.workers == [want], sourceLocation: sourceLocation)
                if let app { #expect(seen.collector == [app], sourceLocation: sourceLocation) }
            }
            try await expectSeen(PipelineOptions(), byDefault)
            try await expectSeen(option, optionGives)
            setenv(variable, value, 1)
            defer { unsetenv(variable) }
            try await expectSeen(PipelineOptions(), environmentGives)
            try await expectSeen(option, optionGives)  // the option wins
        }

        @Test("a CPU layer's workers run in the scheduling class asked for, from FLOW_SCHED or the options")
        func schedulingClass() async throws {
            var options = PipelineOptions()
            options.scheduling = .idle
            try await expectWorkerSetting(
                { flow_check_thread_sched() }, app: nil, byDefault: Int32(FLOW_SCHED_NORMAL.rawValue),
                option: options, optionGives: Int32(FLOW_SCHED_IDLE.rawValue), variable: "FLOW_SCHED",
                value: "batch", environmentGives: Int32(FLOW_SCHED_BATCH.rawValue))
        }

        @Test("a CPU layer's workers run FLOW_NICE (default 5) nicer than the process; the app's threads keep theirs")
        func niceness() async throws {
            let base = flow_check_process_nice()
            var options = PipelineOptions()
            options.niceness = 0
            try await expectWorkerSetting(
                { flow_check_thread_nice() }, app: base, byDefault: min(19, base + 5), option: options,
                optionGives: base, variable: "FLOW_NICE", value: "12", environmentGives: min(19, base + 12))
        }

        @Test("a CPU layer's workers run with FLOW_SLICE_NS's time slice (default 5 ms); the app's threads keep theirs")
        func timeSlice() async throws {
            let base = Int64(flow_check_process_slice_ns())  // 0: a kernel before 6.12, which has no slices
            func want(_ slice: Int64) -> Int64 { base <= 0 || slice == 0 ? base : slice }
            var options = PipelineOptions()
            options.sliceNanoseconds = 0
            try await expectWorkerSetting(
                { Int64(flow_check_thread_slice_ns()) }, app: base, byDefault: want(Int64(FLOW_DEFAULT_SLICE_NS)),
                option: options, optionGives: base, variable: "FLOW_SLICE_NS", value: "2500000",
                environmentGives: want(2_500_000))
        }

        @Test("workers: nil resolves to PipelineOptions.workers, else FLOW_WORKERS, else the CPUs allowed")
        func resolvedWorkers() throws {
            var config = flow_config()
            var err = flow_error()
            #expect(flow_config_init(&config, &err) == FLOW_OK)
            #expect(try PipelineOptions().resolvedWorkers() == Int(config.workers))
            setenv("FLOW_WORKERS", "3", 1)
            defer { unsetenv("FLOW_WORKERS") }
            #expect(try PipelineOptions().resolvedWorkers() == 3)
            var options = PipelineOptions()
            options.workers = 5
            #expect(try options.resolvedWorkers() == 5)
            setenv("FLOW_WORKERS", "none", 1)
            #expect(throws: FlowConfigurationError.self) { try PipelineOptions().resolvedWorkers() }
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
            o = PipelineOptions()
            o.niceness = 20
            (error, pulled) = await attempt(Layer(workers: 1) { $0 }, options: o)
            #expect(error?.parameter == "PipelineOptions.niceness" && pulled == 0)
            #expect(error?.message == "PipelineOptions.niceness=\"20\": out of range (0-19)")
            o = PipelineOptions()
            o.sliceNanoseconds = 50_000
            (error, pulled) = await attempt(Layer(workers: 1) { $0 }, options: o)
            #expect(error?.parameter == "PipelineOptions.sliceNanoseconds" && pulled == 0)
            #expect(
                error?.message == "PipelineOptions.sliceNanoseconds=\"50000\": out of range (0, or 100000-100000000)")
        }

        @Test(
            "bad FLOW_* variables name the variable and the value",
            arguments: [
                ("FLOW_WORKERS", "zero", "FLOW_WORKERS=\"zero\": not a whole number"),
                ("FLOW_WORKERS", "", "FLOW_WORKERS=\"\": empty"),
                ("FLOW_WORKERS", "0", "FLOW_WORKERS=\"0\": out of range (1-4096)"),
                ("FLOW_WORKERS", "4097", "FLOW_WORKERS=\"4097\": out of range (1-4096)"),
                ("FLOW_WORKERS", "-1", "FLOW_WORKERS=\"-1\": not a whole number"),
                ("FLOW_WORKERS", " 4", "FLOW_WORKERS=\" 4\": not a whole number"),
                ("FLOW_WORKERS", "99999999999999999999999", "not a whole number"),
                ("FLOW_CPUS", "0-x", "FLOW_CPUS=\"0-x\": not a CPU list"),
                ("FLOW_CPUS", "", "FLOW_CPUS=\"\": empty"),
                ("FLOW_CPUS", "3-1", "FLOW_CPUS=\"3-1\": range 3-1 runs backwards"),
                ("FLOW_CPUS", "0-3:0", "FLOW_CPUS=\"0-3:0\": stride 0"),
                ("FLOW_CPUS", "0,,1", "FLOW_CPUS=\"0,,1\": not a CPU list"),
                ("FLOW_CPUS", "5000", "FLOW_CPUS=\"5000\": CPU 5000 is out of range"),
                ("FLOW_CPUS", "1023", "not in this process's allowed set"),
                ("FLOW_PIN", "tight", "FLOW_PIN=\"tight\": expected none, compact or spread"),
                ("FLOW_PIN", "", "FLOW_PIN=\"\": expected none, compact or spread"),
                ("FLOW_PIN", "Compact", "FLOW_PIN=\"Compact\": expected none, compact or spread"),
                ("FLOW_SPIN_NS", "-5", "FLOW_SPIN_NS=\"-5\": not a whole number"),
                ("FLOW_SPIN_NS", "", "FLOW_SPIN_NS=\"\": empty"),
                ("FLOW_SPIN_NS", "1e3", "FLOW_SPIN_NS=\"1e3\": not a whole number"),
                ("FLOW_SPIN_NS", "99999999999", "FLOW_SPIN_NS=\"99999999999\": out of range"),
                ("FLOW_SCHED", "fifo", "FLOW_SCHED=\"fifo\": expected normal, batch or idle"),
                ("FLOW_SCHED", "", "FLOW_SCHED=\"\": expected normal, batch or idle"),
                ("FLOW_NICE", "20", "FLOW_NICE=\"20\": out of range (0-19)"),
                ("FLOW_NICE", "-1", "FLOW_NICE=\"-1\": not a whole number"),
                ("FLOW_NICE", "low", "FLOW_NICE=\"low\": not a whole number"),
                ("FLOW_SLICE_NS", "99999", "FLOW_SLICE_NS=\"99999\": out of range (0, or 100000-100000000)"),
                ("FLOW_SLICE_NS", "200000000", "FLOW_SLICE_NS=\"200000000\": out of range (0, or 100000-100000000)"),
                ("FLOW_SLICE_NS", "5ms", "FLOW_SLICE_NS=\"5ms\": not a whole number"),
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

        @Test("a pipeline of one layer (only reachable internally: the API has no 1-layer pipeline)")
        func oneLayer() async {
            await #expect(throws: FlowConfigurationError.self) {
                _ = try await runPipeline([Layer(0..<10).erased(0)], options: PipelineOptions())
            }
            do {
                _ = try await runPipeline([Layer(0..<10).erased(0)], options: PipelineOptions())
            } catch let error as FlowConfigurationError {
                #expect(error.parameter == "layers")
                #expect(error.message == "a pipeline needs at least 2 layers (a source and a collector), got 1")
            } catch { Issue.record("unexpected \(error)") }
        }

        @Test(
            "a source that throws before its first item: its error, nothing delivered, nothing lost",
            arguments: PipelineOptions.Backend.allCases)
        func sourceThrowsAtOnce(backend: PipelineOptions.Backend) async {
            let box = ReportBox()
            let delivered = Counter()
            await #expect(throws: TestError.bad(0)) {
                _ = try await pipeline(
                    Layer(ThrowingAsyncSource(count: 100, failAt: 0)), Layer(workers: 2) { (x: Int) in x },
                    Layer { (_: Int) in delivered.add(1) }, options: box.options(backend))
            }
            let report = box.report.withLock { $0 }
            expectBalanced(report, pulled: 0)
            #expect(report?.layers.map(\.received) == [0, 0, 0])
            #expect(delivered.count == 0)
        }

        /// 2 MiB: larger than a native ring's slot (FLOW_MAX_ELEM_SIZE).
        struct Huge: Sendable {
            var payload: InlineArray<262_144, UInt64>
        }

        /// 64 KiB: large, but within a slot.
        struct Big: Sendable {
            var id: Int
            var payload: InlineArray<8_191, UInt64>
        }

        @Test("an item type too large for a native ring slot is named, with what to do instead")
        func hugeItem() async {
            let pulled = Counter()
            do {
                _ = try await pipeline(
                    Layer(CountingSequence(range: 0..<10, pulled: pulled)),
                    Layer(workers: 1, name: "inflate") { (_: Int) -> Huge in fatalError("never called") },
                    Layer { (_: Huge) in })
                Issue.record("a 2 MiB item type was accepted")
            } catch let error as FlowConfigurationError {
                #expect(error.parameter == "item type")
                #expect(error.layer == "inflate")
                #expect(error.message.hasPrefix("Huge is 2097152 bytes;"), "\(error)")
                #expect(error.message.contains("use PipelineOptions(backend: .swift)"))
            } catch { Issue.record("unexpected \(error)") }
            #expect(pulled.count == 0)
        }

        @Test("large items move in smaller batches and queues bounded in bytes")
        func bigItems() async throws {
            #expect(MemoryLayout<Big>.stride == 65_536)
            #expect(batchLimit(1024, stride: 8) == 1024)
            #expect(batchLimit(1024, stride: 65_536) == 64)
            #expect(batchLimit(16, stride: 65_536) == 16)
            let cpu = Layer<Big, Big>(workers: 2) { $0 }.erased(1)
            #expect(defaultCapacity(cpu, batch: 1024, defaultWorkers: 2) == 512)  // 4 batches of 64 per worker
            let ints = Layer<Int, Int>(workers: 2) { $0 }.erased(1)
            #expect(defaultCapacity(ints, batch: 1024, defaultWorkers: 2) == 8192)  // unchanged for small items
            for backend in PipelineOptions.Backend.allCases {
                let sum = Counter()
                let report = try await pipeline(
                    Layer((0..<2_000).lazy.map { Big(id: $0, payload: .init(repeating: UInt64($0))) }),
                    Layer(workers: 2) { (b: Big) -> Big in
                        var b = b
                        b.payload[8_190] &+= 1
                        return b
                    },
                    Layer(concurrency: 3) { (b: Big) async -> Big in b },
                    Layer { (b: Big) in sum.add(Int(b.payload[8_190]) - b.id) },
                    options: PipelineOptions(backend: backend))
                #expect(report.completed == 2_000 && sum.count == 2_000, "\(backend)")
            }
        }
    }
}
