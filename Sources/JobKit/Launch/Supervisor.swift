import CJobKitSystem
import Foundation
import JobModel
import JobOutput

#if canImport(Glibc)
import Glibc
#endif

/// Starts supervisors and reads what they leave behind. A supervisor (`jobkit-supervisor`,
/// written in C) runs one job in its own session, writes its output to files and its pids
/// and exit status to the job's slot, and holds the job's byte of the lock file for as long
/// as it lives.
///
/// What every job shares: `slots` (a `jobkit_slot` per job id, see jobkit_abi.h) beside the
/// jobs directory, and `locks` (one byte per job id) in it. A job that prints nothing creates
/// no file at all: on ext4, creating inodes costs more than starting the job.
///
/// The slots are outside the jobs directory because receive streams watch that directory for
/// writes (`OutputWatcher`): every job writes its slot when it starts and when it ends, and
/// each of those writes woke them for nothing.
final class Supervisor: Sendable {
    /// The supervisor program.
    let executable: String
    /// Where the jobs' files, slots and locks are.
    let jobsDirectory: String
    private let slotsFD: Int32
    private let locksFD: Int32
    private let zygote: Zygote
    /// Where the fork server's answers are waited for: off the engine's actor and off the
    /// cooperative pool.
    private let answers = DispatchQueue(label: "jobkit.supervisor.answers")

    static let slotSize = MemoryLayout<jobkit_slot>.size

