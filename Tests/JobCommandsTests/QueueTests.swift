import Foundation
import JobTesting
@testable import JobCommands
import Testing

/// A shared log the jobs themselves write: `b<name>` as each begins, `e<name>` as it ends,
/// each job waiting for its own go-file in between. What ran at once is read from it, not
/// guessed from timing.
struct Marks {
    let directory: String
    var log: String { directory + "/marks" }

    /// A job's command: mark, wait for `go-<name>`, mark.
    func command(_ name: String) -> String {
        "echo b\(name) >> '\(log)'; \(waitFor(name)); echo e\(name) >> '\(log)'"
    }

    /// Looks ten times a second: every look starts a `sleep`, and a test has many jobs waiting
    /// at once on a machine that runs many tests at once.
    func waitFor(_ name: String) -> String {
        "n=0; while [ ! -e '\(directory)/go-\(name)' ]; do n=$((n+1)); [ $n -gt 3000 ] && exit 9; sleep 0.1; done"
    }

    func go(_ name: String) { #expect(FileManager.default.createFile(atPath: directory + "/go-\(name)", contents: nil), "go-\(name)") }

    var lines: [String] { ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init) }

    /// The names begun, in order.
    var begun: [String] { lines.filter { $0.hasPrefix("b") }.map { String($0.dropFirst()) } }

    /// The most that were between their begin and their end at once.
    var mostAtOnce: Int {
        var running = 0
        var most = 0
        for line in lines {
            running += line.hasPrefix("b") ? 1 : -1
            most = max(most, running)
        }
        return most
    }

    /// Waits until `names` have begun (and no more than them).
    func waitUntilBegun(_ count: Int) async throws -> Bool {
        try await eventually { begun.count >= count }
    }
}

@Suite("Queues", .tags(.cli)) struct QueueTests {
    @Test func aQueueRunsAtMostItsLimitInIdOrder() async throws {
        try await withCLI { cli in
            let marks = Marks(directory: cli.home.path)
            #expect(try await cli.run("queue", "set", "build", "--limit", "2").status == 0)
            for n in 1...5 { try await cli.run("start", "--queue", "build", "--name", "j\(n)", "-c", marks.command("\(n)")) }
            #expect(try await marks.waitUntilBegun(2))
            #expect(try await cli.state("j3") == "NotStarted")
            let queue = try await cli.json("queue", "get", "build")
            #expect(queue.first?["limit"] as? Int == 2 && queue.first?["running"] as? Int == 2 && queue.first?["waiting"] as? Int == 3)
            for n in 1...5 {
                marks.go("\(n)")
                #expect(try await marks.waitUntilBegun(min(5, n + 2)))
            }
            let done = try await cli.run("wait", "--timeout", "60")
            #expect(done.status == 0, "\(done.stderr)")
            // The first two start together; each later one as a slot frees, in id order.
            #expect(Set(marks.begun.prefix(2)) == ["1", "2"] && Array(marks.begun.dropFirst(2)) == ["3", "4", "5"], "\(marks.lines)")
            #expect(marks.mostAtOnce == 2, "never more than the limit: \(marks.lines)")
        }
    }

    @Test func jobsOutsideALimitedQueueAreNotHeldBack() async throws {
        try await withCLI { cli in
            let marks = Marks(directory: cli.home.path)
            try await cli.run("queue", "set", "one", "--limit", "1")
            try await cli.run("start", "--queue", "one", "-c", marks.command("a"))
            try await cli.run("start", "--queue", "one", "-c", marks.command("b"))
            try await cli.run("start", "-c", marks.command("c"))
            #expect(try await eventually { Set(marks.begun) == ["a", "c"] })
            #expect(try await cli.state("3") == "NotStarted")
            for name in ["a", "b", "c"] { marks.go(name) }
            #expect(try await cli.run("wait", "--timeout", "60").status == 0)
        }
    }

    @Test func raisingAndLiftingALimitStartsWhatWaits() async throws {
        try await withCLI { cli in
            let marks = Marks(directory: cli.home.path)
            try await cli.run("queue", "set", "q", "--limit", "1")
            for n in 1...4 { try await cli.run("start", "--queue", "q", "-c", marks.command("\(n)")) }
            #expect(try await marks.waitUntilBegun(1))
            try await cli.run("queue", "set", "q", "--limit", "2")
            #expect(try await marks.waitUntilBegun(2))
            try await cli.run("queue", "set", "q", "--limit", "none")
            #expect(try await marks.waitUntilBegun(4))
            let queue = try await cli.json("queue", "get", "q")
            #expect(queue.first?["limit"] is NSNull && queue.first?["running"] as? Int == 4)
            for n in 1...4 { marks.go("\(n)") }
            #expect(try await cli.run("wait", "--timeout", "60").status == 0)
        }
    }

    @Test func queuesAndWhatTheyHoldOutliveASIGKILLedDaemon() async throws {
        try await withCLI { cli in
            let marks = Marks(directory: cli.home.path)
            try await cli.run("queue", "set", "q", "--limit", "1")
            for n in 1...3 { try await cli.run("start", "--queue", "q", "-c", marks.command("\(n)")) }
            #expect(try await marks.waitUntilBegun(1))
            try await cli.killDaemon()
            // The running one ends while no daemon is there.
            marks.go("1")
            #expect(try await eventually { marks.lines.contains("e1") })
            // The next daemon (started by the next command) reads its end and starts the
            // next, and only the next.
            #expect(try await cli.run("get").status == 0)
            #expect(try await marks.waitUntilBegun(2))
            #expect(try await cli.state("5") == "NotStarted")
            let queue = try await cli.json("queue", "get", "q")
            #expect(queue.first?["limit"] as? Int == 1, "the limit was kept")
            try await cli.killDaemon()
            marks.go("2")
            marks.go("3")
            let done = try await cli.run("wait", "--timeout", "60", "-o", "json")
            #expect(done.status == 0, "\(done.stderr)")
            #expect(marks.begun == ["1", "2", "3"], "each once, in order: \(marks.lines)")
            #expect(marks.mostAtOnce == 1)
        }
    }

    @Test func aQueueWithUnfinishedJobsIsNotRemovedAndUnknownOnesAreNamed() async throws {
        try await withCLI { cli in
            let marks = Marks(directory: cli.home.path)
            try await cli.run("start", "--queue", "busy", "-c", marks.command("a"))
            let refused = try await cli.run("queue", "remove", "busy")
            #expect(refused.status == 1 && refused.stderr == "job: queue 'busy' holds 1 unfinished job; stop or remove them first\n", "\(refused.stderr)")
            let unknown = try await cli.run("queue", "get", "nosuch")
            #expect(unknown.status == 1 && unknown.stderr.hasPrefix("job: no queue named 'nosuch'"), "\(unknown.stderr)")
            let defaultQueue = try await cli.run("queue", "remove", "default")
            #expect(defaultQueue.status == 1 && defaultQueue.stderr.contains("cannot be removed"))
            let badLimit = try await cli.run("queue", "set", "busy", "--limit", "0")
            #expect(badLimit.status == 64)
            marks.go("a")
            _ = try await cli.run("wait", "--timeout", "60")
            #expect(try await cli.run("queue", "remove", "busy").status == 0)
            let names = try await cli.json("queue", "get").map { $0["name"] as? String }
            #expect(names == ["default"])
        }
    }
}

