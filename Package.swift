// swift-tools-version: 6.2
import PackageDescription

/// Every C target: -Wall -Wextra (C11 is the package's cLanguageStandard; release builds optimise).
let cWarnings: [CSetting] = [.enableWarning("all"), .enableWarning("extra")]

let package = Package(
    name: "AsyncFlow",
    products: [
        .library(name: "AsyncFlow", targets: ["AsyncFlow"]),
        .library(name: "CFlow", targets: ["CFlow"]),
        .library(name: "AsyncFlowServiceLifecycle", targets: ["AsyncFlowServiceLifecycle"]),
        .library(name: "AsyncFlowPostgres", targets: ["AsyncFlowPostgres"]),
        .library(name: "AsyncFlowSQLite", targets: ["AsyncFlowSQLite"]),
        .executable(name: "flow-bench", targets: ["flow-bench"]),
    ],
    traits: [
        .default(enabledTraits: ["Postgres", "SQLite"]),
        .trait(
            name: "Postgres",
            description: """
                AsyncFlowPostgres: the middle layer on worker processes through PostgreSQL (postgres-nio). On by \
                default; builds that do not use it (the sanitizer runs) turn it off with --disable-default-traits.
                """
        ),
        .trait(
            name: "SQLite",
            description: """
                AsyncFlowSQLite: named runs whose rows and checkpoints go to an SQLite database (sqlite-nio). On by \
                default; off with --disable-default-traits.
                """
        ),
        .trait(
            name: "URCU",
            description: "Build CFlow's second queue implementation on liburcu's wfcqueue (needs liburcu-dev)."
        ),
    ],
    dependencies: [
        // flow-bench only
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-async-algorithms", from: "1.1.4"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        // AsyncFlow's PipelineOptions.logger (the API package only: no backend)
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        // AsyncFlowServiceLifecycle only
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        // AsyncFlowPostgres only (the Postgres trait)
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        // AsyncFlowSQLite only (the SQLite trait)
        .package(url: "https://github.com/vapor/sqlite-nio", from: "1.13.2"),
        // `swift package generate-documentation --target AsyncFlow` (Sources/AsyncFlow/AsyncFlow.docc)
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        .target(
            name: "CFlow",
            exclude: ["spin-models"],  // of the ring and the eventcount (spin-models/check.sh)
            cSettings: cWarnings + [
                .define("_GNU_SOURCE"),
                .define("FLOW_HAVE_URCU", .when(traits: ["URCU"])),
            ],
            linkerSettings: [
                .linkedLibrary("pthread"),
                .linkedLibrary("urcu-common", .when(traits: ["URCU"])),
            ]
        ),
        .target(
            name: "AsyncFlow",
            dependencies: [
                "CFlow", .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "AsyncFlowServiceLifecycle",
            dependencies: ["AsyncFlow", .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")]
        ),
        .target(
            name: "AsyncFlowPostgres",
            dependencies: [
                "AsyncFlow", .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "PostgresNIO", package: "postgres-nio", condition: .when(traits: ["Postgres"])),
            ]
        ),
        .target(
            name: "AsyncFlowSQLite",
            dependencies: [
                "AsyncFlow",
                .product(name: "SQLiteNIO", package: "sqlite-nio", condition: .when(traits: ["SQLite"])),
            ]
        ),
        .target(
            name: "CFlowChecks",
            dependencies: ["CFlow"],
            path: "Tests/CFlowChecks",
            exclude: ["main.c"],
            cSettings: cWarnings + [.define("_GNU_SOURCE")]
        ),
        .target(
            name: "CFlowBench",
            dependencies: ["CFlow"],
            path: "Benchmarks/CFlowBench",
            exclude: ["ring_bench_main.c"],
            cSettings: cWarnings + [.define("_GNU_SOURCE")]
        ),
        .executableTarget(
            name: "flow-bench",
            dependencies: [
                "AsyncFlow", "CFlowBench",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            path: "Benchmarks/flow-bench"
        ),
        .testTarget(
            name: "AsyncFlowTests",
            dependencies: [
                "AsyncFlow", "AsyncFlowServiceLifecycle", "CFlow", "CFlowChecks",
                .target(name: "AsyncFlowPostgres", condition: .when(traits: ["Postgres"])),
                .target(name: "AsyncFlowSQLite", condition: .when(traits: ["SQLite"])),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "InMemoryLogging", package: "swift-log"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6],
    cLanguageStandard: .c11
)
