import CJobKitSystem
import Foundation
import JobModel

#if canImport(Glibc)
import Glibc
#endif


/// One computer reached over OpenSSH, sharing one connection (a ControlMaster) among its
/// jobs: where the master's control socket is, and the ssh command lines.
///
/// The first job to a computer with no master answering becomes the master
/// (`ControlMaster=auto`): ssh connects, forks the master into the background (its own
/// session, so stopping the job leaves it alone), and runs the job through it, so that a
/// cold start costs one ssh, as with pdsh. Later jobs go through the master's socket, with no
/// handshake and no ssh process: their supervisors ask the master for the session themselves
/// (`Supervisor.ThroughMaster`; the protocol is in Supervisor/mux.c, `mux_open`). A master
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
