import FoundationEssentials
import JobModel
import JobProtocol

#if canImport(Glibc)
import Glibc
#endif

/// Why the daemon could not be reached (exit status 69), or why the client would not speak to
/// it (`refused`, exit status 1: a home or a daemon it cannot trust): one line a person can
/// act on.
public struct ClientError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var refused: Bool
    /// The signal that interrupted the exchange (see `Interrupts`), if that is why it ended.
    public var signal: Int32?
    public init(_ message: String, refused: Bool = false, signal: Int32? = nil) {
        self.message = message
        self.refused = refused
        self.signal = signal
    }
    public var description: String { message }

    static func interrupted(_ signal: Int32) -> ClientError {
        ClientError("interrupted by signal \(signal)", signal: signal)
    }
}

/// One request's connection, for answers read frame by frame and requests sent after the
/// first (a receive's `received` frames).
public final class Conversation {
    private let fd: Int32
    private let home: JobHome

    fileprivate init(fd: Int32, home: JobHome) {
        self.fd = fd
        self.home = home
    }

    deinit { close(fd) }

    /// The next frame of the answer, skipping those of types this side does not know (a
    /// newer daemon's); `.done` ends it.
    public func next() throws -> Response {
        while true {
            let length = Framing.length(ofHeader: try readExactly(4))
            guard length <= Framing.maximumSize else {
                throw ClientError("the daemon sent a frame of \(length) bytes; is it the same release as job?")
            }
            let body = try readExactly(length)
            let response: Response
            do throws(JobError) {
                response = try Wire.decodeResponse(body)
            } catch {
                throw ClientError("cannot read the daemon's answer (\(error.message)); is it the same release as job?")
            }
            if case .unknown = response { continue }
            return response
        }
    }

    /// Sends a request on this connection. A daemon that refused the first may have closed
    /// it: then nothing is sent, and its answer is still read.
    public func send(_ request: Request) throws {
        try writeAll(Framing.encode(request))
    }

    /// Whether a frame (or the end) can be read without waiting.
    public var hasInput: Bool {
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, 0) > 0
    }

    fileprivate func writeAll(_ bytes: [UInt8]) throws {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + done, $0.count - done, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EPIPE || errno == ECONNRESET) { return }
            guard n > 0 else { throw ClientError("the daemon closed the connection: \(String(cString: strerror(errno)))") }
            done += n
        }
    }

    /// Reads `count` bytes; a signal caught meanwhile (see `Interrupts`) ends the wait.
    private func readExactly(_ count: Int) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, count - done) }
            if n < 0 && errno == EINTR {
                if Interrupts.caught != 0 { throw ClientError.interrupted(Interrupts.caught) }
                continue
            }
            guard n > 0 else { throw ClientError("the daemon closed the connection before answering; see \(home.log)") }
            done += n
        }
        return buffer
    }
}

/// A blocking client of `jobd`: one connection per request, plain system calls, no event
/// loop, so that a `job` command costs little more than starting it. Starts the daemon when
/// none answers.
public struct DaemonClient: Sendable {
    public let home: JobHome

    public init(home: JobHome) {
        self.home = home
    }

    /// Sends `request`, calls `onFrame` for each data frame of the answer (frames of types this
    /// side does not know, a newer daemon's, are skipped), and returns how it ended. Starts the
    /// daemon first if none answers and `autoStart` is set.
    public func call(_ request: Request, autoStart: Bool = true, onFrame: (Response) throws -> Void) throws -> Outcome {
        let conversation = try open(request, autoStart: autoStart)
        while true {
            let response = try conversation.next()
            if case .done(let outcome) = response { return outcome }
            try onFrame(response)
        }
    }

    /// Sends `request` and returns its connection, to read the answer from frame by frame.
    public func open(_ request: Request, autoStart: Bool = true) throws -> Conversation {
        let conversation = Conversation(fd: try connect(autoStart: autoStart), home: home)
        try conversation.writeAll(Framing.encode(request))
        return conversation
    }

    /// Whether a daemon answers on the home's socket now (starting none).
    public func isRunning() -> Bool {
        guard let fd = try? connect(autoStart: false) else { return false }
        close(fd)
        return true
    }

