// Gate.swift — a one-shot gate one task waits at until someone opens it: a CPU stage's task waiting for its last worker
// thread ([no thread outlives its run]), a stream's run waiting for its consumer
// ([a stream ends when its consumer is done]).
//
// Invariants:
//  [a gate opens once] `open` only goes false -> true. wait() returns once open() has been called, before or after it.
//  [one waiter resumed once] One waiter at most. Its continuation is stored and taken out under the lock and resumed
//    outside it, exactly once: by open() if it was stored first, else by wait() itself.
@usableFromInline final class Gate: Sendable {
    private let state = Locked<(open: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

    @usableFromInline init() {}

    @usableFromInline func open() {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.open = true
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume()
    }

    @usableFromInline func wait() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let openAlready = state.withLock { s -> Bool in
                if !s.open { s.waiter = c }
                return s.open
            }
            if openAlready { c.resume() }
        }
    }
}
