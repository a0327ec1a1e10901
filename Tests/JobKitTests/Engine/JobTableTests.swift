import Foundation
import Testing
@testable import JobKit
import JobModel
import JobTesting

@Suite("State machine", .tags(.small)) struct JobTableTests {
    let t0 = Date(timeIntervalSince1970: 1000)

    func record(_ id: Int, parent: Int? = nil, state: JobState = .running) -> JobRecord {
        JobRecord(
            id: id, instanceId: UUID(), name: "Job\(id)", type: .remoteJob, state: state, location: "h\(id)",
            command: "x", parentId: parent, beginTime: t0, program: "x", workingDirectory: "/")
    }

    func table(children: Int) -> JobTable {
        var table = JobTable()
        table.add([record(1)] + (0..<children).map { record(2 + $0, parent: 1) })
        return table
    }

    @Test(arguments: [
        ([JobState.completed, .completed], JobState.completed),
        ([.completed, .failed, .stopped], .failed),
        ([.completed, .stopped], .stopped),
        ([.completed, .running], .running),
        ([.disconnected, .completed], .disconnected),
        ([.disconnected, .running], .disconnected),
        ([.notStarted, .completed], .running),
    ])
    func parentRule(children: [JobState], parent: JobState) {
        #expect(JobTable.parentState(children) == parent)
    }

    @Test func outcomesMapToStateExitCodeAndReason() {
        let job = record(2, parent: 1)
        #expect(JobTable.result(of: .exited(0), stopRequested: false, command: job) == (.completed, 0, nil))
        #expect(JobTable.result(of: .exited(3), stopRequested: false, command: job) == (.failed, 3, "exited with status 3"))
        #expect(JobTable.result(of: .signaled(SIGSEGV), stopRequested: false, command: job) == (.failed, 139, "killed by signal SIGSEGV"))
        #expect(JobTable.result(of: .signaled(SIGTERM), stopRequested: true, command: job) == (.stopped, 143, nil))
        #expect(JobTable.result(of: .couldNotStart(stage: "exec", errno: ENOENT), stopRequested: false, command: job) == (.failed, nil, "no such program: x"))
        #expect(JobTable.result(of: .couldNotStart(stage: "chdir", errno: ENOENT), stopRequested: false, command: job) == (.failed, nil, "no such directory: /"))
    }

    @Test func theParentFinishesWithItsLastChild() {
        var table = table(children: 3)
        _ = table.leafEnded(2, outcome: .exited(0), at: t0, recorded: 1)
        _ = table.leafEnded(3, outcome: .exited(4), at: t0.addingTimeInterval(2), recorded: 0)
        #expect(table[1]?.state == .running)
        let changed = table.leafEnded(4, outcome: .exited(0), at: t0.addingTimeInterval(1), recorded: 0)
        #expect(changed.map(\.id) == [4, 1])
        #expect(table[1]?.state == .failed)
        #expect(table[1]?.reason == "Job3: exited with status 4")
        #expect(table[1]?.endTime == t0.addingTimeInterval(2))
        #expect(table[1]?.exitCode == nil)
    }

    @Test func aLoneChildLendsItsParentItsExitCodeAndReason() {
        var table = table(children: 1)
        _ = table.leafEnded(2, outcome: .exited(7), at: t0, recorded: 0)
        #expect(table[1]?.state == .failed)
        #expect(table[1]?.exitCode == 7)
        #expect(table[1]?.reason == "exited with status 7")
    }

    @Test func finishedStatesAreTerminal() {
        var table = table(children: 1)
        _ = table.leafEnded(2, outcome: .exited(0), at: t0, recorded: 0)
        #expect(table.leafEnded(2, outcome: .exited(9), at: t0, recorded: 0).isEmpty)
        #expect(table.requestStop([1], at: t0).toSignal.isEmpty)
        #expect(table[2]?.state == .completed)
    }

    @Test func stoppingMarksRunningChildrenAndStopsUnstartedOnes() {
        var table = JobTable()
        table.add([record(1), record(2, parent: 1), record(3, parent: 1, state: .notStarted)])
        let (changed, toSignal) = table.requestStop([1], at: t0)
        #expect(toSignal == [2])
        #expect(Set(changed.map(\.id)) == [1, 2, 3])
        #expect(table[2]?.state == .stopping)
        #expect(table[3]?.state == .stopped)
        #expect(table[1]?.state == .stopping)
        _ = table.leafEnded(2, outcome: .signaled(SIGTERM), at: t0, recorded: 0)
        #expect(table[2]?.state == .stopped)
        #expect(table[1]?.state == .stopped)
    }

    @Test func hasMoreDataFollowsRunningThenUnreceivedOutput() {
        var table = table(children: 2)
        #expect(table.info(1)?.hasMoreData == true)
        _ = table.leafEnded(2, outcome: .exited(0), at: t0, recorded: 2)
        _ = table.leafEnded(3, outcome: .exited(0), at: t0, recorded: 0)
        #expect(table.info(1)?.hasMoreData == true)
        #expect(table.info(3)?.hasMoreData == false)
        _ = table.markReceived(2, upTo: 2)
        #expect(table.info(2)?.hasMoreData == false)
        #expect(table.info(1)?.hasMoreData == false)
    }

    @Test func removingAParentDropsItsChildren() {
        var table = table(children: 2)
        #expect(Set(table.remove([1])) == [1, 2, 3])
        #expect(table.records.isEmpty)
    }
}

@Suite("Shell quoting", .tags(.small)) struct ShellQuotingTests {
    @Test(arguments: [
        (["echo", "hello"], "echo hello"),
        (["printf", "%s\\n", "a b"], "printf %s\\\\n a\\ b"),
        (["sh", "-c", "it's $HOME"], "sh -c it\\'s\\ \\$HOME"),
        (["x", ""], "x ''"),
        (["x", "a\nb"], "x $'a\\nb'"),
        (["/usr/bin/env", "K=v", "café"], "/usr/bin/env K=v café"),
    ])
    func quotesLikePrintfQ(argv: [String], expected: String) {
        #expect(ShellQuoting.join(argv) == expected)
    }

    @Test func aShellReadsTheWordsBack() async throws {
        let words = ["a b", "it's", "$HOME", "x\ty", "\"q\"", "*", "~user", "back\\slash", "ünï", "a\nb", ""]
        let result = try await runProcessDetached(
            "/bin/bash", ["-c", "for w in \(ShellQuoting.join(words)); do printf '%s\\0' \"$w\"; done"])
        let back = Array(result.stdout.utf8).split(separator: 0, omittingEmptySubsequences: false).dropLast()
            .map { String(decoding: $0, as: UTF8.self) }
        #expect(back == words)
    }

    @Test func singleQuotedWordsReadBackInEveryPOSIXShell() async throws {
        let words = ["plain", "a b", "it's", "''", "$HOME", "back\\slash", "ünï", "a\nb", "", "-n", "x=1"]
        #expect(ShellQuoting.singleQuoted("plain") == "plain" && ShellQuoting.singleQuoted("x=1") == "x=1")
        #expect(ShellQuoting.singleQuoted("it's") == "'it'\\''s'")
        for shell in ["/bin/sh", "/bin/bash"] {
            let line = words.map(ShellQuoting.singleQuoted).joined(separator: " ")
            let result = try await runProcessDetached(shell, ["-c", "for w in \(line); do printf '%s\\0' \"$w\"; done"])
            let back = Array(result.stdout.utf8).split(separator: 0, omittingEmptySubsequences: false).dropLast()
                .map { String(decoding: $0, as: UTF8.self) }
            #expect(back == words, "\(shell)")
        }
    }
}
