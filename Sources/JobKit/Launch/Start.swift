import CJobKitSystem
import Foundation
import JobModel

#if canImport(Glibc)
import Glibc
#endif

/// Starting jobs: the records first, committed, then the processes, made once the call has
/// answered (see `launchNew`), a throttle's worth at a time.
extension JobManager {
    /// Starts a local process job: a parent (`BackgroundJob`, Location `localhost`) with one
    /// child that runs the process, and returns the parent at once: `Running`, or
    /// `NotStarted` while it waits for its queue or the jobs it depends on (`options`).
    ///
    /// A program or directory that does not exist is not an error here: the child ends
    /// `Failed` with a reason that says so. A job named in `dependsOn` that does not exist is.
    public func start(_ spec: ProcessSpec, name: String? = nil, options: StartOptions = StartOptions()) throws(JobError) -> JobInfo {
        try startParent(spec, name: name, type: .backgroundJob, computers: ["localhost"], scheduling: options)
    }

    /// The same, with `stdin` (a descriptor, of a file or a pipe) as the job's standard input
    /// instead of /dev/null. The engine takes the descriptor: it closes it once the job's
    /// supervisor has its own copy, or the job ended without one; and if this throws.
    public func start(_ spec: ProcessSpec, name: String? = nil, options: StartOptions = StartOptions(), stdin: Int32)
        throws(JobError) -> JobInfo
    {
        do {
            return try startParent(
                spec, name: name, type: .backgroundJob, computers: ["localhost"], scheduling: options, stdin: stdin)
        } catch {
            close(stdin)
            throw error
        }
    }

    /// The job's stdin is its supervisor's now (or it never will be): this side lets go of it.
    func releaseStdin(_ id: Int) {
        if let fd = ownedStdin.removeValue(forKey: id) { close(fd) }
    }

    /// `invoke --as-job`: a parent (`RemoteJob`) with one child per computer, in the order
    /// given, each running the command there; returns the parent at once. `localhost` runs
    /// locally; any other computer is reached with the system's OpenSSH client, through a
    /// ControlMaster per computer that the engine keeps (see `InvokeOptions`). At most
    /// `options.throttle` children connect or run at once; the rest wait `NotStarted`.
    ///
    /// A computer that cannot be reached is not an error here: its child ends `Failed`, with
    /// ssh's message as Reason, and the others go on.
    public func invoke(
        _ spec: ProcessSpec, on computers: [String], name: String? = nil, options: InvokeOptions = InvokeOptions(),
        scheduling: StartOptions = StartOptions()
    ) throws(JobError) -> JobInfo {
        guard !computers.isEmpty else { throw JobError(.invalidArgument, "name at least one computer") }
        guard options.throttle >= 1 else {
            throw JobError(.invalidArgument, "the throttle must be 1 or more, not \(options.throttle)")
        }
        for computer in computers { try Self.checkedComputer(computer, sshConfigFile: options.sshConfigFile) }
        return try startParent(spec, name: name, type: .remoteJob, computers: computers, options: options, scheduling: scheduling)
    }

    /// A computer to reach with ssh, and the ssh configuration to reach it with, checked.
    static func checkedComputer(_ computer: String, sshConfigFile: String?) throws(JobError) {
        // ssh would read a leading '-' as an option, and blanks or commas would not survive
        // being listed in Location.
        if computer.isEmpty || computer.hasPrefix("-") || computer.contains(where: { $0.isWhitespace || $0 == "," }) {
            throw JobError(.invalidArgument, "not a computer name: '\(JobError.shown(computer))'")
        }
        if let file = sshConfigFile {
            // ssh runs elsewhere (in "/"), and reads the file through an Include line.
            guard file.hasPrefix("/") else {
                throw JobError(.invalidArgument, "the ssh config file must be given by its absolute path, not \(file)")
            }
            guard access(file, R_OK) == 0 else {
                throw JobError(.invalidArgument, "cannot read the ssh config file \(file): \(errnoMessage())")
            }
            guard SSHLink.canInclude(file) else { throw SSHLink.unusable(file) }
        }
    }