@Suite("Dependencies", .tags(.cli)) struct DependencyTests {
    @Test func aJobWaitsForTheOnesItDependsOnAndRunsIfTheyCompleted() async throws {
        try await withCLI { cli in
            let marks = Marks(directory: cli.home.path)
            try await cli.run("start", "--name", "fetch", "-c", marks.command("fetch"))
            try await cli.run("start", "--name", "unpack", "-c", "true")
            try await cli.run("start", "--name", "build", "--depends-on", "fetch,unpack", "-c", "echo built")
            #expect(try await marks.waitUntilBegun(1))
            #expect(try await cli.state("build") == "NotStarted")
            #expect(try await cli.job("build")["dependsOn"] as? [Int] == [1, 3])
            marks.go("fetch")
            let done = try await cli.run("wait", "build", "--timeout", "60", "-o", "json")
            #expect(done.status == 0)
            #expect(try await cli.run("receive", "build").stdout == "built\n")
        }
    }

    @Test(arguments: ["fails", "is stopped", "is removed"])
    func aJobWhoseDependencyDidNotCompleteFailsWithoutRunning(_ what: String) async throws {
        try await withCLI { cli in
            let marks = Marks(directory: cli.home.path)
            let ran = cli.home.path + "/ran"
            try await cli.run("start", "--name", "first", "-c", marks.command("first") + "; exit 3")
            try await cli.run("start", "--name", "second", "--depends-on", "first", "-c", "touch '\(ran)'")
            #expect(try await marks.waitUntilBegun(1))
            switch what {
            case "fails": marks.go("first")
            case "is stopped": try await cli.run("stop", "first")
            default: try await cli.run("remove", "--force", "first")
            }
            let waited = try await cli.run("wait", "second", "--timeout", "60", "-o", "json")
            let job = try #require((try JSONSerialization.jsonObject(with: Data(waited.stdout.utf8)) as? [[String: Any]])?.first)
            let reason = ["fails": "job 1 Failed", "is stopped": "job 1 Stopped"][what] ?? "job 1 was removed"
            #expect(job["state"] as? String == "Failed" && job["reason"] as? String == reason, "\(job)")
            #expect(job["beginTime"] is NSNull, "it never began")
            #expect(!FileManager.default.fileExists(atPath: ran), "it never ran")
        }
    }

    @Test func aDependencyThatEndsWhileTheDaemonIsDownIsSeenByTheNext() async throws {
        try await withCLI { cli in
            let marks = Marks(directory: cli.home.path)
            try await cli.run("start", "--name", "first", "-c", marks.command("first"))
            try await cli.run("start", "--name", "second", "--depends-on", "first", "-c", "echo second ran")
            #expect(try await marks.waitUntilBegun(1))
            try await cli.killDaemon()
            marks.go("first")
            #expect(try await eventually { marks.lines.contains("efirst") })
            let waited = try await cli.run("wait", "second", "--timeout", "60")
            #expect(waited.status == 0, "\(waited.stderr)")
            #expect(try await cli.run("receive", "second").stdout == "second ran\n")
        }
    }

    @Test func namingAJobThatDoesNotExistStartsNothing() async throws {
        try await withCLI { cli in
            let refused = try await cli.run("start", "--depends-on", "nosuch", "-c", "true")
            #expect(refused.status == 1 && refused.stderr == "job: no job named 'nosuch'\n", "\(refused.stderr)")
            let byId = try await cli.run("start", "--depends-on", "42", "-c", "true")
            #expect(byId.status == 1 && byId.stderr == "job: no job with id 42\n")
            #expect(try await cli.json("get").isEmpty)
        }
    }
}

