import Foundation
import JobModel
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
