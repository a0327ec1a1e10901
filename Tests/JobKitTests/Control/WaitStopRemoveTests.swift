import Foundation
import Testing
@testable import JobKit
import JobModel
import JobOutput
import JobTesting

@Suite("Waiting", .tags(.medium)) struct WaitTests {
    @Test func waitsForAllAndReturnsThemInTheOrderNamed() async throws {
        try await withTemporaryEngine { jobs, _ in
            let slow = try await jobs.sh("sleep 0.4")
            let fast = try await jobs.sh("exit 1")
            let done = try #require(try await jobs.wait([.id(slow.id), .id(fast.id)], timeout: .seconds(60)))
            #expect(done.map(\.id) == [slow.id, fast.id])
            #expect(done.map(\.state) == [.completed, .failed])
        }
    }

    @Test func waitWithoutSelectorsWaitsForEveryTopLevelJob() async throws {
        try await withTemporaryEngine { jobs, _ in
            _ = try await jobs.sh("sleep 0.2")
            _ = try await jobs.sh("sleep 0.3")
            let done = try #require(try await jobs.wait(timeout: .seconds(60)))
            #expect(done.map(\.id) == [1, 3])
            #expect(done.allSatisfy { $0.state == .completed })
        }
    }

    @Test func anyReturnsTheFirstDoneInTheOrderNamed() async throws {
        try await withTemporaryEngine { jobs, _ in
            let slow = try await jobs.sh("sleep 1000")
            let fast = try await jobs.sh("sleep 0.2")
            let done = try #require(try await jobs.wait([.id(slow.id), .id(fast.id)], any: true, timeout: .seconds(60)))
            #expect(done.map(\.id) == [fast.id])
            let slowNow = try #require(await jobs.job(slow.id))
            let slowChild = await jobs.job(slow.id + 1)
            #expect(slowNow.state == .running, "\(slowNow) \(String(describing: slowChild))")
            _ = try await jobs.stop([.id(slow.id)], grace: .seconds(1))
        }
    }

    @Test func aTimeoutReturnsNothingAndLeavesTheJobRunning() async throws {
        try await withTemporaryEngine { jobs, _ in
            let job = try await jobs.sh("sleep 1000")
            let start = ContinuousClock.now
            let result = try await jobs.wait([.id(job.id)], timeout: .milliseconds(300))
            #expect(result == nil)
            #expect(ContinuousClock.now - start >= .milliseconds(300))
            #expect(try #require(await jobs.job(job.id)).state == .running)
            let immediate = try await jobs.wait([.id(job.id)], timeout: .zero)
            #expect(immediate == nil)
            _ = try await jobs.stop([.id(job.id)], grace: .seconds(1))
        }
    }

    @Test func aZeroTimeoutReturnsJobsThatAreAlreadyDone() async throws {
        try await withTemporaryEngine { jobs, _ in
            let job = try await jobs.sh("true")
            _ = try await jobs.finished(job.id)
            let result = try await jobs.wait([.id(job.id)], timeout: .zero)
            #expect(result?.map(\.id) == [job.id])
        }
    }

    @Test func waitingOnAnUnknownJobIsAnError() async throws {
        try await withTemporaryEngine { jobs, _ in
            await #expect(throws: JobError.noJob(id: 5)) { try await jobs.wait([.id(5)]) }
        }
    }
}

