import CJobKitSystem
import Foundation
import JobModel
import JobOutput

#if canImport(Glibc)
import Glibc
#endif

/// Sessions (PowerShell's PSSessions): a long-lived shell in which the commands of
/// `invoke(_:inSessions:)` run one after another and keep its state. The shell runs under a
/// supervisor of its own (in `sessions/run`, with the sessions' own slots and locks), like a
/// job, so that it outlives the engine; it reads its commands from a FIFO in its directory,
/// which the next engine can open again. Each command is a child job whose supervisor asks the
/// shell for it (see Supervisor/session.c): its output, status, stop and suspend are a job's.
extension JobManager {
    /// Opens a session: its shell starts now, and takes commands from `invoke(_:inSessions:)`.
    ///
    /// On another computer (`options.computer`), the shell runs there, through the host's
    /// ControlMaster (made by this session's ssh if there is none): this waits until it runs.
    public func newSession(_ options: SessionOptions = SessionOptions()) async throws(JobError) -> SessionInfo {
        try checkOpen()
        if let name = options.name { _ = try Self.checkedSessionName(name) }
        let local = isLocal(options.computer)
        if !local { try Self.checkedComputer(options.computer, sshConfigFile: options.sshConfigFile) }
        let shell = local ? try Self.sessionShell(options.shell, path: options.environment["PATH"]) : options.shell
        var isDirectory: ObjCBool = false
        guard !local || FileManager.default.fileExists(atPath: options.workingDirectory, isDirectory: &isDirectory),
            !local || isDirectory.boolValue
        else { throw JobError(.invalidArgument, "no such directory: \(options.workingDirectory)") }
        var session = try store.insertSession(
            SessionRecord(
                id: 0, name: options.name ?? "", computer: local ? "localhost" : options.computer, shell: shell, state: .opened,
                reason: nil, workingDirectory: local ? options.workingDirectory : "~", sshConfig: options.sshConfigFile))
        // The functions its commands are run with are POSIX sh: fish, csh and rc cannot take them.
        if local, (try? await runToEnd([shell, "-c", RemoteCommand.posixProbe], environment: options.environment))
            != RemoteCommand.posixProbeAnswer
        {
            try? store.deleteSession(session.id)
            throw JobError(.invalidArgument, "\(shell) is not a POSIX shell; a session needs one (sh, bash, zsh, ksh, dash)")
        }
        do throws(JobError) {
            if local {
                try startShell(session, environment: options.environment)
            } else {
                session = try await startRemoteShell(session, environment: options.environment)
                try store.saveSession(session)
            }
        } catch {
            try? store.deleteSession(session.id)
            removeSessionDirectory(session.id)
            throw error
        }
        sessionRecords[session.id] = session
        return info(session)
    }

    /// Every session, by id.
    public func sessions() -> [SessionInfo] {
        sessionRecords.values.sorted { $0.id < $1.id }.map(info)
    }

    /// The sessions the words name (Ids, or Names with wildcards), and an error for each word
    /// that named none.
    public func resolveSessions(_ words: [String]) -> (sessions: [SessionInfo], errors: [JobError]) {
        SessionSelection.resolve(words, in: sessions())
    }

    /// Ends the sessions named: a command running in one is stopped first (and those waiting
    /// for it), then its shell ends, and the session is gone. Returns them as they ended
    /// (`Closed`).
    public func removeSessions(_ words: [String], grace: Duration = Defaults.grace) async throws(JobError) -> [SessionInfo] {
        try checkOpen()
        let (found, errors) = resolveSessions(words)
        if let error = errors.first { throw error }
        var closed: [SessionInfo] = []
        for session in found {
            guard var record = sessionRecords[session.id] else { continue }
            closingSessions.insert(record.id)
            let commands = table.ids.filter { table[$0]?.sessionId == record.id && table[$0]?.state.isFinished == false }
            try await stopJobs(commands, grace: grace)
            await endShell(record.id, grace: grace)
            closingSessions.remove(record.id)
            try store.deleteSession(record.id)
            removeSessionDirectory(record.id)
            sessionRecords.removeValue(forKey: record.id)
            record.state = .closed
            record.reason = nil
            closed.append(info(record))
        }
        return closed
    }

