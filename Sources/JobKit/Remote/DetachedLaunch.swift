import CJobKitSystem
import Foundation
import JobModel
import JobOutput

#if canImport(Glibc)
import Glibc
#endif

/// Detached remote children (`invoke --detached`): the command is started on the host under
/// a supervisor there (`DetachedCommand`), and the child follows it with a follower, a remote
/// job of its own under a local supervisor, whose output is the command's from where this
/// side has it. A follower that ends without the command's status (the connection broke, the
/// master died, the status was 255) is followed by `check`: the child is `Disconnected` while
/// the host cannot be reached, and reached again with a backoff, at once when a command
/// touches it, and by the next engine.
extension JobManager {
    /// What the engine keeps of the detached children it is reaching.
    struct DetachedWork {
        /// Reaching it now (one at a time per child).
        var reaching: Set<Int> = []
        /// Failed reaches in a row, for the backoff.
        var failures: [Int: Int] = [:]
        /// Children whose first start is this engine's: a host that cannot be reached then
        /// fails them (the command never ran), as for any remote child.
        var firstStart: Set<Int> = []
        /// The parents of detached children under way, for `touchDetached`.
        var parents: Set<Int> = []
        /// When each one's follower began, and when a command last touched it.
        var followed: [Int: Date] = [:]
        var touched: [Int: Date] = [:]
        /// The host files of removed jobs are being deleted; more were asked for
        /// meanwhile; failures in a row.
        var cleaning = false
        var cleanAgain = false
        var cleanupFailures = 0
    }

    /// The most jobs of one host one cleanup request takes.
    static let cleanupBatch = 200

    /// The most a disconnected child waits before it is tried again.
    static let reachBackoffLimit = 30.0

    /// Starts a detached child's attempt: its record says so, then it is reached. Through a
    /// master that answers, it is started and followed at once, with the other children
    /// launched in this turn (one transaction, one collection of supervisors), as an attached
    /// child is; otherwise `reach` starts it.
    func launchDetached(_ id: Int, plan: LaunchPlan) -> [JobRecord] {
        guard var child = table[id] else { return [] }
        let base = child.attempt > 1 ? streamLengths(id) : .zero
        child.detached = DetachedProgress(started: false, base: base)
        table.put(child)
        if let parentId = child.parentId { detachedWork.parents.insert(parentId) }
        let link = SSHLink.make(host: child.location, configFile: plan.options.sshConfigFile, home: home)
        if !child.stopRequested, (try? prepareSSH(link)) != nil, link.masterAnswers {
            let key = DetachedCommand.key(instanceId: child.instanceId, attempt: child.attempt)
            return [child] + startFollower(id, link: link, key: key, plan: plan, form: shellForm(link))
        }
        detachedWork.firstStart.insert(id)
        workContinuation.yield(.reach(id, after: .zero))
        return [child]
    }

    /// The bytes of each stream the child's output holds (as its index records them).
    nonisolated func streamLengths(_ id: Int) -> StreamOffsets {
        let lengths = OutputFormat.streamLengths(prefix: outputPrefix(id))
        return StreamOffsets(output: lengths.output, error: lengths.error)
    }

