import CJobKitSystem
import Foundation
import JobModel

#if canImport(Glibc)
import Glibc
#endif

/// The job engine: PowerShell's background jobs for Swift programs and for `jobd`.
///
/// One engine owns one home directory (a lock file keeps a second one out). It keeps the
/// jobs in a SQLite database and their output in files, so that process jobs outlive it: an
/// engine opened later on the same home finds them running, or finished with their true
/// state, exit code and output.
///
/// The engine needs its `run()` loop running to notice jobs ending and to run thread jobs;
/// `withManager(home:_:)` runs it for the duration of a closure:
///
/// ```swift
/// try await JobManager.withManager(home: "/tmp/jobs") { jobs in
///     let job = try await jobs.start(.shell("make test"))
///     _ = try await jobs.wait([.id(job.id)])
///     let output = try await jobs.receive([.id(job.id)])
///     print(String(decoding: try output.data(), as: UTF8.self))
/// }
/// ```
public actor JobManager {
    public struct Configuration: Sendable {
        /// Where `jobkit-supervisor` is; found automatically when nil (see `Supervisor.locate`).
        public var supervisorPath: String?

        public init(supervisorPath: String? = nil) {
            self.supervisorPath = supervisorPath
        }
    }

    /// The home directory: the database, the engine lock, the job slots, and `jobs/` (output files, locks).
    public nonisolated let home: String
    private let store: JobStore
    private var table: JobTable
    private let supervisor: Supervisor
    private let monitor = ExitMonitor()
    /// Job events, for waiters here and for `ReceiveStream`.
    let hub = EventHub()
    /// Which jobs write, for `ReceiveStream`.
    let outputWatcher: OutputWatcher
    /// The home's lock; -1 once released by `shutdown`.
    private var homeLock: Int32
    /// How each computer's login shell takes the remote wrapper, learnt once per master
    /// (keyed by control socket, with the master's identity).
    private var shellForms: [String: (master: String, form: RemoteCommand.Form)] = [:]
    /// The ssh configurations written (see `SSHLink.layered`), by the user's file ("" for
    /// ssh's own), in a directory made and checked: once per engine, not per job.
    private var sshConfigsWritten = Set<String>()
    /// What `run()` runs as tasks of its own: thread jobs, and remote children connecting.
    private let work: AsyncStream<Work>
    private let workContinuation: AsyncStream<Work>.Continuation
    private var threadStops: [Int: AsyncStream<Void>.Continuation] = [:]
    private var isShutDown = false
    /// Ends of process jobs announced but not yet committed; they go with the next
    /// transaction (see `announceProcessEnds`).
    private var unsaved: [Int: JobRecord] = [:]
    /// Children made by `start` or `invoke` and not started yet: they start once the call has
    /// answered, so that the caller does not wait for the process to be made (a fork server
    /// round trip), and at the latest when the engine shuts down.
    private var toLaunch: [(ids: [Int], plan: LaunchPlan)] = []
    /// Children whose supervisor was asked of the fork server and whose answer is still to
    /// be read (by `collectAsked`): `start`'s child, asked before its commit, and the
    /// children `launchNew` starts, asked all at once.
    private var asked: [(id: Int, job: Supervisor.Job)] = []

    private enum Work: Sendable {
        case thread(ThreadWork)
        /// Children in `toLaunch` wait to start.
        case launch
        case connect(Int)
    }

    private struct ThreadWork: Sendable {
        let id: Int
        let context: JobContext
        let body: JobBody
        let stop: AsyncStream<Void>
    }

    /// Opens the engine on `home` (created if missing), and re-attaches to the jobs it holds.
    ///
    /// Throws `homeInUse` when another engine has the home, `supervisor` when
    /// `jobkit-supervisor` cannot be found, `storage` when the database cannot be opened.
    public init(home: String, configuration: Configuration = Configuration()) throws(JobError) {
        self.home = home
        let executable = try Supervisor.locate(explicit: configuration.supervisorPath)
        let jobsDirectory = home + "/jobs"
        outputWatcher = OutputWatcher(jobsDirectory: jobsDirectory)
        do {
            try FileManager.default.createDirectory(
                atPath: jobsDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw JobError(.storage, "cannot create the job home \(home): \(error.localizedDescription)")
        }
        homeLock = try Self.lockHome(home)
        do {
            let databasePath = home + "/jobs.sqlite"
            if !FileManager.default.fileExists(atPath: databasePath) {
                // Files left without their database belong to no job; ids start again at 1.
                for name in (try? FileManager.default.contentsOfDirectory(atPath: jobsDirectory)) ?? [] {
                    try? FileManager.default.removeItem(atPath: jobsDirectory + "/" + name)
                }
                try? FileManager.default.removeItem(atPath: home + "/slots")
            }
            supervisor = try Supervisor(executable: executable, jobsDirectory: jobsDirectory)
            store = try JobStore(path: databasePath)
            table = JobTable(try store.loadAll())
        } catch {
            close(homeLock)
            throw error
        }
        (work, workContinuation) = AsyncStream.makeStream(of: Work.self)
        do {
            try Self.stopOrphans(store: store, supervisor: supervisor)
        } catch {
            close(homeLock)
            throw error
        }
        let recovered = Self.recover(&table, monitor: monitor, supervisor: supervisor, at: Date())
        try? store.save(recovered)
    }

    deinit {
        workContinuation.finish()
        monitor.shutdown()
        if homeLock >= 0 { close(homeLock) }
    }

    private static func lockHome(_ home: String) throws(JobError) -> Int32 {
        let path = home + "/engine.lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw JobError(.storage, "cannot create \(path): \(errnoMessage())") }
        // A lock released a moment ago can still be held for a moment longer: a process being
        // spawned by another thread shares the descriptor until its exec closes it. Only a
        // lock held for a while means another engine.
        var locked = jobkit_flock(fd, LOCK_EX | LOCK_NB) == 0
        for _ in 0..<50 where !locked {
            usleep(10_000)
            locked = jobkit_flock(fd, LOCK_EX | LOCK_NB) == 0
        }
        guard locked else {
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            close(fd)
            throw JobError(
                .homeInUse, "another engine (pid \(holder ?? "?")) is using \(home); use that one or another home")
        }
        let pid = "\(getpid())\n"
        _ = ftruncate(fd, 0)
        _ = pid.withCString { pwrite(fd, $0, strlen($0), 0) }
        return fd
    }

    // MARK: - Running

    /// Notices jobs ending and runs thread jobs until the engine shuts down or the calling task
    /// is cancelled. Run it once, in a task that lives as long as the engine is used (a
    /// `ServiceGroup` service, a task group child, or `withManager`).
    public func run() async {
        let exits = monitor.exits
        let work = self.work
        // Children that waited for a throttle slot (or were connecting) when the last engine
        // went away.
        try? persist(startWaiting(table.parentsWithWaitingChildren))
        await withDiscardingTaskGroup { group in
            group.addTask {
                for await ids in exits { await self.supervisorsExited(ids) }
            }
            for await item in work {
                switch item {
                case .thread(let thread): group.addTask { await self.runThreadJob(thread) }
                case .launch: group.addTask { await self.launchNew() }
                case .connect(let id): group.addTask { await self.connect(id) }
                }
            }
        }
    }

    /// Opens an engine, runs its loop while `body` runs, then shuts it down. Process jobs
    /// still running are left running, for a later engine to pick up.
    public static func withManager<R: Sendable>(
        home: String, configuration: Configuration = Configuration(),
        isolation: isolated (any Actor)? = #isolation,
        _ body: (JobManager) async throws -> R
    ) async throws -> R {
        let manager = try JobManager(home: home, configuration: configuration)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await manager.run() }
            defer { group.cancelAll() }
            do {
                let result = try await body(manager)
                await manager.shutdown()
                return result
            } catch {
                await manager.shutdown()
                throw error
            }
        }
    }

    /// Stops watching jobs and ends `run()`. Process jobs keep running; thread jobs are
    /// cancelled and end `Failed` (their process is going away). The engine takes no more
    /// requests.
    public func shutdown() {
        guard !isShutDown else { return }
        // Started jobs start, even now: they outlive the engine like the others.
        launchNew()
        isShutDown = true
        try? persist([])
        workContinuation.finish()
        for stop in threadStops.values { stop.finish() }
        monitor.shutdown()
        outputWatcher.shutdown()
        supervisor.shutdown()
        // Here, not in deinit: the last reference may go a moment after the caller is done,
        // and a new engine on the home must not find it still taken.
        close(homeLock)
        homeLock = -1
    }

    private func checkOpen() throws(JobError) {
        if isShutDown { throw JobError(.unavailable, "the job engine has shut down") }
    }

    // MARK: - Start

    /// Starts a local process job: a parent (`BackgroundJob`, Location `localhost`) with one
    /// child that runs the process, and returns the parent at once, `Running`.
    ///
    /// A program or directory that does not exist is not an error here: the child ends
    /// `Failed` with a reason that says so.
    public func start(_ spec: ProcessSpec, name: String? = nil) throws(JobError) -> JobInfo {
        try startParent(spec, name: name, type: .backgroundJob, computers: ["localhost"])
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
        _ spec: ProcessSpec, on computers: [String], name: String? = nil, options: InvokeOptions = InvokeOptions()
    ) throws(JobError) -> JobInfo {
        guard !computers.isEmpty else { throw JobError(.invalidArgument, "name at least one computer") }
        guard options.throttle >= 1 else {
            throw JobError(.invalidArgument, "the throttle must be 1 or more, not \(options.throttle)")
        }
        // ssh would read a leading '-' as an option, and blanks or commas would not survive
        // being listed in Location.
        if let bad = computers.first(where: { $0.isEmpty || $0.hasPrefix("-") || $0.contains { $0.isWhitespace || $0 == "," } }) {
            throw JobError(.invalidArgument, "not a computer name: '\(bad)'")
        }
        if let file = options.sshConfigFile {
            // ssh runs elsewhere (in "/"), and reads the file through an Include line.
            guard file.hasPrefix("/") else {
                throw JobError(.invalidArgument, "the ssh config file must be given by its absolute path, not \(file)")
            }
            guard access(file, R_OK) == 0 else {
                throw JobError(.invalidArgument, "cannot read the ssh config file \(file): \(errnoMessage())")
            }
            guard SSHLink.canInclude(file) else { throw SSHLink.unusable(file) }
        }
        return try startParent(spec, name: name, type: .remoteJob, computers: computers, options: options)
    }

    private func startParent(
        _ spec: ProcessSpec, name: String?, type: JobType, computers: [String], options: InvokeOptions? = nil
    ) throws(JobError) -> JobInfo {
        try checkOpen()
        let now = Date()
        let command = spec.commandText
        let throttle = options?.throttle ?? computers.count
        var parent = JobRecord(
            id: 0, instanceId: .random(), name: name ?? "", type: type, state: .running,
            location: computers.joined(separator: ","), command: command, beginTime: now)
        let plan = LaunchPlan(spec: spec, options: options ?? InvokeOptions(throttle: throttle))
        if options != nil, computers.count > throttle || computers.contains(where: { !isLocal($0) }) {
            parent.launch = try plan.encoded()
        }
        let children = computers.enumerated().map { index, computer in
            let starts = index < throttle
            return JobRecord(
                id: 0, instanceId: .random(), name: "", type: type, state: starts ? .running : .notStarted,
                location: computer, command: command, parentId: 0, beginTime: starts ? now : nil,
                program: isLocal(computer) ? spec.argv.first : "ssh", workingDirectory: spec.workingDirectory)
        }
        // `start`'s one child is asked of the fork server before the commit, so that its
        // supervisor is made while the database writes: both are on every job's path, and
        // neither needs the other. An engine that dies in between leaves a job no database
        // knows: the next one stops it and skips its ids (`stopOrphans`).
        var early: Int?
        let job = Supervisor.Job(argv: spec.argv, workingDirectory: spec.workingDirectory, environment: spec.environment)
        let inserted: [JobRecord]
        do {
            inserted = try store.insert([parent] + children, alsoSaving: takeUnsaved()) { records in
                guard options == nil, records.count == 2, let child = records.last, isLocal(child.location),
                    (try? supervisor.ask(child.id, job)) == true
                else { return false }
                early = child.id
                return true
            }
        } catch {
            if let early { abandon(early, job) }
            throw error
        }
        table.add(inserted)
        if let early { asked.append((early, job)) }
        toLaunch.append((inserted.dropFirst().filter { $0.state == .running && $0.id != early }.map(\.id), plan))
        workContinuation.yield(.launch)
        return table.info(inserted[0].id)!
    }

    /// A child asked for before a commit that failed: it must not run.
    private func abandon(_ id: Int, _ job: Supervisor.Job) {
        guard let spawned = try? supervisor.answer(id, job) else { return }
        // SIGUSR1: the supervisor kills the job's group at once, then ends.
        kill(spawned.pid, SIGUSR1)
        if let pidfd = spawned.pidfd { close(pidfd) }
    }

    /// Jobs a crashed engine started but never committed (it died between asking for a
    /// child's supervisor and committing the child, see `startParent`): they are stopped at
    /// once, their files removed and their ids used up, so that no id is handed out twice.
    private static func stopOrphans(store: JobStore, supervisor: Supervisor) throws(JobError) {
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

    /// Starts the children `start` and `invoke` made, unless they were stopped meanwhile.
    private func launchNew() {
        var changed: [JobRecord] = []
        let batches = toLaunch
        toLaunch.removeAll()
        for (ids, plan) in batches {
            for id in ids {
                guard let child = table[id], !child.state.isFinished else { continue }
                if child.stopRequested {
                    changed += table.leafEnded(id, outcome: .cancelled, at: Date(), recorded: 0)
                } else {
                    changed += launch(id, plan: plan, collectLater: true)
                }
            }
        }
        // All asked before any answer is read: the fork server forks them one after another
        // instead of waiting for this side between each.
        changed += collectAsked()
        changed += schedule(after: changed)
        try? persist(changed)
    }

    /// Starts a child that has its slot. A remote one whose computer's login shell is not
    /// known yet, but whose master answers, first asks it (in `run()`, holding up nobody).
    /// With `collectLater`, a supervisor asked of the fork server is left to `collectAsked`.
    private func launch(_ id: Int, plan: LaunchPlan, collectLater: Bool = false) -> [JobRecord] {
        guard let child = table[id] else { return [] }
        let spec = plan.spec
        if isLocal(child.location) {
            return spawnLeaf(
                id, Supervisor.Job(argv: spec.argv, workingDirectory: spec.workingDirectory, environment: spec.environment),
                collectLater: collectLater)
        }
        let link = SSHLink.make(host: child.location, configFile: plan.options.sshConfigFile, home: home)
        // The socket file, not a connection to it: that would cost the master work per job. A
        // socket left by a dead master is ssh's to replace; the shell asked of it still holds.
        guard let master = link.masterIdentity else {
            // No master: this job's ssh becomes it. The shell is not known yet: the form any
            // shell takes.
            return spawnRemote(id, link: link, plan: plan, form: .viaSh, collectLater: collectLater)
        }
        if let known = shellForms[link.controlPath], known.master == master {
            return spawnRemote(id, link: link, plan: plan, form: known.form, throughMaster: true, collectLater: collectLater)
        }
        workContinuation.yield(.connect(id))
        return []
    }

    private func spawnLeaf(_ id: Int, _ job: Supervisor.Job, collectLater: Bool = false) -> [JobRecord] {
        do {
            if collectLater, try supervisor.ask(id, job) {
                asked.append((id, job))
                return []
            }
            let (pid, pidfd) = try supervisor.spawn(id, job)
            return monitor.watch(id: id, pid: pid, pidfd: pidfd) ? [] : endProcessLeaf(id)
        } catch {
            return table.leafEnded(id, outcome: .failed(error.message), at: Date(), recorded: 0)
        }
    }

    /// The supervisors asked for and not collected yet.
    private func collectAsked() -> [JobRecord] {
        var changed: [JobRecord] = []
        let all = asked
        asked.removeAll()
        for (id, job) in all {
            do {
                let (pid, pidfd) = try supervisor.answer(id, job)
                guard monitor.watch(id: id, pid: pid, pidfd: pidfd) else {
                    changed += endProcessLeaf(id)
                    continue
                }
                // Stopped before now: the stop's signal found no process to reach.
                if table[id]?.stopRequested == true { monitor.signal(id: id, SIGTERM) }
            } catch {
                changed += table.leafEnded(id, outcome: .failed(error.message), at: Date(), recorded: 0)
            }
        }
        return changed
    }

    /// A remote child runs its ssh under a supervisor, like a local child; locally ssh runs in
    /// `/` (the command runs in the remote user's home). `throughMaster`: a master answers,
    /// and the supervisor asks it to run the command itself, with no ssh (ssh runs if the
    /// master has gone by then).
    private func spawnRemote(
        _ id: Int, link: SSHLink, plan: LaunchPlan, form: RemoteCommand.Form, throughMaster: Bool = false,
        collectLater: Bool = false
    ) -> [JobRecord] {
        do {
            try prepareSSH(link)
        } catch {
            return table.leafEnded(id, outcome: .failed(error.message), at: Date(), recorded: 0)
        }
        // The same line either way: the master runs it, or ssh does when no master answers.
        let line = RemoteCommand.line(for: plan.spec.command, form: form)
        return spawnLeaf(
            id,
            Supervisor.Job(
                argv: link.jobArguments(line: line, log: sshLogPath(id)), workingDirectory: "/",
                environment: plan.spec.environment, holdStdin: true,
                throughMaster: throughMaster ? Supervisor.ThroughMaster(socket: link.controlPath, command: line) : nil),
            collectLater: collectLater)
    }

    /// Makes the control sockets' directory and the ssh configuration `link` uses.
    private func prepareSSH(_ link: SSHLink) throws(JobError) {
        let key = link.configFile ?? ""
        guard !sshConfigsWritten.contains(key) else { return }
        if sshConfigsWritten.isEmpty { try SSHLink.prepare(home: home) }
        try link.writeConfig()
        sshConfigsWritten.insert(key)
    }

    /// Asks a computer's login shell (through its master) whether the wrapper can run in it
    /// directly, then starts the child.
    private func connect(_ id: Int) async {
        guard let child = table[id], !child.state.isFinished, let parentId = child.parentId,
            let plan = LaunchPlan.decode(table[parentId]?.launch)
        else { return }
        let link = SSHLink.make(host: child.location, configFile: plan.options.sshConfigFile, home: home)
        var status: Int32?
        if (try? prepareSSH(link)) != nil {
            status = try? await runToEnd(link.probeArguments, environment: plan.spec.environment)
        }
        let form: RemoteCommand.Form = status == RemoteCommand.posixProbeAnswer ? .direct : .viaSh
        // 255: ssh could not ask; it is asked again next time.
        if let status, status != 255, let master = link.masterIdentity {
            shellForms[link.controlPath] = (master, form)
        }
        // Left running without a supervisor, a later engine starts it again.
        guard !isShutDown, let record = table[id], !record.state.isFinished else { return }
        var changed: [JobRecord]
        if record.stopRequested {
            changed = table.leafEnded(id, outcome: .cancelled, at: Date(), recorded: 0)
        } else {
            changed = spawnRemote(id, link: link, plan: plan, form: form, throughMaster: status.map { $0 != 255 } ?? false)
        }
        changed += schedule(after: changed)
        try? persist(changed)
    }

    nonisolated func sshLogPath(_ id: Int) -> String { supervisor.prefix(id) + ".ssh" }

    /// Children of the parents of the leaves that just ended take the slots they freed.
    private func schedule(after changed: [JobRecord]) -> [JobRecord] {
        let parents = Set(changed.filter { $0.state.isFinished && $0.childIds.isEmpty }.compactMap(\.parentId))
        return parents.isEmpty ? [] : startWaiting(parents.sorted())
    }

    /// Starts the waiting children of these parents, in order, while their throttle allows.
    private func startWaiting(_ parentIds: [Int]) -> [JobRecord] {
        var changed: [JobRecord] = []
        for parentId in parentIds {
            // Decoding the plan (its environment) costs more than looking: only for a parent
            // with children still waiting.
            guard let parent = table[parentId], !parent.state.isFinished, parent.launch != nil,
                parent.childIds.contains(where: { table[$0]?.state == .notStarted }),
                let plan = LaunchPlan.decode(parent.launch)
            else { continue }
            var active = parent.childIds.filter { [.running, .stopping].contains(table[$0]?.state) }.count
            for childId in parent.childIds where active < plan.options.throttle && table[childId]?.state == .notStarted {
                changed += table.begin(childId, at: Date())
                let ended = launch(childId, plan: plan)
                changed += ended
                if table[childId]?.state.isFinished == false { active += 1 }
            }
        }
        return changed
    }

    /// Starts a thread job: `body` runs in this process, as a task of `run()`. It has no
    /// children; its Type is `ThreadJob`. Output written through the context is stored like a
    /// process's. A thrown error makes it `Failed` with the error as Reason; `stop` cancels it
    /// (`Stopped`). It cannot outlive this process: an engine opened later shows it `Failed`,
    /// Reason `the process that ran it exited`.
    public func start(name: String? = nil, command: String = "Swift closure", _ body: @escaping JobBody)
        throws(JobError) -> JobInfo
    {
        try checkOpen()
        let record = JobRecord(
            id: 0, instanceId: .random(), name: name ?? "", type: .threadJob, state: .running, location: "localhost",
            command: command, beginTime: Date())
        let inserted = try store.insert([record], alsoSaving: takeUnsaved())
        table.add(inserted)
        let job = inserted[0]
        let writer = OutputWriter(prefix: outputPrefix(job.id))
        let (stop, stopContinuation) = AsyncStream.makeStream(of: Void.self)
        threadStops[job.id] = stopContinuation
        workContinuation.yield(
            .thread(ThreadWork(id: job.id, context: JobContext(id: job.id, name: job.name, writer: writer), body: body, stop: stop)))
        return table.info(job.id)!
    }

    /// Where a job's output files are: `<prefix>.stdout`, `<prefix>.stderr`, `<prefix>.index`.
    nonisolated func outputPrefix(_ id: Int) -> String { supervisor.prefix(id) }

    /// A process job's main process id, which is also its process group's, once it started.
    public nonisolated func processId(ofJob id: Int) -> Int32? { supervisor.pids(id)?.job }

    // MARK: - Jobs ending

    private func supervisorsExited(_ ids: [Int]) {
        let ended = ids.flatMap(endProcessLeaf)
        announceProcessEnds(ended)
        let started = schedule(after: ended)
        if !started.isEmpty { try? persist(started) }
    }

    /// Tells waiters that process jobs ended, and leaves the commit to the engine's next
    /// transaction. Safe because the end is already on disk in the supervisor's slot: an
    /// engine that crashes before committing re-reads it at recovery and comes to the same
    /// state, exit code, time and output count. It takes a commit off every job's path.
    private func announceProcessEnds(_ changed: [JobRecord]) {
        for record in changed { unsaved[record.id] = record }
        announce(changed)
    }

    private func takeUnsaved() -> [JobRecord] {
        defer { unsaved.removeAll() }
        return unsaved.values.compactMap { table[$0.id] }
    }

    private func endProcessLeaf(_ id: Int) -> [JobRecord] {
        Self.endProcessLeaf(id, table: &table, supervisor: supervisor)
    }

    /// Reads how a process leaf ended from what its supervisor left.
    private static func endProcessLeaf(_ id: Int, table: inout JobTable, supervisor: Supervisor) -> [JobRecord] {
        let recorded = OutputFormat.recordCount(prefix: supervisor.prefix(id))
        if let (outcome, time) = supervisor.ending(id) {
            let seen = remoteOutcome(outcome, of: id, table: table, supervisor: supervisor)
            return table.leafEnded(id, outcome: seen, at: time, recorded: recorded)
        }
        let reason = "its supervisor ended without recording how the job ended (was it killed?)"
        return table.leafEnded(id, outcome: .failed(reason), at: Date(), recorded: recorded)
    }

    /// ssh exits 255 both when the connection failed or broke and when the remote command
    /// exited 255: what ssh logged, and whether the master still answers, tell them apart.
    private static func remoteOutcome(_ outcome: LeafOutcome, of id: Int, table: JobTable, supervisor: Supervisor)
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

    private func runThreadJob(_ work: ThreadWork) async {
        let context = work.context
        let body = work.body
        let stop = work.stop
        var outcome: LeafOutcome = .cancelled
        await withTaskGroup(of: LeafOutcome?.self) { group in
            group.addTask {
                do {
                    try await body(context)
                    return .returned
                } catch is CancellationError {
                    return .cancelled
                } catch {
                    return .failed(Self.oneLine(error))
                }
            }
            group.addTask {
                for await _ in stop {}
                return nil
            }
            for await result in group {
                if let result {
                    outcome = result
                    group.cancelAll()
                    break
                }
                group.cancelAll()
            }
        }
        if outcome == .cancelled, table[work.id]?.stopRequested != true {
            outcome = .failed("the engine shut down while it ran")
        }
        threadStops.removeValue(forKey: work.id)?.finish()
        let recorded = context.writer.close()
        try? persist(table.leafEnded(work.id, outcome: outcome, at: Date(), recorded: recorded))
    }

    static func oneLine(_ error: any Error) -> String {
        let text = (error as? JobError)?.message ?? String(describing: error)
        return text.split(whereSeparator: \.isNewline).joined(separator: " ")
    }

    // MARK: - Recovery

    /// Brings every unfinished job up to date after the engine (re)opens: a supervisor that
    /// finished meanwhile is read, a live one is watched again; only what truly ended ends.
    private static func recover(
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

    // MARK: - Get

    /// Every job, parents and children, sorted by id.
    public func all() -> [JobInfo] { table.allInfo }

    /// One job by id, child or parent.
    public func job(_ id: Int) -> JobInfo? { table.info(id) }

    /// `job get`: the jobs the query selects, sorted by id.
    public func get(_ query: JobQuery = JobQuery()) throws(JobError) -> [JobInfo] {
        try query.apply(to: table)
    }

    /// The jobs the selectors name (in order, each once), and an error for each word that
    /// matched nothing: for callers that act on what matched and report the rest.
    public func resolve(_ selectors: [JobSelector]) -> (jobs: [JobInfo], errors: [JobError]) {
        JobSelection.resolvePartially(selectors, in: table)
    }

    private func resolveStrict(_ selectors: [JobSelector]) throws(JobError) -> [JobInfo] {
        try JobSelection.resolve(selectors, in: table)
    }

    // MARK: - Receive

    /// `job receive`: the output not yet received of the selected jobs, as slices to read.
    ///
    /// For a parent, its children's output in ChildJobs order (then its own, which is
    /// empty); `recurse: false` reads only the named job's own output; `locations` keeps
    /// only children at those computers. Without `keep` what is returned counts as received
    /// and is not returned again; with `keep` nothing is consumed. The slices name files, so
    /// the size of the output costs nothing here.
    public func receive(
        _ selectors: [JobSelector], keep: Bool = false, recurse: Bool = true, locations: [String]? = nil
    ) throws(JobError) -> ReceivedOutput {
        let targets = readTargets(try resolveStrict(selectors).map(\.id), recurse: recurse, locations: locations)
        var output = ReceivedOutput()
        var changed: [JobRecord] = []
        for id in targets {
            guard let record = table[id] else { continue }
            if record.childIds.isEmpty {
                let slice = unreceived(record)
                if !slice.isEmpty { output.slices.append(slice) }
                if !keep, let updated = table.markReceived(id, upTo: slice.end) { changed.append(updated) }
            }
            if let failure = failure(of: record) { output.failures.append(failure) }
        }
        try persist(changed)
        return output
    }

    /// A leaf's output from its receive cursor to what is written now (at its end, to what it
    /// wrote in all).
    private func unreceived(_ record: JobRecord) -> OutputSlice {
        let prefix = outputPrefix(record.id)
        let count = record.state.isFinished ? record.recorded : OutputFormat.recordCount(prefix: prefix)
        return OutputSlice(
            jobId: record.id, jobName: record.name, location: record.location, prefix: prefix,
            start: record.received, end: count)
    }

    private func failure(of record: JobRecord) -> JobFailure? {
        guard record.state == .failed, let reason = record.reason else { return nil }
        return JobFailure(jobId: record.id, jobName: record.name, location: record.location, reason: reason)
    }

    /// The jobs whose own output a receive reads, in order: for each selected job, its
    /// children (at `locations`) and then itself, each once.
    private func readTargets(_ ids: [Int], recurse: Bool, locations: [String]?) -> [Int] {
        let wanted = locations.map { Set($0.map { $0.lowercased() }) }
        var result: [Int] = []
        var seen = Set<Int>()
        for id in ids {
            guard let job = table[id] else { continue }
            let candidates = recurse ? job.childIds + [id] : [id]
            for candidate in candidates where seen.insert(candidate).inserted {
                guard let record = table[candidate] else { continue }
                let isLeaf = record.childIds.isEmpty
                if let wanted, isLeaf, !wanted.contains(record.location.lowercased()) { continue }
                // A parent's own output is empty, but its Reason counts when read on its own.
                if !isLeaf && recurse { continue }
                result.append(candidate)
            }
        }
        return result
    }

    /// `job receive --wait`: the output of the selected jobs as it arrives, consumed, until
    /// every one of them has finished and all its output was read. Failed jobs' reasons come
    /// after their output. With `autoRemove`, the selected top-level jobs are removed at the end.
    public nonisolated func receiveStream(
        _ selectors: [JobSelector], recurse: Bool = true, locations: [String]? = nil, autoRemove: Bool = false
    ) -> ReceiveStream {
        ReceiveStream(manager: self, selectors: selectors, recurse: recurse, locations: locations, autoRemove: autoRemove)
    }

    /// For `ReceiveStream`: the leaves it reads and the top-level jobs it may remove.
    func streamTargets(_ selectors: [JobSelector], recurse: Bool, locations: [String]?) throws(JobError)
        -> (leaves: [Int], topLevel: [Int])
    {
        let jobs = try resolveStrict(selectors)
        let targets = readTargets(jobs.map(\.id), recurse: recurse, locations: locations)
        return (targets, jobs.filter(\.isTopLevel).map(\.id))
    }

    /// For `ReceiveStream`: takes (consumes) what the leaves wrote since the last call — of
    /// those `changed` only, all when nil — and says which of them ended, for their failure
    /// reasons, and whether all have.
    func takeStreamBatch(_ leaves: [Int], changed: Set<Int>?, reported: Set<Int>) throws(JobError)
        -> (slices: [OutputSlice], ended: [Int], failures: [JobFailure], done: Bool)
    {
        var slices: [OutputSlice] = []
        var received: [JobRecord] = []
        var ended: [Int] = []
        var failures: [JobFailure] = []
        var done = true
        for id in leaves {
            guard let record = table[id] else { continue }
            let finished = record.state.isFinished
            if !finished { done = false }
            if record.childIds.isEmpty, changed?.contains(id) ?? true {
                let slice = unreceived(record)
                if !slice.isEmpty {
                    slices.append(slice)
                    if let updated = table.markReceived(id, upTo: slice.end) { received.append(updated) }
                }
            }
            if finished, !reported.contains(id) {
                ended.append(id)
                if let failure = failure(of: record) { failures.append(failure) }
            }
        }
        try persist(received)
        return (slices, ended, failures, done)
    }

    /// Every change of the jobs with these ids (all jobs when nil) from now on, pushed as it
    /// is committed; the stream ends when dropped.
    public nonisolated func changes(of ids: Set<Int>? = nil) -> AsyncStream<JobEvent> {
        hub.stream(for: ids)
    }

    // MARK: - Wait

    /// `job wait`: waits until the jobs (every top-level job when none are named) are done —
    /// finished or `Disconnected`; with `force`, finished — and returns them in the order
    /// named. With `any`, returns as soon as one is done: the first, in that order, of those
    /// done. Returns nil when `timeout` runs out, leaving the jobs running; a timeout of zero
    /// checks once. Waiting is pushed by job events, never polled.
    public nonisolated func wait(
        _ selectors: [JobSelector] = [], any: Bool = false, timeout: Duration? = nil, force: Bool = false
    ) async throws(JobError) -> [JobInfo]? {
        let done: @Sendable (JobInfo?) -> Bool = { job in
            guard let job else { return true }
            return force ? job.state.isFinished : job.state.isPersistent
        }
        let (ids, initial, events) = try await waitTargets(selectors)
        guard let final = await waitUntil(ids, any: any, timeout: timeout, done: done, events: events, initial: initial)
        else { return nil }
        let jobs = ids.compactMap { final[$0] }
        if any, let first = jobs.first(where: { done($0) }) { return [first] }
        return jobs
    }

    /// The jobs to wait for, how they are now, and their events from now on: all in one turn
    /// of the actor, so that no change falls between the look and the subscription.
    private func waitTargets(_ selectors: [JobSelector]) throws(JobError)
        -> ([Int], [Int: JobInfo], AsyncStream<JobEvent>)
    {
        let ids = selectors.isEmpty ? table.ids.filter { table[$0]?.parentId == nil } : try resolveStrict(selectors).map(\.id)
        return (ids, snapshot(ids), hub.stream(for: Set(ids)))
    }

    private func snapshot(_ ids: [Int]) -> [Int: JobInfo] {
        var result: [Int: JobInfo] = [:]
        for id in ids { result[id] = table.info(id) }
        return result
    }

    /// Waits until `done` holds for all (or, with `any`, one) of the jobs, re-checked on
    /// every event about them; nil on timeout. A removed job counts as done.
    func waitUntil(
        _ ids: [Int], any: Bool, timeout: Duration?, done: @escaping @Sendable (JobInfo?) -> Bool
    ) async -> [Int: JobInfo]? {
        let events = hub.stream(for: Set(ids))
        return await waitUntil(ids, any: any, timeout: timeout, done: done, events: events, initial: snapshot(ids))
    }

    /// The same, with the event stream subscribed and the first look taken by the caller.
    private nonisolated func waitUntil(
        _ ids: [Int], any: Bool, timeout: Duration?, done: @escaping @Sendable (JobInfo?) -> Bool,
        events: AsyncStream<JobEvent>, initial: [Int: JobInfo]
    ) async -> [Int: JobInfo]? {
        let satisfied: @Sendable ([Int: JobInfo]) -> Bool = { current in
            any ? ids.contains { done(current[$0]) } || ids.isEmpty : ids.allSatisfy { done(current[$0]) }
        }
        if satisfied(initial) { return initial }
        if timeout == .zero { return nil }
        let follow: @Sendable () async -> [Int: JobInfo]? = {
            var current = initial
            for await event in events {
                current[event.job.id] = event.removed ? nil : event.job
                if satisfied(current) { return current }
            }
            return nil
        }
        // Without a timeout, no race to run: following the events here saves a task and a hop.
        guard let timeout else { return await follow() }
        return await withTaskGroup(of: [Int: JobInfo]?.self) { group in
            group.addTask { await follow() }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    // MARK: - Stop

    /// `job stop`: stops the jobs and returns them once they are `Stopped` (or ended some
    /// other way meanwhile). Stopping a parent stops its children. A process job's whole
    /// process group gets SIGTERM, then SIGKILL if it is still there after `grace`; a thread
    /// job is cancelled. Finished jobs are left as they are.
    public func stop(_ selectors: [JobSelector], grace: Duration = .seconds(5)) async throws(JobError) -> [JobInfo] {
        let jobs = try resolveStrict(selectors)
        try await stopJobs(jobs.map(\.id), grace: grace)
        return jobs.compactMap { table.info($0.id) }
    }

    private func stopJobs(_ ids: [Int], grace: Duration) async throws(JobError) {
        let (changed, toSignal) = table.requestStop(ids, at: Date())
        try persist(changed)
        guard !toSignal.isEmpty else { return }
        let finished: @Sendable (JobInfo?) -> Bool = { $0?.state.isFinished ?? true }
        for id in toSignal { signal(id, kill: false) }
        if await waitUntil(toSignal, any: false, timeout: grace, done: finished) != nil { return }
        // Every path ends in SIGKILL: what ignored SIGTERM does not outlive the grace period.
        for id in toSignal where table[id]?.state.isFinished == false { signal(id, kill: true) }
        _ = await waitUntil(toSignal, any: false, timeout: nil, done: finished)
    }

    private func signal(_ id: Int, kill: Bool) {
        guard let record = table[id], !record.state.isFinished else { return }
        if record.type == .threadJob {
            threadStops[id]?.finish()
            return
        }
        if !monitor.signal(id: id, kill ? SIGUSR1 : SIGTERM) {
            // The supervisor is already gone; its exit is on its way to the run loop.
        }
    }

    // MARK: - Remove

    /// `job remove`: deletes jobs and their stored output. A job that is not finished is
    /// refused unless `force`, which stops it first. Child jobs cannot be removed on their own.
    public func remove(_ selectors: [JobSelector], force: Bool = false) async throws(JobError) {
        let jobs = try resolveStrict(selectors)
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
        let ids = table.allInfo.filter { $0.isTopLevel && $0.state == state }.map(\.id)
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
        let ids = table.allInfo.filter { job in
            let command = job.command.trimmingCharacters(in: .whitespaces)
            return job.isTopLevel && (command.lowercased() == trimmed.lowercased() || wildcard.matches(command))
        }.map(\.id)
        try await removeJobs(ids)
        return ids
    }

    private func removeJobs(_ ids: [Int]) async throws(JobError) {
        let running = ids.filter { table[$0]?.state.isFinished == false }
        if !running.isEmpty { try await stopJobs(running, grace: .seconds(5)) }
        var events: [JobEvent] = []
        for id in ids { if let info = table.info(id) { events.append(JobEvent(job: info, removed: true)) } }
        // A finished leaf that recorded nothing has no output files (data comes with its
        // records); only a remote one has an ssh log. No unlink for what cannot be there.
        let leaves = table.leaves(of: ids).compactMap { table[$0] }
        let dropped = table.remove(ids)
        for id in dropped { unsaved.removeValue(forKey: id) }
        try store.delete(dropped)
        for leaf in leaves {
            supervisor.removeFiles(leaf.id, output: leaf.recorded > 0, sshLog: !isLocal(leaf.location))
        }
        hub.publish(events)
    }

    // MARK: - Persistence

    /// Commits changed records (with any announced but uncommitted ends), then tells waiters:
    /// nobody hears of a change that a crash could still undo.
    private func persist(_ changed: [JobRecord]) throws(JobError) {
        let pending = takeUnsaved()
        guard !changed.isEmpty || !pending.isEmpty else { return }
        try store.save(pending + changed)
        announce(changed)
    }

    private func announce(_ changed: [JobRecord]) {
        var ids = Set<Int>()
        var events: [JobEvent] = []
        for record in changed {
            for id in [record.id] + (record.parentId.map { [$0] } ?? []) where ids.insert(id).inserted {
                if let info = table.info(id) { events.append(JobEvent(job: info, removed: false)) }
            }
        }
        hub.publish(events)
    }
}

/// What one receive hands out: slices of output files, and the reasons of failed jobs.
public struct ReceivedOutput: Sendable, Equatable {
    public var slices: [OutputSlice] = []
    public var failures: [JobFailure] = []

    public init(slices: [OutputSlice] = [], failures: [JobFailure] = []) {
        self.slices = slices
        self.failures = failures
    }

    /// Reads every chunk. This holds all the output in memory: for small outputs and tests;
    /// stream large ones with `OutputSliceReader` or `copy(output:error:)`.
    public func chunks(coalesce: Bool = true) throws(JobError) -> [OutputChunk] {
        var result: [OutputChunk] = []
        for slice in slices {
            let reader = try OutputSliceReader(slice: slice, coalesce: coalesce)
            while let chunk = try reader.nextChunk() { result.append(chunk) }
        }
        return result
    }

    /// The bytes of one stream (all jobs, in order), read into memory.
    public func data(_ stream: OutputStreamKind = .output) throws(JobError) -> [UInt8] {
        try chunks().filter { $0.stream == stream }.flatMap(\.data)
    }

    /// Copies the output stream to `output` and the error stream to `error`, in order, one
    /// chunk at a time.
    public func copy(output: Int32, error: Int32) throws(JobError) {
        for slice in slices {
            let reader = try OutputSliceReader(slice: slice)
            while let chunk = try reader.nextChunk() {
                let fd = chunk.stream == .output ? output : error
                var done = 0
                while done < chunk.data.count {
                    let n = chunk.data.withUnsafeBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
                    if n < 0 && errno == EINTR { continue }
                    guard n > 0 else { throw JobError(.storage, "cannot write output: \(errnoMessage())") }
                    done += n
                }
            }
        }
    }
}


extension UUID {
    /// A version 4 UUID from the system's generator (getrandom), without the open, read and
    /// close of /dev/urandom that `UUID()` costs here on every call.
    static func random() -> UUID {
        // Two draws of 64 bits: one system call each (drawing byte by byte cost sixteen).
        var generator = SystemRandomNumberGenerator()
        let words: (UInt64, UInt64) = (generator.next(), generator.next())
        var uuid = unsafeBitCast(words, to: uuid_t.self)
        uuid.6 = (uuid.6 & 0x0F) | 0x40
        uuid.8 = (uuid.8 & 0x3F) | 0x80
        return UUID(uuid: uuid)
    }
}
