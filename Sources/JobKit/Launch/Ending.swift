import CJobKitSystem
import Foundation
import JobModel
import JobOutput

#if canImport(Glibc)
import Glibc
#endif

/// Process jobs ending: read from what their supervisors left.
extension JobManager {
    func supervisorsExited(_ ids: [Int]) {
        let ended = ids.flatMap { id in
            // A remote session's command cut because its session ended: it ends as the session did.
            guard let outcome = sessionOutcomes.removeValue(forKey: id) else { return endProcessLeaf(id) }
            return table.leafEnded(id, outcome: outcome, at: Date(), recorded: OutputFormat.recordCount(prefix: supervisor.prefix(id)))
        }
        announceProcessEnds(ended)
        // A foreach that has finished needs its lanes no more.
        for parentId in Set(ended.compactMap(\.parentId)) where table[parentId]?.state.isFinished ?? true {
            monitor.closeLanes(parent: parentId)
        }
        let started = schedule(after: ended)
        guard !started.isEmpty else { return }
        // Children begun in the slots the ends freed (and their parents' states, which follow
        // from them) go with the next commit, as the ends do: each was asked of the fork
        // server, whose slot says so to an engine that reopens (see `recover`). Anything else
        // (a dependency decided, a child that could not start) is committed now.
        if started.allSatisfy(isRecordedBySlot) { announceProcessEnds(started) } else { try? persist(started) }
    }

    /// A change the supervisors' slots already hold: a leaf begun and asked of the fork
    /// server, or a parent's state while its children only begin and end.
    private func isRecordedBySlot(_ record: JobRecord) -> Bool {
        if record.parentId == nil { return !record.childIds.isEmpty && !record.state.isFinished && !record.dependenciesMet }
        return record.state == .running && !record.retryPending
            && (asked.contains { $0.id == record.id } || monitor.inLane(record.id))
    }

    /// Tells waiters that process jobs ended, and leaves the commit to the engine's next
    /// transaction. Safe because the end is already on disk in the supervisor's slot: an
    /// engine that crashes before committing re-reads it at recovery and comes to the same
    /// state, exit code, time and output count. It takes a commit off every job's path.
    func announceProcessEnds(_ changed: [JobRecord]) {
        for record in changed { unsaved[record.id] = record }
        announce(changed)
        // Committed at the latest a moment after the last: with nothing else to commit (the
        // last children of a foreach), the finished families would stay in memory.
        if !unsaved.isEmpty, !flushScheduled {
            flushScheduled = true
            workContinuation.yield(.flush)
        }
    }

    /// The ends announced and not committed, committed after `flushDelay` (one transaction for
    /// all that came meanwhile).
    func flushSoon() async {
        try? await Task.sleep(for: Self.flushDelay)
        flushScheduled = false
        if !unsaved.isEmpty { try? persist([]) }
    }

    static let flushDelay = Duration.milliseconds(100)

    func endProcessLeaf(_ id: Int) -> [JobRecord] {
        // A session's command only: no second read of the slot on every other job's end.
        if table[id]?.sessionId != nil, supervisor.ending(id) == nil { abandonOnChannel(id) }
        let ended = Self.endProcessLeaf(
            id, table: &table, supervisor: supervisor, justNow: true, recorded: monitor.takeRecordCount(id))
        // A detached child's follower that did not bring the command's end: it is reached again.
        if ended.isEmpty, let leaf = table[id], leaf.detached != nil, !leaf.state.isFinished { followerEnded(id) }
        return ended
    }

    /// Reads how a process leaf ended from what its supervisor left. A supervisor that died
    /// without a word (killed) left the job's processes to init: they are ended here, found by
    /// the session the job's setsid began — at once when its death was `justNow` seen, and
    /// later (at recovery) only while that session's leader is alive to vouch for the id.
    static func endProcessLeaf(_ id: Int, table: inout JobTable, supervisor: Supervisor, justNow: Bool, recorded known: Int? = nil)
        -> [JobRecord]
    {
        let recorded = known ?? OutputFormat.recordCount(prefix: supervisor.prefix(id))
        if table[id]?.detached != nil {
            // A detached child's supervisor is its follower's: its exit status is the
            // command's, but 255 (ask the host), a signal or no word at all say nothing of
            // the command, which is reached again (`reach`) and goes on.
            guard let ending = supervisor.ending(id) else { return [] }
            // Output that could not be stored here ends it whatever the command does.
            if ending.lost == nil {
                guard case .exited(let status) = ending.outcome, status != DetachedCommand.askCheck else { return [] }
            }
            return table.leafEnded(id, outcome: ending.outcome, at: ending.time, recorded: recorded, lost: ending.lost)
        }
        if let ending = supervisor.ending(id) {
            let seen = remoteOutcome(ending.outcome, of: id, table: table, supervisor: supervisor)
            // What ran here is this leaf's; a remote one's processes are on its computer.
            let usage = table[id].map { isLocal($0.location) } == true ? ending.usage : nil
            return table.leafEnded(id, outcome: seen, at: ending.time, recorded: recorded, lost: ending.lost, usage: usage)
        }
        var reason = "its supervisor ended without recording how the job ended (was it killed?)"
        if let pids = supervisor.pids(id), pids.job != pids.supervisor,
            ProcessScan.endSession(of: pids.job, requireLeader: !justNow) > 0
        {
            reason += "; its processes were ended"
        }
        return table.leafEnded(id, outcome: .failed(reason), at: Date(), recorded: recorded)
    }

    /// ssh exits 255 both when the connection failed or broke and when the remote command
    /// exited 255: what ssh logged, and whether the master still answers, tell them apart.
    static func remoteOutcome(_ outcome: LeafOutcome, of id: Int, table: JobTable, supervisor: Supervisor)
        -> LeafOutcome
    {
        guard outcome == .exited(255), let leaf = table[id], !leaf.stopRequested, !isLocal(leaf.location),
            let parentId = leaf.parentId, let plan = LaunchPlan.decode(table[parentId]?.launch)
        else { return outcome }
        if let line = SSHLog.reason(path: supervisor.prefix(id) + ".ssh") { return .failed("\(leaf.location): \(line)") }
        let home = (supervisor.jobsDirectory as NSString).deletingLastPathComponent
        let link = SSHLink.make(host: leaf.location, configFile: plan.options.sshConfigFile, home: home)
        if link.masterAnswers { return outcome }
        return .failed("\(leaf.location): the connection was lost while the command ran")
    }
}
