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
/// command in the background and watches its stdin, which is a pipe the job's supervisor holds
/// open (ssh forwards no signals, but it forwards stdin). A line there means "stop": SIGTERM
/// to the session's process group (sshd makes every session its own group, so the group is
/// the job's); the job then ends when the command does, and the stop's grace is kept by the
/// engine, which cuts the connection when it is over. End of file means the connection is
/// gone: SIGKILL at once after a stop, otherwise SIGTERM and SIGKILL once the command has gone
/// or after 5 s. End of file comes when the supervisor kills the job's ssh or closes its
/// session, when the supervisor dies, and when the connection goes away, and at no other
/// time. The wrapper and its watcher ignore SIGTERM (the command, started before, does not):
/// the wrapper lives until it has reaped the command, so "the command has gone" is "the
/// wrapper has gone", which holds even where nothing reaps orphans.
enum RemoteCommand {
    /// How the wrapper gets to run.
    enum Form: Sendable, Equatable {
        /// Run by the remote user's login shell itself: right for POSIX shells (sh, bash, zsh,
        /// ksh), and one program start less per job.
        case direct
        /// Passed to `/bin/sh -c` by the login shell, whatever it is (fish, csh…); `-c LINE`
        /// then goes to `$SHELL -c`.
        case viaSh
    }

    /// No single quotes inside: the whole is passed in single quotes. `$1` is how to run the
    /// rest: `here` (a line, evaluated by this shell), `line` (a line for `$SHELL`), `argv`.
    static let wrapper = """
        exec 3<&0 </dev/null
        case $1 in
        here) (eval "$2") & ;;
        line) case ${SHELL:-/bin/sh} in
          /bin/sh | /usr/bin/sh) (eval "$2") & ;;
          *) "$SHELL" -c "$2" & ;;
          esac ;;
        *) shift; "$@" & ;;
        esac
        p=$!
        trap "" TERM
        { s=; while read -r _; do kill -TERM 0; s=1; done <&3
          if [ -z "$s" ]; then kill -TERM 0; i=0
            while [ $i -lt 50 ] && kill -0 $$; do sleep 0.1; i=$((i+1)); done
          fi
          kill -KILL 0; } >/dev/null 2>&1 &
        w=$!
        exec 3<&-
        wait $p
        s=$?
        kill -KILL $w
        exit $s
        """

    /// The remote shell's command line for a job's command: `-c LINE` is run by the remote
    /// user's shell as written; argv words arrive byte for byte (single-quoted).
    static func line(for command: ProcessSpec.Command, form: Form) -> String {
        switch (command, form) {
        case (.shell(let line), .direct):
            return "set -- here \(quote(line))\n" + wrapper
        case (.shell(let line), .viaSh):
            return viaShPrefix + " line " + quote(line)
        case (.argv(let words), .direct):
            return "set -- argv " + words.map(quote).joined(separator: " ") + "\n" + wrapper
        case (.argv(let words), .viaSh):
            return ([viaShPrefix, "argv"] + words.map(quote)).joined(separator: " ")
        }
    }

    /// `exec /bin/sh -c '<wrapper>' sh`, quoted once: every cold job sends it.
    private static let viaShPrefix = ["exec", "/bin/sh", "-c", wrapper, "sh"].map(quote).joined(separator: " ")

    /// Exits 42 in a POSIX shell only (fish, csh and rc stumble on it; fish then exits 0):
    /// whether the wrapper can run `direct`.
    static let posixProbe = "x=42; case ${x:-1} in 42) exit 42;; esac; exit 1"
    static let posixProbeAnswer: Int32 = 42

    /// POSIX single quoting; also right for bash, zsh and fish.
    static func quote(_ word: String) -> String {
        if !word.isEmpty, word.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "/._-=".contains($0)) }) {
            return word
        }
        return "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}

