import Foundation
import JobKit

/// A fresh home directory for one test, removed when the value is dropped. Two homes are two
/// independent job worlds, so tests that each use their own never see each other's jobs.
public final class TemporaryHome: Sendable {
    public let path: String

    public init(_ label: String = "test") throws {
        let base = FileManager.default.temporaryDirectory.path + "/jobkit-tests"
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        let dir = base + "/\(label)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        path = dir
    }

    deinit {
        // Jobs outlive their engine: those of a test that ended early must not outlive it.
        endProcesses(mentioning: path)
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// Runs `body` with an engine on a fresh temporary home.
@discardableResult
public func withTemporaryEngine<R: Sendable>(
    _ label: String = "test", isolation: isolated (any Actor)? = #isolation,
    _ body: (JobManager, TemporaryHome) async throws -> R
) async throws -> R {
    let home = try TemporaryHome(label)
    return try await JobManager.withManager(home: home.path) { manager in
        try await body(manager, home)
    }
}

/// Where SwiftPM put the executables of this package (beside the running test bundle).
public func builtExecutable(_ name: String) -> String {
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    var dir = (exe as NSString).deletingLastPathComponent
    for _ in 0..<3 {
        let candidate = dir + "/" + name
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        dir = (dir as NSString).deletingLastPathComponent
    }
    return name
}
