// DistributedLayer.swift — a middle layer's work, declared once in code that the coordinator and its
// workers share: a name, a build identity, and the closure. Items travel in chunks (ChunkCodec).
#if Postgres  // the package trait that brings postgres-nio (Package.swift)
    import AsyncFlow
    import Foundation
    import PostgresNIO

    /// A CPU-bound layer whose work can run in worker processes on other machines: the coordinator's
    /// pipeline uses it with ``AsyncFlow/Layer/init(_:on:chunk:concurrency:ordered:maxAttempts:lease:name:onError:)``,
    /// a ``FlowWorker`` serves it. A closure cannot travel, so the workers run the same program (or one
    /// with the same declaration): layers are matched by `name` and by a build identity, so a worker built
    /// from other code is refused (it claims nothing and its `run()` throws) instead of being fed items it
    /// may read differently.
    ///
    /// ```swift
    /// let score = DistributedLayer("score") { (x: Item) throws -> Scored in ... }
    /// ```
    public struct DistributedLayer<Input: Codable & Sendable, Output: Codable & Sendable>: Sendable {
        /// The name workers and the coordinator match the layer by.
        public let name: String
        /// The build identity: `version` when given, else a digest of this executable with the item types.
        public let build: String
        /// Makes a worker thread's closure (per-thread state lives in it).
        let makeBody: @Sendable () -> (Input) throws -> Output

        /// A distributed layer whose closure needs no state.
        /// - Parameters:
        ///   - name: matches the layer between coordinator and workers.
        ///   - version: the build identity; by default a digest of the running executable, so any rebuild
        ///     refuses workers of the previous build. Give one (say, your release's version) to let workers
        ///     of another build of the same code serve the layer.
        public init(_ name: String, version: String? = nil, _ body: @escaping @Sendable (Input) throws -> Output) {
            self.init(name, version: version, state: {}, { (_: inout Void, x: Input) in try body(x) })
        }

        /// A distributed layer with per-thread state: `state` runs once on each of a worker's threads, and
        /// that thread's calls of `body` get it `inout` (as `Layer(workers:state:)`).
        public init<State>(
            _ name: String, version: String? = nil, state: @escaping @Sendable () -> State,
            _ body: @escaping @Sendable (inout State, Input) throws -> Output
        ) {
            self.name = name
            self.build = version ?? "\(Input.self)->\(Output.self)@\(executableDigest)"
            makeBody = {
                var s = state()
                return { x in try body(&s, x) }
            }
        }
    }

    /// A digest of this process's executable file (FNV-1a over its 64-bit words), computed once: the same
    /// binary on any machine gives the same digest, a rebuild (almost surely) another.
    let executableDigest: String = {
        guard
            let file = FileHandle(forReadingAtPath: "/proc/self/exe")
                ?? FileHandle(forReadingAtPath: CommandLine.arguments[0])
        else { return "unknown" }
        defer { try? file.close() }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        var length = 0
        while let data = try? file.read(upToCount: 1 << 22), !data.isEmpty {
            length += data.count
            data.withUnsafeBytes { raw in
                let words = raw.count / 8
                for i in 0..<words {
                    hash = (hash ^ raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)) &* 0x0000_0100_0000_01b3
                }
                for i in (words * 8)..<raw.count { hash = (hash ^ UInt64(raw[i])) &* 0x0000_0100_0000_01b3 }
            }
        }
        return String(hash, radix: 16) + "-" + String(length)
    }()

    /// How a chunk's items are written into a row: plain-data types (no references, such as Int or a struct
    /// of Doubles) as their bytes, with no per-item encoding; other Codable types as JSON. Both ends run
    /// the same build (DistributedLayer.build), so the bytes mean the same to both.
    enum ChunkCodec {
        static let raw: UInt8 = 0
        static let json: UInt8 = 1

        static func encode<T: Encodable>(_ items: [T]) throws -> ByteBuffer {
            var buffer = ByteBuffer()
            if _isPOD(T.self) {
                buffer.reserveCapacity(1 + items.count * MemoryLayout<T>.stride)
                buffer.writeInteger(raw)
                items.withUnsafeBytes { _ = buffer.writeBytes($0) }
            } else {
                buffer.writeInteger(json)
                buffer.writeBytes(try JSONEncoder().encode(items))
            }
            return buffer
        }

        static func decode<T: Decodable>(_ buffer: ByteBuffer, as: T.Type) throws -> [T] {
            var buffer = buffer
            guard let format: UInt8 = buffer.readInteger() else { throw ChunkCodecError("an empty chunk") }
            switch format {
            case raw where _isPOD(T.self):
                let stride = MemoryLayout<T>.stride
                guard buffer.readableBytes % max(stride, 1) == 0 else {
                    throw ChunkCodecError(
                        "\(buffer.readableBytes) bytes are not a whole number of \(T.self) (\(stride) bytes)")
                }
                let count = stride == 0 ? 0 : buffer.readableBytes / stride
                return buffer.withUnsafeReadableBytes { bytes in
                    [T](unsafeUninitializedCapacity: count) { out, initialized in
                        if count > 0 {
                            UnsafeMutableRawBufferPointer(out).copyMemory(
                                from: UnsafeRawBufferPointer(rebasing: bytes[0..<count * stride]))
                        }
                        initialized = count
                    }
                }
            case json:
                return try JSONDecoder().decode([T].self, from: Data(buffer.readableBytesView))
            default:
                throw ChunkCodecError("chunk format \(format) is not one \(T.self) is written in")
            }
        }
    }

    struct ChunkCodecError: Error, CustomStringConvertible {
        let description: String
        init(_ d: String) { description = d }
    }

    /// An error policy as it travels with a chunk: "fail", "skip", "retry:N".
    extension ErrorPolicy {
        var wire: String {
            switch self {
            case .fail: "fail"
            case .skip: "skip"
            case .retry(let n): "retry:\(n)"
            }
        }

        init?(wire: String) {
            switch wire {
            case "fail": self = .fail
            case "skip": self = .skip
            default:
                guard wire.hasPrefix("retry:"), let n = Int(wire.dropFirst(6)), n >= 0 else { return nil }
                self = .retry(attempts: n)
            }
        }
    }
#endif