/// One computer reached over OpenSSH, sharing one connection (a ControlMaster) among its
/// jobs: where the master's control socket is, and the ssh command lines.
///
/// The first job to a computer with no master answering becomes the master
/// (`ControlMaster=auto`): ssh connects, forks the master into the background (its own
/// session, so stopping the job leaves it alone), and runs the job through it, so that a
/// cold start costs one ssh, as with pdsh. Later jobs go through the master's socket, with no
/// handshake and no ssh process: their supervisors ask the master for the session themselves
/// (`Supervisor.ThroughMaster`; the protocol is in jobkit-supervisor.c, `mux_open`). A master
/// whose process died leaves a socket that ssh finds stale and replaces; one whose connection
/// died exits (ServerAlive). ControlPersist ends masters idle for 10 minutes.
struct SSHLink: Sendable, Equatable {
    let host: String
    /// The user's ssh configuration file (`-F`); nil: ssh's own, `~/.ssh/config` then
    /// `/etc/ssh/ssh_config`.
    let configFile: String?
    /// The master's control socket.
    let controlPath: String
    /// What ssh reads (`-F`): the user's configuration, then the defaults below it
    /// (`SSHLink.layered`).
    let layeredConfig: String

    /// BatchMode: never a prompt (a job has no terminal); host keys are checked as the user's
    /// configuration says. ssh takes the first value given, and these come first, so that the
    /// user's configuration can set none of them; what it may set is in `defaults`.
    private var common: [String] {
        ["-F", layeredConfig, "-o", "BatchMode=yes", "-o", "ControlPath=\(controlPath)", "-T"]
    }

    /// Through the master, or becoming it (and replacing a socket left by a dead one).
    private var master: [String] {
        ["-o", "ControlMaster=auto", "-o", "ControlPersist=600"]
    }

    /// What the engine wants unless the user's configuration says otherwise: a bound on
    /// connecting, and a master that notices a dead connection within half a minute.
    static let defaults = ["ConnectTimeout 30", "ServerAliveInterval 10", "ServerAliveCountMax 3"]

    /// The configuration file given to ssh: the user's, included first (ssh takes the first
    /// value it finds for an option, so whatever it sets wins), then `defaults` for every
    /// host. Without a file of the user's, what ssh reads by itself: `~/.ssh/config`, then
    /// `/etc/ssh/ssh_config` (`-F` makes ssh read neither). Nil when the path cannot be put
    /// in an `Include` line.
    static func layered(configFile: String?) -> String? {
        let includes = configFile.map { [$0] } ?? ["~/.ssh/config", "/etc/ssh/ssh_config"]
        guard includes.allSatisfy(canInclude) else { return nil }
        return "# Written by job for its ssh: the configuration below first, then its defaults.\n"
            + includes.map { "Include \"\($0)\"\n" }.joined()
            + "Host *\n" + defaults.map { "  \($0)\n" }.joined()
    }

    /// Whether an `Include` line can name `path` as it is: not with a double quote, nor with a
    /// glob character (Include would expand it).
    static func canInclude(_ path: String) -> Bool {
        !path.contains { "\"*?[\n".contains($0) }
    }

    /// Why `layered` cannot take this path.
    static func unusable(_ configFile: String) -> JobError {
        JobError(
            .invalidArgument,
            "cannot use the ssh config file \(configFile): ssh cannot include a path with a quote or a glob character; copy it to another path")
    }

    /// Every ssh's options, before its destination.
    var options: [String] { common + master }

    /// A job's ssh, running `line` (`RemoteCommand.line`); ssh's own messages go to `log`, so
    /// that the job's stderr is the remote command's alone.
    func jobArguments(line: String, log: String) -> [String] {
        ["ssh"] + options + ["-E", log, "--", host, line]
    }

    /// Asks the login shell whether it is a POSIX shell.
    var probeArguments: [String] {
        ["ssh"] + options + ["--", host, RemoteCommand.posixProbe]
    }

    var masterAnswers: Bool { jobkit_unix_socket_answers(controlPath) == 1 }

