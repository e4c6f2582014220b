import CFlowChecks
import Foundation
import Testing

@testable import AsyncFlow

/// Bytes the C heap has handed out and not got back (glibc's mallinfo2().uordblks, after malloc_trim).
private func heapInUse() -> Int { Int(flow_check_heap_in_use()) }

/// The calling thread's name (what pthread_setname_np set).
private func currentThreadName() -> String {
    (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? ""
}

/// The process's resident set (VmRSS), in bytes.
private func residentBytes() -> Int { procStatus("VmRSS") * 1024 }

extension Serial {
    @Suite("Leaks")
    struct LeakTests {
        /// One of six kinds of run, on either backend: plain, ordered, failing, cancelled from inside, a
        /// stream its consumer leaves early, skipped errors. Returns 1 when a native plain run's first
        /// item ran on a thread named flow-worker-N (so counting threads by name means something).
        func mixedRun(_ i: Int) async -> Int {
            let backend: PipelineOptions.Backend = (i / 6) % 2 == 0 ? .native : .swift  // each kind on both
            let options = PipelineOptions(backend: backend)
            let seenThreads = Counter()
            let source = StressSource(n: 2_000, references: true, pulled: Counter())
            switch i % 6 {
            case 0:
                _ = try? await pipeline(
                    Layer(source),
                    Layer(workers: 3) { (t: StressItem) in
                        if t.id == 0 && backend == .native && currentThreadName().hasPrefix("flow-worker-") {
                            seenThreads.add(1)
                        }
                        return t.id
                    }, Layer { (_: Int) in }, options: options)
            case 1:
                _ = try? await pipeline(
                    Layer(source), Layer(concurrency: 4, ordered: true) { (t: StressItem) async in t },
                    Layer(workers: 2, ordered: true) { (t: StressItem) in t.id }, Layer { (_: Int) in },
                    options: options)
            case 2:
                _ = try? await pipeline(
                    Layer(source),
                    Layer(workers: 2) { (t: StressItem) throws -> StressItem in
                        if t.id == 700 { throw TestError.bad(t.id) }
                        return t
                    }, Layer { (_: StressItem) in }, options: options)
            case 3:
                let cancel = CancelSwitch()
                let task = Task {
                    try await pipeline(
                        Layer(source), Layer(workers: 2) { (t: StressItem) in t },
                        Layer { (t: StressItem) in if t.id == 500 { cancel.fire() } }, options: options)
                }
                cancel.arm(task)
                _ = await task.result
            case 5:
                _ = try? await pipeline(
                    Layer(source),
                    Layer(workers: 2, onError: .skip) { (t: StressItem) throws -> StressItem in
                        if t.id % 100 == 7 { throw TestError.bad(t.id) }
                        return t
                    }, Layer { (_: StressItem) in }, options: options)
            case 4:
                let stream = pipelineStream(Layer(source), Layer(workers: 2) { (t: StressItem) in t }, options: options)
                var taken = 0
                do {
                    for try await _ in stream {
                        taken += 1
                        if taken == 100 { break }
                    }
                } catch {}
                // waits for the stopped run to end ([the report waits for the consumer])
                _ = try? await stream.report()
            default:
                preconditionFailure()
            }
            return seenThreads.count
        }

        @Test("1,000 pipelines back to back (plain, ordered, failing, cancelled, streams, skips): all returned")
        func thousandPipelines() async {
            let alive = Tracked.alive.load(ordering: .relaxed)
            for i in 0..<100 { _ = await mixedRun(i) }  // warm-up: allocator caches, the cooperative pool
            let threads = threadsOutsideDispatch()
            let heap = heapInUse()
            let rss = residentBytes()
            var heapHalfway = 0
            let runs = Int(ProcessInfo.processInfo.environment["FLOW_LEAK_RUNS"] ?? "") ?? 1_000
            var workersSeen = 0
            for i in 0..<runs {
                if i == runs / 2 { heapHalfway = heapInUse() }
                workersSeen += await mixedRun(i)
                guard expectNoPoolThreads("after run \(i) returned") else { return }
            }
            #expect(workersSeen == (0..<runs).count { $0 % 12 == 0 })
            #expect(threadsOutsideDispatch() == threads, "threads \(threadsOutsideDispatch()), before \(threads)")
            #expect(Tracked.alive.load(ordering: .relaxed) == alive)  // every item freed, once
            // Under a sanitizer, malloc is the sanitizer's (quarantine, no mallinfo): LeakSanitizer checks instead.
            guard ProcessInfo.processInfo.environment["FLOW_SANITIZED"] == nil else { return }
            let heapGrowth = heapInUse() - heap
            let secondHalf = heapInUse() - heapHalfway
            let rssGrowth = residentBytes() - rss
            print(
                "\(runs) pipelines: heap in use +\(heapGrowth) bytes (second half +\(secondHalf)), "
                    + "RSS +\(rssGrowth / 1024) KiB")
            // A leak grows with the runs. Losing one run's rings or run state would be kilobytes a run (a
            // lost item 16+ bytes, 2,000 items a run); the heap's own noise here is about ±100 KiB. So:
            // under 512 bytes a pipeline over the second half, and 1 MiB in all.
            #expect(secondHalf < 256 << 10, "heap grew by \(secondHalf) bytes over the second \(runs / 2) runs")
            #expect(heapGrowth < 1 << 20, "heap grew by \(heapGrowth) bytes")
            #expect(rssGrowth < 8 << 20, "RSS grew by \(rssGrowth) bytes")
        }
    }
}