@Suite("Retries and restart", .tags(.cli)) struct RetryTests {
    @Test func aFailedJobIsRunAgainInPlaceWithEveryAttemptsOutputKept() async throws {
        try await withCLI { cli in
            let counter = cli.home.path + "/count"
            let line = "n=$(cat '\(counter)' 2>/dev/null || echo 0); n=$((n+1)); echo $n > '\(counter)'; echo run $n; echo err $n >&2; [ $n -ge 3 ]"
            try await cli.run("start", "--retry", "5", "-c", line)
            let done = try await cli.run("wait", "1", "--timeout", "60", "-o", "json")
            let job = try #require((try JSONSerialization.jsonObject(with: Data(done.stdout.utf8)) as? [[String: Any]])?.first)
            #expect(job["state"] as? String == "Completed" && job["attempt"] as? Int == 3, "\(job)")
            #expect(try await cli.job("2")["attempt"] as? Int == 3)
            let output = try await cli.run("receive", "1")
            #expect(output.stdout == "run 1\nrun 2\nrun 3\n")
            #expect(output.stderr == "err 1\nerr 2\nerr 3\n")
        }
    }

    @Test func theLastAttemptSaysHowItEnded() async throws {
        try await withCLI { cli in
            try await cli.run("start", "--retry", "1", "-c", "echo once more; exit 4")
            let done = try await cli.run("wait", "1", "--timeout", "60", "-o", "json")
            let job = try #require((try JSONSerialization.jsonObject(with: Data(done.stdout.utf8)) as? [[String: Any]])?.first)
            #expect(job["state"] as? String == "Failed" && job["exitCode"] as? Int == 4 && job["attempt"] as? Int == 2)
            #expect(job["reason"] as? String == "exited with status 4")
            #expect(try await cli.run("receive", "1").stdout == "once more\nonce more\n")
        }
    }

    @Test func aStoppedJobIsNotRetried() async throws {
        try await withCLI { cli in
            let marks = Marks(directory: cli.home.path)
            try await cli.run("start", "--retry", "3", "-c", marks.command("x"))
            #expect(try await marks.waitUntilBegun(1))
            #expect(try await cli.run("stop", "1", "--grace", "1").status == 0)
            let job = try await cli.job("1")
            #expect(job["state"] as? String == "Stopped" && job["attempt"] as? Int == 1)
            #expect(marks.begun == ["x"], "it ran once")
        }
    }

    @Test func aRetryPendingWhenTheDaemonIsKilledStillComes() async throws {
        try await withCLI { cli in
            let marks = Marks(directory: cli.home.path)
            let line = "[ -e '\(cli.home.path)/go-again' ] && { echo second; exit 0; }; \(marks.command("1")); echo first; exit 1"
            try await cli.run("start", "--retry", "1", "-c", line)
            #expect(try await marks.waitUntilBegun(1))
            try await cli.killDaemon()
            marks.go("again")
            marks.go("1")
            #expect(try await eventually { marks.lines.contains("e1") })
            let done = try await cli.run("wait", "1", "--timeout", "60", "-o", "json")
            #expect(done.status == 0, "\(done.stderr)")
            #expect(try await cli.job("1")["attempt"] as? Int == 2)
            #expect(try await cli.run("receive", "1").stdout == "first\nsecond\n")
        }
    }

    @Test func restartStartsAFinishedJobAgainAsANewJob() async throws {
        try await withCLI { cli in
            let directory = cli.home.path + "/work"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try await cli.run("queue", "set", "q", "--limit", "3")
            try await cli.run(
                "start", "--name", "build", "--queue", "q", "--retry", "1", "--cwd", directory, "--env", "GREETING=hi there", "-c",
                "echo \"$GREETING from $(pwd)\"")
            _ = try await cli.run("wait", "build", "--timeout", "60")
            let running = try await cli.run("start", "-c", "sleep 1000")
            #expect(running.status == 0)
            let refused = try await cli.run("restart", "3")
            #expect(refused.status == 1 && refused.stderr == "job: job 3 is Running; only a finished job can be restarted\n", "\(refused.stderr)")
            let restarted = try await cli.run("restart", "build", "-o", "json")
            #expect(restarted.status == 0, "\(restarted.stderr)")
            let new = try #require((try JSONSerialization.jsonObject(with: Data(restarted.stdout.utf8)) as? [[String: Any]])?.first)
            #expect(new["id"] as? Int == 5 && new["name"] as? String == "build" && new["queue"] as? String == "q")
            _ = try await cli.run("wait", "5", "--timeout", "60")
            #expect(try await cli.run("receive", "5").stdout == "hi there from \(directory)\n")
            #expect(try await cli.run("receive", "1").stdout == "hi there from \(directory)\n", "the old one stays as it was")
            try await cli.run("stop", "3")
        }
    }

    @Test func restartOfAnInvokeNamesTheSameComputers() async throws {
        try await withCLI { cli in
            try await cli.run("invoke", "--computer", "localhost,localhost", "--as-job", "-c", "echo hi")
            _ = try await cli.run("wait", "1", "--timeout", "60")
            let restarted = try await cli.json("restart", "1")
            #expect(restarted.first?["location"] as? String == "localhost,localhost")
            #expect(restarted.first?["type"] as? String == "RemoteJob")
            _ = try await cli.run("wait", "4", "--timeout", "60")
            #expect(try await cli.run("receive", "4").stdout == "hi\nhi\n")
        }
    }
}

