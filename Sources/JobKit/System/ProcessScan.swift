import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What `/proc` says of the processes of a session: for a job whose supervisor died, the only
/// way left to find its processes (they were re-parented to init).
enum ProcessScan {
    /// The state, process group and session of a process, from `/proc/PID/stat`.
    private static func stat(of pid: String) -> (state: Character, group: pid_t, session: pid_t)? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        // After the command name (in parentheses, and anything may be in it): state, ppid,
        // pgrp, session.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 3, let state = fields[0].first, let group = pid_t(fields[2]), let session = pid_t(fields[3])
        else { return nil }
        return (state, group, session)
    }

    /// SIGKILL to every living process of the session and of the process group `leader`
    /// began, which the job's setsid made the same id. With `requireLeader`, only while the
    /// leader itself is alive and still leads that session: long after, its id may have been
    /// taken by another's. Returns how many were killed.
    @discardableResult
    static func endSession(of leader: pid_t, requireLeader: Bool) -> Int {
        guard leader > 1 else { return 0 }
        if requireLeader {
            guard let own = stat(of: String(leader)), own.state != "Z", own.session == leader else { return 0 }
        }
        var killed = 0
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = pid_t(name), pid != getpid(), let process = stat(of: name), process.state != "Z",
                process.session == leader || process.group == leader
            else { continue }
            if kill(pid, SIGKILL) == 0 { killed += 1 }
        }
        return killed
    }
}
