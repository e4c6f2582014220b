// FileLines.swift — the lines of a text file as a source a named run resumes by byte offset: as it reads,
// it records a bookmark (a line's position and byte offset) every `bookmarkEvery` lines, a commit keeps the
// last one at or below its watermark in the checkpoint ([a bookmark is at or below the watermark]), and a
// resumed run seeks to it and passes over fewer than `bookmarkEvery` lines to reach the watermark.
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The lines of a text file, a source a named run can resume (``ResumableAsyncSource``): positions number
/// the lines from 0; each line comes without its `\n` (and without a `\r` before it). An empty line is an
/// item; a last line without `\n` is one too.
///
/// ```swift
/// Layer(resumable: try FileLines("orders.csv"))
/// ```
///
/// In a named run the checkpoint keeps a recent line's byte offset, so a resumed run seeks there instead of
/// reading the file again from its start. The file must not change between the attempts of a run: a
/// bookmark that no longer falls on a line's start fails the run with a ``FileLinesError``.
public struct FileLines: ResumableAsyncSource {
    /// The file's path.
    public let path: String

    /// The lines of the file at `path`; throws a ``FileLinesError`` naming it when it cannot be opened.
    public init(_ path: String) throws(FileLinesError) {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw FileLinesError(path: path, errno: errno, doing: "opening it") }
        close(fd)
        self.path = path
    }

    /// The lines from line `position` on, found by reading from the start of the file.
    public func items(from position: UInt64) -> Lines {
        Lines(path: path, start: SourceBookmark(position: 0, offset: 0), skip: position, bookmarks: nil)
    }

    /// A bookmark is recorded for each line whose position is a multiple of this.
    static let bookmarkEvery: UInt64 = 1_024

    /// The lines of the file, read with `read(2)` into a buffer, from a line's byte offset.
    public struct Lines: AsyncSequence, Sendable {
        public typealias Element = String
        let path: String
        /// Where reading starts: a line's position and byte offset.
        let start: SourceBookmark
        /// Lines passed over before the first one given.
        let skip: UInt64
        /// Where a named run's bookmarks go (nil outside one).
        let bookmarks: SourceBookmarks?

        public func makeAsyncIterator() -> Iterator {
            Iterator(path: path, start: start, skip: skip, bookmarks: bookmarks)
        }

        /// Reads the file; closes it when it is let go.
        public final class Iterator: AsyncIteratorProtocol {
            let path: String
            let start: SourceBookmark
            let bookmarks: SourceBookmarks?
            var skip: UInt64
            var fd: Int32 = -1
            var buffer = [UInt8](repeating: 0, count: 1 << 18)
            /// The unread bytes are buffer[begin..<end]; `offset` is the file offset of buffer[begin].
            var begin = 0
            var end = 0
            var offset: UInt64
            /// The position of the next line.
            var position: UInt64
            var atEnd = false

            init(path: String, start: SourceBookmark, skip: UInt64, bookmarks: SourceBookmarks?) {
                self.path = path
                self.start = start
                self.skip = skip
                self.bookmarks = bookmarks
                offset = start.offset
                position = start.position
            }

            deinit { if fd >= 0 { close(fd) } }

            public func next() async throws -> String? {
                if fd < 0 { try openAtStart() }
                while skip > 0 {
                    guard try nextLine() != nil else { return nil }
                    skip -= 1
                }
                guard let line = try nextLine() else { return nil }
                return String(decoding: buffer[line], as: UTF8.self)
            }

            /// Open the file at the start's offset, which must be the start of a line (the file's start, or just
            /// after a `\n`): otherwise the file changed since the bookmark was taken.
            func openAtStart() throws(FileLinesError) {
                fd = open(path, O_RDONLY)
                guard fd >= 0 else { throw FileLinesError(path: path, errno: errno, doing: "opening it") }
                guard start.offset > 0 else { return }
                var before: UInt8 = 0
                let n = pread(fd, &before, 1, off_t(start.offset - 1))
                guard n == 1, before == UInt8(ascii: "\n") else {
                    throw FileLinesError(
                        path: path,
                        message: "line \(start.position) no longer starts at byte \(start.offset): the file changed")
                }
                guard lseek(fd, off_t(start.offset), SEEK_SET) >= 0 else {
                    throw FileLinesError(path: path, errno: errno, doing: "seeking to byte \(start.offset)")
                }
            }

            /// The next line's bytes in `buffer` (without `\n` or `\r\n`), or nil at the end of the file.
            func nextLine() throws(FileLinesError) -> Range<Int>? {
                var searched = begin
                while true {
                    let found = buffer.withUnsafeBufferPointer { b -> Int? in
                        guard searched < end, let base = b.baseAddress,
                            let hit = memchr(base + searched, Int32(UInt8(ascii: "\n")), end - searched)
                        else { return nil }
                        return UnsafeRawPointer(base).distance(to: UnsafeRawPointer(hit))
                    }
                    if let newline = found {
                        return taken(upTo: newline, length: newline + 1 - begin)
                    }
                    if atEnd {
                        guard begin < end else { return nil }
                        return taken(upTo: end, length: end - begin)  // a last line without `\n`
                    }
                    searched = end - begin
                    try refill()
                    searched += begin
                }
            }

            /// The line buffer[begin..<stop] (less a `\r` before a `\n`), `length` bytes read past; a line whose position
            /// is a multiple of bookmarkEvery is bookmarked.
            func taken(upTo stop: Int, length: Int) -> Range<Int> {
                if let bookmarks, position % FileLines.bookmarkEvery == 0 {
                    bookmarks.record(SourceBookmark(position: position, offset: offset))
                }
                var line = begin..<stop
                if stop < end, stop > begin, buffer[stop - 1] == UInt8(ascii: "\r") { line = begin..<(stop - 1) }
                begin += length
                offset += UInt64(length)
                position += 1
                return line
            }

            /// Move the unread bytes to the front (growing the buffer when they fill it: a long line) and read more.
            func refill() throws(FileLinesError) {
                let unread = end - begin
                if begin > 0 {
                    buffer.withUnsafeMutableBufferPointer { b in
                        _ = memmove(b.baseAddress!, b.baseAddress! + begin, unread)
                    }
                    begin = 0
                    end = unread
                }
                if end == buffer.count { buffer += [UInt8](repeating: 0, count: buffer.count) }
                while true {
                    let n = buffer.withUnsafeMutableBufferPointer { b in read(fd, b.baseAddress! + end, b.count - end) }
                    if n > 0 {
                        end += n
                        return
                    }
                    if n == 0 {
                        atEnd = true
                        return
                    }
                    if errno != EINTR { throw FileLinesError(path: path, errno: errno, doing: "reading it") }
                }
            }
        }
    }
}

/// A ``FileLines`` source cannot read its file, or the file changed between the attempts of a named run.
public struct FileLinesError: Error, Sendable, CustomStringConvertible {
    public let path: String
    public let message: String

    init(path: String, message: String) {
        self.path = path
        self.message = message
    }

    init(path: String, errno code: Int32, doing what: String) {
        self.init(path: path, message: "\(what): \(String(cString: strerror(code)))")
    }

    public var description: String { "file \"\(path)\": \(message)" }
}

extension Layer where Input == Never, Output == String {
    /// A source over a file's lines (``FileLines``): in a named run it resumes by byte offset, reading on from a
    /// line at or below the checkpoint's watermark ([a bookmark is at or below the watermark]).
    public init(resumable source: FileLines, name: String? = nil) {
        self.init(source.items(from: 0), name: name)  // Lines reads the file again at each iteration
        positionedStage = Self.resumedAsync { run in
            let bookmark = run.start.bookmark ?? SourceBookmark(position: 0, offset: 0)
            return FileLines.Lines(
                path: source.path, start: bookmark, skip: run.start.progress.watermark - bookmark.position,
                bookmarks: run.bookmarks)
        }
    }
}
