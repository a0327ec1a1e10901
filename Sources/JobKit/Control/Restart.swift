import Foundation
import JobModel

/// `job restart`: a finished job started again, as a new job.
extension JobManager {
    /// Starts each finished job again as a new job with the same command, working directory,
    /// environment, name, queue, computers and retries (not its dependencies: they were met
    /// or not, once), and returns the new jobs. Unfinished jobs and child jobs are refused,
    /// before anything starts.
    public func restart(_ selectors: [JobSelector]) throws(JobError) -> [JobInfo] {
        let jobs = try resolveStrict(selectors)
        var plans: [(JobRecord, LaunchPlan)] = []
        for job in jobs {
            if let parentId = job.parentId {
                throw JobError(.refused, "job \(job.id) is a child of job \(parentId); restart job \(parentId)")
            }
            if !job.state.isFinished {
                throw JobError(.refused, "job \(job.id) is \(job.state.rawValue); only a finished job can be restarted")
            }
            guard job.type != .threadJob else {
                throw JobError(.refused, "job \(job.id) is a thread job; its closure is its program's, to start again")
            }
            guard let record = table[job.id], let plan = plan(of: job.id) else {
                throw JobError(.refused, "how job \(job.id) was started was not kept (an older release started it)")
            }
            plans.append((record, plan))
        }
        return try plans.map { (record, plan) throws(JobError) in try restart(record, plan) }
    }

    private func restart(_ record: JobRecord, _ plan: LaunchPlan) throws(JobError) -> JobInfo {
        // A name of its own goes with it; `Job<Id>` was only its id's.
        let name = record.name == "Job\(record.id)" ? nil : record.name
        let children = record.childIds.compactMap { table[$0] }
        let scheduling = StartOptions(queue: record.queue, retry: children.first?.retries ?? 0)
        switch record.type {
        case .remoteJob:
            return try invoke(
                plan.spec, on: children.map(\.location), name: name, options: plan.options, scheduling: scheduling)
        default:
            return try startParent(plan.spec, name: name, type: .backgroundJob, computers: ["localhost"], scheduling: scheduling)
        }
    }
}
