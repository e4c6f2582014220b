// ConnectionURL.swift — a `postgres://` URL read as libpq reads it, its password masked wherever it is
// shown; and the errors a PostgresWorkQueue's connection and statements end in.
#if Postgres  // the package trait that brings postgres-nio (Package.swift)
    import AsyncFlow
    import Foundation
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
            var caOnly = TLSConfiguration.makeClientConfiguration()
            caOnly.certificateVerification = .noHostnameVerification
            let tls: PostgresClient.Configuration.TLS
            switch mode {
            case "disable": tls = .disable
            case "allow", "prefer": tls = .prefer(unverified)
            case "require": tls = .require(unverified)
            case "verify-ca": tls = .require(caOnly)
            case "verify-full": tls = .require(.makeClientConfiguration())
            default:
                throw PostgresWorkQueueError(
                    "database URL: sslmode=\(mode): expected disable, allow, prefer, require, verify-ca or verify-full")
            }
            let database = parts.path.count > 1 ? String(parts.path.dropFirst()) : nil
            configuration = .init(
                host: host, port: parts.port ?? 5432, username: parts.user ?? "postgres", password: parts.password,
                database: database, tls: tls)
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

    /// A PostgresWorkQueue's connection or schema cannot be used.
    public struct PostgresWorkQueueError: Error, CustomStringConvertible, Sendable {
        public let description: String
        /// Whether trying again may help (a statement that hung, [a hung statement is given up]).
        let transient: Bool
        init(_ message: String, transient: Bool = false) {
            description = message
            self.transient = transient
        }
    }
#endif
