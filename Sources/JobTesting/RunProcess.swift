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
public func runProcess(
    _ executable: String, _ args: [String], environment: [String: String]? = nil, directory: String? = nil
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
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
    posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
    var cArgs = argv.map { strdup($0) } + [nil]
    var cEnv = env.map { strdup($0) } + [nil]
    defer {
        for p in cArgs { free(p) }
        for p in cEnv { free(p) }
    }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, path, &actions, nil, &cArgs, &cEnv)
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
    _ executable: String, _ args: [String], environment: [String: String]? = nil, directory: String? = nil
) async throws -> ProcessResult {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            continuation.resume(with: Result { try runProcess(executable, args, environment: environment, directory: directory) })
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
