import Foundation
import JobModel
import JobTesting
import Testing

@testable import JobKit

/// What a reopened engine does with each unfinished leaf, and which waiting child starts
/// next: decisions made without processes.
@Suite("Recovery and scheduling decisions", .tags(.small)) struct RecoveryTests {
    func leaf(_ type: JobType = .backgroundJob, location: String = "localhost", state: JobState = .running, stop: Bool = false)
        -> JobRecord
    {
        JobRecord(
            id: 2, instanceId: UUID(), name: "Job2", type: type, state: state, location: location, command: "x",
            parentId: 1, stopRequested: stop)
    }

    typealias Evidence = Recovery.Evidence

    @Test func aThreadJobCannotOutliveItsProcess() {
        #expect(Recovery.action(for: leaf(.threadJob), Evidence(ended: false, started: false, livePid: nil))
            == .fail(reason: "the process that ran it exited", keepOutput: true))
    }

    @Test func anEndRecordedMeanwhileIsRead() {
        #expect(Recovery.action(for: leaf(), Evidence(ended: true, started: true, livePid: 42)) == .readEnd)
    }

    @Test func aLiveSupervisorIsWatchedAndAStopCutShortIsFinished() {
        #expect(Recovery.action(for: leaf(), Evidence(ended: false, started: true, livePid: 42)) == .watch(pid: 42, finishStop: false))
        #expect(Recovery.action(for: leaf(state: .stopping), Evidence(ended: false, started: true, livePid: 42))
            == .watch(pid: 42, finishStop: true))
    }

    @Test func aRemoteChildStillConnectingConnectsAgainUnlessItWasStopped() {
        let connecting = Evidence(ended: false, started: false, livePid: nil)
        #expect(Recovery.action(for: leaf(.remoteJob, location: "web1"), connecting) == .requeue)
        #expect(Recovery.action(for: leaf(.remoteJob, location: "web1", stop: true), connecting)
            == .fail(reason: "the engine exited before the job could start", keepOutput: false))
        #expect(Recovery.action(for: leaf(.remoteJob, location: "localhost"), connecting)
            == .fail(reason: "the engine exited before the job could start", keepOutput: false))
    }

    @Test func aSupervisorGoneWithoutAWordIsReadAsSuch() {
        #expect(Recovery.action(for: leaf(), Evidence(ended: false, started: true, livePid: nil)) == .readEnd)
    }
}

@Suite("Recovering what the last engine did not commit", .tags(.medium)) struct UncommittedBeginTests {
    /// An engine that died after asking for a child's supervisor and before committing its
    /// begin left the record NotStarted: the slot says it began, and it is watched, not started
    /// a second time.
    @Test func aBeginThatWasNotCommittedIsReadFromTheSlot() async throws {
        let home = try TemporaryHome("lost-begin")
        let jobsDirectory = home.path + "/jobs"
        try FileManager.default.createDirectory(atPath: jobsDirectory, withIntermediateDirectories: true)
        let supervisor = try Supervisor(executable: try Supervisor.locate(explicit: nil), jobsDirectory: jobsDirectory)
        defer { supervisor.shutdown() }
        let (pid, _) = try supervisor.spawn(2, Supervisor.Job(argv: ["sleep", "1000"], workingDirectory: "/", environment: [:]))
        defer { kill(pid, SIGUSR1) }
        #expect(try await eventually { supervisor.pids(2) != nil })
        let parent = JobRecord(id: 1, instanceId: UUID(), name: "Job1", type: .backgroundJob, state: .notStarted, location: "localhost", command: "sleep 1000")
        let child = JobRecord(
            id: 2, instanceId: UUID(), name: "Job2", type: .backgroundJob, state: .notStarted, location: "localhost",
            command: "sleep 1000", parentId: 1)
        let waiting = JobRecord(
            id: 3, instanceId: UUID(), name: "Job3", type: .backgroundJob, state: .notStarted, location: "localhost",
            command: "x", parentId: 1)
        var table = JobTable([parent, child, waiting])
        let monitor = ExitMonitor()
        defer { monitor.shutdown() }
        let changed = JobManager.recover(&table, monitor: monitor, supervisor: supervisor, at: Date())
        #expect(table[2]?.state == .running && table[2]?.beginTime != nil, "\(String(describing: table[2]))")
        #expect(table[3]?.state == .notStarted, "one that was never asked for still waits")
        #expect(table[1]?.state == .running)
        #expect(changed.contains { $0.id == 2 })
        #expect(monitor.signal(id: 2, 0), "its supervisor is watched again")
    }
}
