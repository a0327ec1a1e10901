import CJobKitSystem
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What a finished process printed, and its exit status (128+signal if killed).
public struct ProcessResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// Runs a program to its end with plain posix_spawn, poll and waitpid, collecting both of its
/// streams. (Foundation's `Process.waitUntilExit` stalls when parallel tests block the
/// cooperative threads its notification needs.)
/// Spawn attributes that give a child the signals a shell would: none blocked, the usual
/// ones at their defaults. The tests' threads (Dispatch's) block signals, and a child would
/// inherit that mask: a `job` that never sees SIGINT tests nothing about SIGINT.
func cleanSignals() -> posix_spawnattr_t {
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    var empty = sigset_t()
    sigemptyset(&empty)
    posix_spawnattr_setsigmask(&attributes, &empty)
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for signal in [SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT] { sigaddset(&defaults, signal) }
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    return attributes
}

/// The child gets stdin, stdout and stderr only: the test process holds many descriptors not
/// marked close-on-exec (other tests', libraries'), and a copy of one in a test's program (a
/// FIFO's writer, a socket) keeps something open that the test waits to see closed.
func closeInherited(_ actions: inout posix_spawn_file_actions_t) {
    _ = jobkit_spawn_actions_close_from(&actions, 3)
}

/// A process started in the background, its output going to files: for tests that signal it.
public struct Spawned: Sendable {
    public let pid: pid_t

    /// Starts `argv` with stdin from /dev/null, stdout and stderr to the files named (made
    /// afresh), and the signals a shell would give it.
    public init(_ argv: [String], stdout: String, stderr: String = "/dev/null") throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        closeInherited(&actions)
        var attributes = cleanSignals()
        defer { posix_spawnattr_destroy(&attributes) }
        var cArgs = argv.map { strdup($0) } + [nil]
        defer { for p in cArgs { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, &attributes, &cArgs, environ)
        guard rc == 0 else { throw POSIXError(POSIXErrorCode(rawValue: rc) ?? .EINVAL) }
        self.pid = pid
    }

    /// Waits for it to end (off the caller's thread): the signal that killed it, or its exit status.
    public func wait() async throws -> (signal: Int32?, status: Int32) {
        let pid = pid
        return try await onOwnThread {
            var status: Int32 = 0
            var rc: pid_t
            repeat { rc = waitpid(pid, &status, 0) } while rc < 0 && errno == EINTR
            guard rc == pid else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .ECHILD) }
            return status & 0x7f == 0 ? (nil, (status >> 8) & 0xff) : (status & 0x7f, 0)
        }
    }
}

/// `stdin`: a file to read standard input from (else /dev/null).
public func runProcess(
    _ executable: String, _ args: [String], environment: [String: String]? = nil, directory: String? = nil,
    stdin: String? = nil
) throws -> ProcessResult {
    var argv = [executable] + args
    var path = executable
    if let directory {
        // posix_spawn has no portable chdir: let a shell change directory, then exec.
        argv = ["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", directory] + argv
        path = "/bin/sh"
    }
    let env = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
    var outPipe: [Int32] = [-1, -1]
    var errPipe: [Int32] = [-1, -1]
    guard jobkit_pipe_cloexec(&outPipe) == 0, jobkit_pipe_cloexec(&errPipe) == 0 else {
        throw POSIXError(.EMFILE)
    }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, stdin ?? "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
    posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
    closeInherited(&actions)
    var cArgs = argv.map { strdup($0) } + [nil]
    var cEnv = env.map { strdup($0) } + [nil]
    defer {
        for p in cArgs { free(p) }
        for p in cEnv { free(p) }
    }
    var pid: pid_t = 0
    var attributes = cleanSignals()
    defer { posix_spawnattr_destroy(&attributes) }
    let rc = posix_spawn(&pid, path, &actions, &attributes, &cArgs, &cEnv)
    close(outPipe[1])
    close(errPipe[1])
    guard rc == 0 else {
        close(outPipe[0])
        close(errPipe[0])
        throw POSIXError(POSIXErrorCode(rawValue: rc) ?? .EINVAL)
    }
    var collected: [[UInt8]] = [[], []]
    var open = [outPipe[0], errPipe[0]]
    var buffer = [UInt8](repeating: 0, count: 65536)
    while open.contains(where: { $0 >= 0 }) {
        var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        if poll(&fds, nfds_t(fds.count), -1) < 0 {
            if errno == EINTR { continue }
            break
        }
        for i in 0..<2 where open[i] >= 0 && fds[i].revents != 0 {
            let n = buffer.withUnsafeMutableBytes { read(open[i], $0.baseAddress, $0.count) }
            if n > 0 {
                collected[i] += buffer[0..<n]
            } else if n == 0 || errno != EINTR {
                close(open[i])
                open[i] = -1
            }
        }
    }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let exitStatus = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    return ProcessResult(
        status: exitStatus, stdout: String(decoding: collected[0], as: UTF8.self),
        stderr: String(decoding: collected[1], as: UTF8.self))
}

/// `runProcess` on a thread of its own, so that waiting for the program blocks no thread of
/// the cooperative pool (tests run in parallel, and engine tests need those threads).
public func runProcessDetached(
    _ executable: String, _ args: [String], environment: [String: String]? = nil, directory: String? = nil,
    stdin: String? = nil
) async throws -> ProcessResult {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            continuation.resume(with: Result {
                try runProcess(executable, args, environment: environment, directory: directory, stdin: stdin)
            })
        }
        thread.start()
    }
}

/// Runs blocking work on a thread of its own and waits for it without holding a thread of the
/// cooperative pool (which parallel tests, and the engine under test, need).
public func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

/// Waits until `condition` holds, looking every `interval`, for at most `limit`; whether it
/// came to hold. For a test that waits on a fact (a file, a line, a state), never on time:
/// it returns as soon as the fact is there.
@discardableResult
public func eventually(
    within limit: Duration = .seconds(60), every interval: Duration = .milliseconds(20),
    _ condition: () async throws -> Bool
) async throws -> Bool {
    let deadline = ContinuousClock.now + limit
    while true {
        if try await condition() { return true }
        if ContinuousClock.now >= deadline { return false }
        try await Task.sleep(for: interval)
    }
}
