import CJobKitSystem
import Foundation
import JobModel

#if canImport(Glibc)
import Glibc
#endif

/// `job stop`: SIGTERM to the process group, SIGKILL after the grace period.
extension JobManager {
    /// `job stop`: stops the jobs and returns them once they are `Stopped` (or ended some
    /// other way meanwhile). Stopping a parent stops its children. A process job's whole
    /// process group gets SIGTERM, then SIGKILL if it is still there after `grace`; a thread
    /// job is cancelled. Finished jobs are left as they are.
    public func stop(_ selectors: [JobSelector], grace: Duration = Defaults.grace) async throws(JobError) -> [JobInfo] {
        let jobs = try resolveStrict(selectors)
        try await stopJobs(jobs.map(\.id), grace: grace)
        return history.infos(jobs.map(\.id))
    }

    func stopJobs(_ ids: [Int], grace: Duration) async throws(JobError) {
        // A foreach stopped reads no more inputs.
        for id in ids { feeds[id]?.cancel() }
        let (changed, toSignal) = table.requestStop(ids, at: Date())
        try persist(changed)
        guard !toSignal.isEmpty else { return }
        let finished: @Sendable (JobInfo?) -> Bool = { $0?.state.isFinished ?? true }
        for id in toSignal { signal(id, kill: false) }
        // A detached child that nobody follows now (its host is away) is stopped once its
        // host is reached, tried now; it stays Stopping meanwhile, and is not waited for.
        let unfollowed = Set(toSignal.filter { table[$0]?.detached != nil && !supervisor.isAlive($0) })
        touchDetached(Array(unfollowed))
        let followed = toSignal.filter { !unfollowed.contains($0) }
        if await waitUntil(followed, any: false, timeout: grace, done: finished) != nil { return }
        // Every path ends in SIGKILL: what ignored SIGTERM does not outlive the grace period.
        for id in followed where table[id]?.state.isFinished == false { signal(id, kill: true) }
        // Detached children are waited for a while: their end comes from their host.
        let detached = followed.filter { table[$0]?.detached != nil }
        let others = followed.filter { table[$0]?.detached == nil }
        _ = await waitUntil(others, any: false, timeout: nil, done: finished)
        if !detached.isEmpty { _ = await waitUntil(detached, any: false, timeout: Self.detachedStopWait, done: finished) }
    }

    /// How long a stop waits for detached children beyond the grace.
    static let detachedStopWait = Duration.seconds(10)

    func signal(_ id: Int, kill: Bool) {
        guard let record = table[id], !record.state.isFinished else { return }
        if record.type == .threadJob {
            threadStops[id]?.finish()
            return
        }
        // False when the supervisor is already gone: its exit is on its way to the run loop.
        _ = monitor.signal(id: id, kill ? SIGUSR1 : SIGTERM)
    }
}
