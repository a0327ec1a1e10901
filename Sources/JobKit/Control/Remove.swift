import CJobKitSystem
import Foundation
import JobModel

#if canImport(Glibc)
import Glibc
#endif

/// `job remove`: a job's records, then its files.
extension JobManager {
    /// `job remove`: deletes jobs and their stored output. A job that is not finished is
    /// refused unless `force`, which stops it first. Child jobs cannot be removed on their own
    /// (named along with their parent, they go with it).
    public func remove(_ selectors: [JobSelector], force: Bool = false) async throws(JobError) {
        let jobs = JobSelection.withoutChildrenOfListed(try resolveStrict(selectors))
        for job in jobs {
            if let parentId = job.parentId {
                let parent = table[parentId]?.name ?? "job \(parentId)"
                throw JobError(.refused, "job \(job.id) is a child of job \(parentId); remove \(parent == "Job\(parentId)" ? "job \(parentId)" : parent)")
            }
            if !job.state.isFinished && !force {
                throw JobError(.refused, "job \(job.id) is \(job.state.rawValue); stop it first or use --force")
            }
        }
        try await removeJobs(jobs.map(\.id))
    }

    /// `job remove --state`: removes the top-level jobs in that state, stopping them first if
    /// they run (as PowerShell's `Remove-Job -State` does). Returns the ids removed.
    @discardableResult
    public func remove(state: JobState) async throws(JobError) -> [Int] {
        let ids = history.infos(try topLevelIds()).filter { $0.state == state }.map(\.id)
        faultIn(ids)
        try await removeJobs(ids)
        return ids
    }

    /// `job remove --command`: removes the top-level jobs whose command equals the pattern
    /// (ignoring surrounding blanks and case) or matches it as a wildcard, stopping them first
    /// if they run. Returns the ids removed.
    @discardableResult
    public func remove(commandMatching pattern: String) async throws(JobError) -> [Int] {
        let trimmed = pattern.trimmingCharacters(in: .whitespaces)
        let wildcard = Wildcard(trimmed)
        let ids = history.infos(try topLevelIds()).filter { job in
            let command = job.command.trimmingCharacters(in: .whitespaces)
            return command.lowercased() == trimmed.lowercased() || wildcard.matches(command)
        }.map(\.id)
        faultIn(ids)
        try await removeJobs(ids)
        return ids
    }

    func removeJobs(_ ids: [Int]) async throws(JobError) {
        let family = Set(ids + table.leaves(of: ids))
        removing.formUnion(family)
        defer { removing.subtract(family) }
        let running = ids.filter { table[$0]?.state.isFinished == false }
        if !running.isEmpty { try await stopJobs(running, grace: Defaults.grace) }
        // Stopping them committed their ends, which let go of the finished ones: back they come.
        faultIn(ids)
        var events: [JobEvent] = []
        for id in ids { if let info = table.info(id) { events.append(JobEvent(job: info, removed: true)) } }
        // A finished leaf that recorded nothing has no output files (data comes with its
        // records); only a remote one has an ssh log. No unlink for what cannot be there.
        let leaves = table.leaves(of: ids).compactMap { table[$0] }
        // Files first: on a full disk the database needs the space they free to record the
        // removal at all.
        for leaf in leaves {
            supervisor.removeFiles(leaf.id, output: leaf.recorded > 0, sshLog: !isLocal(leaf.location))
        }
        // The table after the database: a removal that could not be recorded leaves both as they were.
        let removed = Array(Set(ids + leaves.map(\.id)))
        // Detached children's files on their hosts go too (what still runs there is
        // ended first), now or once the host can be reached.
        let cleanups = remoteCleanups(of: leaves)
        try store.delete(removed, cleanups: cleanups)
        forgetDetached(removed)
        if !cleanups.isEmpty { workContinuation.yield(.cleanUp(after: .zero)) }
        for id in table.remove(ids) { unsaved.removeValue(forKey: id) }
        hub.publish(events)
        // Jobs that waited for these fail ("was removed") once the others they wait for end.
        let decided = releaseDependents(of: removed)
        try? persist(decided + schedule(after: decided))
    }
}
