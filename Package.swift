// swift-tools-version: 6.2
import PackageDescription

let package = Package(
    name: "AsyncFlow",
    products: [
        .library(name: "AsyncFlow", targets: ["AsyncFlow"]),
        .library(name: "CFlow", targets: ["CFlow"]),
    ],
    traits: [
        .trait(
            name: "URCU",
            description: "Build CFlow's second queue implementation on liburcu's wfcqueue (needs liburcu-dev)."
        )
    ],
    targets: [
        .target(
            name: "CFlow",
            cSettings: [
                .define("_GNU_SOURCE"),
                .define("FLOW_HAVE_URCU", .when(traits: ["URCU"])),
                .unsafeFlags(["-std=c11", "-Wall", "-Wextra", "-O2"]),
            ],
            linkerSettings: [
                .linkedLibrary("pthread"),
                .linkedLibrary("urcu-common", .when(traits: ["URCU"])),
            ]
        ),
        .target(
            name: "AsyncFlow",
            dependencies: ["CFlow"]
        ),
        .target(
            name: "CFlowChecks",
            dependencies: ["CFlow"],
            path: "Tests/CFlowChecks",
            exclude: ["main.c"],
            cSettings: [.define("_GNU_SOURCE"), .unsafeFlags(["-std=c11", "-Wall", "-Wextra", "-O2"])]
        ),
        .testTarget(
            name: "AsyncFlowTests",
            dependencies: ["AsyncFlow", "CFlow", "CFlowChecks"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