    init(executable: String, jobsDirectory: String) throws(JobError) {
        self.executable = executable
        self.jobsDirectory = jobsDirectory
        let slots = open(Self.slotsPath(jobsDirectory: jobsDirectory), O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        let locks = open(jobsDirectory + "/locks", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard slots >= 0, locks >= 0 else {
            let message = errnoMessage()
            if slots >= 0 { close(slots) }
            if locks >= 0 { close(locks) }
            throw JobError(.storage, "cannot open the job slots in \(jobsDirectory): \(message)")
        }
        slotsFD = slots
        locksFD = locks
        zygote = Zygote(executable: executable, jobsDirectory: jobsDirectory)
    }

    /// Beside the jobs directory.
    static func slotsPath(jobsDirectory: String) -> String {
        (jobsDirectory as NSString).deletingLastPathComponent + "/slots"
    }

    deinit {
        close(slotsFD)
        close(locksFD)
    }

    /// Ends the fork server; running supervisors are not touched.
    func shutdown() { zygote.shutdown() }

    /// Finds `jobkit-supervisor`: the path given, `$JOBKIT_SUPERVISOR`, JobKit's resources
    /// beside the running program (where SwiftPM puts them: `job_JobKit.resources/`), the
    /// program's own directory (where an install may put it), then `$PATH`.
    static func locate(explicit: String?) throws(JobError) -> String {
        let name = "jobkit-supervisor"
        var candidates: [String] = []
        if let explicit { candidates.append(explicit) }
        let environment = ProcessInfo.processInfo.environment
        if let fromEnvironment = environment["JOBKIT_SUPERVISOR"], !fromEnvironment.isEmpty {
            candidates.append(fromEnvironment)
        }
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            var dir = (exe as NSString).deletingLastPathComponent
            // Twice: a test bundle may be a directory one level down.
            for _ in 0..<2 {
                candidates.append(dir + "/job_JobKit.resources/" + name)
                candidates.append(dir + "/" + name)
                dir = (dir as NSString).deletingLastPathComponent
            }
        }
        for dir in (environment["PATH"] ?? "").split(separator: ":") {
            candidates.append("\(dir)/\(name)")
        }
        guard let found = candidates.first(where: { access($0, X_OK) == 0 }) else {
            throw JobError(
                .supervisor,
                "cannot find \(name): JobKit's build puts it in job_JobKit.resources beside the program; copy it there or set JOBKIT_SUPERVISOR"
            )
        }
        return found
    }

    func prefix(_ id: Int) -> String { "\(jobsDirectory)/\(id)" }

    /// What a job's supervisor runs. Kept by the engine until the fork server has answered:
    /// should it go away without forking, the supervisor is started directly with it.
    struct Job {
        let argv: [String]
        let workingDirectory: String
        let environment: [String: String]
        /// Give the job a pipe as stdin that the supervisor holds open (`--hold-stdin`).
        var holdStdin = false
        /// That stdin is also a detached follower's clock, and a stop the line "s" (`--ticks`).
        var ticks = false
        /// Its stderr is its stdout (`--merge-error`).
        var mergeError = false
        /// Its stdin, a descriptor the caller keeps open until the supervisor was made (else /dev/null).
        var stdin: Int32?
        /// Run this through an ssh master instead (`--mux`); `argv` then runs only when no
        /// master answers.
        var throughMaster: ThroughMaster?
        /// Which run of the job this is (recorded with its end).
        var attempt = 1
        /// Its output goes after what its earlier attempts wrote (`--append`).
        var append = false
        /// A session's command (`--session`): `argv` is what session.c takes, not a program.
        var inSession = false
        /// Its stdout and stderr are /dev/null (`--null-output`): a session's shell.
        var nullOutput = false
        /// A remote session's channel (`--channel DIR`): its stdin, stdout and stderr are the
        /// FIFOs in that directory, which the session's commands write and read (a session's
        /// supervisor, always started directly: the fork server takes no such request).
        var channel: String?
        /// A remote session's command (`--channel-command`): `argv` is what channel.c takes.
        var onChannel = false
        /// The supervisor is a foreach's lane (see lane.c): it goes on with the jobs asked of
        /// it on these pipes.
        var lane: LanePipes?
    }

    /// A new lane's two pipes: the lane's ends go to it with the fork server's request, the
    /// engine keeps the others (see `ExitMonitor.watchLane`).
    struct LanePipes: Sendable {
        let requestRead: Int32, requestWrite: Int32
        let reportRead: Int32, reportWrite: Int32

        static func make() -> LanePipes? {
            var request: [Int32] = [-1, -1]
            var report: [Int32] = [-1, -1]
            guard jobkit_pipe_cloexec(&request) == 0 else { return nil }
            guard jobkit_pipe_cloexec(&report) == 0 else {
                close(request[0])
                close(request[1])
                return nil
            }
            // The engine's ends never block it: a lane's request goes to an idle lane only,
            // and reports are read when epoll says there are some.
            _ = fcntl(request[1], F_SETFL, O_NONBLOCK)
            _ = fcntl(report[0], F_SETFL, O_NONBLOCK)
            return LanePipes(requestRead: request[0], requestWrite: request[1], reportRead: report[0], reportWrite: report[1])
        }

        /// The lane's ends, once they went with the request (or it was not sent).
        func closeLaneEnds() {
            close(requestRead)
            close(reportWrite)
        }

        func closeEngineEnds() {
            close(requestWrite)
            close(reportRead)
        }
    }

    /// A remote command run through the ssh master listening at `socket`.
    struct ThroughMaster {
        let socket: String
        let command: String
    }

    /// Starts job `id` under a supervisor of its own and returns the supervisor's pid, with a
    /// pidfd for it when one could be had.
    func spawn(_ id: Int, _ job: Job) throws(JobError) -> (pid: pid_t, pidfd: Int32?) {
        if try ask(id, job) { return try answer(id, job) }
        return try spawnDirectly(id, job)
    }

    /// Asks the fork server for job `id`'s supervisor without waiting for it, so that the
    /// caller can do its own work (commit the job) while the supervisor is made; `answer`
    /// finishes. False when there is no fork server to ask (`spawn` then starts it directly).
    func ask(_ id: Int, _ job: Job) throws(JobError) -> Bool {
        let lockFD = try lockedDescriptor(id)
        // Once sent, the descriptor travels in the message, keeping the lock held.
        defer { close(lockFD) }
        return zygote.ask(id: id, job, lockFD: lockFD)
    }

    /// The supervisors asked for with `ask`, awaited: the fork server's answers are read on a
    /// queue of this supervisor's, so that the engine's actor never blocks on them. In the
    /// order given.
    func collect(_ asked: [(id: Int, job: Job)]) async -> [(id: Int, answer: Result<(pid: pid_t, pidfd: Int32?), JobError>)] {
        await withCheckedContinuation { continuation in
            answers.async {
                continuation.resume(returning: asked.map { id, job in
                    (id, Result { () throws(JobError) in try self.answer(id, job) })
                })
            }
        }
    }

    /// The supervisor asked for with `ask` (blocking, for at most the fork server's bound).
    /// Should the fork server have gone away without answering, and without forking it, it is
    /// started directly.
    func answer(_ id: Int, _ job: Job) throws(JobError) -> (pid: pid_t, pidfd: Int32?) {
        if let answer = zygote.answer(for: id) {
            guard answer.pid > 0 else {
                throw JobError(.supervisor, "cannot start a supervisor: \(String(cString: strerror(answer.error)))")
            }
            return (answer.pid, answer.pidfd >= 0 ? answer.pidfd : nil)
        }
        // It holds the job's lock if it was forked: then it is the job's, once it says its pid.
        if let pid = supervisorPid(id) { return (pid, nil) }
        if isAlive(id) { throw JobError(.supervisor, "the supervisor of job \(id) did not start its job") }
        return try spawnDirectly(id, job)
    }

    /// Asks an idle lane of `parent` to run job `id` (a foreach's child), whose slot is
    /// cleared first; false when none of them is idle.
    func dispatch(_ id: Int, _ job: Job, parent: Int, monitor: ExitMonitor) -> Bool {
        // Made once there is a lane to take it: when there is none, the fork server's request
        // is made instead.
        var encoded: (payload: [UInt8], argc: UInt32, envc: UInt32, flags: UInt32)?
        return monitor.dispatch(parent: parent, id: id) { request in
            if encoded == nil {
                clearSlot(id)
                encoded = Zygote.request(job)
            }
            guard let (payload, argc, envc, flags) = encoded else { return EINVAL }
            return payload.withUnsafeBufferPointer { bytes in
                bytes.withMemoryRebound(to: CChar.self) { chars in
                    jobkit_lane_send(request, Int64(id), chars.baseAddress, UInt32(bytes.count), argc, envc, flags, UInt32(job.attempt))
                }
            }
        }
    }

    /// A description of our own for this job's lock, locked, to hand to its supervisor as fd
    /// 3: the lock is held from before the supervisor exists, so an engine that dies at any
    /// moment leaves no window where a live job looks dead.
    private func lockedDescriptor(_ id: Int) throws(JobError) -> Int32 {
        clearSlot(id)
        let lockFD = open(jobsDirectory + "/locks", O_RDWR | O_CLOEXEC)
        guard lockFD >= 0 else { throw JobError(.storage, "cannot open the job locks: \(errnoMessage())") }
        guard jobkit_lock_byte(lockFD, Int64(id)) == 0 else {
            let message = errnoMessage()
            close(lockFD)
            throw JobError(.storage, "cannot lock job \(id): \(message)")
        }
        return lockFD
    }

    /// Execs a supervisor (no fork server).
    func spawnDirectly(_ id: Int, _ job: Job) throws(JobError) -> (pid: pid_t, pidfd: Int32?) {
        let lockFD = try lockedDescriptor(id)
        defer { close(lockFD) }
        var args = [executable]
        if job.holdStdin { args.append("--hold-stdin") }
        if job.ticks { args.append("--ticks") }
        if job.stdin != nil { args.append("--stdin") }
        if job.mergeError { args.append("--merge-error") }
        if job.append { args.append("--append") }
        if job.attempt > 1 { args += ["--attempt", String(job.attempt)] }
        if let master = job.throughMaster { args += ["--mux", master.socket, master.command] }
        if job.nullOutput { args.append("--null-output") }
        if let channel = job.channel { args += ["--channel", channel] }
        if job.onChannel {
            args += ["--channel-command", jobsDirectory, String(id)] + job.argv
        } else if job.inSession {
            args += ["--session", jobsDirectory, String(id)] + job.argv
        } else {
            args += [jobsDirectory, String(id), job.workingDirectory] + job.argv
        }
        let env = job.environment.map { "\($0.key)=\($0.value)" }
        var pid: pid_t = 0
        let rc = withCStringArray(args) { cArgs in
            withCStringArray(env) { cEnv in
                jobkit_spawn_supervisor(executable, cArgs, cEnv, lockFD, job.stdin ?? -1, &pid)
            }
        }
        guard rc == 0 else {
            throw JobError(.supervisor, "cannot start \(executable): \(String(cString: strerror(rc)))")
        }
        return (pid, nil)
    }

    /// The highest id whose slot was ever written (0 when none): every job that got as far as
    /// asking for a supervisor.
    var highestSlot: Int {
        var info = stat()
        guard fstat(slotsFD, &info) == 0 else { return 0 }
        return max(0, Int(info.st_size) / Self.slotSize - 1)
    }

    /// The pid of job `id`'s supervisor, as it wrote it once its job started; one found
    /// holding the job's lock but not yet that far (it has just been made) is given a moment.
    /// Nil when no supervisor holds the job and none ever said its pid.
    func supervisorPid(_ id: Int) -> pid_t? {
        for _ in 0..<200 {
            if let pids = pids(id) { return pids.supervisor }
            if !isAlive(id) { return nil }
            usleep(5_000)
        }
        return nil
    }

    /// Whether a supervisor still holds job `id`.
    func isAlive(_ id: Int) -> Bool {
        jobkit_byte_is_locked(locksFD, Int64(id)) == 1
    }

    /// The supervisor's pid and its job's (the job's process group), once the job started.
    func pids(_ id: Int) -> (supervisor: pid_t, job: pid_t)? {
        guard let started = readSlot(id)?.started, started.magic == JOBKIT_STARTED_MAGIC else { return nil }
        return (started.supervisor_pid, started.job_pid)
    }

    /// How one run of a job ended, as its supervisor recorded it in the job's slot.
    struct Ending: Equatable {
        var outcome: LeafOutcome
        var time: Date
        /// What of its output could not be stored, said for a reason; nil when all was.
        var lost: String?
        /// Which run this was (1 unless the job is retried in place).
        var attempt: Int
        /// The CPU time (user + system) and largest resident set of its processes, when a
        /// process ran here.
        var usage: ResourceUsage?
    }

    /// How job `id`'s latest run ended, once its supervisor has recorded it.
    func ending(_ id: Int) -> Ending? {
        guard let slot = readSlot(id), slot.ended.magic == JOBKIT_ENDED_MAGIC else { return nil }
        let ended = slot.ended
        let time = Date(timeIntervalSince1970: Double(ended.end_ns) / 1e9)
        let lost = ended.lost_bytes == 0 ? nil : "\(ended.lost_bytes) bytes of output could not be stored: \(String(cString: strerror(ended.lost_errno)))"
        let outcome: LeafOutcome
        switch Int(ended.kind) {
        case JOBKIT_ENDED_EXIT: outcome = .exited(ended.code)
        case JOBKIT_ENDED_SIGNAL: outcome = .signaled(ended.code)
        case JOBKIT_ENDED_ERROR where Int(ended.stage) == JOBKIT_STAGE_SESSION:
            outcome = .failed("its session's shell is gone")
        case JOBKIT_ENDED_ERROR:
            let stages = [JOBKIT_STAGE_CHDIR: "chdir", JOBKIT_STAGE_EXEC: "exec", JOBKIT_STAGE_SUPERVISOR: "supervisor"]
            outcome = .couldNotStart(stage: stages[Int(ended.stage)] ?? "spawn", errno: ended.code)
        default: return nil
        }
        let started = slot.started
        let usage = started.max_rss_kib == 0
            ? nil : ResourceUsage(cpuMicroseconds: Int(started.cpu_usec), maxRssBytes: Int(started.max_rss_kib) * 1024)
        return Ending(outcome: outcome, time: time, lost: lost, attempt: max(1, Int(ended.attempt)), usage: usage)
    }

    private func readSlot(_ id: Int) -> jobkit_slot? {
        var slot = jobkit_slot()
        let n = withUnsafeMutableBytes(of: &slot) { pread(slotsFD, $0.baseAddress, $0.count, off_t(id * Self.slotSize)) }
        return n == Self.slotSize ? slot : nil
    }

    /// Zeroes a slot: ids are never reused, but a slots file may outlive its database.
    private func clearSlot(_ id: Int) {
        var zeros = jobkit_slot()
        _ = withUnsafeBytes(of: &zeros) { pwrite(slotsFD, $0.baseAddress, $0.count, off_t(id * Self.slotSize)) }
    }

    /// Deletes a job's files (whichever exist): its output unless it is known to have none,
    /// and its ssh log unless it is known to have none (a local job).
    func removeFiles(_ id: Int, output: Bool = true, sshLog: Bool = true) {
        let prefix = prefix(id)
        var paths = output
            ? [OutputFormat.indexPath(prefix: prefix), OutputFormat.path(prefix: prefix, stream: .output),
               OutputFormat.path(prefix: prefix, stream: .error)]
            : []
        if sshLog { paths += [prefix + ".ssh", prefix + ".ask"] }
        for path in paths { unlink(path) }
    }
}