    /// Starts the command on the host if it was not yet, asks how it is if it was, and then
    /// follows it, or ends the child, or leaves it `Disconnected` for a later try.
    func reach(_ id: Int) async {
        guard !isShutDown, let child = table[id], !child.state.isFinished, let progress = child.detached,
            let parentId = child.parentId, let plan = plan(of: parentId), !detachedWork.reaching.contains(id),
            !supervisor.isAlive(id)
        else { return }
        detachedWork.reaching.insert(id)
        defer { detachedWork.reaching.remove(id) }
        let link = SSHLink.make(host: child.location, configFile: plan.options.sshConfigFile, home: home)
        let key = DetachedCommand.key(instanceId: child.instanceId, attempt: child.attempt)
        do {
            try prepareSSH(link)
        } catch {
            return endDetached(id, .failed(error.message))
        }
        let environment = plan.spec.environment
        let form = shellForm(link)
        // Where this side's output ends, when `check` just read it.
        var have: StreamOffsets?
        if !progress.started, detachedWork.firstStart.remove(id) != nil {
            // Stopped before anything was sent to the host: it never runs.
            if child.stopRequested { return endDetached(id, .cancelled) }
            // First contact: through a master that answers, the start and the follower are
            // one request; without one, ssh starts it (and becomes the master), and a host it
            // cannot reach fails the child: the command never ran.
            if link.masterAnswers { return follow(id, link: link, key: key, plan: plan, form: form) }
            guard await startOnHost(id, link: link, key: key, plan: plan, firstContact: true) else { return }
        } else {
            switch await checkOnHost(id, link: link, key: key, environment: environment, form: form) {
            case .decided: return
            case .follow(let offsets): have = offsets
            case .absent:
                guard !progress.started else {
                    return endDetached(id, .failed("\(link.host): the command's files on the host are gone (\(DetachedCommand.filesHint(key)))"))
                }
                guard await startOnHost(id, link: link, key: key, plan: plan, firstContact: false) else { return }
            }
        }
        guard let current = table[id], !current.state.isFinished, !supervisor.isAlive(id), !isShutDown else { return }
        follow(id, link: link, key: key, plan: plan, form: shellForm(link), from: have)
    }

    /// How the host's login shell takes the script: as it was last found (`connect`), for
    /// the master now up, else the form any shell takes.
    private func shellForm(_ link: SSHLink) -> RemoteCommand.Form {
        guard let known = shellForms[link.controlPath], known.master == link.masterIdentity else { return .viaSh }
        return known.form
    }

    /// `start` on the host. True once the host has the command; otherwise the child has ended
    /// or is `Disconnected`.
    private func startOnHost(_ id: Int, link: SSHLink, key: String, plan: LaunchPlan, firstContact: Bool) async -> Bool {
        let host = link.host
        if table[id]?.stopRequested == true {
            // Stopped before the host answered that it has it: whatever a lost start did
            // there is undone.
            _ = await ask(id, link, DetachedCommand.clean(key: key, form: shellForm(link)), environment: plan.spec.environment)
            endDetached(id, .cancelled)
            return false
        }
        let line = DetachedCommand.start(key: key, command: plan.spec.command, mergeError: plan.spec.mergeError, form: .viaSh)
        switch await ask(id, link, line, environment: plan.spec.environment) {
        case .unreachable(let reason):
            if firstContact { endDetached(id, .failed(reason)) } else { disconnected(id, reason: reason) }
            return false
        case .answered(let answer):
            guard answer.split(separator: "\n").last == "started" else {
                let why = DetachedCommand.error(in: answer) ?? "the host gave no answer (is /bin/sh there a POSIX shell?)"
                endDetached(id, .failed("\(host): cannot start the command: \(why)"))
                return false
            }
            markStarted(id)
            return table[id]?.state.isFinished == false
        }
    }

    /// The host has the command: it is never started again.
    private func markStarted(_ id: Int) {
        guard var record = table[id], !record.state.isFinished, record.detached?.started == false else { return }
        record.detached?.started = true
        table.put(record)
        try? persist([record])
    }

    enum CheckResult {
        /// To be followed, from where this side's output ends.
        case follow(StreamOffsets)
        case decided, absent
    }

