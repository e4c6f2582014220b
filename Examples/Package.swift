// swift-tools-version: 6.2
// Examples for AsyncFlow, a package of their own so that the library stays lean: it depends on the
// repository root by path. `swift run -c release ingest-sqlite` (see README.md here).
import PackageDescription

let package = Package(
    name: "AsyncFlowExamples",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "AsyncFlow", path: ".."),
        .package(url: "https://github.com/vapor/sqlite-nio", from: "1.13.2"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        .target(name: "IngestCore", dependencies: [.product(name: "AsyncFlow", package: "AsyncFlow")]),
        .target(
            name: "MetricsEndpoint",
            dependencies: [
                .product(name: "AsyncFlow", package: "AsyncFlow"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "readme-tour",
            dependencies: [
                .product(name: "AsyncFlow", package: "AsyncFlow"),
                .product(name: "AsyncFlowPostgres", package: "AsyncFlow"),
                .product(name: "AsyncFlowSQLite", package: "AsyncFlow"),
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "AsyncFlowServiceLifecycle", package: "AsyncFlow"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "ingest-sqlite",
            dependencies: [
                "IngestCore", "MetricsEndpoint", .product(name: "AsyncFlow", package: "AsyncFlow"),
                .product(name: "AsyncFlowServiceLifecycle", package: "AsyncFlow"),
                .product(name: "SQLiteNIO", package: "sqlite-nio"), .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "flow-distributed",
            dependencies: [
                "IngestCore", .product(name: "AsyncFlow", package: "AsyncFlow"),
                .product(name: "AsyncFlowPostgres", package: "AsyncFlow"),
                .product(name: "AsyncFlowSQLite", package: "AsyncFlow"),
                .product(name: "Logging", package: "swift-log"), .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
            ]
        ),
        .executableTarget(
            name: "ingest-postgres",
            dependencies: [
                "IngestCore", "MetricsEndpoint", .product(name: "AsyncFlow", package: "AsyncFlow"),
                .product(name: "PostgresNIO", package: "postgres-nio"), .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
