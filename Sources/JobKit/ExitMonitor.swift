import CJobKitSystem
import Dispatch
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Tells when supervisors exit, without polling: a pidfd per live supervisor, watched by
/// the dispatch queue's epoll. Works for supervisors this process started and for those
/// found alive after a restart. Also the one safe way to signal them: a pidfd never
/// reaches a process that merely reused the pid.
final class ExitMonitor: Sendable {
    // Dispatch sources are thread-safe; the type just does not say so.
    private struct Watch: @unchecked Sendable {
        let fd: Int32
        let source: any DispatchSourceRead
    }

    private let watches = Mutex<[Int: Watch]>([:])
    private let queue = DispatchQueue(label: "jobkit.exit-monitor")
    /// Ids of the jobs whose supervisor exited, for the engine's run loop.
    let exits: AsyncStream<Int>
    private let continuation: AsyncStream<Int>.Continuation

    init() {
        (exits, continuation) = AsyncStream.makeStream(of: Int.self)
    }

    /// Watches the supervisor `pid` of job `id`, through `pidfd` if one is given (this takes
    /// it over). Returns false when that process is already gone (the caller then reads the
    /// job's status itself).
    @discardableResult
    func watch(id: Int, pid: pid_t, pidfd: Int32? = nil) -> Bool {
        let fd = pidfd ?? jobkit_pidfd_open(pid)
        guard fd >= 0 else { return false }
        let source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
        source.setEventHandler { [weak self] in self?.exited(id) }
        watches.withLock { $0[id] = Watch(fd: fd, source: source) }
        source.resume()
        return true
    }

    private func exited(_ id: Int) {
        guard let watch = watches.withLock({ $0.removeValue(forKey: id) }) else { return }
        // Reaps it if it is this process's child (else ECHILD: whoever started it reaps it).
        _ = jobkit_pidfd_reap(watch.fd)
        watch.source.setCancelHandler { close(watch.fd) }
        watch.source.cancel()
        continuation.yield(id)
    }

    /// Sends `signal` to job `id`'s supervisor if it is still alive; false if it is not.
    @discardableResult
    func signal(id: Int, _ signal: Int32) -> Bool {
        watches.withLock { watches in
            guard let watch = watches[id] else { return false }
            return jobkit_pidfd_signal(watch.fd, signal) == 0
        }
    }

    /// Stops watching everything and ends `exits`; the supervisors are not touched.
    func shutdown() {
        let all = watches.withLock { w in
            defer { w.removeAll() }
            return Array(w.values)
        }
        for watch in all {
            watch.source.setCancelHandler { close(watch.fd) }
            watch.source.cancel()
        }
        continuation.finish()
    }

    deinit { shutdown() }
}