    /// `invoke` in sessions: a parent (`RemoteJob`) with a child per session, in the order
    /// given, each running the command (`spec`'s command text) in its session's shell. A
    /// session runs one command at a time, in id order; a child waiting for its session is
    /// `NotStarted`. A session that is not `Opened` refuses new commands.
    public func invoke(
        _ spec: ProcessSpec, inSessions words: [String], name: String? = nil, scheduling: StartOptions = StartOptions()
    ) throws(JobError) -> JobInfo {
        guard !words.isEmpty else { throw JobError(.invalidArgument, "name at least one session") }
        let (found, errors) = resolveSessions(words)
        if let error = errors.first { throw error }
        guard !found.isEmpty else { throw JobError(.notFound, "no session matches \(words.joined(separator: ","))") }
        if let unusable = found.first(where: { $0.state != .opened }) {
            throw JobError(
                .refused,
                "session '\(unusable.name)' is \(unusable.state.rawValue.lowercased())\(unusable.reason.map { ": \($0)" } ?? ""); open a new one with 'job session new'"
            )
        }
        return try startParent(
            spec, name: name, type: .remoteJob, computers: found.map(\.computerName), scheduling: scheduling,
            sessions: found.map(\.id))
    }

    // MARK: The shell

    /// Where a session's FIFO and its commands' files are.
    func sessionDirectory(_ id: Int) -> String { sessionSupervisor.jobsDirectory + "/\(id)" }

    /// Makes the session's directory here, with these FIFOs in it (kept if they are there).
    private func makeSessionDirectory(_ id: Int, fifos: [String]) throws(JobError) -> String {
        let directory = sessionDirectory(id)
        do {
            try FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw JobError(.storage, "cannot make the session's directory \(directory): \(error.localizedDescription)")
        }
        for name in fifos where mkfifo(directory + "/" + name, 0o600) != 0 && errno != EEXIST {
            throw JobError(.storage, "cannot make the session's FIFO \(directory)/\(name): \(errnoMessage())")
        }
        return directory
    }

    private func removeSessionDirectory(_ id: Int) {
        try? FileManager.default.removeItem(atPath: sessionDirectory(id))
        sessionSupervisor.removeFiles(id)
    }

    /// Starts a session's shell under its supervisor, reading from the session's FIFO, and
    /// gives it the two functions its commands are run with.
    private func startShell(_ session: SessionRecord, environment given: [String: String]) throws(JobError) {
        let directory = try makeSessionDirectory(session.id, fifos: ["in"])
        let input = directory + "/in"
        // Read and write: the shell holds a writer too, so it never reads an end of file when
        // an engine goes; the lines wait in the FIFO for it.
        let fd = open(input, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw JobError(.storage, "cannot open the session's FIFO \(input): \(errnoMessage())") }
        defer { close(fd) }
        var environment = given
        // No prompts, no start-up file, no mail check, no history: nobody types here.
        for key in ["ENV", "MAIL", "MAILPATH", "PROMPT_COMMAND"] { environment.removeValue(forKey: key) }
        environment["PS1"] = ""
        environment["PS2"] = ""
        environment["HISTFILE"] = ""
        let job = Supervisor.Job(
            argv: [session.shell, "-i", "+m"], workingDirectory: session.workingDirectory, environment: environment,
            stdin: fd, nullOutput: true)
        let (pid, _) = try sessionSupervisor.spawnDirectly(session.id, job)
        let bootstrap = Self.bootstrap(directory: directory)
        // Shorter than PIPE_BUF, so one write, whole (a FIFO whose reader is being born
        // cannot be full).
        let written = bootstrap.utf8CString.withUnsafeBufferPointer { write(fd, $0.baseAddress, $0.count - 1) }
        guard written == bootstrap.utf8.count else {
            kill(pid, SIGUSR1)
            throw JobError(.storage, "cannot write to the session's FIFO \(input): \(errnoMessage())")
        }
        // Its commands need the shell's pid: it is there once the supervisor started it (a
        // moment), or the shell could not start.
        guard sessionSupervisor.supervisorPid(session.id) != nil, sessionSupervisor.pids(session.id) != nil else {
            let why = sessionSupervisor.ending(session.id).map { Self.shellEnd($0.outcome, of: session, supervisor: sessionSupervisor) }
            throw JobError(.supervisor, "the session could not be opened: \(why ?? "its shell did not start")")
        }
        sessionMonitor.watch(id: session.id, pid: pid)
    }

