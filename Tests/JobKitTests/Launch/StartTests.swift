import Foundation
import Testing
@testable import JobKit
import JobModel
import JobTesting

@Suite("Starting jobs", .tags(.medium)) struct StartTests {
    @Test func twoStartsGiveParentsOneAndThreeWithChildrenJob2AndJob4() async throws {
        try await withTemporaryEngine { jobs, _ in
            let first = try await jobs.sh("true")
            let second = try await jobs.sh("true")
            #expect(first.id == 1)
            #expect(first.name == "Job1")
            #expect(first.childJobs == [2])
            #expect(second.id == 3)
            #expect(second.childJobs == [4])
            #expect(try await jobs.child(of: second).name == "Job4")
        }
    }

    @Test func aStartedJobIsARunningParentWithOneLocalChild() async throws {
        try await withTemporaryEngine { jobs, _ in
            let job = try await jobs.start(.argv(["sleep", "5"]), name: "nap")
            #expect(job.state == .running)
            #expect(job.hasMoreData)
            #expect(job.name == "nap")
            #expect(job.type == .backgroundJob)
            #expect(job.location == "localhost")
            #expect(job.command == "sleep 5")
            #expect(job.parentId == nil)
            #expect(job.beginTime != nil && job.endTime == nil && job.exitCode == nil)
            let child = try await jobs.child(of: job)
            #expect(child.name == "Job2")
            #expect(child.parentId == job.id)
            #expect(child.command == "sleep 5")
            #expect(child.type == .backgroundJob)
            _ = try await jobs.stop([.id(job.id)])
        }
    }

    @Test func jobsStillStartWhenTheForkServerIsKilled() async throws {
        try await withTemporaryEngine { jobs, home in
            let first = try await jobs.sh("echo first")
            #expect(try await jobs.finished(first.id).state == .completed)
            // The engine's fork server, killed as by hand between two starts.
            let found = try await runProcessDetached(
                "/usr/bin/pgrep", ["-f", "jobkit-supervisor --zygote \(home.path)/jobs$"])
            let pid = try #require(Int32(found.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
            kill(pid, SIGKILL)
            for i in 0..<5 {
                let job = try await jobs.sh("echo \(i)")
                #expect(try await jobs.finished(job.id).state == .completed)
                #expect(try await jobs.text(job.id) == "\(i)\n")
            }
        }
    }

    @Test func idsAreNeverReusedAcrossRemovalsAndRestarts() async throws {
        let home = try TemporaryHome()
        try await JobManager.withManager(home: home.path) { jobs in
            let job = try await jobs.sh("true")
            _ = try await jobs.finished(job.id)
            try await jobs.remove([.id(job.id)])
        }
        try await JobManager.withManager(home: home.path) { jobs in
            let job = try await jobs.sh("true")
            #expect(job.id == 3)
        }
    }

    @Test func threadJobsTakeOneIdEach() async throws {
        try await withTemporaryEngine { jobs, _ in
            let a = try await jobs.start { _ in }
            let b = try await jobs.sh("true")
            let c = try await jobs.start(name: "worker") { _ in }
            let ids: [Int] = [a.id, b.id, c.id]
            #expect(ids == [1, 2, 4])
            #expect(c.name == "worker")
            #expect(c.type == .threadJob)
            #expect(c.childJobs.isEmpty)
        }
    }

    @Test func theJobRunsInTheGivenDirectoryWithTheCapturedEnvironment() async throws {
        try await withTemporaryEngine { jobs, home in
            let spec = ProcessSpec.shell("pwd; echo $GREETING; test -t 0 || echo stdin-is-not-a-tty; cat", workingDirectory: home.path, overrides: ["GREETING": "hi there"])
            let job = try await jobs.start(spec)
            _ = try await jobs.finished(job.id)
            #expect(try await jobs.text(job.id) == "\(home.path)\nhi there\nstdin-is-not-a-tty\n")
        }
    }

    @Test func theJobHasItsOwnSessionAndProcessGroup() async throws {
        try await withTemporaryEngine { jobs, _ in
            let job = try await jobs.sh("ps -o pid=,pgid=,sid= -p $$")
            _ = try await jobs.finished(job.id)
            let words = try await jobs.text(job.id).split(separator: " ", omittingEmptySubsequences: true).map { String($0).trimmingCharacters(in: .whitespacesAndNewlines) }
            #expect(words.count == 3)
            #expect(Set(words).count == 1, "pid, process group and session should be the same: \(words)")
            #expect(words.first != String(getpid()))
        }
    }

    @Test func anEngineThatIsShutDownRefusesNewJobs() async throws {
        let home = try TemporaryHome()
        let jobs = try JobManager(home: home.path)
        await jobs.shutdown()
        let error = await #expect(throws: JobError.self) { try await jobs.sh("true") }
        #expect(error?.code == .unavailable)
    }

    /// The fork server's answers are awaited off the actor: one that hangs holds up no call
    /// meanwhile, and is replaced once its time is up.
    @Test func aHungForkServerHoldsUpNobodyAndIsReplaced() async throws {
        try await withTemporaryEngine { jobs, home in
            let first = try await jobs.start(.argv(["true"]))
            #expect(try await jobs.finished(first.id).state == .completed)
            let zygote = try await runProcessDetached("/usr/bin/pgrep", ["-f", "jobkit-supervisor --zygote \(home.path)/jobs"])
            let pid = try #require(pid_t(zygote.stdout.split(separator: "\n").first ?? ""), "the fork server runs")
            #expect(kill(pid, SIGSTOP) == 0)
            defer { kill(pid, SIGCONT) }
            let second = try await jobs.start(.argv(["true"]))
            let asked = ContinuousClock.now
            let meanwhile = await jobs.job(second.id)
            #expect(meanwhile?.state == .running)
            #expect(ContinuousClock.now - asked < .seconds(Int64(Zygote.answerTimeout / 1000) - 1), "the actor answered at once")
            #expect(try await jobs.finished(second.id).state == .completed, "started without the hung fork server")
            let third = try await jobs.start(.argv(["true"]))
            #expect(try await jobs.finished(third.id).state == .completed, "and a new one serves")
        }
    }

    @Test func aSecondEngineOnTheSameHomeIsRefused() async throws {
        try await withTemporaryEngine { _, home in
            #expect { _ = try JobManager(home: home.path) } throws: { error in
                (error as? JobError)?.code == .homeInUse
            }
        }
    }
    /// The harness's own promise: a test home dropped while its jobs run (a test that failed
    /// half-way) takes them with it, and the next test does not find them.
    @Test func aDroppedTestHomeLeavesNoJobRunning() async throws {
        let seconds = String(Int.random(in: 6_000_000...6_999_999))
        let marker = "sleep \(seconds)"
        do {
            let home = try TemporaryHome("dropped")
            try await JobManager.withManager(home: home.path) { jobs in
                _ = try await jobs.sh("\(marker) & \(marker) & setsid \(marker) & wait")
                #expect(try await eventually { processStates(["sleep", seconds]).count == 3 })
            }
        }
        #expect(try await eventually(within: .seconds(10)) { processStates(["sleep", seconds]).isEmpty })
    }
}

