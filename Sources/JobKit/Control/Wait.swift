import CJobKitSystem
import Foundation
import JobModel

#if canImport(Glibc)
import Glibc
#endif

/// `job wait`: pushed by job events, never polled.
extension JobManager {
    /// `job wait`: waits until the jobs (every top-level job when none are named) are done —
    /// finished or `Disconnected`; with `force`, finished — and returns them in the order
    /// named. With `any`, returns as soon as one is done: the first, in that order, of those
    /// done. Returns nil when `timeout` runs out, leaving the jobs running; a timeout of zero
    /// checks once. Waiting is pushed by job events, never polled.
    public nonisolated func wait(
        _ selectors: [JobSelector] = [], any: Bool = false, timeout: Duration? = nil, force: Bool = false
    ) async throws(JobError) -> [JobInfo]? {
        let done: @Sendable (JobInfo?) -> Bool = { job in
            guard let job else { return true }
            return force ? job.state.isFinished : job.state.isPersistent
        }
        let (ids, initial, events) = try await waitTargets(selectors)
        guard let final = await waitUntil(ids, any: any, timeout: timeout, done: done, events: events, initial: initial)
        else { return nil }
        let jobs = ids.compactMap { final[$0] }
        if any, let first = jobs.first(where: { done($0) }) { return [first] }
        return jobs
    }

    /// The jobs to wait for, how they are now, and their events from now on: all in one turn
    /// of the actor, so that no change falls between the look and the subscription.
    func waitTargets(_ selectors: [JobSelector]) throws(JobError)
        -> ([Int], [Int: JobInfo], AsyncStream<JobEvent>)
    {
        let ids = selectors.isEmpty ? try topLevelIds() : try JobSelection.resolve(selectors, in: history).map(\.id)
        return (ids, snapshot(ids), hub.stream(for: Set(ids)))
    }

    func snapshot(_ ids: [Int]) -> [Int: JobInfo] {
        var result: [Int: JobInfo] = [:]
        for job in history.infos(ids) { result[job.id] = job }
        return result
    }

    /// Waits until `done` holds for all (or, with `any`, one) of the jobs, re-checked on
    /// every event about them; nil on timeout. A removed job counts as done.
    func waitUntil(
        _ ids: [Int], any: Bool, timeout: Duration?, done: @escaping @Sendable (JobInfo?) -> Bool
    ) async -> [Int: JobInfo]? {
        let events = hub.stream(for: Set(ids))
        return await waitUntil(ids, any: any, timeout: timeout, done: done, events: events, initial: snapshot(ids))
    }

    /// The same, with the event stream subscribed and the first look taken by the caller.
    nonisolated func waitUntil(
        _ ids: [Int], any: Bool, timeout: Duration?, done: @escaping @Sendable (JobInfo?) -> Bool,
        events: AsyncStream<JobEvent>, initial: [Int: JobInfo]
    ) async -> [Int: JobInfo]? {
        let satisfied: @Sendable ([Int: JobInfo]) -> Bool = { current in
            any ? ids.contains { done(current[$0]) } || ids.isEmpty : ids.allSatisfy { done(current[$0]) }
        }
        if satisfied(initial) { return initial }
        if timeout == .zero { return nil }
        let follow: @Sendable () async -> [Int: JobInfo]? = {
            var current = initial
            for await event in events {
                current[event.job.id] = event.removed ? nil : event.job
                if satisfied(current) { return current }
            }
            return nil
        }
        // Without a timeout, no race to run: following the events here saves a task and a hop.
        guard let timeout else { return await follow() }
        return await withTaskGroup(of: [Int: JobInfo]?.self) { group in
            group.addTask { await follow() }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }
}
