import Foundation
import Synchronization
import Testing

@testable import AsyncFlow

/// The native backend's scheduler (PoolExecutor): the run's other stages run on the pool's threads.
extension Serial {
    @Suite("Native scheduler")
    struct SchedulerTests {
        @Test(
            "a parked pool thread wakes for a stage's job: a source that sleeps between items",
            .timeLimit(.minutes(1)))
        func parkedPoolWakesForJobs() async throws {
            var options = PipelineOptions()
            options.spinNanoseconds = 0  // park at once: every item needs a wake-up by a queued job
            let items = AsyncStream<Int> { continuation in
                Task {
                    for i in 0..<20 {
                        try? await Task.sleep(for: .milliseconds(5))
                        continuation.yield(i)
                    }
                    continuation.finish()
                }
            }
            let sum = Counter()
            let report = try await pipeline(
                Layer(items), Layer(workers: 2) { (x: Int) in x + 1 }, Layer { (x: Int) in sum.add(x) },
                options: options)
            #expect(sum.count == (1...20).reduce(0, +))
            #expect(report.completed == 20)
        }
    }
}
