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
            if let pid = supervisor.supervisorPid(id) {
                // Its exit, which lets go of the job's lock, waited for (2 s at most).
                let pidfd = jobkit_pidfd_open(pid)
                kill(pid, SIGUSR1)
                if pidfd >= 0 {
                    var exited = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
                    _ = poll(&exited, 1, 2_000)
                    close(pidfd)
                }
            }
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
        for found in table.records.values.sorted(by: { $0.id < $1.id }) where !found.state.isFinished {
            guard found.childIds.isEmpty else { continue }
            var record = found
            let id = record.id
            let ending = supervisor.ending(id)
            if Tally.phase(record) == .waiting {
                // Waiting for a slot (or held back): nothing of it ran, unless its begin was
                // not committed when the last engine died (it commits a begin once the
                // supervisor is asked for): then the slot, cleared when it was asked for,
                // says that it did.
                let asked = ending != nil || supervisor.pids(id) != nil || supervisor.isAlive(id)
                guard record.state == .notStarted, asked else { continue }
                changed += table.begin(id, at: Date())
                guard let begun = table[id] else { continue }
                record = begun
            }
            var evidence = Recovery.Evidence(
                ended: ending != nil, started: supervisor.pids(id) != nil,
                livePid: supervisor.isAlive(id) ? supervisor.supervisorPid(id) : nil, endedAttempt: ending?.attempt)
            var action = Recovery.action(for: record, evidence)
            if case .watch(let pid, let finishStop) = action {
                if monitor.watch(id: id, pid: pid) {
                    if finishStop { monitor.signal(id: id, SIGUSR1) }
                    continue
                }
                // Gone between the look and the watch: as if it had not been alive.
                evidence.livePid = nil
                action = Recovery.action(for: record, evidence)
            }
            switch action {
            // (Not .watch here: with no live supervisor, the action is never to watch it.)
            case .readEnd, .watch: changed += endProcessLeaf(id, table: &table, supervisor: supervisor, justNow: false)
            case .requeue: changed += table.requeue(id)
            case .retry: changed += table.awaitRetry(id)
            case .fail(let reason, let keepOutput):
                let recorded = keepOutput ? OutputFormat.recordCount(prefix: supervisor.prefix(id)) : 0
                changed += table.leafEnded(id, outcome: .failed(reason), at: now, recorded: recorded)
            }
        }
        return changed
    }
}

/// What to do with an unfinished leaf the last engine left, decided from what its record and
/// its supervisor's slot and lock say: pure, so that every case is tested without processes.
enum Recovery {
    /// What the slot and the lock say of one job.
    struct Evidence: Equatable {
        /// Its supervisor recorded how it ended.
        var ended: Bool
        /// Its supervisor recorded that it started (its pids).
        var started: Bool
        /// Its supervisor holds its lock still, and said its pid.
        var livePid: pid_t?
        /// Which run the recorded end is of.
        var endedAttempt: Int? = nil
    }

    enum Action: Equatable {
        /// Read how it ended from the slot (a supervisor gone without a word fails it).
        case readEnd
        /// Watch its live supervisor again; `finishStop`: a stop was waiting out its grace
        /// when the old engine died, and is finished now, as it would have been.
        case watch(pid: pid_t, finishStop: Bool)
        /// It was still connecting: it connects again, from its place in the queue.
        case requeue
        /// It ends `Failed` with this reason (with the output it wrote, if `keepOutput`).
        case fail(reason: String, keepOutput: Bool)
        /// Its slot holds an earlier attempt's end: the current one never began, and is
        /// started again after the usual pause.
        case retry
    }

    static func action(for record: JobRecord, _ evidence: Evidence) -> Action {
        if record.type == .threadJob { return .fail(reason: "the process that ran it exited", keepOutput: true) }
        if let attempt = evidence.endedAttempt, attempt < record.attempt, evidence.livePid == nil { return .retry }
        if evidence.ended { return .readEnd }
        // A detached child with no follower: its command is on its host, reached once the
        // engine runs (an end not read here is not one).
        if record.detached != nil, evidence.livePid == nil { return .readEnd }
        if let pid = evidence.livePid { return .watch(pid: pid, finishStop: record.state == .stopping) }
        if !evidence.started {
            if !isLocal(record.location), record.type == .remoteJob, !record.stopRequested { return .requeue }
            return .fail(reason: "the engine exited before the job could start", keepOutput: false)
        }
        return .readEnd
    }
}
