import CJobKitSystem
import Foundation
import Testing
@testable import JobKit
import JobModel
import JobTesting

/// A foreach's children run in lanes: supervisors that run one child after another. What a
/// user sees must be what a supervisor per child gave: each child's own output, status,
/// signals and CPU time, nothing run twice or lost, whatever happens to a lane or the engine.
@Suite("Lanes of a foreach", .tags(.medium)) struct LaneTests {
    /// The ids of a foreach's children, once it has them all.
    private func children(of parent: Int, _ jobs: JobManager, count: Int) async throws -> [Int] {
        var ids: [Int] = []
        try #require(
            try await eventually {
                ids = await jobs.job(parent)?.childJobs ?? []
                return ids.count == count
            }, "foreach \(parent) did not make its \(count) children")
        return ids
    }

    /// The pid a job wrote to `path` (its lane's, say), once it has.
    private func pid(writtenTo path: String) async throws -> pid_t {
        var pid: pid_t?
        try #require(
            try await eventually {
                pid = (try? String(contentsOfFile: path, encoding: .utf8)).flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
                return pid != nil
            }, "nothing wrote a pid to \(path)")
        return try #require(pid)
    }

    @Test func childrenRunOneAfterAnotherInAFewLanesEachWithItsOwnOutputAndStatus() async throws {
        try await withTemporaryEngine("lanes") { jobs, _ in
            // Each child says its input and the supervisor it runs under, and fails on 4.
            let parent = try await jobs.foreach(
                .shell("echo {} $PPID; echo err{} >&2; [ {} != 4 ]"), input: .list((1...8).map(String.init)), throttle: 2)
            let done = try await jobs.finished(parent.id)
            #expect(done.state == .failed)
            let ids = try await children(of: parent.id, jobs, count: 8)
            var supervisors = Set<String>()
            for (index, id) in ids.enumerated() {
                let child = try #require(await jobs.job(id))
                #expect(child.exitCode == (index == 3 ? 1 : 0))
                #expect(child.state == (index == 3 ? .failed : .completed))
                #expect(child.cpuSeconds != nil)
                #expect(child.hasMoreData)
                let words = try await jobs.text(id, keep: true).split(separator: " ")
                #expect(words.first.map(String.init) == String(index + 1))
                if let ppid = words.last { supervisors.insert(String(ppid).trimmingCharacters(in: .newlines)) }
                #expect(try await jobs.text(id, .error, keep: true) == "err\(index + 1)\n")
            }
            // Eight children, at most two at a time: two lanes ran them, not eight supervisors.
            #expect(supervisors.count <= 3, "supervisors: \(supervisors)")
        }
    }

    @Test func aRetriedChildKeepsWhatItsEarlierAttemptsPrinted() async throws {
        try await withTemporaryEngine("lane-retry") { jobs, home in
            // The first attempt prints and fails; the second prints nothing and completes.
            let tried = home.path + "/tried"
            let parent = try await jobs.foreach(
                .shell(": {}; if [ ! -e \(tried) ]; then touch \(tried); echo first; exit 1; fi"), input: .list(["x"]), throttle: 1,
                scheduling: StartOptions(retry: 1))
            let done = try await jobs.finished(parent.id)
            #expect(done.state == .completed)
            let id = try #require(try await children(of: parent.id, jobs, count: 1).first)
            let child = try #require(await jobs.job(id))
            #expect(child.attempt == 2)
            #expect(child.hasMoreData)
            #expect(try await jobs.text(id) == "first\n")
            #expect(await jobs.job(id)?.hasMoreData == false)
        }
    }

    @Test func aStopReachesTheOneChildItNames() async throws {
        try await withTemporaryEngine("lane-stop") { jobs, home in
            let marks = home.path + "/marks"
            touch(home.path + "/anchor")
            try FileManager.default.createDirectory(atPath: marks, withIntermediateDirectories: true)
            let parent = try await jobs.foreach(
                .shell("touch '\(marks)'/{}; exec tail -f \(home.path)/anchor"), input: .list(["a", "b"]), throttle: 2)
            let ids = try await children(of: parent.id, jobs, count: 2)
            try #require(try await eventually { FileManager.default.fileExists(atPath: marks + "/a") && FileManager.default.fileExists(atPath: marks + "/b") })
            _ = try await jobs.stop([.id(ids[0])])
            let stopped = try await jobs.finished(ids[0])
            #expect(stopped.state == .stopped)
            #expect(await jobs.job(ids[1])?.state == .running)
            _ = try await jobs.stop([.id(parent.id)])
            #expect(try await jobs.finished(parent.id).state == .stopped)
        }
    }

    @Test func aSignalMeantForAChildThatEndedIsNotTakenByTheNext() async throws {
        try await withTemporaryEngine("lane-stale") { jobs, home in
            let lane = home.path + "/lane"
            touch(home.path + "/anchor")
            let parent = try await jobs.foreach(
                .shell("[ {} = a ] && exit 0; echo $PPID > \(lane); exec tail -f \(home.path)/anchor"),
                input: .list(["a", "b"]), throttle: 1)
            let ids = try await children(of: parent.id, jobs, count: 2)
            let pidfd = jobkit_pidfd_open(try await pid(writtenTo: lane))
            try #require(pidfd >= 0)
            defer { close(pidfd) }
            // "Kill at once" for the first child, which ended: the second must not take it.
            #expect(jobkit_pidfd_sigqueue(pidfd, jobkit_lane_signal(), UInt64(ids[0]) << 8 | UInt64(SIGUSR1)) == 0)
            // Then a suspend of the second, which comes after it through the same queue.
            _ = try await jobs.suspend([.id(ids[1])])
            let pid = try await jobPid(jobs, child: ids[1])
            try #require(try await eventually { processState(pid) == "T" })
            #expect(await jobs.job(ids[1])?.state == .suspended)
            _ = try await jobs.stop([.id(parent.id)])
            #expect(try await jobs.finished(parent.id).state == .stopped)
        }
    }

    @Test func aChildThatLeavesAProcessBehindEndsItsLaneAndTheNextGetsANewOne() async throws {
        try await withTemporaryEngine("lane-left") { jobs, home in
            // The first leaves a process behind (not holding its output), and says its lane;
            // the second says its own.
            let left = home.path + "/left.pid"
            // A process that lasts and names the home (so that the home's end ends it too).
            touch(home.path + "/anchor")
            let parent = try await jobs.foreach(
                .shell("if [ {} = 1 ]; then sh -c 'echo $$ > \(left); exec tail -f \(home.path)/anchor' >/dev/null 2>&1 & fi; echo $PPID"),
                input: .list(["1", "2"]), throttle: 1)
            let done = try await jobs.finished(parent.id)
            #expect(done.state == .completed)
            let ids = try await children(of: parent.id, jobs, count: 2)
            let first = try await jobs.text(ids[0], keep: true)
            let second = try await jobs.text(ids[1], keep: true)
            #expect(first != second, "both ran in the lane \(first)")
            let pid = try #require(Int32((try? String(contentsOfFile: left, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""))
            // The second child's end did not touch what the first left.
            #expect(kill(pid, 0) == 0)
            kill(pid, SIGKILL)
        }
    }

    @Test func aKilledLaneFailsItsChildAndTheRestRunInANewOne() async throws {
        try await withTemporaryEngine("lane-killed") { jobs, home in
            let lane = home.path + "/lane"
            // What the first child runs lasts, and names the home (so that the home's end ends it too).
            touch(home.path + "/anchor")
            let parent = try await jobs.foreach(
                .shell("if [ {} = 1 ]; then echo $PPID > \(lane); exec tail -f \(home.path)/anchor; fi; echo {}"),
                input: .list(["1", "2", "3"]), throttle: 1)
            let ids = try await children(of: parent.id, jobs, count: 3)
            kill(try await pid(writtenTo: lane), SIGKILL)
            let done = try await jobs.finished(parent.id)
            #expect(done.state == .failed)
            #expect(await jobs.job(ids[0])?.state == .failed)
            #expect(try await jobs.text(ids[1], keep: true) == "2\n")
            #expect(try await jobs.text(ids[2], keep: true) == "3\n")
        }
    }

    @Test func eachChildsCPUTimeIsItsOwn() async throws {
        try await withTemporaryEngine("lane-cpu") { jobs, _ in
            let parent = try await jobs.foreach(
                .shell("if [ {} = burn ]; then i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done; fi"),
                input: .list(["burn", "idle"]), throttle: 1)
            _ = try await jobs.finished(parent.id)
            let ids = try await children(of: parent.id, jobs, count: 2)
            let burn = try #require(await jobs.job(ids[0])?.cpuSeconds)
            let idle = try #require(await jobs.job(ids[1])?.cpuSeconds)
            #expect(burn > 0.1)
            #expect(idle < burn / 4, "the second child was counted \(idle) s, the first \(burn) s")
        }
    }

    @Test func anEngineThatGoesAwayMidwayLeavesEachChildToRunOnce() async throws {
        let home = try TemporaryHome("lane-reopen")
        let go = home.path + "/go"
        let runs = home.path + "/runs"
        let parent = try await JobManager.withManager(home: home.path) { jobs in
            try await jobs.foreach(
                .shell("echo {} >> \(runs); if [ {} = 1 ]; then \(waitForFile(go)); fi"),
                input: .list(["1", "2", "3"]), throttle: 1)
        }
        // The first child runs on in its lane, which takes nothing more from an engine gone.
        touch(go)
        try await JobManager.withManager(home: home.path) { jobs in
            let done = try await jobs.finished(parent.id)
            #expect(done.state == .completed)
        }
        let lines = try String(contentsOfFile: runs, encoding: .utf8).split(separator: "\n").sorted()
        #expect(lines == ["1", "2", "3"])
    }
}

/// A process's state letter from /proc (R, S, T, Z…), nil when it is gone.
private func processState(_ pid: pid_t) -> Character? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return nil }
    return stat[close...].dropFirst(2).first
}
