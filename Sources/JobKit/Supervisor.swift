import CJobKitSystem
import Foundation
import JobModel

#if canImport(Glibc)
import Glibc
#endif

/// Starts supervisors and reads what they leave behind. A supervisor (`jobkit-supervisor`,
/// written in C) runs one job in its own session, writes its output and exit status to the
/// job's directory, and holds the directory's `lock` for as long as it lives.
struct Supervisor: Sendable {
    /// The supervisor program.
    let executable: String

    /// Finds `jobkit-supervisor`: the path given, `$JOBKIT_SUPERVISOR`, beside the running
    /// program (where SwiftPM builds it, and where installs put it), then `$PATH`.
    static func locate(explicit: String?) throws(JobError) -> Supervisor {
        let name = "jobkit-supervisor"
        var candidates: [String] = []
        if let explicit { candidates.append(explicit) }
        let environment = ProcessInfo.processInfo.environment
        if let fromEnvironment = environment["JOBKIT_SUPERVISOR"], !fromEnvironment.isEmpty {
            candidates.append(fromEnvironment)
        }
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            let dir = (exe as NSString).deletingLastPathComponent
            candidates.append(dir + "/" + name)
            // Inside a test bundle (`X.xctest` is a file on Linux, but be safe on a directory).
            candidates.append((dir as NSString).deletingLastPathComponent + "/" + name)
        }
        for dir in (environment["PATH"] ?? "").split(separator: ":") {
            candidates.append("\(dir)/\(name)")
        }
        guard let found = candidates.first(where: { access($0, X_OK) == 0 }) else {
            throw JobError(
                .supervisor,
                "cannot find \(name): build it (swift build --product \(name)), install it beside this program, or set JOBKIT_SUPERVISOR"
            )
        }
        return Supervisor(executable: found)
    }

    /// Starts a supervisor for a process job whose directory `dir` exists and is empty.
    /// Returns the supervisor's pid.
    func spawn(dir: String, argv: [String], workingDirectory: String, environment: [String: String]) throws(JobError)
        -> pid_t
    {
        let lockPath = dir + "/lock"
        let lockFD = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lockFD >= 0 else { throw JobError(.storage, "cannot create \(lockPath): \(errnoMessage())") }
        defer { close(lockFD) }
        // Taken here and handed over: the lock is held from before the supervisor exists, so
        // an engine that dies at any moment leaves no window where a live job looks dead.
        _ = jobkit_flock(lockFD, LOCK_EX)
        let args = [executable, dir, workingDirectory] + argv
        let env = environment.map { "\($0.key)=\($0.value)" }
        var pid: pid_t = 0
        let rc = withCStringArray(args) { cArgs in
            withCStringArray(env) { cEnv in
                jobkit_spawn_supervisor(executable, cArgs, cEnv, lockFD, &pid)
            }
        }
        guard rc == 0 else {
            throw JobError(.supervisor, "cannot start \(executable): \(String(cString: strerror(rc)))")
        }
        return pid
    }

    /// Whether a supervisor still holds the job's directory.
    static func isAlive(dir: String) -> Bool {
        let fd = open(dir + "/lock", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return jobkit_flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK
    }

    /// What the supervisor recorded when its job ended, if it has ended.
    static func readStatus(dir: String) -> (LeafOutcome, Date)? {
        guard let text = readLineFile(dir + "/" + OutputFormat.statusFile) else { return nil }
        let words = text.split(whereSeparator: \.isWhitespace).map(String.init)
        guard words.count >= 3, let end = Int64(words[words.count - 1]) else { return nil }
        let time = Date(timeIntervalSince1970: Double(end) / 1e9)
        switch words[0] {
        case "exit": return Int32(words[1]).map { (.exited($0), time) }
        case "signal": return Int32(words[1]).map { (.signaled($0), time) }
        case "error" where words.count >= 4: return Int32(words[2]).map { (.couldNotStart(stage: words[1], errno: $0), time) }
        default: return nil
        }
    }

    /// The supervisor's pid and its job's (the job's process group), once the job started.
    static func readPids(dir: String) -> (supervisor: pid_t, job: pid_t)? {
        guard let text = readLineFile(dir + "/" + OutputFormat.pidFile) else { return nil }
        let words = text.split(separator: " ")
        guard words.count >= 2, let supervisor = pid_t(words[0]), let job = pid_t(words[1]) else { return nil }
        return (supervisor, job)
    }

    static func readJobPid(dir: String) -> pid_t? { readPids(dir: dir)?.job }

    /// A one-line file the supervisor wrote with a single write: complete once it ends in a
    /// newline. Read with plain calls: this is on the path of every job's end.
    private static func readLineFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0, buffer[n - 1] == UInt8(ascii: "\n") else { return nil }
        return String(decoding: buffer[0..<(n - 1)], as: UTF8.self)
    }
}

func errnoMessage(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }

/// Calls `body` with a NULL-terminated C array of the strings, valid only during the call.
func withCStringArray<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    var pointers = strings.map { strdup($0) }
    pointers.append(nil)
    defer { for p in pointers { free(p) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}
