// Signals.swift — the small waiting tools the coordinator, the workers and the queue share: a wake-up
// with a timeout (Wakeup), a continuation the first of several racers resumes (FirstResume), an action
// run once by whoever comes first (Once).
#if Postgres  // the package trait that brings postgres-nio (Package.swift)
    import AsyncFlow

    /// A wake-up with a timeout for one waiter at a time: signal() ends the current or the next wait.
    final class Wakeup: Sendable {
        let state = Locked<(signalled: Bool, waiter: CheckedContinuation<Void, Never>?, generation: Int)>(
            (false, nil, 0))

        func signal() {
            let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
                guard let w = s.waiter else {
                    s.signalled = true
                    return nil
                }
                s.waiter = nil
                return w
            }
            waiter?.resume()
        }

        func wait(for timeout: Duration) async {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let generation = state.withLock { s -> Int? in
                    if s.signalled {
                        s.signalled = false
                        return nil
                    }
                    s.generation += 1
                    s.waiter = c
                    return s.generation
                }
                guard let generation else { return c.resume() }
                Task {
                    try? await Task.sleep(for: timeout)
                    let timedOut = self.state.withLock { s -> CheckedContinuation<Void, Never>? in
                        guard s.generation == generation, let w = s.waiter else { return nil }
                        s.waiter = nil
                        return w
                    }
                    timedOut?.resume()
                }
            }
        }
    }

    /// A continuation that the first of several racers resumes; the others' results are dropped.
    final class FirstResume<T: Sendable>: Sendable {
        let continuation: Locked<CheckedContinuation<T, any Error>?>

        init(_ c: CheckedContinuation<T, any Error>) { continuation = Locked(c) }

        func resume(with result: Result<T, any Error>) {
            continuation.withLock { c in
                defer { c = nil }
                return c
            }?.resume(with: result)
        }
    }

    /// Runs an async throwing action once; concurrent callers wait for it, and a failure lets a later caller try again.
    final class Once: Sendable {
        let state = Locked<Task<Void, any Error>?>(nil)

        func run(_ action: @escaping @Sendable () async throws -> Void) async throws {
            let task = state.withLock { t in
                if let t { return t }
                let n = Task { try await action() }
                t = n
                return n
            }
            do { try await task.value } catch {
                state.withLock { if $0 == task { $0 = nil } }
                throw error
            }
        }
    }

    extension Duration {
        /// Whole and fractional seconds.
        var seconds: Double {
            let (s, atto) = components
            return Double(s) + Double(atto) / 1e18
        }

        /// For a log line: seconds with one decimal ("10.0 s").
        var shown: String { "\((seconds * 10).rounded() / 10) s" }
    }
#endif