    /// `check` on the host: `follow` when the command is to be followed (it runs, or this
    /// side lacks some of its output), `absent` when the host has no such command; otherwise
    /// the child has ended or is `Disconnected` (`decided`).
    private func checkOnHost(
        _ id: Int, link: SSHLink, key: String, environment: [String: String], form: RemoteCommand.Form
    ) async -> CheckResult {
        let host = link.host
        switch await ask(id, link, DetachedCommand.check(key: key, form: form), environment: environment) {
        case .unreachable(let reason):
            disconnected(id, reason: reason)
            return .decided
        case .answered(let answer):
            guard let state = DetachedCommand.parse(check: answer), let record = table[id] else {
                disconnected(id, reason: "\(host): the host gave no answer about the command (is /bin/sh there a POSIX shell?)")
                return .decided
            }
            detachedWork.failures[id] = nil
            if state == .gone { return .absent }
            markStarted(id)
            let have = remoteOffsets(id, record)
            switch state {
            case .ended(let status, let sizes) where sizes == have:
                endDetached(id, .exited(status))
                return .decided
            case .lost(let sizes) where sizes == have && record.stopRequested:
                // The stop's SIGKILL ended the host's supervisor with the command.
                endDetached(id, .cancelled)
                return .decided
            case .lost(let sizes) where sizes == have:
                endDetached(
                    id, .failed("\(host): the command's supervisor on the host ended without its exit status (did the host restart?)"))
                return .decided
            default:
                return .follow(have)
            }
        }
    }

    /// Where this side's output of the attempt ends, in the host's files.
    private func remoteOffsets(_ id: Int, _ record: JobRecord) -> StreamOffsets {
        let have = streamLengths(id)
        let base = record.detached?.base ?? .zero
        return StreamOffsets(output: max(0, have.output - base.output), error: max(0, have.error - base.error))
    }

    /// Starts the child's follower, from where this side's output ends.
    /// A child the host is not known to have yet is started by it (`run`).
    private func follow(
        _ id: Int, link: SSHLink, key: String, plan: LaunchPlan, form: RemoteCommand.Form, from known: StreamOffsets? = nil
    ) {
        let changed = startFollower(id, link: link, key: key, plan: plan, form: form, from: known)
        try? persist(changed + schedule(after: changed))
    }

    /// `follow`, leaving what changed to the caller to keep.
    private func startFollower(
        _ id: Int, link: SSHLink, key: String, plan: LaunchPlan, form: RemoteCommand.Form, from known: StreamOffsets? = nil
    ) -> [JobRecord] {
        guard var record = table[id] else { return [] }
        let environment = plan.spec.environment
        let offsets = known ?? remoteOffsets(id, record)
        let line = record.detached?.started == true
            ? DetachedCommand.follow(key: key, from: offsets, form: form)
            : DetachedCommand.run(key: key, command: plan.spec.command, mergeError: plan.spec.mergeError, from: offsets, form: form)
        var changed: [JobRecord] = []
        if record.state == .disconnected || record.reason != nil {
            record.state = record.stopRequested ? .stopping : .running
            record.reason = nil
            table.put(record)
            changed = [record] + table.refreshParent(of: record, at: Date())
        }
        detachedWork.followed[id] = Date()
        var job = Supervisor.Job(
            argv: link.jobArguments(line: line, log: sshLogPath(id)), workingDirectory: "/", environment: environment,
            holdStdin: true,
            // The socket file, not a connection to it (which costs the master work): one that
            // does not answer makes the supervisor run ssh instead.
            throughMaster: link.masterIdentity != nil ? Supervisor.ThroughMaster(socket: link.controlPath, command: line) : nil)
        job.append = true
        job.ticks = true
        changed += spawnLeaf(id, job)
        // A stop asked while nobody followed: the follower is stopped as soon as it is
        // collected (`collectAsked`), and killed after the grace, as any stop.
        if record.stopRequested { workContinuation.yield(.killAfterGrace(id)) }
        return changed
    }

    /// After a stop's grace: a follower still there is cut, which kills the command on the
    /// host (its stop came first).
    func killAfterGrace(_ id: Int) async {
        try? await Task.sleep(for: Defaults.grace)
        guard table[id]?.stopRequested == true, table[id]?.state.isFinished == false else { return }
        signal(id, kill: true)
    }

