import CJobKitSystem
import Foundation
import JobModel
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A fork server for supervisors: `jobkit-supervisor --zygote`, started once per engine,
/// forks a supervisor per job on request. A forked supervisor skips what starting a program
/// costs (exec, the dynamic loader, libc's start-up, whose cpuid calls are VM exits), which is
/// more than a short job costs; and it is as independent of the engine as a spawned one.
final class Zygote: Sendable {
    private struct Connection {
        let socket: Int32
        let pid: pid_t
    }

    /// What the zygote answered about one job: its supervisor, or why there is none.
    struct Answer {
        let pid: pid_t
        let pidfd: Int32
        let error: Int32
    }

    private struct State {
        var connection: Connection?
        /// Jobs asked for and not answered yet, oldest first: answers come in that order.
        var asked: [Int] = []
        /// Answers read while looking for another job's.
        var answers: [Int: Answer] = [:]
    }

    private let executable: String
    private let jobsDirectory: String
    private let state = Mutex(State())

    init(executable: String, jobsDirectory: String) {
        self.executable = executable
        self.jobsDirectory = jobsDirectory
    }

    deinit { shutdown() }

    private func connect() -> Connection? {
        var fds: [Int32] = [-1, -1]
        guard jobkit_socketpair(&fds) == 0 else { return nil }
        var pid: pid_t = 0
        let rc = withCStringArray([executable, "--zygote", jobsDirectory]) { argv in
            withCStringArray(ProcessInfo.processInfo.environment.map { "\($0.key)=\($0.value)" }) { envp in
                jobkit_spawn_supervisor(executable, argv, envp, fds[1], -1, &pid)
            }
        }
        close(fds[1])
        guard rc == 0 else {
            close(fds[0])
            return nil
        }
        // A request to a fork server that reads nothing (stopped, say) must not hold up the
        // engine once the socket's buffer is full: the send gives up, and the job's
        // supervisor is spawned directly.
        var bound = timeval(tv_sec: Int(Self.answerTimeout / 1000), tv_usec: 0)
        _ = setsockopt(fds[0], SOL_SOCKET, SO_SNDTIMEO, &bound, socklen_t(MemoryLayout<timeval>.size))
        return Connection(socket: fds[0], pid: pid)
    }

    /// Asks for a supervisor for job `id`, holding `lockFD`'s lock, without waiting for it:
    /// `answer(for:)` gets it. False when no zygote can serve (the caller then starts the
    /// supervisor itself).
    func ask(id: Int, _ job: Supervisor.Job, lockFD: Int32) -> Bool {
        let (payload, argc, envc, flags) = Self.request(job)
        return state.withLock { state in
            // One retry: a zygote that died (killed by hand, say) is replaced once.
            for _ in 0..<2 {
                if state.connection == nil { state.connection = connect() }
                guard let current = state.connection else { return false }
                let rc = payload.withUnsafeBufferPointer { bytes in
                    bytes.withMemoryRebound(to: CChar.self) { chars in
                        jobkit_zygote_send(
                            current.socket, Int64(id), chars.baseAddress, UInt32(bytes.count), argc, envc, flags,
                            UInt32(job.attempt), lockFD, job.stdin ?? -1, job.lane?.requestRead ?? -1,
                            job.lane?.reportWrite ?? -1)
                    }
                }
                if rc == 0 {
                    state.asked.append(id)
                    return true
                }
                // A request sent in part leaves the stream unreadable: this fork server is
                // done with, killed if it stopped reading (the send timed out).
                if rc == EAGAIN || rc == EWOULDBLOCK { kill(current.pid, SIGKILL) }
                Self.lose(&state)
                if rc != EPIPE && rc != ECONNRESET && rc != EAGAIN && rc != EWOULDBLOCK { return false }
            }
            return false
        }
    }