    /// What the shell is given first. `_jobkit_run N` dot-sources command N's file with its
    /// own stdin (/dev/null), stdout and stderr (FIFOs its supervisor reads); `_jobkit_report N
    /// STATUS` writes the status to its FIFO (opened read-write: it never waits for a reader).
    /// `>|`, so that a command's `set -C` does not refuse the FIFOs.
    static func bootstrap(directory: String) -> String {
        let d = ShellQuoting.singleQuoted(directory)
        return """
            _jobkit_run() { . \(d)/"$1".cmd </dev/null >|\(d)/"$1".out 2>|\(d)/"$1".err; }
            _jobkit_report() { command echo "$2" 1<>\(d)/"$1".status; }

            """
    }

    /// A shell for a session: a path that can be run, or a name found in `path`.
    static func sessionShell(_ given: String, path: String?) throws(JobError) -> String {
        if given.contains("/") {
            guard access(given, X_OK) == 0 else {
                throw JobError(.invalidArgument, "cannot run \(given) as the session's shell: \(errnoMessage())")
            }
            return given
        }
        for dir in (path ?? "/usr/bin:/bin").split(separator: ":") where access("\(dir)/\(given)", X_OK) == 0 {
            return "\(dir)/\(given)"
        }
        throw JobError(.invalidArgument, "no such shell: \(JobError.shown(given)) (give its path with --shell)")
    }