    /// A follower ended without the command's status: the child is reached again, at once
    /// unless its follower lived only a moment (then after the backoff).
    func followerEnded(_ id: Int) {
        let began = detachedWork.followed.removeValue(forKey: id) ?? .distantPast
        if Date().timeIntervalSince(began) < 2 {
            detachedWork.failures[id, default: 0] += 1
            workContinuation.yield(.reach(id, after: reachDelay(id)))
        } else {
            workContinuation.yield(.reach(id, after: .zero))
        }
    }

    /// The host cannot be reached: `Disconnected` (or still `Stopping`) with ssh's reason,
    /// and tried again after the backoff.
    private func disconnected(_ id: Int, reason: String) {
        guard var record = table[id], !record.state.isFinished else { return }
        if record.state != .stopping { record.state = .disconnected }
        record.reason = reason
        table.put(record)
        try? persist([record] + table.refreshParent(of: record, at: Date()))
        detachedWork.failures[id, default: 0] += 1
        workContinuation.yield(.reach(id, after: reachDelay(id)))
    }

    /// 1 s, doubling with each failure in a row, up to `reachBackoffLimit`.
    private func reachDelay(_ id: Int) -> Duration {
        let failures = detachedWork.failures[id] ?? 1
        return .seconds(min(Self.reachBackoffLimit, pow(2, Double(max(0, failures - 1)))))
    }

    private func endDetached(_ id: Int, _ outcome: LeafOutcome) {
        forgetDetached([id])
        let ended = table.leafEnded(id, outcome: outcome, at: Date(), recorded: OutputFormat.recordCount(prefix: outputPrefix(id)))
        try? persist(ended + schedule(after: ended))
    }

    /// What the engine kept for reaching these children, which need no more of it.
    func forgetDetached(_ ids: [Int]) {
        for id in ids {
            detachedWork.parents.remove(id)
            detachedWork.failures[id] = nil
            detachedWork.followed[id] = nil
            detachedWork.touched[id] = nil
            detachedWork.firstStart.remove(id)
        }
    }

    /// A command touched these jobs: their disconnected children are tried now (at most
    /// every 2 s each), not at the end of their backoff.
    func touchDetached(_ ids: [Int]) {
        let now = Date()
        // Only detached families are looked into: `get` passes every job under way, and a
        // foreach may have a hundred thousand children.
        let detachedIds = ids.filter { id in
            guard let record = table[id] else { return false }
            return record.parentId == nil ? detachedWork.parents.contains(id) : record.detached != nil
        }
        guard !detachedIds.isEmpty else { return }
        for leaf in table.leaves(of: detachedIds) {
            guard let record = table[leaf], record.detached != nil, !record.state.isFinished,
                record.state == .disconnected || record.state == .stopping, !detachedWork.reaching.contains(leaf),
                now.timeIntervalSince(detachedWork.touched[leaf] ?? .distantPast) >= 2
            else { continue }
            detachedWork.touched[leaf] = now
            workContinuation.yield(.reach(leaf, after: .zero))
        }
    }

    /// One of the requests of `DetachedCommand` to a host, through its master (or making it).
    enum HostAnswer {
        case answered(String)
        /// ssh could not reach the host: its reason, as the child's Reason says it.
        case unreachable(String)
    }

