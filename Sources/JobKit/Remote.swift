import CJobKitSystem
import Foundation
import JobModel

#if canImport(Glibc)
import Glibc
#endif

/// How `invoke` works on many computers.
public struct InvokeOptions: Sendable, Equatable, Codable {
    /// At most this many computers are worked on (connecting or running) at once; the rest
    /// wait as `NotStarted`.
    public var throttle: Int
    /// An ssh client configuration file (`ssh -F`); the user's own (`~/.ssh/config`) when nil.
    public var sshConfigFile: String?

    public init(throttle: Int = 32, sshConfigFile: String? = nil) {
        self.throttle = throttle
        self.sshConfigFile = sshConfigFile
    }
}

/// What a parent needs to start its children, kept with it so that children waiting for a
/// throttle slot still start after the engine restarts.
struct LaunchPlan: Sendable, Codable, Equatable {
    var spec: ProcessSpec
    var options: InvokeOptions

    func encoded() throws(JobError) -> String {
        do {
            return String(decoding: try JSONEncoder().encode(self), as: UTF8.self)
        } catch {
            throw JobError(.storage, "cannot record how to start the job: \(error)")
        }
    }

    static func decode(_ text: String?) -> LaunchPlan? {
        guard let text else { return nil }
        return try? JSONDecoder().decode(LaunchPlan.self, from: Data(text.utf8))
    }
}

/// Whether a computer name means this machine.
func isLocal(_ computer: String) -> Bool { computer.lowercased() == "localhost" }

/// The command sent to a remote computer: a small POSIX `sh` wrapper that runs the job's
/// command in its own session and ends that whole process group (SIGTERM, then SIGKILL after
/// 5 s) when its stdin reaches end of file. ssh forwards no signals, but it does forward end
/// of file, and the local ssh's stdin is a pipe its supervisor holds open: so the remote
/// command ends when the job is stopped (ssh is killed), when its supervisor dies, and when
/// the connection goes away, and at no other time.
enum RemoteCommand {
    /// No single quotes inside: the whole is passed in single quotes.
    static let wrapper = """
        exec 3<&0 </dev/null
        if [ "$1" = line ]; then set -- "${SHELL:-/bin/sh}" -c "$2"; else shift; fi
        if command -v setsid >/dev/null 2>&1; then setsid "$@" & else "$@" & fi
        p=$!
        { cat >/dev/null <&3; kill -TERM -$p || kill -TERM $p; i=0
          while [ $i -lt 50 ] && { kill -0 -$p || kill -0 $p; }; do sleep 0.1; i=$((i+1)); done
          kill -KILL -$p || kill -KILL $p; } >/dev/null 2>&1 &
        w=$!
        exec 3<&-
        wait $p
        s=$?
        kill $w 2>/dev/null
        exit $s
        """

    /// The remote shell's command line for a job's command: `-c LINE` goes to the remote
    /// user's shell as written; argv words arrive byte for byte (single-quoted).
    static func line(for command: ProcessSpec.Command) -> String {
        let arguments: [String]
        switch command {
        case .shell(let line): arguments = ["line", line]
        case .argv(let words): arguments = ["argv"] + words
        }
        return (["exec", "/bin/sh", "-c", wrapper, "job"] + arguments).map(quote).joined(separator: " ")
    }

    /// POSIX single quoting; also right for bash, zsh and fish.
    static func quote(_ word: String) -> String {
        if !word.isEmpty, word.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "/._-=".contains($0)) }) {
            return word
        }
        return "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}

/// One computer reached over OpenSSH through a ControlMaster the engine keeps: where its
/// control socket and logs are, and the ssh command lines for the master and for a job.
struct SSHLink: Sendable, Equatable {
    let host: String
    let configFile: String?
    /// The master's control socket.
    let controlPath: String
    /// What the master's ssh logged (`-E`): why it could not connect, or why it went away.
    let masterLog: String

    /// Options both the master and the jobs pass. BatchMode: never a prompt (a job has no
    /// terminal); host keys are checked as the user's configuration says.
    private var common: [String] {
        (configFile.map { ["-F", $0] } ?? []) + ["-o", "BatchMode=yes", "-o", "ControlPath=\(controlPath)"]
    }

    /// The master: connects, authenticates, then goes to the background (`-f`) and serves
    /// jobs through its socket until idle for 10 minutes. ServerAlive makes a master whose
    /// connection died exit, so that it is replaced rather than trusted.
    var masterArguments: [String] {
        ["ssh"] + common + [
            "-o", "ControlMaster=yes", "-o", "ControlPersist=600", "-o", "ServerAliveInterval=10",
            "-o", "ServerAliveCountMax=3", "-o", "ConnectTimeout=30", "-N", "-f", "-E", masterLog, "--", host,
        ]
    }

    /// A job's ssh: a session through the master (or, if the master is gone, a connection of
    /// its own), no terminal, ssh's own messages to `log` so that the job's stderr is the
    /// remote command's alone.
    func jobArguments(command: ProcessSpec.Command, log: String) -> [String] {
        ["ssh"] + common + ["-o", "ControlMaster=no", "-o", "ConnectTimeout=30", "-T", "-E", log, "--", host]
            + [RemoteCommand.line(for: command)]
    }

