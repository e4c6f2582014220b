// RunStore.swift — where a named run keeps its checkpoint: the database its committing collector writes
// to, so the rows and the checkpoint that covers them are committed in one transaction.
//
// Invariants:
//  [rows and checkpoint in one transaction] A batch's rows and the checkpoint that marks its positions
//    committed are written in one transaction of the store: both are durable, or neither is.
//  [a checkpoint replaces only its predecessor] Each checkpoint carries the run's commit sequence, and the
//    store saves checkpoint n only over checkpoint n - 1 (or over none when n is 1). So two processes that
//    run the same named run at once cannot both commit the same positions: the second one's save fails
//    and its rows roll back with it.

/// Where a named run's checkpoint lives: the database its committing collector writes to.
///
/// AsyncFlowPostgres's `PostgresRunStore` is one. For any other database, implement these three
/// methods over a table with a text column (the run's name, its key), a sequence and the checkpoint's
/// text: ``pipeline(_:_:options:)`` then saves the checkpoint in the same transaction as each batch's
/// rows, so what was written and where the source resumes can never disagree. A fourth,
/// ``commit(run:checkpoint:sequence:rows:)``, has a default made of the three; a store implements it to
/// commit a batch in fewer round trips.
public protocol RunStore: Sendable {
    /// What the committing collector's body writes through: a connection inside an open transaction.
    associatedtype Transaction

    /// The checkpoint saved for `run` (the text ``save(run:checkpoint:sequence:in:)`` was given), or nil
    /// when the run has none.
    func checkpoint(of run: String) async throws -> String?

    /// Run `body` in one transaction: commit when it returns, roll back when it throws (and rethrow).
    func transaction(_ body: (Transaction) async throws -> Void) async throws

    /// In `transaction`, save `checkpoint` as `run`'s checkpoint number `sequence`, but only if the one
    /// saved now is number `sequence - 1` (or, when `sequence` is 1, if there is none). Returns false,
    /// saving nothing, otherwise: another process has committed for this run since this one read its
    /// checkpoint.
    func save(run: String, checkpoint: String, sequence: UInt64, in transaction: Transaction) async throws -> Bool

    /// Write `rows` and save `checkpoint` as `run`'s checkpoint number `sequence` in one transaction: true when
    /// both committed; false, committing nothing, when the checkpoint saved now is not number `sequence - 1`.
    /// The default calls ``transaction(_:)``, `rows`, then ``save(run:checkpoint:sequence:in:)``; a store
    /// implements it only to do the same in fewer round trips to its database.
    func commit(
        run: String, checkpoint: String, sequence: UInt64, rows: (Transaction) async throws -> Void
    ) async throws -> Bool
}

extension RunStore {
    public func commit(
        run: String, checkpoint: String, sequence: UInt64, rows: (Transaction) async throws -> Void
    ) async throws -> Bool {
        do {
            try await transaction { transaction in
                try await rows(transaction)
                guard try await save(run: run, checkpoint: checkpoint, sequence: sequence, in: transaction) else {
                    throw CheckpointNotSaved()  // rolls the rows back
                }
            }
            return true
        } catch is CheckpointNotSaved {
            return false
        }
    }
}

/// The default ``RunStore/commit(run:checkpoint:sequence:rows:)``'s way out of a transaction whose save found
/// another checkpoint.
struct CheckpointNotSaved: Error {}

/// What a named run has done, as its store keeps it: the positions committed (``RunProgress``), how many
/// commits made them, how far the source had been pulled, and whether the run has finished.
public struct RunCheckpoint: Sendable, Hashable, CustomStringConvertible {
    /// The source positions whose rows are committed.
    public internal(set) var progress: RunProgress
    /// Commits so far, over every attempt of the run ([a checkpoint replaces only its predecessor]).
    public internal(set) var sequence: UInt64
    /// The end of the source positions pulled, as known at the last commit: positions below it that
    /// are not committed were pulled by an attempt that did not finish them.
    public internal(set) var pulled: UInt64
    /// The run pulled its source to the end and committed all it could: started again, it does no work.
    public internal(set) var finished: Bool
    /// Where the source can be read again from, for a source that keeps bookmarks (``FileLines``: a line's
    /// byte offset): always at or below the watermark ([a bookmark is at or below the watermark]).
    public internal(set) var bookmark: SourceBookmark?

    /// A run that has done nothing.
    public init() {
        progress = RunProgress()
        sequence = 0
        pulled = 0
        finished = false
        bookmark = nil
    }

    /// One line: `SEQUENCE PULLED open|finished PROGRESS [POSITION@OFFSET]` (``RunProgress/encoded``, then the
    /// bookmark when there is one).
    public var encoded: String {
        "\(sequence) \(pulled) \(finished ? "finished" : "open") \(progress.encoded)"
            + (bookmark.map { " \($0.position)@\($0.offset)" } ?? "")
    }

    /// A checkpoint saved with ``encoded``.
    public init(encoded text: String) throws(RunProgressError) {
        let fields = text.split(separator: " ", omittingEmptySubsequences: false)
        let bookmark = fields.count == 5 ? SourceBookmark(fields[4]) : nil
        guard fields.count == 4 || bookmark != nil, let sequence = UInt64(fields[0]), let pulled = UInt64(fields[1]),
            fields[2] == "open" || fields[2] == "finished"
        else {
            throw RunProgressError(
                "\"\(text)\" is not a run's checkpoint (expected SEQUENCE PULLED open|finished PROGRESS [POSITION@OFFSET])"
            )
        }
        let progress = try RunProgress(encoded: String(fields[3]))
        if let bookmark, bookmark.position > progress.watermark {
            throw RunProgressError("\"\(text)\": its bookmark is above its watermark")
        }
        self.progress = progress
        self.sequence = sequence
        self.pulled = pulled
        finished = fields[2] == "finished"
        self.bookmark = bookmark
    }

    public var description: String {
        "\(finished ? "finished" : "open") after \(sequence) commits, \(progress), \(pulled) pulled"
    }
}

/// A named run's commit found that another process committed for the same run since this one started
/// ([a checkpoint replaces only its predecessor]): only one process may run a named run at a time. The
/// run stops; its last batch was rolled back, and nothing it committed before is lost.
public struct RunTakenOverError: Error, Sendable, Equatable, CustomStringConvertible {
    public let run: String
    /// The checkpoint this process expected to replace, and the one it found.
    public let expected: UInt64
    public let found: String?

    public var description: String {
        "run \"\(run)\": another process committed for this run (expected commit \(expected) to be the last, found "
            + (found.map { "\"\($0)\"" } ?? "no checkpoint") + "); one process may run a named run at a time"
    }
}