    /// Through the master by the supervisor's `--ask` (no ssh process: a few milliseconds),
    /// or by ssh, which connects (and becomes the master) when none answers (`--ask` says so).
    func ask(_ id: Int?, _ link: SSHLink, _ line: String, environment: [String: String]) async -> HostAnswer {
        if link.masterIdentity != nil,
            let (status, output) = try? await runCapturing(
                [supervisor.executable, "--ask", link.controlPath, line], environment: environment),
            status != Self.askNoMaster
        {
            // The master went away meanwhile: ssh says why it cannot reach the host, if it cannot.
            if status != Self.askLost { return .answered(output.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
        let log = id.map { outputPrefix($0) + ".ask" } ?? SSHLink.directory(home: home) + "/clean.\(UInt64.random(in: 0...UInt64.max)).log"
        // ssh appends to its log: each answer's reason is its own.
        let fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        if fd >= 0 { close(fd) }
        defer { if id == nil { unlink(log) } }
        let argv = ["ssh"] + link.options + ["-E", log, "--", link.host, line]
        guard let (status, output) = try? await runCapturing(argv, environment: environment) else {
            return .unreachable("\(link.host): cannot run ssh")
        }
        if status == 255 {
            return .unreachable("\(link.host): \(SSHLog.reason(path: log) ?? "ssh could not reach the host")")
        }
        return .answered(output.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// `jobkit-supervisor --ask`'s own statuses (ask.c): no master answered; it went away.
    static let askNoMaster: Int32 = 254
    static let askLost: Int32 = 255

    // MARK: The host files of removed jobs

    /// What removing these leaves leaves on their hosts: the files of detached ones.
    /// Every attempt's, for a child retried in place.
    func remoteCleanups(of leaves: [JobRecord]) -> [RemoteCleanup] {
        leaves.flatMap { leaf -> [RemoteCleanup] in
            guard leaf.detached != nil, let parentId = leaf.parentId else { return [] }
            let sshConfig = plan(of: parentId)?.options.sshConfigFile
            return (1...max(1, leaf.attempt)).map { attempt in
                RemoteCleanup(
                    key: DetachedCommand.key(instanceId: leaf.instanceId, attempt: attempt), computer: leaf.location,
                    sshConfig: sshConfig)
            }
        }
    }

    /// Deletes the host files of removed jobs (ending what still runs there), each host
    /// at once; those whose host cannot be reached are tried again later, and by the next
    /// engine, until they are gone.
    func cleanUpHosts() async {
        // One at a time; what is removed meanwhile is taken once this one is done.
        if detachedWork.cleaning {
            detachedWork.cleanAgain = true
            return
        }
        guard !isShutDown, let pending = try? store.remoteCleanups(), !pending.isEmpty else { return }
        detachedWork.cleaning = true
        defer {
            detachedWork.cleaning = false
            if detachedWork.cleanAgain {
                detachedWork.cleanAgain = false
                workContinuation.yield(.cleanUp(after: .zero))
            }
        }
        let environment = ProcessInfo.processInfo.environment
        // One request per host (and ssh configuration), for up to `cleanupBatch` of its jobs.
        var batches: [(keys: [String], link: SSHLink)] = []
        var batchIndex: [String: Int] = [:]
        for cleanup in pending {
            let group = cleanup.computer + "\u{0}" + (cleanup.sshConfig ?? "")
            if let index = batchIndex[group], batches[index].keys.count < Self.cleanupBatch {
                batches[index].keys.append(cleanup.key)
                continue
            }
            let link = SSHLink.make(host: cleanup.computer, configFile: cleanup.sshConfig, home: home)
            guard (try? prepareSSH(link)) != nil else { continue }
            batchIndex[group] = batches.count
            batches.append(([cleanup.key], link))
        }
        let done = await withTaskGroup(of: [String].self) { group in
            for (keys, link) in batches {
                let line = DetachedCommand.clean(keys: keys, form: shellForm(link))
                group.addTask {
                    guard case .answered(let answer) = await self.ask(nil, link, line, environment: environment),
                        answer.split(separator: "\n").last == "cleaned"
                    else { return [] }
                    return keys
                }
            }
            var done: [String] = []
            for await keys in group { done += keys }
            return done
        }
        for key in done { try? store.finishCleanup(key) }
        if done.count < pending.count {
            detachedWork.cleanupFailures += 1
            let delay = min(600.0, 30 * pow(2, Double(detachedWork.cleanupFailures - 1)))
            workContinuation.yield(.cleanUp(after: .seconds(delay)))
        } else {
            detachedWork.cleanupFailures = 0
        }
    }
}

/// A removed detached child's files on its host, still to delete.
struct RemoteCleanup: Sendable, Equatable {
    var key: String
    var computer: String
    var sshConfig: String?
}
