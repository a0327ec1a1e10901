import CJobKitSystem
import Foundation
import JobModel

#if canImport(Glibc)
import Glibc
#endif


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
    try await runCapturing(argv, environment: environment, capture: false).status
}

/// The same, with what it wrote to stdout (up to a pipe's worth: for one-line answers). Read
/// once it has exited: an ssh that becomes a master leaves a process behind, which must not
/// be waited for.
func runCapturing(_ argv: [String], environment: [String: String], capture: Bool = true) async throws(JobError)
    -> (status: Int32, output: String)
{
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
    var fds: [Int32] = [-1, -1]
    if capture {
        guard jobkit_socketpair(&fds) == 0 else { throw JobError(.unavailable, "cannot run \(program): \(errnoMessage())") }
        _ = fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK)
    }
    var pid: pid_t = 0
    let writeEnd = fds[1]
    let rc = withCStringArray(argv) { cArgs in
        withCStringArray(environment.map { "\($0.key)=\($0.value)" }) { cEnv in
            jobkit_spawn_plain(path, cArgs, cEnv, writeEnd, &pid)
        }
    }
    if writeEnd >= 0 { close(writeEnd) }
    let readEnd = fds[0]
    guard rc == 0 else {
        if readEnd >= 0 { close(readEnd) }
        throw JobError(.unavailable, "cannot run \(program): \(errnoMessage(rc))")
    }
    let spawned = pid
    return await withCheckedContinuation { continuation in
        let waiter = Thread {
            var status: Int32 = 0
            while waitpid(spawned, &status, 0) < 0 && errno == EINTR {}
            let code = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
            var bytes: [UInt8] = []
            if readEnd >= 0 {
                var buffer = [UInt8](repeating: 0, count: 65_536)
                while true {
                    let n = buffer.withUnsafeMutableBytes { read(readEnd, $0.baseAddress, $0.count) }
                    if n > 0 { bytes += buffer[0..<n] } else if n < 0 && errno == EINTR { continue } else { break }
                }
                close(readEnd)
            }
            continuation.resume(returning: (code, String(decoding: bytes, as: UTF8.self)))
        }
        waiter.start()
    }
}
