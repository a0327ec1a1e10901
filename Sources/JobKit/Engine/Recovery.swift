import CJobKitSystem
import Foundation
import JobModel
import JobOutput

#if canImport(Glibc)
import Glibc
#endif

/// What a (re)opened engine does with what the last one left.
extension JobManager {
    /// Jobs a crashed engine started but never committed (it died between asking for a
    /// child's supervisor and committing the child, see `startParent`): they are stopped at
    /// once, their files removed and their ids used up, so that no id is handed out twice.
    static func stopOrphans(store: JobStore, supervisor: Supervisor) throws(JobError) {
        let known = store.highestId
        let slotted = supervisor.highestSlot
        guard slotted > known else { return }
        for id in (known + 1)...slotted {
            guard supervisor.isAlive(id) else {
                supervisor.removeFiles(id)
                continue
            }
            if let pid = supervisor.supervisorPid(id) { kill(pid, SIGUSR1) }
            for _ in 0..<400 where supervisor.isAlive(id) { usleep(5_000) }
            supervisor.removeFiles(id)
        }
        try store.useIds(through: slotted)
    }

    /// Brings every unfinished job up to date after the engine (re)opens: a supervisor that
    /// finished meanwhile is read, a live one is watched again; only what truly ended ends.
    static func recover(
        _ table: inout JobTable, monitor: ExitMonitor, supervisor: Supervisor, at now: Date
    ) -> [JobRecord] {
        var changed: [JobRecord] = []
        for record in table.records.values.sorted(by: { $0.id < $1.id }) where !record.state.isFinished {
            guard record.childIds.isEmpty else { continue }
            let id = record.id
            if record.type == .threadJob {
                let recorded = OutputFormat.recordCount(prefix: supervisor.prefix(id))
                changed += table.leafEnded(
                    record.id, outcome: .failed("the process that ran it exited"), at: now, recorded: recorded)
                continue
            }
            if supervisor.ending(id) != nil {
                changed += endProcessLeaf(id, table: &table, supervisor: supervisor)
            } else if supervisor.isAlive(id), let pid = supervisor.supervisorPid(id),
                monitor.watch(id: id, pid: pid)
            {
                // The stop that was waiting out its grace period died with the old engine:
                // finish it now, as it would have.
                if record.state == .stopping { monitor.signal(id: id, SIGUSR1) }
            } else if supervisor.ending(id) == nil, supervisor.pids(id) == nil, !isLocal(record.location),
                record.type == .remoteJob, !record.stopRequested
            {
                // It was still connecting: it connects again, from its place in the queue.
                changed += table.requeue(id)
            } else if supervisor.ending(id) == nil, supervisor.pids(id) == nil {
                changed += table.leafEnded(
                    id, outcome: .failed("the engine exited before the job could start"), at: now, recorded: 0)
            } else {
                changed += endProcessLeaf(id, table: &table, supervisor: supervisor)
            }
        }
        return changed
    }
}
