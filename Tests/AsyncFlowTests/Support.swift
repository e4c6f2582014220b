import CFlow
import Foundation
import Synchronization
import Testing

@testable import AsyncFlow

/// A thread-safe counter / accumulator for closures that run on many threads.
final class Counter: Sendable {
    let value = Atomic<Int>(0)
    func add(_ n: Int) { value.add(n, ordering: .relaxed) }
    var count: Int { value.load(ordering: .relaxed) }
}

/// Tracks the largest value of a running quantity.
final class HighWater: Sendable {
    let current = Atomic<Int>(0)
    let max = Atomic<Int>(0)
    func enter() {
        let now = current.add(1, ordering: .relaxed).newValue
        max.max(now, ordering: .relaxed)
    }
    func leave() { current.subtract(1, ordering: .relaxed) }
}

/// The number a field of /proc/self/status starts with ("Threads", "VmRSS" in KiB); -1 if absent.
func procStatus(_ field: String) -> Int {
    let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    for line in status.split(separator: "\n") where line.hasPrefix(field + ":") {
        let value = line.dropFirst(field.count + 1).trimmingCharacters(in: .whitespaces).split(separator: " ").first
        return value.flatMap { Int($0) } ?? -1
    }
    return -1
}

/// Threads in this process now other than Dispatch's worker pool (named com.apple.root.*-qos*), which
/// grows and shrinks on its own: the main thread, test helpers and anything AsyncFlow might leak.
func threadsOutsideDispatch() -> Int {
    let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
    return tasks.count { tid in
        let name = (try? String(contentsOfFile: "/proc/self/task/\(tid)/comm", encoding: .utf8)) ?? ""
        return !name.contains("-qos")
    }
}

/// CFlow worker threads running in this process now (flow_pool_live_workers). Exact after a join,
/// unlike the process's thread count (Dispatch starts and retires threads) or /proc/self/task (a joined
/// thread's entry can outlive pthread_join by a moment).
func flowWorkerThreads() -> Int { Int(flow_pool_live_workers()) }

/// Records an issue when a CFlow worker thread is alive, naming each pool that has one: its layer (so
/// the run it belongs to), whether that run's stages ended, and where each of its threads is. True when
/// none was alive.
@discardableResult
func expectNoPoolThreads(_ when: String = "", sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
    let alive = flowWorkerThreads()
    guard alive != 0 else { return true }
    let pools = PoolTrace.describeLive().joined(separator: "\n")
    Issue.record("\(alive) CFlow worker threads alive \(when):\n\(pools)", sourceLocation: sourceLocation)
    return false
}

/// Objects whose lives are counted: every one created must be destroyed exactly once.
final class Tracked: Sendable {
    static let alive = Atomic<Int>(0)
    let id: Int
    init(_ id: Int) {
        self.id = id
        Tracked.alive.add(1, ordering: .relaxed)
    }
    deinit { Tracked.alive.subtract(1, ordering: .relaxed) }
}

enum TestError: Error, Equatable {
    case bad(Int)
}

/// A Sequence that counts how many elements were pulled from it.
struct CountingSequence: Sequence, Sendable {
    let range: Range<Int>
    let pulled: Counter

    struct Iterator: IteratorProtocol {
        var inner: Range<Int>.Iterator
        let pulled: Counter
        mutating func next() -> Int? {
            guard let v = inner.next() else { return nil }
            pulled.add(1)
            return v
        }
    }

    func makeIterator() -> Iterator { Iterator(inner: range.makeIterator(), pulled: pulled) }
}

/// An AsyncSequence of 0..<count that throws `TestError.bad(failAt)` instead of yielding `failAt`.
struct ThrowingAsyncSource: AsyncSequence, Sendable {
    let count: Int
    let failAt: Int?

    struct AsyncIterator: AsyncIteratorProtocol {
        var i = 0
        let count: Int
        let failAt: Int?
        mutating func next() async throws -> Int? {
            guard i < count else { return nil }
            defer { i += 1 }
            if i == failAt { throw TestError.bad(i) }
            return i
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(count: count, failAt: failAt) }
}

/// Every suite of this test target is nested in `Serial` and so runs one test at a time: tests compare
/// the process's thread count before and after, and some set FLOW_* variables, which concurrent tests
/// (C checks included) would disturb.
/// Each test also ends with no CFlow worker thread alive (NoPoolThreadsLeft): a run a test leaves behind
/// is named by the test that left it, not by whichever later test counts threads.
@Suite(.serialized, NoPoolThreadsLeft())
enum Serial {}

/// After each test (each case of a parameterised one): no CFlow worker thread is alive. Every run a test
/// starts has returned by its end (a run's pool threads are joined before it returns, [no thread outlives its run]).
struct NoPoolThreadsLeft: SuiteTrait, TestTrait, TestScoping {
    var isRecursive: Bool { true }

    func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        try await function()
        if !test.isSuite { expectNoPoolThreads("at the end of the test") }
    }
}

/// Collects the report that PipelineOptions.onReport hands over, also from a run that threw.
final class ReportBox: Sendable {
    let report = Locked<PipelineReport?>(nil)
    func options(_ backend: PipelineOptions.Backend) -> PipelineOptions {
        var o = PipelineOptions(backend: backend)
        o.onReport = { r in self.report.withLock { $0 = r } }
        return o
    }
}

/// Every item is accounted for: per layer received == emitted + failed + skipped + dropped, each layer
/// receives what the one before emitted, and the source received exactly what was pulled (when given).
func expectBalanced(_ report: PipelineReport?, pulled: Int?, sourceLocation: SourceLocation = #_sourceLocation) {
    guard let report else {
        Issue.record("no report", sourceLocation: sourceLocation)
        return
    }
    for l in report.layers {
        #expect(l.received == l.emitted + l.failed + l.skipped + l.dropped, "\(l)", sourceLocation: sourceLocation)
    }
    for (a, b) in zip(report.layers, report.layers.dropFirst()) {
        #expect(b.received == a.emitted, "\(a.name) → \(b.name)", sourceLocation: sourceLocation)
    }
    if let pulled { #expect(report.layers[0].received == pulled, "source", sourceLocation: sourceLocation) }
}