    /// Which master process the socket is (a new master makes a new socket file).
    var masterIdentity: String? {
        var info = stat()
        guard stat(controlPath, &info) == 0 else { return nil }
        return "\(info.st_ino)/\(info.st_ctim.tv_sec)/\(info.st_ctim.tv_nsec)"
    }

    /// Where a home keeps the control sockets: `HOME/ssh`, unless that path is too long for a
    /// Unix socket (108 bytes, and ssh adds a 17-byte suffix while it creates one).
    static func directory(home: String) -> String {
        let inHome = home + "/ssh"
        if inHome.utf8.count + 1 + 16 + 5 + 17 < 104 { return inHome }
        return "/tmp/job-ssh-\(getuid())-\(fnv1a(home))"
    }

    static func make(host: String, configFile: String?, home: String) -> SSHLink {
        let key = fnv1a(host + "\u{0}" + (configFile ?? ""))
        let directory = directory(home: home)
        return SSHLink(
            host: host, configFile: configFile, controlPath: "\(directory)/\(key).sock",
            layeredConfig: "\(directory)/\(fnv1a(configFile ?? "")).config")
    }

    /// Writes the configuration file ssh is given (see `layered`), replacing it whole.
    func writeConfig() throws(JobError) {
        guard let text = Self.layered(configFile: configFile) else { throw Self.unusable(configFile ?? "") }
        let temporary = layeredConfig + ".\(getpid()).tmp"
        do {
            try text.write(toFile: temporary, atomically: false, encoding: .utf8)
        } catch {
            throw JobError(.storage, "cannot write \(temporary): \(error.localizedDescription)")
        }
        guard rename(temporary, layeredConfig) == 0 else {
            let message = errnoMessage()
            unlink(temporary)
            throw JobError(.storage, "cannot write \(layeredConfig): \(message)")
        }
    }

    /// Creates the sockets' directory (0700: a control socket is a logged-in session). One
    /// that exists must be ours and closed to others: in /tmp, someone else may have made it.
    static func prepare(home: String) throws(JobError) {
        let directory = directory(home: home)
        if mkdir(directory, 0o700) != 0 && errno != EEXIST {
            throw JobError(.storage, "cannot create \(directory): \(errnoMessage())")
        }
        var info = stat()
        guard lstat(directory, &info) == 0, info.st_mode & S_IFMT == S_IFDIR, info.st_uid == getuid(),
            info.st_mode & 0o077 == 0
        else {
            throw JobError(
                .storage, "\(directory) is not a directory of yours closed to others; remove it, or use a shorter home")
        }
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

/// Reading what ssh logged (`-E FILE`) for a one-line reason.
enum SSHLog {
    /// The line that says why ssh failed: the last one that is not routine. A changed host
    /// key is named as such, since ssh's last line ("Host key verification failed.") alone
    /// does not say why; and in batch mode that line is all ssh says of a host whose key is
    /// not known yet, so the Reason says what to do.
    static func reason(path: String) -> String? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        return reason(log: text)
    }

    static func reason(log text: String) -> String? {
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter {
            !$0.isEmpty && !$0.hasPrefix("Control socket connect(") && !$0.hasPrefix("Warning: Permanently added")
                && !$0.allSatisfy { $0 == "@" }
        }
        guard let last = lines.last else { return nil }
        if let changed = lines.first(where: { $0.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") }) {
            let warning = changed.trimmingCharacters(in: CharacterSet(charactersIn: "@ "))
            return warning == last ? last : "\(warning) \(last)"
        }
        // A key not known yet: with StrictHostKeyChecking yes ssh says so first, with ask
        // (batch mode) it says nothing more.
        let unknown = lines.first { $0.hasPrefix("No ") && $0.contains("host key is known for") }
        if last == "Host key verification failed.", unknown != nil || lines.count == 1 {
            return (unknown.map { "\($0) " } ?? "")
                + "Host key verification failed: add the host's key to known_hosts (connect once with ssh, or use ssh-keyscan)"
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