@Suite("Stopping", .tags(.medium)) struct StopTests {
    @Test func stopEndsTheWholeProcessGroupIncludingGrandchildren() async throws {
        try await withTemporaryEngine { jobs, _ in
            let job = try await jobs.sh("sleep 300 & sleep 300 & (sleep 300; echo never) & echo ready; wait")
            let child = try await jobs.child(of: job)
            let pgid = try await jobPid(jobs, child: child.id)
            try await eventually { try await !jobs.text(job.id, keep: true).isEmpty }
            #expect(try await jobs.text(job.id, keep: true) == "ready\n", "the grandchildren were started")
            #expect(kill(-pgid, 0) == 0, "the job's processes run")
            let stopped = try await jobs.stop([.id(job.id)])
            #expect(stopped.map(\.state) == [.stopped])
            #expect(try #require(await jobs.job(child.id)).state == .stopped)
            #expect(await processGroupIsAlive(pgid) == false)
        }
    }

    /// Processes that leave the job's group or session (setsid, setsid -f with TERM ignored,
    /// setpgid) are the job's still: the supervisor is their subreaper, and a stop ends them.
    @Test(arguments: [
        "setsid sleep MARK & sleep MARK & echo ready; wait",
        "setsid -f sh -c 'trap \"\" TERM; exec sleep MARK'; sleep MARK & echo ready; wait",
        "python3 -c 'import os, time; os.setpgid(0, 0); time.sleep(MARK)' & sleep MARK & echo ready; wait",
    ])
    func nothingEscapesAStop(line: String) async throws {
        // A number of seconds no other process here has in its command line.
        let marker = String(Int.random(in: 4_000_000...4_999_999))
        // Whatever happens, nothing of it is left behind.
        defer { for pid in processes(matching: marker) { kill(pid, SIGKILL) } }
        try await withTemporaryEngine { jobs, _ in
            let job = try await jobs.sh(line.replacingOccurrences(of: "MARK", with: marker))
            #expect(try await eventually { await processesOffPool(matching: marker).count >= 2 }, "the job's processes started")
            #expect(try await eventually { try await !jobs.text(job.id, keep: true).isEmpty })
            let stopped = try await jobs.stop([.id(job.id)], grace: .milliseconds(500))
            #expect(stopped.first?.state == .stopped)
            #expect(try await eventually(within: .seconds(10)) { await processesOffPool(matching: marker).isEmpty }, "left: \(processes(matching: marker))")
        }
    }

    /// A supervisor killed with SIGKILL left the job running under init, shown Failed, with
    /// nothing left to stop it: the engine ends the job's processes itself.
    @Test func aKilledSupervisorsJobIsEnded() async throws {
        let marker = String(Int.random(in: 5_000_000...5_999_999))
        defer { for pid in processes(matching: marker) { kill(pid, SIGKILL) } }
        try await withTemporaryEngine { jobs, _ in
            let job = try await jobs.sh("trap '' TERM; sleep \(marker) & echo ready; sleep \(marker)")
            let child = try await jobs.child(of: job)
            let main = try await jobPid(jobs, child: child.id)
            #expect(try await eventually {
                guard try await !jobs.text(job.id, keep: true).isEmpty else { return false }
                return await processesOffPool(matching: marker).count >= 2
            })
            let stat = try String(contentsOfFile: "/proc/\(main)/stat", encoding: .utf8)
            let afterName = stat[stat.index(after: try #require(stat.lastIndex(of: ")")))...].split(separator: " ")
            let supervisor = try #require(pid_t(afterName[1]), "the main process's parent")
            #expect(kill(supervisor, SIGKILL) == 0)
            let ended = try await jobs.finished(job.id)
            #expect(ended.state == .failed)
            let reason = try #require(await jobs.job(child.id)?.reason)
            #expect(reason.contains("supervisor") && reason.hasSuffix("its processes were ended"), "\(reason)")
            #expect(try await eventually(within: .seconds(10)) { await processesOffPool(matching: marker).isEmpty }, "left: \(processes(matching: marker))")
        }
    }

    @Test func whatIgnoresSIGTERMIsKilledAfterTheGracePeriod() async throws {
        try await withTemporaryEngine { jobs, _ in
            let job = try await jobs.sh("trap '' TERM; sleep 300 & sleep 300 & echo ready; wait; wait")
            let child = try await jobs.child(of: job)
            let pgid = try await jobPid(jobs, child: child.id)
            try #require(try await eventually { try await !jobs.text(job.id).isEmpty }, "the job printed")
            let start = ContinuousClock.now
            let stopped = try await jobs.stop([.id(job.id)], grace: .milliseconds(500))
            #expect(ContinuousClock.now - start >= .milliseconds(500))
            #expect(stopped.first?.state == .stopped)
            #expect(try #require(await jobs.job(child.id)).exitCode == 128 + Int(SIGKILL))
            #expect(await processGroupIsAlive(pgid) == false)
        }
    }

    @Test func aStopEndsEvenWhenSomethingOutsideTheGroupHoldsTheOutput() async throws {
        try await withTemporaryEngine { jobs, _ in
            // A daemon of its own session keeps the job's stdout open for a minute.
            let job = try await jobs.sh("setsid sleep 60 & echo ready")
            try #require(try await eventually { try await !jobs.text(job.id, keep: true).isEmpty }, "the job printed")
            let start = ContinuousClock.now
            let stopped = try await jobs.stop([.id(job.id)], grace: .milliseconds(300))
            #expect(ContinuousClock.now - start < .seconds(30), "not the straggler's minute")
            #expect(stopped.first?.state == .stopped)
            #expect(try await jobs.text(job.id) == "ready\n")
        }
    }

    @Test func aStopRightAfterStartGetsThereWithSIGTERM() async throws {
        try await withTemporaryEngine { jobs, _ in
            // Whether the stop comes before or after the engine learns the new supervisor's
            // pid, the job gets SIGTERM, not the SIGKILL that ends the grace period.
            for _ in 0..<5 {
                let job = try await jobs.start(.argv(["sleep", "30"]))
                let stopped = try await jobs.stop([.id(job.id)], grace: .seconds(20))
                let child = try await jobs.child(of: try #require(stopped.first))
                #expect(stopped.first?.state == .stopped, "\(child)")
                #expect(child.exitCode == 128 + Int(SIGTERM), "\(String(describing: child.reason))")
            }
        }
    }

    @Test func stopLeavesFinishedJobsAsTheyAre() async throws {
        try await withTemporaryEngine { jobs, _ in
            let job = try await jobs.sh("exit 3")
            _ = try await jobs.finished(job.id)
            let result = try await jobs.stop([.id(job.id)])
            #expect(result.first?.state == .failed)
        }
    }

    @Test func stoppingAChildLeavesTheParentStoppedAndWhatItPrintedReadable() async throws {
        try await withTemporaryEngine { jobs, _ in
            let job = try await jobs.sh("echo started; sleep 300")
            let child = try await jobs.child(of: job)
            try #require(try await eventually { try await !jobs.text(job.id, keep: true).isEmpty }, "the job printed")
            _ = try await jobs.stop([.id(child.id)])
            let parent = try #require(await jobs.job(job.id))
            #expect(parent.state == .stopped)
            #expect(parent.hasMoreData)
            #expect(try await jobs.text(job.id) == "started\n")
        }
    }
}

@Suite("Removing", .tags(.medium)) struct RemoveTests {
    @Test func aWildcardThatNamesParentsAndChildrenRemovesThemAll() async throws {
        try await withTemporaryEngine { jobs, _ in
            for _ in 0..<2 { _ = try await jobs.finished(try await jobs.sh("true").id) }
            try await jobs.remove([.name("*")])
            #expect(await jobs.all().isEmpty)
            let third = try await jobs.sh("true")
            _ = try await jobs.finished(third.id)
            let child = await #expect(throws: JobError.self) { try await jobs.remove([.id(third.childJobs[0])]) }
            #expect(child?.code == .refused, "a child named alone is still refused")
        }
    }

    @Test func aFinishedJobIsRemovedWithItsOutput() async throws {
        try await withTemporaryEngine { jobs, home in
            let job = try await jobs.sh("echo x")
            _ = try await jobs.finished(job.id)
            let child = try await jobs.child(of: job)
            let file = OutputFormat.path(prefix: jobs.outputPrefix(child.id), stream: .output)
            #expect(FileManager.default.fileExists(atPath: file))
            try await jobs.remove([.id(job.id)])
            #expect(await jobs.job(job.id) == nil)
            #expect(await jobs.job(child.id) == nil)
            #expect(!FileManager.default.fileExists(atPath: file))
            await #expect(throws: JobError.noJob(id: job.id)) { try await jobs.receive([.id(job.id)]) }
            _ = home
        }
    }

    @Test func aRunningJobIsRefusedAndStays() async throws {
        try await withTemporaryEngine { jobs, _ in
            let job = try await jobs.sh("sleep 300")
            await #expect(throws: JobError(.refused, "job 1 is Running; stop it first or use --force")) {
                try await jobs.remove([.id(job.id)])
            }
            #expect(try #require(await jobs.job(job.id)).state == .running)
            try await jobs.remove([.id(job.id)], force: true)
            #expect(await jobs.job(job.id) == nil)
        }
    }

    @Test func aChildCannotBeRemovedOnItsOwn() async throws {
        try await withTemporaryEngine { jobs, _ in
            let job = try await jobs.sh("true")
            _ = try await jobs.finished(job.id)
            await #expect(throws: JobError(.refused, "job 2 is a child of job 1; remove job 1")) {
                try await jobs.remove([.id(2)])
            }
        }
    }

    @Test func removeByStateAndByCommand() async throws {
        try await withTemporaryEngine { jobs, _ in
            let ok = try await jobs.sh("true")
            let bad = try await jobs.sh("exit 1")
            let built = try await jobs.start(.argv(["echo", "make", "all"]))
            for id in [ok.id, bad.id, built.id] { _ = try await jobs.finished(id) }
            #expect(try await jobs.remove(state: .failed) == [bad.id])
            #expect(try await jobs.remove(commandMatching: "  ECHO make* ") == [built.id])
            let left = try await jobs.get()
            #expect(left.map(\.id) == [ok.id])
        }
    }

    @Test func removeByStateStopsRunningJobsFirst() async throws {
        try await withTemporaryEngine { jobs, _ in
            let job = try await jobs.sh("sleep 300")
            let child = try await jobs.child(of: job)
            let pgid = try await jobPid(jobs, child: child.id)
            #expect(try await jobs.remove(state: .running) == [job.id])
            #expect(await processGroupIsAlive(pgid) == false)
        }
    }
}