@Suite("Suspend and resume", .tags(.cli)) struct SuspendTests {
    @Test func suspendStopsTheWholeTreeAndResumeContinuesIt() async throws {
        try await withCLI { cli in
            // A tree: the shell, two children, and one that left the group for a session of its own.
            let tag = "1000.\(getpid() % 1000)1"
            try await cli.run("start", "-c", "sleep \(tag) & sleep \(tag) & setsid sleep \(tag) & wait")
            #expect(try await eventually { processStates(["sleep", tag]).count == 3 })
            let suspended = try await cli.run("suspend", "1", "--passthru", "-o", "json")
            #expect(suspended.status == 0, "\(suspended.stderr)")
            #expect(try await eventually { processStates(["sleep", tag]) == ["T", "T", "T"] }, "\(processStates(["sleep", tag]))")
            #expect(try await cli.state("1") == "Suspended")
            #expect(try await cli.state("2") == "Suspended")
            #expect(try await cli.run("resume", "1").status == 0)
            #expect(try await eventually { !processStates(["sleep", tag]).contains("T") }, "\(processStates(["sleep", tag]))")
            #expect(try await cli.state("1") == "Running")
            // A suspended job can be stopped: nothing of it is left.
            try await cli.run("suspend", "1")
            #expect(try await cli.run("stop", "1", "--grace", "2").status == 0)
            #expect(try await cli.state("1") == "Stopped")
            #expect(try await eventually { processStates(["sleep", tag]).isEmpty })
        }
    }

    @Test func aParentIsSuspendedWithAllItsChildren() async throws {
        try await withCLI { cli in
            let tag = "1000.\(getpid() % 1000)2"
            try await cli.run("invoke", "--computer", "localhost,localhost", "--as-job", "-c", "exec sleep \(tag)")
            #expect(try await eventually { processStates(["sleep", tag]).count == 2 })
            try await cli.run("suspend", "1")
            #expect(try await eventually { processStates(["sleep", tag]) == ["T", "T"] })
            #expect(try await cli.state("1") == "Suspended")
            try await cli.run("resume", "2")
            #expect(try await cli.state("2") == "Running")
            #expect(try await cli.state("3") == "Suspended")
            #expect(try await cli.state("1") == "Running", "not all its unfinished children are suspended")
            let waited = try await cli.run("wait", "1", "--timeout", "0")
            #expect(waited.status == 124, "a suspended job is not finished")
            try await cli.run("stop", "1")
        }
    }

    @Test func aSuspendedQueuedJobDoesNotStartUntilResumed() async throws {
        try await withCLI { cli in
            let marks = Marks(directory: cli.home.path)
            try await cli.run("queue", "set", "q", "--limit", "1")
            try await cli.run("start", "--queue", "q", "-c", marks.command("a"))
            try await cli.run("start", "--queue", "q", "-c", marks.command("b"))
            #expect(try await marks.waitUntilBegun(1))
            try await cli.run("suspend", "3")
            #expect(try await cli.state("3") == "Suspended")
            marks.go("a")
            _ = try await cli.run("wait", "1", "--timeout", "60")
            // The slot is free; only the resume lets it start.
            #expect(try await cli.job("3")["beginTime"] is NSNull)
            #expect(marks.begun == ["a"])
            try await cli.run("resume", "3")
            #expect(try await marks.waitUntilBegun(2))
            marks.go("b")
            #expect(try await cli.run("wait", "3", "--timeout", "60").status == 0)
        }
    }
}