    /// A parent and its children, inserted, the children that start now launched. `sessions`:
    /// the children run in these sessions (one each, on their computers), and start as the
    /// scheduler finds their sessions free.
    func startParent(
        _ spec: ProcessSpec, name: String?, type: JobType, computers: [String], options: InvokeOptions? = nil,
        scheduling: StartOptions, stdin: Int32? = nil, sessions: [Int]? = nil
    ) throws(JobError) -> JobInfo {
        try checkOpen()
        let (queue, dependsOn, waits) = try checked(scheduling)
        let now = Date()
        let throttle = options?.throttle ?? computers.count
        let room = table.room(inQueue: queue, limits: queueLimits) ?? Int.max
        let startNow = waits ? 0 : min(throttle, room, computers.count)
        // In sessions, a child starts at once if its session is free (and it is the first of
        // this job's for it): the others wait for the scheduler.
        var free = sessions.map { Set($0.filter { table.isFree(session: $0) }) } ?? []
        let plan = LaunchPlan(spec: spec, options: options ?? InvokeOptions(throttle: throttle))
        var parent = JobRecord(
            id: 0, instanceId: .random(), name: name ?? "", type: type, state: startNow > 0 ? .running : .notStarted,
            location: computers.joined(separator: ","), command: spec.commandText, beginTime: startNow > 0 ? now : nil)
        (parent.queue, parent.dependsOn, parent.throttle, parent.launch) = (queue, dependsOn, throttle, try plan.encoded())
        parent.dependenciesMet = !dependsOn.isEmpty && !waits
        var starting = 0
        let children = computers.enumerated().map { index, computer in
            let session = sessions?[index]
            let starts = starting < startNow && (session.map { free.remove($0) != nil } ?? true)
            if starts { starting += 1 }
            var child = JobRecord(
                id: 0, instanceId: .random(), name: "", type: type, state: starts ? .running : .notStarted,
                location: computer, command: parent.command, parentId: 0, beginTime: starts ? now : nil,
                program: session != nil ? nil : isLocal(computer) ? spec.argv.first : "ssh",
                workingDirectory: spec.workingDirectory)
            (child.queue, child.retries, child.sessionId) = (queue, scheduling.retry, session)
            return child
        }
        if starting == 0 { (parent.state, parent.beginTime) = (.notStarted, nil) }
        let job = Supervisor.Job(
            argv: spec.argv, workingDirectory: spec.workingDirectory, environment: spec.environment,
            mergeError: spec.mergeError, stdin: stdin)
        let early = options == nil && sessions == nil && startNow == 1
        let inserted = try insertStarting([parent] + children, plan: plan, early: early ? job : nil)
        let parentId = inserted[0].id
        if let stdin, let child = inserted.last { ownedStdin[child.id] = stdin }
        if waits {
            table.block(parentId)
            // Every job it waits for may have ended already: then it is decided now.
            try? persist(releaseDependents(of: dependsOn))
        }
        return try startedJob(parentId)
    }

    /// Inserts a new family and has its children that start now launched once the call has
    /// answered. `early`: the one child's supervisor, asked of the fork server before the
    /// commit, so that it is made while the database writes: both are on every job's path,
    /// and neither needs the other. An engine that dies in between leaves a job no database
    /// knows: the next one stops it and skips its ids (`stopOrphans`).
    private func insertStarting(_ records: [JobRecord], plan: LaunchPlan, early job: Supervisor.Job?) throws(JobError) -> [JobRecord] {
        var early: Int?
        let inserted: [JobRecord]
        do {
            inserted = try withUnsaved { pending throws(JobError) in
                try store.insert(records, environment: plan.spec.environment, alsoSaving: pending) { records in
                    guard let job, records.count == 2, let child = records.last, isLocal(child.location),
                        (try? supervisor.ask(child.id, job)) == true
                    else { return false }
                    early = child.id
                    return true
                }
            }
        } catch {
            if let early, let job {
                // It must not run: collected like the others, and ended at once.
                abandoned.append((early, job))
                workContinuation.yield(.launch)
            }
            throw error
        }
        added(inserted, plan: plan)
        if let early, let job { asked.append((early, job)) }
        toLaunch.append((inserted.dropFirst().filter { $0.state == .running && $0.id != early }.map(\.id), plan))
        workContinuation.yield(.launch)
        return inserted
    }