    /// A supervisor's request: its strings (cwd, arguments — a master's socket and command
    /// first, with REQUEST_MUX — and environment, each NUL-terminated), how many arguments and
    /// environment entries, and its flags. The fork server's, and a lane's next job's.
    static func request(_ job: Supervisor.Job) -> (payload: [UInt8], argc: UInt32, envc: UInt32, flags: UInt32) {
        let argv = (job.throughMaster.map { [$0.socket, $0.command] } ?? []) + job.argv
        let options: [(Bool, Int)] = [
            (job.holdStdin, JOBKIT_REQUEST_HOLD_STDIN), (job.ticks, JOBKIT_REQUEST_TICKS),
            (job.throughMaster != nil, JOBKIT_REQUEST_MUX), (job.mergeError, JOBKIT_REQUEST_MERGE_ERROR),
            (job.append, JOBKIT_REQUEST_APPEND), (job.inSession, JOBKIT_REQUEST_SESSION),
            (job.nullOutput, JOBKIT_REQUEST_NULL_OUTPUT), (job.onChannel, JOBKIT_REQUEST_CHANNEL),
        ]
        let flags = UInt32(options.reduce(0) { $0 | ($1.0 ? $1.1 : 0) })
        var payload: [UInt8] = []
        for string in [job.workingDirectory] + argv {
            payload.append(contentsOf: string.utf8)
            payload.append(0)
        }
        for (key, value) in job.environment {
            payload.append(contentsOf: key.utf8)
            payload.append(UInt8(ascii: "="))
            payload.append(contentsOf: value.utf8)
            payload.append(0)
        }
        return (payload, UInt32(argv.count), UInt32(job.environment.count), flags)
    }

    /// How long a fork server may take to answer before it is taken for hung, and replaced:
    /// it forks and answers in well under a millisecond.
    static let answerTimeout: Int32 = 10_000

    private enum Step {
        case answered(Answer?)
        case wait(Connection)
    }

    /// The zygote's answer about job `id` (asked for with `ask`), waiting for it (for at most
    /// `answerTimeout` ms); nil when the zygote went away or hung first — whether it forked a
    /// supervisor for the job is then for the caller to find out. The lock is not held while
    /// waiting: `ask` goes on meanwhile. One caller at a time (the supervisor's queue).
    func answer(for id: Int) -> Answer? {
        while true {
            let step = state.withLock { state -> Step in
                if let answer = state.answers.removeValue(forKey: id) { return .answered(answer) }
                guard state.asked.contains(id), let current = state.connection else {
                    state.asked.removeAll { $0 == id }
                    return .answered(nil)
                }
                return .wait(current)
            }
            let current: Connection
            switch step {
            case .answered(let answer): return answer
            case .wait(let connection): current = connection
            }
            let ready = Self.waitReadable(current.socket, timeout: Self.answerTimeout)
            state.withLock { state in
                guard state.connection?.socket == current.socket else { return }
                guard ready else {
                    // Hung (stopped, say): it would not see its socket close either.
                    kill(current.pid, SIGKILL)
                    Self.lose(&state)
                    return
                }
                Self.receiveOne(&state, from: current)
            }
        }
    }

    /// Whether `fd` has something to read within `timeout` ms.
    private static func waitReadable(_ fd: Int32, timeout: Int32) -> Bool {
        var ready = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        var rc: Int32
        repeat { rc = poll(&ready, 1, timeout) } while rc < 0 && errno == EINTR
        return rc > 0
    }

    /// Reads the next answer into `state.answers`; a broken connection is lost.
    private static func receiveOne(_ state: inout State, from current: Connection) {
        var job: Int64 = 0
        var pid: pid_t = 0
        var error: Int32 = 0
        var pidfd: Int32 = -1
        let rc = jobkit_zygote_receive(current.socket, &job, &pid, &error, &pidfd)
        guard rc == 0, let index = state.asked.firstIndex(of: Int(job)) else {
            if pidfd >= 0 { close(pidfd) }
            lose(&state)
            return
        }
        state.asked.remove(at: index)
        state.answers[Int(job)] = Answer(pid: pid, pidfd: pidfd, error: error)
    }

    /// The connection broke: what was asked of it will not be answered.
    private static func lose(_ state: inout State) {
        if let current = state.connection { end(current) }
        state.connection = nil
        state.asked.removeAll()
    }

    /// Ends the zygote; the supervisors it forked go on.
    func shutdown() {
        state.withLock { state in
            Self.lose(&state)
            for answer in state.answers.values where answer.pidfd >= 0 { close(answer.pidfd) }
            state.answers.removeAll()
        }
    }

    private static func end(_ connection: Connection) {
        Glibc.close(connection.socket)
        // It exits as soon as it sees the socket close.
        var status: Int32 = 0
        _ = waitpid(connection.pid, &status, 0)
    }
}
