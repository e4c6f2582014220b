// ConnectionURL.swift — a `postgres://` URL read as libpq reads it, its password masked wherever it is
// shown; and the errors a PostgresWorkQueue's connection and statements end in.
#if Postgres  // the package trait that brings postgres-nio (Package.swift)
    import AsyncFlow
    import Foundation
    import Logging
    import PostgresNIO

    /// `name` as a lower-case SQL identifier (a schema, a table), or an error naming `parameter`.
    func sqlIdentifier(_ name: String, parameter: String) throws -> String {
        if let problem = sqlIdentifierProblem(name, parameter: parameter) { throw PostgresWorkQueueError(problem) }
        return name
    }

    /// `url`, or else the `DATABASE_URL` environment variable; an error saying so when neither is set.
    func databaseURL(_ url: String?) throws -> String {
        guard let url = url ?? ProcessInfo.processInfo.environment["DATABASE_URL"], !url.isEmpty else {
            throw PostgresWorkQueueError(
                "no database: pass url: or set DATABASE_URL=postgres://user:password@host:port/database")
        }
        return url
    }

    /// A `postgres://` URL read as libpq reads it (user, password, host, port, database, sslmode).
    struct ConnectionURL {
        let configuration: PostgresClient.Configuration
        /// The same, for one connection of its own (the first connection's check, PostgresWorkQueue.connect).
        let single: PostgresConnection.Configuration
        let masked: String

        init(_ url: String) throws {
            guard let parts = URLComponents(string: url), parts.scheme == "postgres" || parts.scheme == "postgresql",
                let host = parts.host, !host.isEmpty
            else {
                throw PostgresWorkQueueError(
                    "database URL: expected postgres://user:password@host:port/database, got \(Self.mask(url))")
            }
            let mode = parts.queryItems?.first { $0.name == "sslmode" }?.value ?? "prefer"
            var unverified = TLSConfiguration.makeClientConfiguration()
            unverified.certificateVerification = .none
            // verify-ca and verify-full trust the system's CAs, or the one file sslrootcert names (as libpq)
            var full = TLSConfiguration.makeClientConfiguration()
            if let root = parts.queryItems?.first(where: { $0.name == "sslrootcert" })?.value, !root.isEmpty {
                guard FileManager.default.isReadableFile(atPath: root) else {
                    throw PostgresWorkQueueError("database URL: sslrootcert=\(root): no such readable file")
                }
                full.trustRoots = .file(root)
            }
            var caOnly = full
            caOnly.certificateVerification = .noHostnameVerification
            let tls: PostgresClient.Configuration.TLS
            let singleTLS: PostgresConnection.Configuration.TLS
            switch mode {
            case "disable": (tls, singleTLS) = (.disable, .disable)
            case "allow", "prefer":
                (tls, singleTLS) = (.prefer(unverified), .prefer(try .init(configuration: unverified)))
            case "require": (tls, singleTLS) = (.require(unverified), .require(try .init(configuration: unverified)))
            case "verify-ca": (tls, singleTLS) = (.require(caOnly), .require(try .init(configuration: caOnly)))
            case "verify-full": (tls, singleTLS) = (.require(full), .require(try .init(configuration: full)))
            default:
                throw PostgresWorkQueueError(
                    "database URL: sslmode=\(mode): expected disable, allow, prefer, require, verify-ca or verify-full")
            }
            let database = parts.path.count > 1 ? String(parts.path.dropFirst()) : nil
            let (port, user) = (parts.port ?? 5432, parts.user ?? "postgres")
            configuration = .init(
                host: host, port: port, username: user, password: parts.password, database: database, tls: tls)
            single = .init(
                host: host, port: port, username: user, password: parts.password, database: database, tls: singleTLS)
            masked = Self.mask(url)
        }

        /// The URL with its password replaced by `***`.
        static func mask(_ url: String) -> String {
            guard var parts = URLComponents(string: url), parts.password != nil else { return url }
            parts.password = "***"
            return parts.string ?? "(a URL with a password)"
        }
    }

    /// Whether `error` may pass if the statement is tried again: a lost or refused connection, a server shutting down
    /// or short of resources, a serialization failure, a statement that hung ([a hung statement is given up]). Not: a
    /// permission, a missing table, a constraint, bad credentials.
    func isTransient(_ error: any Error) -> Bool {
        if let e = error as? PostgresWorkQueueError { return e.transient }
        guard let e = error as? PSQLError else { return true }  // the network's own errors (refused, reset)
        switch e.code {
        case .server:
            let state = e.serverInfo?[.sqlState] ?? ""
            return ["08", "53", "57", "40"].contains(String(state.prefix(2)))
        case .clientClosedConnection, .serverClosedConnection, .connectionError, .uncleanShutdown, .queryCancelled,
            .poolClosed:
            return true
        default:
            return false
        }
    }

    /// [the first connection is checked alone] (PostgresWorkQueue.swift): make one connection with `single` to
    /// `masked` (the URL as shown) and close it. A refusal throws at once (`.refused`); other failures are tried
    /// again, each logged, until `timeout` (`.unreachable`).
    func checkFirstConnection(
        _ single: PostgresConnection.Configuration, to masked: String, within timeout: Duration, logger: Logger,
        background: Logger
    ) async throws {
        var single = single
        single.options.connectTimeout = .seconds(Int64(min(10, max(1, timeout.seconds))))
        let started = ContinuousClock.now
        var delay = Duration.milliseconds(100)
        for attempt in 1... {
            do {
                let connection = try await PostgresConnection.connect(
                    configuration: single, id: attempt, logger: background)
                try? await connection.close()
                if attempt > 1 {
                    logger.notice(
                        "AsyncFlowPostgres: connected to \(masked) at attempt \(attempt), after \((ContinuousClock.now - started).shown)"
                    )
                }
                return
            } catch {
                if let reason = refusal(error) {
                    throw PostgresWorkQueueError("\(masked) refused the connection: \(reason)", kind: .refused)
                }
                let waited = ContinuousClock.now - started
                let reason = failureReason(error)
                guard waited < timeout else {
                    throw PostgresWorkQueueError(
                        "no connection to \(masked) within \(timeout.shown) (\(attempt) attempts; the last: \(reason))",
                        kind: .unreachable)
                }
                let pause = min(delay, timeout - waited)  // the last attempt at the bound
                logger.warning(
                    "AsyncFlowPostgres: connecting to \(masked), attempt \(attempt): \(reason); trying again in \(pause.shown)"
                )
                try await Task.sleep(for: pause)
                delay = min(delay * 2, .seconds(5))
            }
        }
    }

    /// An error's reason in one line: the server's message when it sent one.
    func failureReason(_ error: any Error) -> String {
        guard let e = error as? PSQLError else { return "\(error)" }
        if let message = e.serverInfo?[.message] { return message }
        if let inner = e.underlying as? PSQLError { return failureReason(inner) }
        if let underlying = e.underlying { return "\(e.code): \(underlying)" }
        return "\(e.code)"
    }

    /// The server's refusal of a connection that trying again cannot change, as its message: a wrong password, an
    /// unknown role or database, a missing permission, an authentication or TLS mode that the server and the URL
    /// do not share; nil for anything else (a refused or lost connection, a server starting up).
    func refusal(_ error: any Error) -> String? {
        guard let e = error as? PSQLError else { return nil }
        switch e.code {
        case .server:
            let state = e.serverInfo?[.sqlState] ?? ""
            // 28: invalid authorization (a password, a role, pg_hba.conf); 3D000: no such database; 42501: a privilege
            guard state.hasPrefix("28") || state == "3D000" || state == "42501" else { return nil }
            return (e.serverInfo?[.message]).map { "\($0) (SQLSTATE \(state))" } ?? "SQLSTATE \(state)"
        case .connectionError:
            // a certificate that does not verify (another CA, an expired one): the same on every attempt
            guard let tls = e.underlying as? NIOSSLError, case .handshakeFailed(let reason) = tls else { return nil }
            return "the TLS handshake failed: \(reason)"
        case .sslUnsupported: return "the server does not support TLS, which the URL's sslmode requires"
        case .unsupportedAuthMechanism: return "the server asks for an authentication method postgres-nio lacks"
        case .authMechanismRequiresPassword: return "the server asks for a password and the URL has none"
        default: return nil
        }
    }

    /// A PostgresWorkQueue's connection or schema cannot be used.
    public struct PostgresWorkQueueError: Error, CustomStringConvertible, Sendable {
        public enum Kind: Sendable, Equatable {
            /// The server refused the connection, and trying again cannot help: a wrong password, an unknown role
            /// or database, a missing permission, a TLS or authentication mode it does not share with the URL.
            case refused
            /// No connection could be made within the queue's `connectTimeout` (the server down or starting, a
            /// wrong host or port, a network in between).
            case unreachable
            /// Anything else: a bad URL, schema or parameter, tables of another version, a statement that hung.
            case other
        }

        public let kind: Kind
        public let description: String
        /// Whether trying again may help (a statement that hung, [a hung statement is given up]).
        let transient: Bool
        init(_ message: String, kind: Kind = .other, transient: Bool = false) {
            description = message
            self.kind = kind
            self.transient = transient
        }
    }

    extension DistributedLayerError.Kind {
        /// The kind of a run's error that `error`, from the database, makes: `.refused` or `.unreachable` for a
        /// connection that cannot be made, `.database` for the rest.
        init(database error: any Error) {
            switch (error as? PostgresWorkQueueError)?.kind {
            case .refused?: self = .refused
            case .unreachable?: self = .unreachable
            default: self = .database
            }
        }
    }
#endif
