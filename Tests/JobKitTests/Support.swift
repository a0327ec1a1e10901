import Foundation
import Testing
@testable import JobKit
import JobModel
import JobTesting

extension Tag {
    /// Pure logic, no processes.
    @Tag static var small: Self
    /// Real processes, a few seconds at most.
    @Tag static var medium: Self
    /// Several processes, kills, large outputs.
    @Tag static var large: Self
}

extension JobManager {
    /// Starts `/bin/sh -c LINE`.
    func sh(_ line: String, name: String? = nil) throws -> JobInfo {
        try start(.shell(line), name: name)
    }

    /// Waits (generously) for one job to finish and returns it.
    func finished(_ id: Int, within seconds: Double = 60) async throws -> JobInfo {
        let jobs = try await wait([.id(id)], timeout: .seconds(seconds), force: true)
        return try #require(jobs?.first, "job \(id) did not finish within \(seconds) s")
    }

    /// The child of a `start` parent.
    func child(of parent: JobInfo) throws -> JobInfo {
        let childId = try #require(parent.childJobs.first)
        return try #require(job(childId))
    }

    /// Receives and returns one stream's text.
    func text(_ id: Int, _ stream: OutputStreamKind = .output, keep: Bool = false) throws -> String {
        String(decoding: try receive([.id(id)], keep: keep).data(stream), as: UTF8.self)
    }
}

/// Whether any process is left in process group `pgid` (zombies not yet reaped by init are
/// given a moment to go).
func processGroupIsAlive(_ pgid: pid_t) async -> Bool {
    for _ in 0..<50 {
        if kill(-pgid, 0) != 0 && errno == ESRCH { return false }
        try? await Task.sleep(for: .milliseconds(100))
    }
    return true
}

/// The pid of a process job's main process (its process group), from its supervisor's file.
func jobPid(_ manager: JobManager, child: Int) async throws -> pid_t {
    for _ in 0..<100 {
        if let pid = manager.processId(ofJob: child) { return pid }
        try await Task.sleep(for: .milliseconds(20))
    }
    throw JobError(.notFound, "job \(child) never recorded its pid")
}

/// Shell code that waits until `path` exists (the test's go-ahead), giving up with exit 9
/// after 3000 looks (a minute or more): lets a test order a job's steps against its own
/// without guessing at timing; the bound is only there so that a broken test ends.
func waitForFile(_ path: String) -> String {
    "n=0; while [ ! -e '\(path)' ]; do n=$((n+1)); [ $n -gt 3000 ] && exit 9; sleep 0.05; done"
}

/// Creates `path`, the go-ahead a job made with `waitForFile` waits for.
func touch(_ path: String) {
    _ = FileManager.default.createFile(atPath: path, contents: nil)
}
