// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "job",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "JobModel", targets: ["JobModel"]),
        .library(name: "JobKit", targets: ["JobKit"]),
        .executable(name: "job", targets: ["job"]),
        .executable(name: "jobd", targets: ["jobd"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", exact: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio", exact: "2.101.3"),
        .package(url: "https://github.com/apple/swift-log", exact: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", exact: "2.13.0"),
    ],
    targets: [
        // Value types shared by every side: ids, states, job info, selectors, errors, defaults.
        .target(name: "JobModel"),
        // A job's output files: their layout, and reading a range of them (the engine, and the
        // CLI, which reads what the daemon hands it itself).
        .target(name: "JobOutput", dependencies: ["JobModel", "CJobKitSystem"]),
        // Thin C shims over Linux calls Swift cannot make directly (posix_spawn attributes, pidfd,
        // inotify), and jobkit_abi.h: the layouts the supervisor writes, for Swift to read.
        .target(name: "CJobKitSystem"),
        // The job engine: JobManager actor, state machine, SQLite store, process and closure runners.
        .target(
            name: "JobKit",
            dependencies: [
                "JobModel", "JobOutput", "CJobKitSystem", .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
            ],
            plugins: ["SupervisorBuilder"]
        ),
        // Compiles the supervisor (Supervisor/jobkit-supervisor.c: the tiny process that runs one
        // job and outlives the engine) as a plain static C program into JobKit's resources.
        .plugin(name: "SupervisorBuilder", capability: .buildTool()),
        // The messages between `job` and `jobd`, their framing, and where a home's files are.
        .target(name: "JobProtocol", dependencies: ["JobModel"]),
        // The daemon: the engine served on a Unix socket, as a ServiceGroup.
        .target(
            name: "JobDaemon",
            dependencies: [
                "JobKit", "JobProtocol", "CJobKitSystem",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // A blocking client of the daemon, small enough to start in a few milliseconds; starts it.
        .target(name: "JobClient", dependencies: ["JobProtocol"]),
        // The `job` command tree and its rendering (table, list, json).
        .target(
            name: "JobCommands",
            dependencies: ["JobClient", "JobOutput", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // `job`: the command line.
        .executableTarget(
            name: "job", dependencies: ["JobCommands"],
            // Not position-independent in release builds: the loader then has no relocations to
            // apply to it, and applying them faulted in ~120 pages at every start (measured:
            // `job start` 3.8 -> 2.8 ms). `job` runs for milliseconds and is started in loops.
            linkerSettings: [.unsafeFlags(["-Xclang-linker", "-no-pie"], .when(configuration: .release))]
        ),
        // `jobd`: the per-user daemon.
        .executableTarget(name: "jobd", dependencies: ["JobDaemon", "CJobdProcess"]),
        // What jobd's process sets before anything runs (a constructor): its malloc arenas.
        .target(name: "CJobdProcess"),
        // Test fixtures: temporary homes, engines run for a test, helpers to find built executables.
        .target(name: "JobTesting", dependencies: ["JobKit", "JobModel", "CJobKitSystem"]),
        // A process that holds an engine, for tests that kill the engine with SIGKILL.
        .executableTarget(name: "jobkit-test-engine", dependencies: ["JobKit"]),
        // The README's first quick-start command: starts a real job and prints its output.
        .executableTarget(name: "jobkit-example", dependencies: ["JobKit"], path: "Examples/jobkit-example"),
        // Throughput benchmarks against raw posix_spawn and cat; run by Benchmarks/run, never by the tests.
        .executableTarget(
            name: "JobKitBenchmarks",
            dependencies: ["JobKit", "JobOutput", "CJobKitSystem"],
            path: "Benchmarks/JobKitBenchmarks"
        ),
        .testTarget(name: "JobModelTests", dependencies: ["JobModel", "JobOutput", "JobProtocol"]),
        .testTarget(name: "JobProtocolTests", dependencies: ["JobModel", "JobProtocol", "JobTesting"], exclude: ["Golden", "wire_client.py"]),
        .testTarget(name: "JobClientTests", dependencies: ["JobClient", "JobProtocol", "JobModel", "JobTesting"]),
        .testTarget(name: "JobDaemonTests", dependencies: ["JobDaemon", "JobClient", "JobProtocol", "JobModel", "JobTesting"]),
        .testTarget(
            name: "JobCommandsTests",
            dependencies: ["JobTesting", "JobProtocol", "JobCommands", .product(name: "ArgumentParser", package: "swift-argument-parser"), "job", "jobd"]
        ),
        .testTarget(
            name: "JobKitTests",
            dependencies: ["JobKit", "JobModel", "JobOutput", "JobTesting", "jobkit-test-engine"]
        ),
    ],
    swiftLanguageModes: [.v6]
)

// The fuzz target over the daemon's reading and answering of requests (Fuzz/README.md): only
// with JOB_FUZZ set, as `scripts/fuzz` builds it with `-sanitize=fuzzer`, which supplies its
// main. The tests never build it.
if Context.environment["JOB_FUZZ"] != nil {
    package.targets.append(
        .executableTarget(
            name: "jobd-fuzz", dependencies: ["JobDaemon", "JobKit", "JobModel", "JobProtocol"], path: "Fuzz/jobd-fuzz",
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]))
}
