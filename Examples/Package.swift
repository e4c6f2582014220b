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
    ],
    targets: [
        .target(name: "IngestCore", dependencies: [.product(name: "AsyncFlow", package: "AsyncFlow")]),
        .executableTarget(
            name: "ingest-sqlite",
            dependencies: [
                "IngestCore", .product(name: "AsyncFlow", package: "AsyncFlow"),
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
            ]
        ),
        .executableTarget(
            name: "ingest-postgres",
            dependencies: [
                "IngestCore", .product(name: "AsyncFlow", package: "AsyncFlow"),
                .product(name: "PostgresNIO", package: "postgres-nio"), .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