@Suite("Resource usage", .tags(.cli)) struct ResourceUsageTests {
    @Test func cpuTimeAndLargestResidentSetAreRecorded() async throws {
        try await withCLI { cli in
            // About a second of CPU, however loaded the machine (process time, not wall time).
            let burn = "import time\ne = time.process_time() + 1\nwhile time.process_time() < e: pass"
            // About 100 MB resident: every page written.
            let allocate = "b = bytearray(100 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1"
            try await cli.run("start", "--", "python3", "-c", burn)
            try await cli.run("start", "--", "python3", "-c", allocate)
            try await cli.run("invoke", "--computer", "localhost,localhost", "--as-job", "--", "python3", "-c", burn)
            let done = try await cli.run("wait", "--timeout", "120", "-o", "json")
            let jobs = try #require(try JSONSerialization.jsonObject(with: Data(done.stdout.utf8)) as? [[String: Any]])
            #expect(jobs.count == 3)
            let cpu = jobs.map { $0["cpuSeconds"] as? Double ?? -1 }
            #expect(cpu[0] >= 0.9 && cpu[0] < 5, "\(cpu)")
            #expect(cpu[2] >= 1.8 && cpu[2] < 10, "a parent's sums its children's: \(cpu)")
            let rss = jobs.map { $0["maxRssBytes"] as? Int ?? -1 }
            #expect(rss[1] >= 100 << 20 && rss[1] < 400 << 20, "\(rss)")
            #expect(rss[0] > 0 && rss[0] < 100 << 20)
            let duration = jobs[0]["durationSeconds"] as? Double ?? -1
            #expect(duration >= 0.9, "it ran for at least its CPU time: \(duration)")
            let list = try await cli.run("get", "1", "-o", "list", "--property", "CpuTime,MaxRss,Duration")
            #expect(list.stdout.contains("CpuTime  : ") && list.stdout.contains(" MiB") && list.stdout.contains(" s\n"), "\(list.stdout)")
        }
    }

    @Test func aRunningJobHasADurationButNoUsageYet() async throws {
        try await withCLI { cli in
            try await cli.run("start", "-c", "sleep 1000")
            let job = try await cli.job("1")
            #expect(job["cpuSeconds"] is NSNull && job["maxRssBytes"] is NSNull)
            #expect(job["durationSeconds"] as? Double != nil)
            try await cli.run("stop", "1")
        }
    }
}

@Suite("wait's progress line") struct ProgressLineTests {
    @Test func itNamesTheJobsThatFailed() {
        #expect(ProgressLine.text(finished: 3, total: 5, failed: []) == "3/5 finished")
        #expect(ProgressLine.text(finished: 3, total: 5, failed: ["Job4"]) == "3/5 finished, 1 failed (Job4)")
        #expect(ProgressLine.text(finished: 9, total: 9, failed: ["a", "b", "c", "d"]) == "9/9 finished, 4 failed (a, b, c, …)")
    }
}
