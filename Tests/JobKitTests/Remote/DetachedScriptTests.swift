import Foundation
import JobTesting
import Testing

@testable import JobKit

/// What the engine sends to hosts for detached jobs, and how it reads their answers.
@Suite struct DetachedScriptTests {
    @Test func theScriptNeedsNoQuotingInAnyLoginShell() {
        // It goes in single quotes to any login shell: fish reads a backslash in them.
        #expect(!DetachedCommand.script.contains("'"))
        #expect(!DetachedCommand.script.contains("\\"))
        #expect(!DetachedCommand.script.split(separator: "\n").contains { $0.drop { $0 == " " }.hasPrefix("#") }, "comments stay here")
    }

    @Test func eachRequestCarriesWhatItsVerbNeeds() {
        let run = DetachedCommand.script(for: "run")
        #expect(run.contains("begin() {") && run.contains("supervise() {") && run.contains("follow() {"))
        #expect(DetachedCommand.script(for: "start").contains("supervise() {"))
        #expect(!DetachedCommand.script(for: "start").contains("follow() {"))
        #expect(DetachedCommand.script(for: "follow").contains("follow() {"))
        #expect(!DetachedCommand.script(for: "follow").contains("begin() {"))
        for verb in ["check", "clean"] {
            let script = DetachedCommand.script(for: verb)
            #expect(script.contains("ids() {") && script.contains("case $v in") && !script.contains("begin() {"), "\(verb)")
            #expect(script.count < run.count / 2, "\(verb): \(script.count) bytes")
        }
    }

    /// The script run here by /bin/sh as a host would, its state in `state`.
    /// On a thread of its own: a test that blocks one of the cooperative pool's few threads
    /// holds up every other test's engine meanwhile.
    func host(_ state: String, _ verb: String, key: String, _ arguments: [String] = []) async throws -> String {
        let result = try await runProcessDetached(
            "/bin/sh", ["-c", "eval \"$1\"", "sh", DetachedCommand.script(for: verb), verb, key] + arguments,
            environment: ["XDG_STATE_HOME": state, "HOME": state, "PATH": "/usr/bin:/bin"])
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func aHostAnswersCheckAndCleansSeveralJobsInOneRequest() async throws {
        let state = try TemporaryHome("detached-script")
        let directory = state.path + "/job/detached"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        #expect(try await host(state.path, "check", key: "k1") == "gone")
        // Two jobs as a supervisor leaves them once ended (no process of theirs alive).
        for key in ["k1", "k2"] {
            try "2147483646 2147483646\n".write(toFile: "\(directory)/\(key).pid", atomically: true, encoding: .utf8)
            try "hello\n".write(toFile: "\(directory)/\(key).out", atomically: true, encoding: .utf8)
            try "".write(toFile: "\(directory)/\(key).err", atomically: true, encoding: .utf8)
        }
        #expect(try await host(state.path, "check", key: "k1") == "lost 6 0", "no status, no supervisor")
        // The status is the pid file's other line, taken once written whole, in either order.
        try "2147483646 2147483646\n3".write(toFile: "\(directory)/k1.pid", atomically: true, encoding: .utf8)
        #expect(try await host(state.path, "check", key: "k1") == "lost 6 0", "a line still being written")
        try "2147483646 2147483646\n3\n".write(toFile: "\(directory)/k1.pid", atomically: true, encoding: .utf8)
        #expect(try await host(state.path, "check", key: "k1") == "ended 3 6 0")
        try "3\n2147483646 2147483646\n".write(toFile: "\(directory)/k1.pid", atomically: true, encoding: .utf8)
        #expect(try await host(state.path, "check", key: "k1") == "ended 3 6 0", "the status first")
        #expect(try await host(state.path, "clean", key: "k1", ["k2"]) == "cleaned")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).isEmpty, "both jobs' files are gone")
    }

    /// With no tick on its stdin (a clock that never comes), the follower that started a
    /// command still hears of its end, in dash and in bash, whose `read` a trapped signal
    /// does not interrupt: the supervisor's line in the stdin they share.
    @Test(arguments: ["/bin/sh", "/bin/bash"]) func aFollowerHearsTheEndWithoutItsClock(shell: String) async throws {
        let state = try TemporaryHome("detached-wake")
        let stdin = state.path + "/stdin"
        #expect(mkfifo(stdin, 0o600) == 0)
        // A writer that never writes: no hello, no tick, and no end of file.
        let held = open(stdin, O_RDWR)
        defer { close(held) }
        let result = try await runProcessDetached(
            "/usr/bin/timeout",
            ["60", shell, "-c", "eval \"$1\"", "sh", DetachedCommand.script(for: "run"), "run", "k1", "0", "0", "line",
             "echo out; echo err >&2; exit 3"],
            environment: ["XDG_STATE_HOME": state.path, "HOME": state.path, "PATH": "/usr/bin:/bin", "SHELL": "/bin/sh"],
            stdin: stdin)
        #expect(result.status == 3, "\(shell): \(result.stderr)")
        #expect(result.stdout == "out\n" && result.stderr == "err\n")
    }

    @Test func checkAnswersAreReadExactly() {
        #expect(DetachedCommand.parse(check: "running 12 0") == .running(StreamOffsets(output: 12, error: 0)))
        #expect(DetachedCommand.parse(check: "ended 255 3 4") == .ended(status: 255, StreamOffsets(output: 3, error: 4)))
        #expect(DetachedCommand.parse(check: "lost 0 9") == .lost(StreamOffsets(output: 0, error: 9)))
        #expect(DetachedCommand.parse(check: "gone") == .gone)
        for wrong in ["", "running", "running 1", "ended x 1 2", "gone 1", "sh: not found", "ended 3 1 2 extra"] {
            #expect(DetachedCommand.parse(check: wrong) == nil, "\(wrong)")
        }
    }

    @Test func aChildKeepsItsProgressInTheDatabase() {
        let progress = DetachedProgress(started: true, base: StreamOffsets(output: 10, error: 20))
        #expect(DetachedProgress(stored: progress.stored) == progress)
        #expect(DetachedProgress(stored: nil) == nil)
        #expect(DetachedProgress(stored: "garbage") == nil)
    }
}