    var masterAnswers: Bool { jobkit_unix_socket_answers(controlPath) == 1 }

    /// Where a home keeps the control sockets: `HOME/ssh`, unless that path is too long for a
    /// Unix socket (108 bytes, and ssh adds a 17-byte suffix while it creates one).
    static func directory(home: String) -> String {
        let inHome = home + "/ssh"
        if inHome.utf8.count + 1 + 16 + 5 + 17 < 104 { return inHome }
        return "/tmp/job-ssh-\(getuid())-\(fnv1a(home))"
    }

    static func make(host: String, configFile: String?, home: String) -> SSHLink {
        let directory = directory(home: home)
        let key = fnv1a(host + "\u{0}" + (configFile ?? ""))
        return SSHLink(
            host: host, configFile: configFile, controlPath: "\(directory)/\(key).sock",
            masterLog: "\(directory)/\(key).log")
    }

    private static func fnv1a(_ text: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

/// The masters, one per computer (and ssh configuration): started when first needed,
/// reused while they answer, replaced when they do not. Masters live on their own (ssh
/// forks them into the background), so they outlive the engine and the next engine
/// reuses them.
actor SSHMasters {
    private let home: String
    /// Callers waiting for a master that is being started.
    private var starting: [String: [CheckedContinuation<Result<SSHLink, JobError>, Never>]] = [:]

    init(home: String) { self.home = home }

    /// A master for `host` that answers: the running one, or a new one. Fails with ssh's own
    /// message (as `HOST: message`) when it cannot connect.
    func master(for host: String, configFile: String?, environment: [String: String]) async -> Result<SSHLink, JobError> {
        let link = SSHLink.make(host: host, configFile: configFile, home: home)
        if link.masterAnswers { return .success(link) }
        if starting[link.controlPath] != nil {
            return await withCheckedContinuation { starting[link.controlPath]?.append($0) }
        }
        starting[link.controlPath] = []
        let result = await Self.start(link, environment: environment)
        for waiter in starting.removeValue(forKey: link.controlPath) ?? [] { waiter.resume(returning: result) }
        return result
    }

    private static func start(_ link: SSHLink, environment: [String: String]) async -> Result<SSHLink, JobError> {
        let directory = (link.controlPath as NSString).deletingLastPathComponent
        if mkdir(directory, 0o700) != 0 && errno != EEXIST {
            return .failure(JobError(.unavailable, "\(link.host): cannot create \(directory): \(errnoMessage())"))
        }
        // A socket whose master died (SIGKILL, reboot) would make ssh refuse to listen there.
        unlink(link.controlPath)
        // -E appends; only this attempt's messages count.
        _ = truncate(link.masterLog, 0)
        let status: Int32
        do {
            status = try await runToEnd(link.masterArguments, environment: environment)
        } catch {
            return .failure(JobError(.unreachable, "\(link.host): \(error.message)"))
        }
        if status == 0 && link.masterAnswers { return .success(link) }
        let message = SSHLog.reason(path: link.masterLog) ?? "ssh exited with status \(status)"
        return .failure(JobError(.unreachable, "\(link.host): \(message)"))
    }
}

/// Reading what ssh logged (`-E FILE`) for a one-line reason.
enum SSHLog {
    /// The line that says why ssh failed: the last one that is not routine. A changed host
    /// key is named as such, since ssh's last line ("Host key verification failed.") alone
    /// does not say why.
    static func reason(path: String) -> String? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter {
            !$0.isEmpty && !$0.hasPrefix("Control socket connect(") && !$0.hasPrefix("Warning: Permanently added")
                && !$0.allSatisfy { $0 == "@" }
        }
        guard let last = lines.last else { return nil }
        if let changed = lines.first(where: { $0.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") }) {
            let warning = changed.trimmingCharacters(in: CharacterSet(charactersIn: "@ "))
            return warning == last ? last : "\(warning) \(last)"
        }
        return last
    }
}

/// Runs a program (looked up in the environment's PATH) with stdio on /dev/null and returns
/// its exit status (128+signal when killed), waiting on a thread of its own: never on the
/// cooperative pool.
func runToEnd(_ argv: [String], environment: [String: String]) async throws(JobError) -> Int32 {
    guard let program = argv.first else { throw JobError(.invalidArgument, "nothing to run") }
    let path: String
    if program.contains("/") {
        path = program
    } else {
        let dirs = (environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":")
        let candidates = dirs.map { "\($0)/\(program)" }
        guard let found = candidates.first(where: { candidate in access(candidate, X_OK) == 0 }) else {
            throw JobError(.unavailable, "no such program: \(program)")
        }
        path = found
    }
    var pid: pid_t = 0
    let rc = withCStringArray(argv) { cArgs in
        withCStringArray(environment.map { "\($0.key)=\($0.value)" }) { cEnv in
            jobkit_spawn_plain(path, cArgs, cEnv, &pid)
        }
    }
    guard rc == 0 else { throw JobError(.unavailable, "cannot run \(program): \(errnoMessage(rc))") }
    let spawned = pid
    return await withCheckedContinuation { continuation in
        let waiter = Thread {
            var status: Int32 = 0
            while waitpid(spawned, &status, 0) < 0 && errno == EINTR {}
            let code = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
            continuation.resume(returning: code)
        }
        waiter.start()
    }
}
