// swift-tools-version:6.2
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "civitas",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "civitas", targets: ["civitas"]),
        .library(name: "CivitasClient", targets: ["CivitasClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
        .package(url: "https://github.com/swiftwasm/WasmKit", from: "0.4.2"),
    ],
    targets: [
        // L0
        .target(name: "CivitasCore", swiftSettings: strict),
        // L1
        .systemLibrary(
            name: "CRocksDB", pkgConfig: "rocksdb",
            providers: [.apt(["librocksdb-dev"])]),
        .target(
            name: "CCivitasOpenSSL",
            cSettings: [.unsafeFlags(["-Wno-deprecated-declarations"])],
            linkerSettings: [.linkedLibrary("crypto")]),
        .target(
            name: "CivitasCrypto",
            dependencies: [
                "CivitasCore", "CCivitasOpenSSL",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            // Optimised in debug builds too: unoptimised field arithmetic checks Ed25519
            // signatures about 100 times slower, and the tests run real nodes.
            swiftSettings: strict + [.unsafeFlags(["-O"], .when(configuration: .debug))]),
        // RocksDB options the C API lacks, set through its C++ headers.
        .target(name: "CCivitasRocksDB", dependencies: ["CRocksDB"]),
        .target(name: "CivitasStorage", dependencies: ["CivitasCore", "CRocksDB", "CCivitasRocksDB"], swiftSettings: strict),
        // A prefetch hint for the state-node cache's lookups.
        .target(name: "CCivitasMemory"),
        // L2
        .target(
            name: "CivitasState", dependencies: ["CivitasCore", "CivitasCrypto", "CivitasStorage", "CCivitasMemory"],
            swiftSettings: strict),
        .target(
            name: "CivitasConsensus", dependencies: ["CivitasCore", "CivitasCrypto"], swiftSettings: strict),
        .target(
            name: "CivitasVM",
            dependencies: [
                "CivitasCore", "CivitasCrypto",
                .product(name: "WasmKit", package: "WasmKit"),
                .product(name: "WasmParser", package: "WasmKit"),
            ],
            swiftSettings: strict),
        .target(
            name: "CivitasNetwork",
            dependencies: [
                "CivitasCore", "CivitasCrypto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        // L3
        .target(
            name: "CivitasModules",
            dependencies: ["CivitasCore", "CivitasCrypto", "CivitasState", "CivitasVM"],
            swiftSettings: strict),
        // L4
        .target(
            name: "CivitasNode",
            dependencies: [
                "CivitasCore", "CivitasCrypto", "CivitasStorage", "CivitasState", "CivitasConsensus",
                "CivitasModules", "CivitasVM",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "OrderedCollections", package: "swift-collections"),
            ],
            swiftSettings: strict),
        // L5
        .target(
            name: "CivitasAPI",
            dependencies: [
                "CivitasCore", "CivitasCrypto", "CivitasStorage", "CivitasNode", "CivitasModules", "CivitasVM",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .target(name: "CivitasClient", dependencies: ["CivitasCore", "CivitasCrypto"], swiftSettings: strict),
        // L6
        .target(
            name: "CivitasCommands",
            dependencies: [
                "CivitasCore", "CivitasCrypto", "CivitasStorage", "CivitasState", "CivitasNode", "CivitasAPI", "CivitasClient",
                "CivitasNetwork",
                "CivitasTesting", "CivitasConsensus", "CivitasModules", "CivitasVM",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strict),
        // jemalloc serves every allocation of the process, the Swift runtime's and RocksDB's:
        // glibc's allocator slowed as a node's heap grew (docs/benchmarks.md, session 12).
        .executableTarget(
            name: "civitas", dependencies: ["CivitasCommands"], swiftSettings: strict,
            linkerSettings: [.linkedLibrary("jemalloc")]),
        .target(
            name: "CivitasTesting",
            dependencies: [
                "CivitasCore", "CivitasCrypto", "CivitasStorage", "CivitasState", "CivitasNode", "CivitasClient", "CivitasConsensus",
                "CivitasModules", "CivitasNetwork", .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        // Tests
        .testTarget(name: "CivitasCoreTests", dependencies: ["CivitasCore", "CivitasTesting"]),
        .testTarget(
            name: "CivitasCryptoTests",
            dependencies: ["CivitasCrypto", "CivitasTesting", .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(name: "CivitasStorageTests", dependencies: ["CivitasStorage", "CRocksDB"]),
        .testTarget(
            name: "CivitasVMTests",
            dependencies: [
                "CivitasVM", "CivitasModules", "CivitasTesting", "CivitasCrypto", .product(name: "WAT", package: "WasmKit"),
            ]),
        .testTarget(
            name: "CivitasConsensusTests",
            dependencies: [
                "CivitasConsensus", "CivitasTesting", .product(name: "HeapModule", package: "swift-collections"),
            ]),
        .testTarget(
            name: "CivitasNetworkTests",
            dependencies: ["CivitasNetwork", .product(name: "NIOEmbedded", package: "swift-nio")]),
        .testTarget(name: "CivitasStateTests", dependencies: ["CivitasState", "CivitasTesting"]),
        .testTarget(name: "CivitasNodeTests", dependencies: ["CivitasNode", "CivitasClient", "CivitasTesting"]),
        .testTarget(
            name: "CivitasAPITests",
            dependencies: [
                "CivitasAPI", "CivitasClient", "CivitasStorage", "CivitasTesting",
                .product(name: "HummingbirdTesting", package: "hummingbird"), .product(name: "WAT", package: "WasmKit"),
            ]),
        .testTarget(name: "CivitasCommandsTests", dependencies: ["CivitasCommands", "CivitasAPI", "CivitasNode"]),
        .testTarget(
            name: "CivitasEndToEndTests", dependencies: ["CivitasClient", "CivitasTesting", "CivitasCommands"]),
    ],
    cxxLanguageStandard: .cxx17
)
