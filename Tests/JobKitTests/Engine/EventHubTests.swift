import Foundation
import Testing
@testable import JobKit
import JobModel
import JobTesting

@Suite("Job events", .tags(.small)) struct EventHubTests {
    func event(_ id: Int, _ state: JobState, children: Int = 0) -> JobEvent {
        JobEvent(
            job: JobInfo(
                id: id, name: "Job\(id)", type: .backgroundJob, state: state, hasMoreData: true, location: "localhost",
                command: "x", childJobs: Array(1000..<(1000 + children))),
            removed: false)
    }

    /// A reader behind the engine gets each job's latest, in the order the jobs first
    /// changed, and holds no more than that: not a parent's copy per child that changed.
    @Test func aJobsEventsThatComeFasterThanTheyAreReadAreFoldedIntoItsLatest() async {
        let hub = EventHub()
        var events = hub.stream().makeAsyncIterator()
        hub.publish([event(1, .running, children: 1), event(2, .running)])
        for children in 2...1000 { hub.publish([event(1, .running, children: children)]) }
        hub.publish([event(1, .completed, children: 1000)])
        let first = await events.next()
        #expect(first?.job.id == 1 && first?.job.state == .completed && first?.job.childJobs.count == 1000)
        let second = await events.next()
        #expect(second?.job.id == 2 && second?.job.state == .running)
        hub.publish([event(3, .failed)])
        #expect(await events.next()?.job.id == 3)
    }

    @Test func aDroppedStreamStopsObserving() async throws {
        let hub = EventHub()
        do {
            var events = hub.stream(for: [1]).makeAsyncIterator()
            hub.publish([event(2, .running), event(1, .running)])
            #expect(await events.next()?.job.id == 1)
            #expect(hub.observerCount == 1)
        }
        #expect(try await eventually { hub.observerCount == 0 })
    }
}
