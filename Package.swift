// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "job",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "JobModel", targets: ["JobModel"]),
        .library(name: "JobKit", targets: ["JobKit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", exact: "7.10.0"),
    ],
    targets: [
        // Value types shared by every side: ids, states, job info, selectors, errors, the output file format.
        .target(name: "JobModel"),
        // Thin C shims over Linux calls Swift cannot make directly (posix_spawn attributes, pidfd, inotify).
        .target(name: "CJobKitSystem"),
        // The job engine: JobManager actor, state machine, SQLite store, process and closure runners.
        .target(
            name: "JobKit",
            dependencies: ["JobModel", "CJobKitSystem", .product(name: "GRDB", package: "GRDB.swift")],
            plugins: ["SupervisorBuilder"]
        ),
        // Compiles the supervisor (Supervisor/jobkit-supervisor.c: the tiny process that runs one
        // job and outlives the engine) as a plain static C program into JobKit's resources.
        .plugin(name: "SupervisorBuilder", capability: .buildTool()),
        // Test fixtures: temporary homes, engines run for a test, helpers to find built executables.
        .target(name: "JobTesting", dependencies: ["JobKit", "JobModel"]),
        // A process that holds an engine, for tests that kill the engine with SIGKILL.
        .executableTarget(name: "jobkit-test-engine", dependencies: ["JobKit"]),
        // The README's first quick-start command: starts a real job and prints its output.
        .executableTarget(name: "jobkit-example", dependencies: ["JobKit"], path: "Examples/jobkit-example"),
        // Throughput benchmarks against raw posix_spawn and cat; run by Benchmarks/run, never by the tests.
        .executableTarget(
            name: "JobKitBenchmarks",
            dependencies: ["JobKit", "CJobKitSystem"],
            path: "Benchmarks/JobKitBenchmarks"
        ),
        .testTarget(name: "JobModelTests", dependencies: ["JobModel"]),
        .testTarget(
            name: "JobKitTests",
            dependencies: ["JobKit", "JobModel", "JobTesting", "jobkit-test-engine"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
