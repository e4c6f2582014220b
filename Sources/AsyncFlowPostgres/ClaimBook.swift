// ClaimBook.swift — a worker's claims as a state machine: what it holds, how long its leases are, when
// its last heartbeat succeeded, how long its chunks take; and from those, whether it may claim now and
// how many. Each event is a mutating func; the machine takes no lock and does no I/O (FlowWorker holds it
// under a lock, and its claims source and heartbeat act on what it answers).
//
// Invariants:
//  [a worker claims what it can start soon] A claim asks for about 20 ms of work per thread (ClaimPace: by
//    how long the last chunks took on a thread; 1 to 8 chunks a thread, 1 until a chunk has been timed),
//    plus what a thread works through in two round trips to the database (the claim that refills it and the
//    completion that releases a chunk; the shortest of the last claims' times; up to 64 chunks more a
//    thread), and only while the worker holds fewer than its threads run plus one claim ahead: so it claims
//    only what it can start soon, and chunks that a dead worker held wait for no long queue in the others,
//    while a database far away does not leave its threads idle for each round trip.
//  [no claim without a fresh heartbeat] The heartbeat renews every lease the worker holds every third of
//    the shortest lease it has seen. While the last successful heartbeat is older than that lease, the
//    worker claims nothing: it may have been partitioned away and its chunks claimed by others. A heartbeat
//    that failed is tried again within retryBeat, not a third of a lease later, so a worker whose database
//    came back claims again within a fraction of a second.
//  [a lost claim is released] A claim whose answer was lost (its connection failed after the claim may have
//    committed) may have left chunks claimed under this worker's id that the worker does not know of. Before its
//    next claim the worker releases every chunk claimed under its id that it does not hold (release_unknown), so
//    those wait for no lease. Only the claims source claims, one claim at a time, so no claim is in flight then;
//    a claim given up while the server still ran it ([a hung statement is given up]) can land after the release,
//    and its chunks then wait for their lease.
#if Postgres  // the package trait that brings postgres-nio (Package.swift)
    /// A worker's claims and what they allow.
    struct ClaimBook: Sendable {
        /// The claims held: claimed, not yet completed or handed back (the heartbeat renews them).
        private(set) var holding: Set<ClaimKey> = []
        /// The shortest lease of a claim seen so far, if any.
        private(set) var shortestLease: Duration?
        private var lastBeat: ContinuousClock.Instant
        private var pace = ClaimPace()
        /// The last heartbeat failed.
        private var beatFailed = false
        /// A claim's answer was lost since the last release of unknown claims ([a lost claim is released]).
        private var claimLost = false

        /// A book with no claims, whose leases count as renewed at `now`.
        init(now: ContinuousClock.Instant) { lastBeat = now }

        /// What the claims source does next.
        enum ClaimAction: Equatable, Sendable {
            /// Claim up to `limit` chunks.
            case claim(limit: Int)
            /// It holds what its threads run plus a claim ahead: wait until a claim is released.
            case waitForRoom
            /// The last heartbeat is older than a lease: claim nothing until one succeeds.
            case waitForHeartbeat
            /// A claim's answer was lost: release what the database holds under this worker that it does not
            /// ([a lost claim is released]).
            case releaseUnknown
        }

        /// Whether the source may claim now, and how many ([a worker claims what it can start soon],
        /// [no claim without a fresh heartbeat]).
        func nextClaim(threads: Int, now: ContinuousClock.Instant) -> ClaimAction {
            guard leaseHolds(now: now) else { return .waitForHeartbeat }
            if claimLost { return .releaseUnknown }  // [a lost claim is released]
            let limit = pace.limit(threads: threads)
            let room = threads + limit - holding.count
            return room > 0 ? .claim(limit: min(limit, room)) : .waitForRoom
        }

        /// Whether the last heartbeat is recent enough for the leases to hold
        /// ([no claim without a fresh heartbeat]).
        func leaseHolds(now: ContinuousClock.Instant) -> Bool {
            guard let shortestLease else { return true }
            return now - lastBeat < shortestLease
        }

        /// How long the heartbeat sleeps between renewals: a third of the shortest lease (1 s before any
        /// claim), at least 50 ms.
        var heartbeatInterval: Duration {
            let interval = max(.milliseconds(50), (shortestLease ?? .seconds(3)) / 3)
            return beatFailed ? min(interval, Self.retryBeat) : interval  // [no claim without a fresh heartbeat]
        }

        /// How soon a heartbeat that failed is tried again, at most ([no claim without a fresh heartbeat]).
        static let retryBeat = Duration.milliseconds(200)

        /// Claims this worker now holds, each with its lease.
        mutating func claimed(_ chunks: [ClaimedChunk]) {
            for chunk in chunks {
                holding.insert(chunk.key)
                let lease = Duration.milliseconds(Int(chunk.lease * 1000))
                shortestLease = min(shortestLease ?? lease, lease)
            }
        }

        /// A claim failed for a lost connection: it may have committed ([a lost claim is released]).
        mutating func claimFailed() { claimLost = true }

        /// What the database held under this worker's id beyond `holding` was released
        /// ([a lost claim is released]).
        mutating func releasedUnknown() { claimLost = false }

        /// Claims completed, refused or handed back: no longer renewed.
        mutating func released(_ keys: [ClaimKey]) {
            for key in keys { holding.remove(key) }
        }

        /// A heartbeat succeeded at `now`: every lease held then was renewed.
        mutating func beat(at now: ContinuousClock.Instant) {
            lastBeat = now
            beatFailed = false
        }

        /// A heartbeat failed: the next is tried soon ([no claim without a fresh heartbeat]).
        mutating func heartbeatFailed() { beatFailed = true }

        /// A chunk took `duration` on a thread ([a worker claims what it can start soon]).
        mutating func worked(_ duration: Duration) { pace.worked(duration) }

        /// A claim statement took `duration`, from sending it to its rows ([a worker claims what it can start soon]).
        mutating func claimTook(_ duration: Duration) { pace.claimTook(duration) }
    }

    /// How many chunks a worker claims in one statement ([a worker claims what it can start soon]): about `ahead` of
    /// work per thread, by how long the last chunks took on a thread (one per thread until a chunk has been timed, at
    /// most `most`), plus what a thread works through in two round trips, the round trip being the shortest of the
    /// last `claimsKept` claims (at most `mostForRoundTrips`): a claim that also opened a connection, or waited on a
    /// busy server, says little about the network, and one that the network slowed for good shows as every claim
    /// slows. Trivial chunks are claimed several at a time (fewer statements), slow ones one at a time
    /// (none waits in a busy worker while another is idle), and a far database's round trips are covered by chunks
    /// in hand rather than paid with idle threads. Timed where the work is done, not by how fast the pipeline takes
    /// chunks: that is fast while its queues fill, however slow the chunks.
    struct ClaimPace {
        static let ahead = Duration.milliseconds(20)
        static let most = 8
        static let mostForRoundTrips = 64
        static let claimsKept = 16
        var perChunk: Duration?
        /// How long the last claim statements took, from sending to rows (at most claimsKept, oldest first); not
        /// the first claim, which may have opened its connection.
        private(set) var claims: [Duration] = []
        private var firstClaimSeen = false

        /// The round trip to the database: the shortest of the last claims, zero before one.
        var roundTrip: Duration { claims.min() ?? .zero }

        func limit(threads: Int) -> Int {
            guard let perChunk, perChunk > .zero else { return threads }
            let work = Swift.max(1, Swift.min(Self.most, Int(Self.ahead / perChunk)))
            let trips = Swift.min(Self.mostForRoundTrips, Int(roundTrip * 2 / perChunk))
            return threads * (work + trips)
        }

        /// A chunk took `duration` on a thread.
        mutating func worked(_ duration: Duration) {
            perChunk = perChunk.map { $0 * 0.7 + duration * 0.3 } ?? duration
        }

        /// A claim statement took `duration`.
        mutating func claimTook(_ duration: Duration) {
            guard firstClaimSeen else {
                firstClaimSeen = true
                return
            }
            if claims.count == Self.claimsKept { claims.removeFirst() }
            claims.append(duration)
        }
    }
#endif
