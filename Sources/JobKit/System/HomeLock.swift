import CJobKitSystem
import Foundation
import JobModel

#if canImport(Glibc)
import Glibc
#endif

/// One engine per home: an exclusive lock on `HOME/engine.lock`, which holds the pid of the
/// engine that has it.
enum HomeLock {
    /// Takes the lock and returns its descriptor; `homeInUse` when another engine has it.
    static func acquire(_ home: String) throws(JobError) -> Int32 {
        let path = home + "/engine.lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw JobError(.storage, "cannot create \(path): \(errnoMessage())") }
        // A lock released a moment ago can still be held for a moment longer: a process being
        // spawned by another thread shares the descriptor until its exec closes it. Only a
        // lock held for a while means another engine.
        var locked = jobkit_flock(fd, LOCK_EX | LOCK_NB) == 0
        for _ in 0..<50 where !locked {
            usleep(10_000)
            locked = jobkit_flock(fd, LOCK_EX | LOCK_NB) == 0
        }
        guard locked else {
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            close(fd)
            throw JobError(
                .homeInUse, "another engine (pid \(holder ?? "?")) is using \(home); use that one or another home")
        }
        let pid = "\(getpid())\n"
        _ = ftruncate(fd, 0)
        _ = pid.withCString { pwrite(fd, $0, strlen($0), 0) }
        return fd
    }
}
