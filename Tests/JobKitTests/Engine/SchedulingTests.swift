import Foundation
import Testing
@testable import JobKit
import JobModel
import JobTesting

/// The scheduler's rules on the table alone, without processes: throttles, queue limits in id
/// order, dependencies, retries, suspend and resume.
@Suite("Scheduling rules", .tags(.small)) struct SchedulingRulesTests {
    let t0 = Date(timeIntervalSince1970: 1000)

    /// A parent `id` with `children` children, none started, in `queue`.
    func family(_ id: Int, children: Int, throttle: Int = 1, queue: String = "default", dependsOn: [Int] = [], retries: Int = 0)
        -> [JobRecord]
    {
        var parent = JobRecord(id: id, instanceId: UUID(), name: "Job\(id)", type: .remoteJob, state: .notStarted, location: "x", command: "x")
        (parent.throttle, parent.queue, parent.dependsOn) = (throttle, queue, dependsOn)
        return [parent] + (0..<children).map { $0 + 1 }.map { n in
            var child = JobRecord(
                id: id + n, instanceId: UUID(), name: "Job\(id + n)", type: .remoteJob, state: .notStarted, location: "h",
                command: "x", parentId: id)
            (child.queue, child.retries) = (queue, retries)
            return child
        }
    }

    @Test func childrenStartInOrderWithinTheirParentsThrottle() {
        var table = JobTable()
        table.add(family(1, children: 4, throttle: 2))
        #expect(table.beginReady(limits: [:], at: t0).begun == [2, 3])
        #expect(table[1]?.state == .running && table[1]?.beginTime == t0)
        #expect(table.beginReady(limits: [:], at: t0).begun.isEmpty, "both slots taken")
        _ = table.leafEnded(2, outcome: .exited(0), at: t0, recorded: 0)
        #expect(table.beginReady(limits: [:], at: t0).begun == [4], "an end frees a slot")
        _ = table.leafEnded(3, outcome: .exited(0), at: t0, recorded: 0)
        #expect(table.beginReady(limits: [:], at: t0).begun == [5])
        #expect(table.beginReady(limits: [:], at: t0).begun.isEmpty, "none left waiting")
    }

    @Test func aQueueLimitHoldsJobsBackInIdOrderAcrossParents() {
        var table = JobTable()
        for id in [1, 3, 5, 7] { table.add(family(id, children: 1, queue: "Q")) }
        table.add(family(9, children: 1))
        let first = table.beginReady(limits: ["q": 2], at: t0).begun
        #expect(first.sorted() == [2, 4, 10], "two of queue Q, in id order, and the default queue's")
        #expect(table[5]?.state == .notStarted && table[6]?.state == .notStarted)
        #expect(table.queueTallies["q"]?.active == 2 && table.queueTallies["q"]?.waiting == 2)
        _ = table.leafEnded(4, outcome: .exited(1), at: t0, recorded: 0)
        #expect(table.beginReady(limits: ["q": 2], at: t0).begun == [6], "the oldest waiting takes the slot")
        #expect(table.beginReady(limits: ["q": 3], at: t0).begun == [8], "a higher limit lets the next one start")
    }

    @Test func aParentCountsAgainstItsQueueAsWellAsItsThrottle() {
        var table = JobTable()
        table.add(family(1, children: 5, throttle: 4, queue: "q"))
        #expect(table.beginReady(limits: ["q": 2], at: t0).begun == [2, 3])
    }

    @Test func aDependentWaitsThenRunsIfAllCompleted() {
        var table = JobTable()
        table.add(family(1, children: 1))
        table.add(family(3, children: 1, dependsOn: [1]))
        table.block(3)
        #expect(table.beginReady(limits: [:], at: t0).begun == [2], "the dependent waits")
        #expect(table.waiting(for: [1]) == [3])
        #expect(table.decide(3, states: [1: .running], at: t0) == nil, "not yet")
        let released = table.decide(3, states: [1: .completed], at: t0)
        #expect(released?.first?.dependenciesMet == true)
        #expect(table.beginReady(limits: [:], at: t0).begun == [4])
    }

    @Test(arguments: [
        ([1: JobState.failed], "job 1 Failed"), ([1: .stopped], "job 1 Stopped"), ([:], "job 1 was removed"),
    ])
    func aDependentFailsWithoutRunningWhenItsDependencyDidNotComplete(states: [Int: JobState], reason: String) {
        var table = JobTable()
        table.add(family(3, children: 2, throttle: 2, dependsOn: [1]))
        table.block(3)
        _ = table.decide(3, states: states, at: t0)
        #expect(table[4]?.state == .failed && table[4]?.reason == reason && table[4]?.beginTime == nil)
        #expect(table[3]?.state == .failed && table[3]?.reason == reason)
        #expect(table.beginReady(limits: [:], at: t0).begun.isEmpty)
    }

    @Test func aFailedChildWithRunsLeftWaitsForItsNextAttempt() {
        var table = JobTable()
        table.add(family(1, children: 1, retries: 1))
        _ = table.beginReady(limits: [:], at: t0)
        let failed = table.leafEnded(2, outcome: .exited(3), at: t0, recorded: 4)
        #expect(failed.map(\.id) == [2] && failed[0].retryPending && failed[0].state == .running)
        #expect(table[1]?.state == .running)
        #expect(table.beginAttempt(2, at: t0).first?.attempt == 2)
        _ = table.leafEnded(2, outcome: .exited(5), at: t0, recorded: 9)
        #expect(table[2]?.state == .failed && table[2]?.exitCode == 5 && table[2]?.attempt == 2)
        #expect(table[1]?.state == .failed && table[1]?.attempt == 2)
    }

    @Test func aStoppedChildIsNotRetriedNorOneBetweenAttempts() {
        var table = JobTable()
        table.add(family(1, children: 2, throttle: 2, retries: 3))
        _ = table.beginReady(limits: [:], at: t0)
        _ = table.requestStop([2], at: t0)
        #expect(table.leafEnded(2, outcome: .signaled(SIGTERM), at: t0, recorded: 0).first?.state == .stopped)
        _ = table.leafEnded(3, outcome: .exited(1), at: t0, recorded: 0)
        #expect(table[3]?.retryPending == true)
        let (_, toSignal) = table.requestStop([3], at: t0)
        #expect(toSignal.isEmpty && table[3]?.state == .stopped, "between attempts there is no process to signal")
    }

    @Test func suspendHoldsWaitingChildrenAndStopsRunningOnes() {
        var table = JobTable()
        table.add(family(1, children: 3, throttle: 1))
        _ = table.beginReady(limits: [:], at: t0)
        let (changed, toSignal) = table.requestSuspend([1])
        #expect(toSignal == [2])
        #expect(table[2]?.state == .suspended && table[3]?.state == .suspended && table[1]?.state == .suspended)
        #expect(changed.contains { $0.id == 1 })
        _ = table.leafEnded(2, outcome: .exited(0), at: t0, recorded: 0)
        #expect(table.beginReady(limits: [:], at: t0).begun.isEmpty, "held back: it does not start")
        let resumed = table.requestResume([1])
        #expect(resumed.toSignal.isEmpty, "what was held back had no process")
        #expect(table[3]?.state == .notStarted)
        #expect(table.beginReady(limits: [:], at: t0).begun == [3])
        #expect(table[1]?.state == .running)
    }

    @Test func aSuspendedChildHoldsItsSlot() {
        var table = JobTable()
        table.add(family(1, children: 1, queue: "q"))
        table.add(family(3, children: 1, queue: "q"))
        _ = table.beginReady(limits: ["q": 1], at: t0)
        _ = table.requestSuspend([1])
        #expect(table.beginReady(limits: ["q": 1], at: t0).begun.isEmpty)
        #expect(table.queueTallies["q"] == Tally(notStarted: 1, suspended: 1, active: 1, waiting: 1))
    }
}