    private func connect(autoStart: Bool) throws -> Int32 {
        // Before anything is sent, or a daemon started: a home someone else controls could
        // hold their socket.
        if let reason = home.distrust() { throw ClientError(reason, refused: true) }
        if let fd = try connectOnce() { return fd }
        guard autoStart else {
            throw ClientError("no daemon is running for \(home.path); start one with 'job daemon start'")
        }
        if let failure = Self.makeDirectories(home.path) {
            throw ClientError("cannot create the job home \(home.path): \(failure); choose another with --home or JOB_HOME")
        }
        // One starter at a time: of twenty first commands at once, one starts the daemon and
        // the others, let in once it answers (or once the starter has gone), find it there.
        let lock = try takeStartLock()
        defer { close(lock) }
        if let fd = try connectOnce() { return fd }
        let daemon = try startDaemon()
        // A daemon takes a moment to open its home; one that lost the race for the home to
        // another (a daemon started by hand) exits, and the winner answers.
        var delay: useconds_t = 2_000
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline {
            if let fd = try connectOnce() { return fd }
            var status: Int32 = 0
            if waitpid(daemon, &status, WNOHANG) == daemon, (status >> 8) & 0xff != 1 || status & 0x7f != 0 {
                // It exited, and not because another daemon has the home.
                if let fd = try connectOnce() { return fd }
                throw ClientError("the daemon could not start: \(lastLogLine() ?? "see \(home.log)")")
            }
            usleep(delay)
            delay = min(delay * 2, 50_000)
        }
        throw ClientError("the daemon did not answer within 15 s; see \(home.log)")
    }

    /// A connected socket, or nil when nobody listens (no socket file, or a stale one).
    private func connectOnce() throws -> Int32? {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ClientError("cannot create a socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let path = Array(home.socket.utf8)
        guard path.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(fd)
            throw ClientError("the home \(home.path) is too long for a Unix socket path; use a shorter --home")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path)
            raw[path.count] = 0
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if rc == 0 {
            do {
                try checkPeer(fd)
            } catch {
                close(fd)
                throw error
            }
            return fd
        }
        let code = errno
        close(fd)
        switch code {
        case ENOENT, ECONNREFUSED:
            return nil
        case EACCES, EPERM:
            throw ClientError("permission denied on \(home.socket): the daemon serves only the user who owns \(home.path)")
        default:
            throw ClientError("cannot connect to \(home.socket): \(String(cString: strerror(code)))")
        }
    }

    /// Whoever answers on the socket must be this user's daemon: the kernel says who it is
    /// (SO_PEERCRED), before a byte of the request goes.
    private func checkPeer(_ fd: Int32) throws {
        var peer = PeerCredentials()
        var length = socklen_t(MemoryLayout<PeerCredentials>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &length) == 0 else {
            throw ClientError("cannot tell who answers on \(home.socket): \(String(cString: strerror(errno)))", refused: true)
        }
        guard peer.uid == getuid() else {
            throw ClientError(
                "what answers on \(home.socket) runs as user \(peer.uid), not as you (\(getuid())): it is not your daemon; nothing was sent",
                refused: true)
        }
    }

    /// Starts `jobd` for the home in a session of its own, its output going to the home's log.
    private func startDaemon() throws -> pid_t {
        guard let jobd = Self.locateDaemon() else {
            throw ClientError("cannot find jobd beside job or on PATH; install both together")
        }
        var actions = posix_spawn_file_actions_t()
        var attributes = posix_spawnattr_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawnattr_init(&attributes)
        defer {
            posix_spawn_file_actions_destroy(&actions)
            posix_spawnattr_destroy(&attributes)
        }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, home.log, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // Its own session: the terminal's ^C and hang-up are not for the daemon.
        posix_spawnattr_setflags(&attributes, 0x80)  // POSIX_SPAWN_SETSID, which Glibc does not export to Swift
        let argv = [jobd, "--home", home.path]
        var cArgs = argv.map { strdup($0) } + [nil]
        defer { for p in cArgs { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, jobd, &actions, &attributes, &cArgs, environ)
        guard rc == 0 else { throw ClientError("cannot start \(jobd): \(String(cString: strerror(rc)))") }
        return pid
    }

    /// The lock on starting the home's daemon, waited for: held by whoever starts it until it
    /// answers, and released by the kernel if that process dies first.
    private func takeStartLock() throws -> Int32 {
        let path = home.path + "/jobd.start"
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ClientError("cannot open \(path): \(String(cString: strerror(errno)))") }
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else {
                let message = String(cString: strerror(errno))
                close(fd)
                throw ClientError("cannot lock \(path): \(message)")
            }
        }
        return fd
    }

    /// `mkdir -p` with mode 0700 for what it makes; nil, or the system's word for why not.
    private static func makeDirectories(_ path: String) -> String? {
        var made = ""
        for component in path.split(separator: "/") {
            made += "/" + component
            if mkdir(made, 0o700) != 0 && errno != EEXIST { return String(cString: strerror(errno)) }
        }
        return nil
    }

    /// `jobd` beside the running `job` (how they are built and installed), else on `PATH`.
    public static func locateDaemon() -> String? {
        var candidates: [String] = []
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            candidates.append(String(exe[..<(exe.lastIndex(of: "/") ?? exe.endIndex)]) + "/jobd")
        }
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            candidates.append("\(dir)/jobd")
        }
        return candidates.first { access($0, X_OK) == 0 }
    }

    private func lastLogLine() -> String? {
        guard let text = try? String(contentsOfFile: home.log, encoding: .utf8) else { return nil }
        return text.split(separator: "\n").last.map(String.init)
    }
}
