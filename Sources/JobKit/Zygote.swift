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

    private let executable: String
    private let jobsDirectory: String
    private let connection = Mutex<Connection?>(nil)

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
                jobkit_spawn_supervisor(executable, argv, envp, fds[1], &pid)
            }
        }
        close(fds[1])
        guard rc == 0 else {
            close(fds[0])
            return nil
        }
        return Connection(socket: fds[0], pid: pid)
    }

    /// Forks a supervisor for job `id`, holding `lockFD`'s lock. Returns its pid and a pidfd,
    /// or nil when no zygote can serve (the caller then starts the supervisor itself).
    func spawn(
        id: Int, argv: [String], workingDirectory: String, environment: [String: String], holdStdin: Bool, lockFD: Int32
    ) -> (pid: pid_t, pidfd: Int32)? {
        var payload: [UInt8] = []
        for string in [workingDirectory] + argv + environment.map({ "\($0.key)=\($0.value)" }) {
            payload.append(contentsOf: string.utf8)
            payload.append(0)
        }
        return connection.withLock { connection in
            // One retry: a zygote that died (killed by hand, say) is replaced once.
            for _ in 0..<2 {
                if connection == nil { connection = connect() }
                guard let current = connection else { return nil }
                var pid: pid_t = 0
                var pidfd: Int32 = -1
                let rc = payload.withUnsafeBufferPointer { bytes in
                    bytes.withMemoryRebound(to: CChar.self) { chars in
                        jobkit_zygote_spawn(
                            current.socket, Int64(id), chars.baseAddress, UInt32(bytes.count), UInt32(argv.count),
                            UInt32(environment.count), holdStdin ? 1 : 0, lockFD, &pid, &pidfd)
                    }
                }
                if rc == 0 { return (pid, pidfd) }
                if rc != EPIPE && rc != ECONNRESET && rc != EPROTO { return nil }
                Self.end(current)
                connection = nil
            }
            return nil
        }
    }

    /// Ends the zygote; the supervisors it forked go on.
    func shutdown() {
        connection.withLock { connection in
            if let current = connection { Self.end(current) }
            connection = nil
        }
    }

    private static func end(_ connection: Connection) {
        Glibc.close(connection.socket)
        // It exits as soon as it sees the socket close.
        var status: Int32 = 0
        _ = waitpid(connection.pid, &status, 0)
    }
}