@Suite("How jobs end", .tags(.medium)) struct StateTests {
    @Test func exitZeroIsCompleted() async throws {
        try await withTemporaryEngine { jobs, _ in
            let job = try await jobs.sh("exit 0")
            let done = try await jobs.finished(job.id)
            #expect(done.state == .completed)
            #expect(done.exitCode == 0)
            #expect(done.reason == nil)
            #expect(done.endTime != nil)
            #expect(try await jobs.child(of: done).state == .completed)
        }
    }

    @Test func aNonZeroExitIsFailedWithTheStatus() async throws {
        try await withTemporaryEngine { jobs, _ in
            let job = try await jobs.sh("exit 3")
            let done = try await jobs.finished(job.id)
            #expect(done.state == .failed)
            #expect(done.exitCode == 3)
            #expect(done.reason == "exited with status 3")
            let child = try await jobs.child(of: done)
            #expect(child.state == .failed)
            #expect(child.reason == "exited with status 3")
        }
    }

    @Test func aSignalNotSentByStopIsFailed() async throws {
        try await withTemporaryEngine { jobs, _ in
            let job = try await jobs.sh("kill -SEGV $$")
            let done = try await jobs.finished(job.id)
            #expect(done.state == .failed)
            #expect(done.exitCode == 128 + Int(SIGSEGV))
            #expect(done.reason == "killed by signal SIGSEGV")
        }
    }

    @Test func aMissingProgramFailsTheChildWithAReason() async throws {
        try await withTemporaryEngine { jobs, _ in
            let job = try await jobs.start(.argv(["frobnicate", "--now"]))
            let done = try await jobs.finished(job.id)
            #expect(done.state == .failed)
            #expect(done.exitCode == nil)
            #expect(try await jobs.child(of: done).reason == "no such program: frobnicate")
            #expect(done.reason == "no such program: frobnicate")
        }
    }

    @Test func aMissingDirectoryFailsTheChildWithAReason() async throws {
        try await withTemporaryEngine { jobs, home in
            let job = try await jobs.start(.shell("true", workingDirectory: home.path + "/nowhere"))
            let done = try await jobs.finished(job.id)
            #expect(done.state == .failed)
            #expect(done.reason == "no such directory: \(home.path)/nowhere")
        }
    }

    @Test func stateChangesAreStoredBeforeTheyAreSeen() async throws {
        let home = try TemporaryHome()
        let id = try await JobManager.withManager(home: home.path) { jobs in
            let job = try await jobs.sh("exit 5")
            return try await jobs.finished(job.id).id
        }
        try await JobManager.withManager(home: home.path) { jobs in
            let job = try #require(await jobs.job(id))
            #expect(job.state == .failed)
            #expect(job.exitCode == 5)
        }
    }
}