    static func checkedSessionName(_ name: String) throws(JobError) -> String {
        guard !name.isEmpty, name.count <= 100, Int(name) == nil,
            !name.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F || "*?[],".unicodeScalars.contains($0) })
        else {
            throw JobError(
                .invalidArgument,
                "not a session name: '\(JobError.shown(name))' (not a number; letters, digits and punctuation other than * ? [ ] ,)")
        }
        return name
    }

    /// Ends a session's shell: SIGHUP to it (an interactive shell ignores SIGTERM) and what
    /// it left running; SIGKILL to all of them if that is not enough within `grace`.
    private func endShell(_ id: Int, grace: Duration) async {
        guard sessionMonitor.signal(id: id, SIGHUP) else { return }
        if await waitForShell(id, timeout: grace) { return }
        _ = sessionMonitor.signal(id: id, SIGUSR1)
        _ = await waitForShell(id, timeout: .seconds(5))
    }

    /// Whether the session's supervisor exited within `timeout`.
    private func waitForShell(_ id: Int, timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while sessionSupervisor.isAlive(id) {
            if ContinuousClock.now >= deadline { return false }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return true
    }

    /// Starts a session's shell on its computer (see `RemoteSession`) and waits until it runs:
    /// the session's script says the shell's pid once it started it, the first line on its
    /// channel's stdout. The channel's three streams are FIFOs in the session's directory
    /// here, which its commands' supervisors write and read (see Supervisor/channel.c).
    private func startRemoteShell(_ given: SessionRecord, environment: [String: String]) async throws(JobError) -> SessionRecord {
        var session = given
        let link = SSHLink.make(host: session.computer, configFile: session.sshConfig, home: home)
        try prepareSSH(link)
        let channel = try makeSessionDirectory(session.id, fifos: ["in", "out", "err"])
        // Opened before the supervisor is, so that the pid line waits here for this reader.
        let pidLine = open(channel + "/out", O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard pidLine >= 0 else { throw JobError(.storage, "cannot open the session's FIFO \(channel)/out: \(errnoMessage())") }
        defer { close(pidLine) }
        let directory = RemoteSession.directory()
        let line = RemoteSession.line(
            RemoteSession.sessionScript,
            [directory, session.shell, RemoteSession.bootstrap(directory: directory), RemoteCommand.posixProbe])
        let job = Supervisor.Job(
            argv: link.jobArguments(line: line, log: sessionSupervisor.prefix(session.id) + ".ssh"), workingDirectory: "/",
            environment: environment, holdStdin: true,
            throughMaster: link.masterIdentity != nil ? Supervisor.ThroughMaster(socket: link.controlPath, command: line) : nil,
            channel: channel)
        let (pid, _) = try sessionSupervisor.spawnDirectly(session.id, job)
        var text: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64)
        // ssh's ConnectTimeout is 30 s: the shell runs by then, or the supervisor has ended.
        let deadline = ContinuousClock.now + .seconds(45)
        while ContinuousClock.now < deadline {
            let n = buffer.withUnsafeMutableBytes { read(pidLine, $0.baseAddress, $0.count) }
            if n > 0 { text += buffer[0..<n] }
            if let newline = text.firstIndex(of: UInt8(ascii: "\n")) {
                guard let shellPid = Int(String(decoding: text[..<newline], as: UTF8.self)) else { break }
                session.remoteDirectory = directory
                session.remotePid = shellPid
                sessionMonitor.watch(id: session.id, pid: pid)
                return session
            }
            if !sessionSupervisor.isAlive(session.id) { break }
            try? await Task.sleep(for: .milliseconds(10))
        }
        if sessionSupervisor.isAlive(session.id) { kill(pid, SIGUSR1) }
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
        let why = sessionSupervisor.ending(session.id).map { Self.shellEnd($0.outcome, of: session, supervisor: sessionSupervisor) } ?? "it did not start in 45 s"
        throw JobError(.unreachable, "the session could not be opened: \(why)")
    }

    // MARK: Commands

    /// Starts a child in its session: its supervisor asks the session's shell for it (a
    /// remote one's through the session's channel, see Supervisor/channel.c).
    func launchInSession(_ id: Int, session sessionId: Int, plan: LaunchPlan) -> [JobRecord] {
        guard let child = table[id] else { return [] }
        guard let session = sessionRecords[sessionId], session.state == .opened else {
            let why = sessionRecords[sessionId]?.reason.map { ": \($0)" } ?? ""
            return table.leafEnded(id, outcome: .failed("session \(sessionId) is not open\(why)"), at: Date(), recorded: 0)
        }
        // Its shell may have ended a moment ago, its end not yet heard of but in its slot.
        if let ending = sessionSupervisor.ending(sessionId) {
            let why = Self.shellEnd(ending.outcome, of: session, supervisor: sessionSupervisor)
            return table.leafEnded(id, outcome: .notRun("session '\(session.name)' is broken: \(why)"), at: Date(), recorded: 0)
        }
        guard let pids = sessionSupervisor.pids(sessionId) else {
            return table.leafEnded(id, outcome: .failed("session '\(session.name)' has no shell"), at: Date(), recorded: 0)
        }
        if session.remoteDirectory != nil {
            // Its commands go through its channel, whose FIFOs are here (an earlier version of
            // job opened a channel for each command, and made none).
            let channel = sessionDirectory(sessionId)
            guard access(channel + "/in", F_OK) == 0 else {
                let why = "session '\(session.name)' was opened by an earlier version of job and takes no more commands; open a new one"
                return table.leafEnded(id, outcome: .failed(why), at: Date(), recorded: 0)
            }
            return spawnLeaf(
                id,
                Supervisor.Job(
                    argv: [channel, String(pids.supervisor), RemoteSession.escaped(child.command)], workingDirectory: "/",
                    environment: [:], onChannel: true))
        }
        let args = [
            sessionDirectory(sessionId), String(pids.job), String(pids.supervisor),
            Supervisor.slotsPath(jobsDirectory: sessionSupervisor.jobsDirectory), String(sessionId), child.command,
        ]
        return spawnLeaf(id, Supervisor.Job(argv: args, workingDirectory: "/", environment: [:], inSession: true))
    }

    /// A remote session's command whose supervisor died without a word (killed): its
    /// processes on the host are out of this engine's reach but not of the session's script,
    /// which is asked to end them as after a stop's grace, so that the session's next command
    /// does not wait behind them for good.
    func abandonOnChannel(_ id: Int) {
        guard let sessionId = table[id]?.sessionId, sessionRecords[sessionId]?.remoteDirectory != nil else { return }
        let fd = open(sessionDirectory(sessionId) + "/in", O_WRONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return }
        defer { close(fd) }
        let line = "k \(id)\n"
        _ = line.utf8CString.withUnsafeBufferPointer { write(fd, $0.baseAddress, $0.count - 1) }
    }

    // MARK: Ends

    /// Sessions whose shells ended: `Broken` (with why), unless being removed; the commands
    /// waiting for them will not run. A remote session's running command ends with it, as its
    /// shell did (its channel is cut: on the host it waits for a status that will not come);
    /// a local one's supervisor sees the shell end by itself.
    func sessionsEnded(_ ids: [Int]) {
        var changed: [JobRecord] = []
        for id in ids {
            guard var session = sessionRecords[id], session.state == .opened, !closingSessions.contains(id) else { continue }
            let ending = sessionSupervisor.ending(id)
            session.state = .broken
            session.reason = ending.map { Self.shellEnd($0.outcome, of: session, supervisor: sessionSupervisor) }
                ?? "its shell ended without a word (was its supervisor killed?)"
            sessionRecords[id] = session
            try? store.saveSession(session)
            changed += failWaiting(inSession: session)
            endCommands(ofBroken: session, ending: ending?.outcome)
        }
        try? persist(changed + schedule(after: changed))
    }

    /// A remote session that broke other than by its shell's exit (whose status its script
    /// hands to the commands waiting, which then end by themselves): its running commands'
    /// channels are cut (on the host each waits for a status that will not come), and once
    /// their supervisors have taken what output there was and exited, they end as the session
    /// did (`sessionOutcomes`, read by `supervisorsExited`).
    func endCommands(ofBroken session: SessionRecord, ending: LeafOutcome?) {
        guard session.remoteDirectory != nil else { return }
        if case .exited(let status)? = ending, status != 255 { return }
        let outcome = LeafOutcome.failed(session.reason ?? "its session broke")
        for leaf in table.ids where table[leaf]?.sessionId == session.id && table[leaf]?.hasNoProcess == false {
            if monitor.signal(id: leaf, SIGUSR1) { sessionOutcomes[leaf] = outcome }
        }
    }

    private func failWaiting(inSession session: SessionRecord) -> [JobRecord] {
        var changed: [JobRecord] = []
        for id in table.ids where table[id]?.sessionId == session.id && table[id]?.state == .notStarted {
            let why = "session '\(session.name)' is broken: \(session.reason ?? "its shell ended")"
            changed += table.leafEnded(id, outcome: .notRun(why), at: Date(), recorded: 0)
        }
        return changed
    }

    /// Why a session's shell ended, in a Reason's words. A remote session's ssh ends 255 when
    /// the connection could not be made or broke: its log, or the master's absence, says which.
    static func shellEnd(_ outcome: LeafOutcome, of session: SessionRecord, supervisor: Supervisor) -> String {
        if session.computer != "localhost", outcome == .exited(255) {
            if let line = SSHLog.reason(path: supervisor.prefix(session.id) + ".ssh") { return "\(session.computer): \(line)" }
            return "\(session.computer): the connection was lost"
        }
        if session.computer != "localhost", outcome == .exited(127) {
            return "its shell exited with status 127 (is there a \(session.shell) on \(session.computer)?)"
        }
        if session.computer != "localhost", outcome == .exited(126) {
            return "\(session.shell) on \(session.computer) is not a POSIX shell; a session needs one (sh, bash, zsh, ksh, dash)"
        }
        switch outcome {
        case .exited(let status): return "its shell exited with status \(status)"
        case .signaled(let signal): return "its shell was killed by signal \(JobTable.signalName(signal))"
        case .couldNotStart(_, let error): return "its shell \(session.shell) could not start: \(String(cString: strerror(error)))"
        case .failed(let reason), .notRun(let reason): return reason
        case .returned, .cancelled: return "its shell ended"
        }
    }

    /// The sessions the last engine left: those whose shell still runs are watched again, the
    /// others are `Broken`.
    static func recoverSessions(_ records: [SessionRecord], supervisor: Supervisor, monitor: ExitMonitor)
        -> [SessionRecord]
    {
        records.map { record in
            var session = record
            guard session.state == .opened else { return session }
            if supervisor.isAlive(session.id), let pids = supervisor.pids(session.id),
                monitor.watch(id: session.id, pid: pids.supervisor)
            {
                return session
            }
            session.state = .broken
            session.reason = supervisor.ending(session.id).map { shellEnd($0.outcome, of: session, supervisor: supervisor) }
                ?? "its shell ended while the engine was away"
            return session
        }
    }

    func info(_ session: SessionRecord) -> SessionInfo {
        SessionInfo(
            id: session.id, name: session.name, computerName: session.computer, state: session.state,
            availability: session.state == .opened && table.isBusy(session: session.id) ? .busy : .available,
            reason: session.reason, shell: session.shell)
    }
}