    /// A job just made, as it is now: in the table, or, if it ended at once (a dependency
    /// that had failed) and was committed, in the database.
    func startedJob(_ id: Int) throws(JobError) -> JobInfo {
        guard let job = table.info(id) ?? history.job(withId: id) else {
            throw JobError(.storage, "job \(id) was made but cannot be read back from the job database")
        }
        return job
    }

    /// A queue name as given, checked: it is shown in tables and typed on command lines.
    static func checkedQueueName(_ name: String) throws(JobError) -> String {
        let trimmed = name.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty, trimmed.count <= 100,
            !trimmed.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F || "*?[],".unicodeScalars.contains($0) })
        else {
            throw JobError(.invalidArgument, "not a queue name: '\(JobError.shown(name))' (use letters, digits and punctuation other than * ? [ ] ,)")
        }
        return trimmed
    }

    /// Starts the children `start` and `invoke` made, unless they were stopped meanwhile, and
    /// collects the supervisors asked of the fork server.
    func launchNew() async {
        var changed: [JobRecord] = []
        let batches = toLaunch
        toLaunch.removeAll()
        // What this launches is collected below: no further turn for it.
        collectRequested = true
        for (ids, plan) in batches {
            for id in ids {
                guard let child = table[id], !child.state.isFinished else { continue }
                if child.stopRequested {
                    releaseStdin(id)
                    changed += table.leafEnded(id, outcome: .cancelled, at: Date(), recorded: 0)
                } else {
                    changed += launch(id, plan: plan)
                }
            }
        }
        collectRequested = false
        // All asked before any answer is read: the fork server forks them one after another
        // instead of waiting for this side between each.
        // Only what the slots do not hold is committed here: a child begun and asked of the
        // fork server is (see `isRecordedBySlot`), and the ends announced meanwhile go with
        // the next flush, a transaction for many of them instead of one per child.
        if !changed.isEmpty { try? persist(changed) }
        let collected = await collectAsked()
        let followed = collected + schedule(after: changed + collected)
        if !followed.isEmpty { try? persist(followed) }
    }

    /// Starts a child that has its slot. A remote one whose computer's login shell is not
    /// known yet, but whose master answers, first asks it (in `run()`, holding up nobody).
    func launch(_ id: Int, plan: LaunchPlan) -> [JobRecord] {
        guard let child = table[id] else { return [] }
        if let session = child.sessionId { return launchInSession(id, session: session, plan: plan) }
        let spec = child.type == .psTaskJob ? childSpec(child, plan: plan) : plan.spec
        if isLocal(child.location) {
            return spawnLeaf(
                id, Supervisor.Job(
                    argv: spec.argv, workingDirectory: spec.workingDirectory, environment: spec.environment,
                    mergeError: spec.mergeError, stdin: ownedStdin[id]))
        }
        if plan.options.detached { return launchDetached(id, plan: plan) }
        let link = SSHLink.make(host: child.location, configFile: plan.options.sshConfigFile, home: home)
        // The socket file, not a connection to it: that would cost the master work per job. A
        // socket left by a dead master is ssh's to replace; the shell asked of it still holds.
        guard let master = link.masterIdentity else {
            // No master: this job's ssh becomes it. The shell is not known yet: the form any
            // shell takes.
            return spawnRemote(id, link: link, plan: plan, form: .viaSh)
        }
        if let known = shellForms[link.controlPath], known.master == master {
            return spawnRemote(id, link: link, plan: plan, form: known.form, throughMaster: true)
        }
        workContinuation.yield(.connect(id))
        return []
    }

    /// Starts a leaf's supervisor: asked of the fork server, whose answer is awaited in a turn
    /// of its own (`launchNew`), or, with no fork server, spawned here.
    func spawnLeaf(_ id: Int, _ given: Supervisor.Job) -> [JobRecord] {
        var job = given
        // A run after the first goes on from what the earlier ones wrote.
        job.attempt = table[id]?.attempt ?? 1
        job.append = job.append || job.attempt > 1
        // A foreach's child runs in one of its lanes: an idle one if there is, else a new
        // one that it starts.
        let lane = laneParent(of: id, job)
        if let lane, supervisor.dispatch(id, job, parent: lane, monitor: monitor) { return [] }
        if lane != nil { job.lane = Supervisor.LanePipes.make() }
        do {
            let sent = try supervisor.ask(id, job)
            // Sent, the lane's ends travel in the request; not sent, there is no lane.
            job.lane?.closeLaneEnds()
            if sent {
                asked.append((id, job))
                requestCollect()
                return []
            }
            job.lane?.closeEngineEnds()
            job.lane = nil
            defer { releaseStdin(id) }
            let (pid, pidfd) = try supervisor.spawnDirectly(id, job)
            return monitor.watch(id: id, pid: pid, pidfd: pidfd) ? [] : endProcessLeaf(id)
        } catch {
            if let pipes = job.lane {
                pipes.closeLaneEnds()
                pipes.closeEngineEnds()
            }
            releaseStdin(id)
            return table.leafEnded(id, outcome: .failed(error.message), at: Date(), recorded: 0)
        }
    }

    /// The foreach whose lanes run this child, if it runs in one: a foreach's child run here,
    /// as a plain process (no stdin of its own, no master, no session).
    private func laneParent(of id: Int, _ job: Supervisor.Job) -> Int? {
        guard let child = table[id], child.type == .psTaskJob, child.input != nil, let parentId = child.parentId,
            job.stdin == nil, job.throughMaster == nil, !job.holdStdin, !job.inSession, !job.onChannel, !job.nullOutput
        else { return nil }
        return parentId
    }

    /// Makes sure a turn of `launchNew` comes to collect what was asked.
    func requestCollect() {
        guard !collectRequested else { return }
        collectRequested = true
        workContinuation.yield(.launch)
    }

    /// Awaits the supervisors asked for and not collected yet (off the actor: the fork server's
    /// answers are read on a queue of their own), watches them, and ends the abandoned.
    func collectAsked() async -> [JobRecord] {
        let all = asked
        let dropped = abandoned
        asked.removeAll()
        abandoned.removeAll()
        guard !all.isEmpty || !dropped.isEmpty else { return [] }
        let answers = await supervisor.collect(all + dropped)
        // Each has its supervisor now, or never will: its stdin is not this side's to hold.
        for (id, _) in answers { releaseStdin(id) }
        for ((_, answer), (_, job)) in zip(answers.suffix(dropped.count), dropped) {
            // No more jobs for a lane made for it.
            job.lane?.closeEngineEnds()
            // SIGUSR1: the supervisor kills the job's group at once, then ends.
            guard case .success(let spawned) = answer else { continue }
            kill(spawned.pid, SIGUSR1)
            if let pidfd = spawned.pidfd { close(pidfd) }
        }
        var changed: [JobRecord] = []
        for ((id, answer), (_, job)) in zip(answers.prefix(all.count), all) {
            switch answer {
            case .success(let (pid, pidfd)):
                let pipes = job.lane
                let watched =
                    if let pipes, let parent = table[id]?.parentId {
                        monitor.watchLane(id: id, pid: pid, pidfd: pidfd, pipes: pipes, parent: parent)
                    } else {
                        monitor.watch(id: id, pid: pid, pidfd: pidfd)
                    }
                guard watched else {
                    changed += endProcessLeaf(id)
                    continue
                }
                // Stopped before now: the stop's signal found no process to reach.
                if table[id]?.stopRequested == true { monitor.signal(id: id, SIGTERM) }
            case .failure(let error):
                job.lane?.closeEngineEnds()
                changed += table.leafEnded(id, outcome: .failed(error.message), at: Date(), recorded: 0)
            }
        }
        return changed
    }

    /// Where a job's output files are: `<prefix>.stdout`, `<prefix>.stderr`, `<prefix>.index`.
    nonisolated func outputPrefix(_ id: Int) -> String { supervisor.prefix(id) }

    /// A process job's main process id, which is also its process group's, once it started.
    public nonisolated func processId(ofJob id: Int) -> Int32? { supervisor.pids(id)?.job }
}
