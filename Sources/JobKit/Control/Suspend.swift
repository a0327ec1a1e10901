import CJobKitSystem
import Foundation
import JobModel

#if canImport(Glibc)
import Glibc
#endif

/// `job suspend` and `job resume`: SIGSTOP and SIGCONT to a job's whole process tree, sent
/// by its supervisor (which reaches what left the job's group too).
extension JobManager {
    /// Suspends the jobs' running children (`Suspended`; their processes stopped) and holds
    /// back those not started yet, which then do not start until resumed. Finished jobs are
    /// left as they are. Remote children and thread jobs cannot be suspended: refused,
    /// before anything changes.
    public func suspend(_ selectors: [JobSelector]) throws(JobError) -> [JobInfo] {
        let jobs = try resolveStrict(selectors)
        let ids = jobs.map(\.id)
        for leafId in table.leaves(of: ids) {
            guard let leaf = table[leafId], !leaf.state.isFinished else { continue }
            if leaf.type == .threadJob {
                throw JobError(.refused, "job \(leafId) is a thread job; it runs in its program and cannot be suspended")
            }
            if !isLocal(leaf.location), !leaf.hasNoProcess {
                throw JobError(
                    .refused, "job \(leafId) runs on \(leaf.location); suspend reaches local jobs only (stop it, or let it run)")
            }
        }
        let (changed, toSignal) = table.requestSuspend(ids)
        try persist(changed)
        for id in toSignal { _ = monitor.signal(id: id, SIGTSTP) }
        return history.infos(ids)
    }

    /// Resumes suspended jobs: their processes continue (`Running`), and children held back
    /// before they started wait for their slot again.
    public func resume(_ selectors: [JobSelector]) throws(JobError) -> [JobInfo] {
        let jobs = try resolveStrict(selectors)
        let ids = jobs.map(\.id)
        let (changed, toSignal) = table.requestResume(ids)
        for id in toSignal { _ = monitor.signal(id: id, SIGCONT) }
        try persist(changed + schedule(after: changed) + startReady())
        return history.infos(ids)
    }
}