@Suite("Thread jobs", .tags(.medium)) struct ThreadJobTests {
    @Test func aClosureWritesOutputAndErrorRecords() async throws {
        try await withTemporaryEngine { jobs, _ in
            let job = try await jobs.start(name: "sum") { context in
                try context.write("total \((1...10).reduce(0, +))")
                try context.writeError("careful")
                try context.write(bytes: [0, 255], to: .output)
            }
            let done = try await jobs.finished(job.id)
            #expect(done.state == .completed)
            #expect(done.type == .threadJob)
            let output = try await jobs.receive([.id(job.id)])
            #expect(try output.data(.output) == Array("total 55\n".utf8) + [0, 255])
            #expect(try output.data(.error) == Array("careful\n".utf8))
            #expect(try #require(await jobs.job(job.id)).hasMoreData == false)
        }
    }

    struct Boom: Error, CustomStringConvertible {
        var description: String { "the flux capacitor\nbroke" }
    }

    @Test func aThrownErrorFailsTheJobWithItAsTheReason() async throws {
        try await withTemporaryEngine { jobs, _ in
            let job = try await jobs.start { context in
                try context.write("before")
                throw Boom()
            }
            let done = try await jobs.finished(job.id)
            #expect(done.state == .failed)
            #expect(done.reason == "the flux capacitor broke")
            #expect(try await jobs.text(job.id) == "before\n")
        }
    }

    @Test func stopCancelsTheClosure() async throws {
        try await withTemporaryEngine { jobs, _ in
            let job = try await jobs.start { context in
                try context.write("working")
                try await Task.sleep(for: .seconds(300))
                try context.write("never")
            }
            try #require(try await eventually { try await !jobs.text(job.id, keep: true).isEmpty }, "the job wrote")
            let stopped = try await jobs.stop([.id(job.id)])
            #expect(stopped.first?.state == .stopped)
            #expect(try await jobs.text(job.id) == "working\n")
        }
    }

    @Test func afterARestartAThreadJobThatWasRunningIsFailed() async throws {
        let home = try TemporaryHome()
        let id = try await JobManager.withManager(home: home.path) { jobs in
            let job = try await jobs.start { context in
                try context.write("half")
                try await Task.sleep(for: .seconds(300))
            }
            try #require(try await eventually { try await !jobs.text(job.id, keep: true).isEmpty }, "the job wrote")
            return job.id
        }
        try await JobManager.withManager(home: home.path) { jobs in
            let job = try #require(await jobs.job(id))
            #expect(job.state == .failed)
            #expect(job.reason == "the process that ran it exited" || job.reason == "the engine shut down while it ran")
            #expect(try await jobs.text(id) == "half\n")
        }
    }
}
