import Foundation
import JobModel

/// Queues: at most so many jobs of a queue run at once (task-spooler's slots, pueue's
/// groups). A queue is made by the first job started in it, or by `setQueue`; its limit is
/// kept in the database, so that it outlives the engine.
extension JobManager {
    /// The queues with these names (wildcards as for jobs; every queue when none is named),
    /// by name. A name without wildcards that names no queue is an error.
    public func queues(_ names: [String] = []) throws(JobError) -> [QueueInfo] {
        let all = try store.queues().map { queueInfo($0.name, limit: $0.limit) }
        guard !names.isEmpty else { return all }
        var result: [QueueInfo] = []
        for name in names {
            let pattern = Wildcard(name)
            let matches = all.filter { pattern.matches($0.name) }
            if matches.isEmpty, !Wildcard.hasWildcards(name) {
                throw JobError(.notFound, "no queue named '\(JobError.shown(name))' ('job queue get' lists them)")
            }
            result += matches.filter { match in !result.contains { $0.name == match.name } }
        }
        return result
    }

    /// Makes a queue or sets its limit (nil: no limit), and starts what the new limit lets
    /// start. Returns the queue.
    @discardableResult
    public func setQueue(_ name: String, limit: Int?) throws(JobError) -> QueueInfo {
        try checkOpen()
        if let limit, limit < 1 { throw JobError(.invalidArgument, "a queue's limit is 1 or more (or none), not \(limit)") }
        let given = try Self.checkedQueueName(name)
        let key = JobTable.queueKey(given)
        let stored = queueNames[key] ?? given
        try store.setQueue(stored, limit: limit)
        queueNames[key] = stored
        queueLimits[key] = limit
        try persist(startReady())
        return queueInfo(stored, limit: limit)
    }

    /// Removes a queue that holds no unfinished job (finished jobs keep its name). The
    /// default queue stays.
    public func removeQueue(_ name: String) throws(JobError) {
        try checkOpen()
        let key = JobTable.queueKey(name)
        guard let stored = queueNames[key] else {
            throw JobError(.notFound, "no queue named '\(JobError.shown(name))' ('job queue get' lists them)")
        }
        if key == JobTable.queueKey(Defaults.queue) {
            throw JobError(.refused, "the default queue cannot be removed; lift its limit with 'job queue set default --limit none'")
        }
        // Every unfinished job is in the table.
        let unfinished = table.ids.filter { id in
            guard let job = table[id], job.parentId == nil, !job.state.isFinished else { return false }
            return JobTable.queueKey(job.queue) == key
        }.count
        if unfinished > 0 {
            throw JobError(
                .refused, "queue '\(stored)' holds \(unfinished) unfinished job\(unfinished == 1 ? "" : "s"); stop or remove them first")
        }
        try store.removeQueue(stored)
        queueNames.removeValue(forKey: key)
        queueLimits.removeValue(forKey: key)
    }

    private func queueInfo(_ name: String, limit: Int?) -> QueueInfo {
        let tally = table.queueTallies[JobTable.queueKey(name)] ?? Tally()
        return QueueInfo(name: name, limit: limit, running: tally.active, waiting: tally.waiting)
    }
}
