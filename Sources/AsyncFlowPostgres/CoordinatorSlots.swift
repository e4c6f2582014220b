// CoordinatorSlots.swift — the coordinator's chunk slots as a state machine: one slot per chunk written
// and not yet answered, the poller that fills them, and the written chunks it checks. Each event is a
// mutating func that returns what its caller must do; the machine takes no lock and resumes nothing
// (Coordinator holds it under a lock and resumes waiters outside it).
//
// Invariants:
//  [a slot before its row] A chunk's slot is opened before its row is written, so a result the poller reads
//    always finds its slot; a slot is filled once (a result or a burial read again finds it closed) and
//    taken once, by its chunk's call.
//  [one poller while slots are open] open() asks for a poller only when none runs; pollerTurn() ends the
//    poller when no slot is open, in the same step that the next open() reads, so a new slot after that
//    starts a new poller and none is ever left without one.
//  [undone writes written again] `written` holds the chunks whose write was answered and whose slot is not
//    yet filled: the poller asks the database which of them are nowhere.
#if Postgres  // the package trait that brings postgres-nio (Package.swift)
    /// The slots of one coordinator's chunks; `Waiter` is what a chunk's call waits with (a continuation; a
    /// token in tests).
    struct CoordinatorSlots<Waiter: Sendable>: Sendable {
        enum Slot: Sendable {
            /// Opened; its call waits with the waiter, once it has come to wait.
            case waiting(Waiter?)
            /// Filled before its call came to wait: nil when the chunk's call is to end empty (a stop).
            case filled(ChunkResult?)
        }

        private var slots: [Int64: Slot] = [:]
        private var polling = false
        private var written: Set<Int64> = []

        /// What to do after opening a slot.
        enum OpenAction: Equatable, Sendable {
            case none
            /// No poller runs: start one ([one poller while slots are open]).
            case startPoller
        }

        /// What to do after filling a slot.
        enum FillAction: Sendable {
            case none
            /// The chunk's call was waiting: resume it with the result (outside the lock).
            case resume(Waiter, ChunkResult?)
        }

        /// What a chunk's call that comes to wait must do.
        enum WaitAction: Sendable {
            /// Suspend: the waiter is stored, and a fill resumes it.
            case suspend
            /// The slot was filled already: go on with this result at once.
            case resume(ChunkResult?)
        }

        /// What the poller does next.
        enum PollerAction: Equatable, Sendable {
            /// Slots are open: take results, bury the dead, check the written.
            case poll
            /// No slot is open: the poller ends; the next open() starts another.
            case stop
        }

        /// Open the slot of chunk `seq` before its row is written ([a slot before its row]).
        mutating func open(_ seq: Int64) -> OpenAction {
            slots[seq] = .waiting(nil)
            defer { polling = true }
            return polling ? .none : .startPoller
        }

        /// Chunk `seq`'s write was answered: the poller checks that it is somewhere
        /// ([undone writes written again]) until its slot is filled.
        mutating func written(_ seq: Int64) {
            if case .waiting? = slots[seq] { written.insert(seq) }
        }

        /// Fill the slot of chunk `seq` with `result` (nil: its call ends empty). A slot filled already,
        /// taken, or never opened stays as it is ([a slot before its row]).
        mutating func fill(_ seq: Int64, _ result: ChunkResult?) -> FillAction {
            written.remove(seq)
            guard case .waiting(let waiter)? = slots[seq] else { return .none }
            guard let waiter else {
                slots[seq] = .filled(result)
                return .none
            }
            slots[seq] = nil
            return .resume(waiter, result)
        }

        /// Chunk `seq`'s call comes to wait for its result with `waiter`.
        mutating func wait(_ seq: Int64, _ waiter: Waiter) -> WaitAction {
            if case .filled(let result)? = slots[seq] {
                slots[seq] = nil
                return .resume(result)
            }
            slots[seq] = .waiting(waiter)
            return .suspend
        }

        /// The poller's next turn ([one poller while slots are open]).
        mutating func pollerTurn() -> PollerAction {
            if slots.isEmpty { polling = false }
            return polling ? .poll : .stop
        }

        /// The chunks whose write was answered and whose slot waits ([undone writes written again]).
        var writtenChunks: [Int64] { Array(written) }

        /// The chunks whose slot is open (a database error fails them all).
        var openChunks: [Int64] { Array(slots.keys) }
    }
#endif