extension SchedulingRulesTests {
    @Test func aTableLoadedFromTheDatabaseKnowsWhoWaits() {
        var records = family(1, children: 2, throttle: 2, queue: "q")
        records[0].state = .running
        records[1].state = .running
        var table = JobTable(records + family(4, children: 1, queue: "q"))
        #expect(table.queueTallies["q"]?.active == 1 && table.queueTallies["q"]?.waiting == 2)
        #expect(table.beginReady(limits: ["q": 2], at: t0).begun == [3], "the next in id order, once a slot is free")
        _ = table.leafEnded(2, outcome: .exited(0), at: t0, recorded: 0)
        #expect(table.beginReady(limits: ["q": 2], at: t0).begun == [5])
    }
}

@Suite("Launch plans", .tags(.small)) struct LaunchPlanTests {
    @Test(arguments: [
        ProcessSpec.Command.shell("echo \"a\\b\"\n\t$X \u{1}é 日本"), .argv(["printf", "%s\\n", "it's \"q\"", "", "\u{7f}\u{0}x"]),
    ])
    func aPlanWrittenByHandReadsBackTheSame(_ command: ProcessSpec.Command) throws {
        for (merge, ssh) in [(false, nil), (true, "/home/ana/.ssh/lab \"config\"")] as [(Bool, String?)] {
            var spec = ProcessSpec(command, workingDirectory: "/tmp/d ir\\x", environment: [:])
            spec.mergeError = merge
            let plan = LaunchPlan(spec: spec, options: InvokeOptions(throttle: 7, sshConfigFile: ssh))
            #expect(LaunchPlan.decode(try plan.encoded()) == plan)
        }
    }
}
