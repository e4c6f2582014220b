#if Postgres
    import Foundation
    import Logging
    import Testing

    @testable import AsyncFlow
    @testable import AsyncFlowPostgres

    /// The PostgreSQL server the tests use: `DATABASE_URL` when set, else a throwaway cluster this process
    /// starts (initdb + pg_ctl in a temporary folder, a free loopback port; as root, the server runs as the
    /// `postgres` user) and removes at exit. Each test takes a schema of its own.
    final class Cluster: Sendable {
        static let shared: Result<Cluster, ClusterUnavailable> = start()

        let url: String
        /// The throwaway cluster's data folder and pg_ctl (nil when DATABASE_URL was given).
        let data: String?
        let pgctl: String?
        /// The server's options (port, socket folder, listening address), for starting it again.
        let options: String

        init(url: String, data: String?, pgctl: String?, options: String = "") {
            self.url = url
            self.data = data
            self.pgctl = pgctl
            self.options = options
        }

        /// Why the tests cannot have a server (they are then skipped, unless FLOW_REQUIRE_POSTGRES is set).
        struct ClusterUnavailable: Error, CustomStringConvertible {
            let description: String
        }

        /// The condition of every suite that needs a server: skipped with the reason when there is none;
        /// with FLOW_REQUIRE_POSTGRES=1 (CI) the tests run and fail instead.
        static var available: Bool {
            if case .success = shared { return true }
            return ProcessInfo.processInfo.environment["FLOW_REQUIRE_POSTGRES"] == "1"
        }

        static func server() throws -> Cluster { try shared.get() }

        /// A queue in a fresh schema of the server (or of `url`); `afterStatement`: the queue's test seam
        /// (AnswerLosses); `logger`: where its lines go (by default none, or warnings with FLOW_PG_LOG).
        static func queue(
            _ test: String = #function, url: String? = nil, logger: Logger? = nil,
            connectTimeout: Duration = .seconds(30),
            unclaimedNotice: Duration = .seconds(10), afterStatement: (@Sendable (String, Int?) throws -> Void)? = nil
        ) throws -> PostgresWorkQueue {
            let cluster = try server()
            let schema =
                "t_" + test.lowercased().filter { $0.isLetter || $0.isNumber }.prefix(40) + "_"
                + String(UInt32.random(in: 0...UInt32.max), radix: 36)
            var quiet = Logger(label: "test")
            quiet.logLevel = ProcessInfo.processInfo.environment["FLOW_PG_LOG"] != nil ? .warning : .error
            return try PostgresWorkQueue(
                url: url ?? cluster.url, schema: schema, logger: logger ?? quiet, synchronousCommit: false,
                connectTimeout: connectTimeout, unclaimedNotice: unclaimedNotice, afterStatement: afterStatement)
        }

        /// The role that must give its password (scram-sha-256) on the throwaway server, and that password.
        static let passwordRole = (name: "flow_pw", password: "right-horse-battery")

        /// The throwaway server's URL with another user, password or database.
        func url(user: String, password: String? = nil, database: String = "postgres") -> String? {
            guard data != nil, var parts = URLComponents(string: url) else { return nil }
            parts.user = user
            parts.password = password
            parts.path = "/" + database
            return parts.string
        }

        /// Stop the throwaway server, wait `seconds`, start it again.
        func stop(for seconds: Double) throws {
            guard let data, let pgctl else {
                throw ClusterUnavailable(description: "DATABASE_URL's server is not ours to stop")
            }
            try Self.asPostgres("\(pgctl) -D \(data)/db -m fast -w stop", quiet: true)
            usleep(UInt32(seconds * 1e6))
            try Self.asPostgres("\(pgctl) -D \(data)/db -o '\(options)' -w start -l \(data)/log", quiet: true)
        }

        /// Restart the throwaway server (`pg_ctl restart -m mode`): every connection is dropped. `fast`
        /// writes everything first; `immediate` is a crash (the server recovers from its WAL, and commits
        /// not yet written are undone).
        func restart(mode: String = "fast") throws {
            guard let data, let pgctl else {
                throw ClusterUnavailable(description: "DATABASE_URL's server is not ours to restart")
            }
            try Self.asPostgres("\(pgctl) -D \(data)/db -m \(mode) -w restart -l \(data)/log", quiet: true)
        }

        private static func start() -> Result<Cluster, ClusterUnavailable> {
            if let url = ProcessInfo.processInfo.environment["DATABASE_URL"], !url.isEmpty {
                return .success(Cluster(url: url, data: nil, pgctl: nil))
            }
            let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
            guard
                let bin = versions.sorted(by: { $0.compare($1, options: .numeric) == .orderedAscending }).last
                    .map({ "/usr/lib/postgresql/\($0)/bin" }),
                FileManager.default.isExecutableFile(atPath: bin + "/initdb")
            else {
                return .failure(
                    ClusterUnavailable(
                        description:
                            "no PostgreSQL: set DATABASE_URL, or install the server (apt-get install postgresql)"))
            }
            let data = NSTemporaryDirectory() + "asyncflow-pg-" + UUID().uuidString
            let port = freePort()
            // TLS with a certificate for 127.0.0.1 from a CA of the test's own (tls(...) below)
            let options =
                "-p \(port) -k \(data) -c listen_addresses=127.0.0.1 -c fsync=off -c ssl=on "
                + "-c ssl_cert_file=\(data)/server.crt -c ssl_key_file=\(data)/server.key"
            do {
                try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
                if getuid() == 0 { try run("/bin/chown", ["postgres", data]) }
                try asPostgres("\(bin)/initdb -D \(data)/db -A trust -U postgres", quiet: true)
                try asPostgres(certificates(in: data), quiet: true)
                try asPostgres(
                    "\(bin)/pg_ctl -D \(data)/db -o '\(options)' -l \(data)/log -w start",
                    quiet: true)
                // passwordRole must give its password; every other role is trusted (pg_hba.conf: first match)
                let role = passwordRole
                try asPostgres(
                    "\(bin)/psql -h \(data) -p \(port) -U postgres -d postgres -qc \"CREATE ROLE \(role.name) LOGIN PASSWORD '\(role.password)'\" -qc \"GRANT CREATE ON DATABASE postgres TO \(role.name)\"",
                    quiet: true)
                let hba = "\(data)/db/pg_hba.conf"
                let rules = try String(contentsOfFile: hba, encoding: .utf8)
                try ("host all \(role.name) 127.0.0.1/32 scram-sha-256\n" + rules).write(
                    toFile: hba, atomically: false, encoding: .utf8)
                try asPostgres("\(bin)/pg_ctl -D \(data)/db reload", quiet: true)
            } catch {
                return .failure(ClusterUnavailable(description: "starting a throwaway PostgreSQL in \(data): \(error)"))
            }
            stopCluster.withLock {
                $0 = "\(bin)/pg_ctl -D \(data)/db -m immediate -w stop; rm -rf \(data)"
            }
            atexit {
                if let stop = stopCluster.withLock({ $0 }) { try? Cluster.asPostgres(stop, quiet: true) }
            }
            return .success(
                Cluster(
                    url: "postgres://postgres@127.0.0.1:\(port)/postgres?sslmode=disable", data: data,
                    pgctl: "\(bin)/pg_ctl", options: options))
        }

        /// The shell commands that make, in `folder`: a CA (ca.crt), a server certificate for 127.0.0.1 that it
        /// signed (server.crt, server.key), and another CA that signed nothing the server has (other-ca.crt).
        static func certificates(in folder: String) -> String {
            let key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
            return [
                "cd \(folder)",
                "printf 'subjectAltName=IP:127.0.0.1' > san.ext",
                "openssl req -x509 \(key) -keyout ca.key -out ca.crt -days 2 -subj '/CN=AsyncFlow test CA' 2>/dev/null",
                "openssl req \(key) -keyout server.key -out server.csr -subj '/CN=127.0.0.1' 2>/dev/null",
                "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile san.ext 2>/dev/null",
                "openssl req -x509 \(key) -keyout other-ca.key -out other-ca.crt -days 2 -subj '/CN=Another CA' 2>/dev/null",
                "chmod 600 server.key",
            ].joined(separator: " && ")
        }

        /// The throwaway server's URL with `sslmode` (and `sslrootcert`: the test's CA, or the other one).
        func tls(_ mode: String, otherCA: Bool = false) -> String? {
            guard let data, var parts = URLComponents(string: url) else { return nil }
            parts.queryItems = [
                URLQueryItem(name: "sslmode", value: mode),
                URLQueryItem(name: "sslrootcert", value: "\(data)/\(otherCA ? "other-ca" : "ca").crt"),
            ]
            return parts.string
        }

        /// Run a shell command as the postgres user when root (the server refuses to run as root), from /.
        static func asPostgres(_ command: String, quiet: Bool) throws {
            if getuid() == 0 {
                try run(
                    "/bin/su", ["postgres", "-s", "/bin/sh", "-c", "cd / && " + command + (quiet ? " >/dev/null" : "")])
            } else {
                try run("/bin/sh", ["-c", command + (quiet ? " >/dev/null" : "")])
            }
        }

        static func run(_ tool: String, _ arguments: [String]) throws {
            // posix_spawn + waitpid, not Foundation's Process: this also runs in the atexit handler, when
            // Process's run loop is no longer served
            var pid: pid_t = 0
            let argv = ([tool] + arguments).map { strdup($0) } + [nil]
            defer { for a in argv { free(a) } }
            guard posix_spawn(&pid, tool, nil, nil, argv, environ) == 0 else {
                throw ClusterUnavailable(description: "\(tool): cannot start it")
            }
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            guard status == 0 else {
                throw ClusterUnavailable(
                    description: "\(tool) \(arguments.joined(separator: " ")): exit status \(status)")
            }
        }

        /// A loopback TCP port nobody listens on now.
        static func freePort() -> Int {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = 0
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
            }
            _ = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
            return Int(UInt16(bigEndian: address.sin_port))
        }
    }

    /// Answers lost on purpose, through a queue's test seam (PostgresWorkQueue.afterStatement): for each
    /// key, how many more answers of statements whose SQL contains it are lost after the statement ran,
    /// as when a connection drops after the commit (a transient error). A statement whose rows are read
    /// loses its answer only when it returned rows.
    final class AnswerLosses: Sendable {
        let remaining = Locked<[String: Int]>([:])

        func lose(_ losses: [String: Int]) { remaining.withLock { $0 = losses } }

        /// Losses asked for and not yet made.
        var left: Int { remaining.withLock { $0.values.reduce(0, +) } }

        var afterStatement: @Sendable (String, Int?) throws -> Void {
            { sql, rows in
                if rows == 0 { return }
                let lost = self.remaining.withLock { lose in
                    guard let key = lose.keys.first(where: { sql.contains($0) }), lose[key]! > 0 else { return false }
                    lose[key]! -= 1
                    return true
                }
                if lost { throw PostgresWorkQueueError("the answer was lost (injected)", transient: true) }
            }
        }
    }

    /// The shell command that stops the throwaway cluster and removes its folder (run at exit).
    let stopCluster = Locked<String?>(nil)
#endif
