import CJobKitSystem
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Tells when supervisors exit, without polling: a pidfd per live supervisor in one epoll
/// set, read by one thread of its own. Works for supervisors this process started and for
/// those found alive after a restart. Also the one safe way to signal them: a pidfd never
/// reaches a process that merely reused the pid.
///
/// A plain thread rather than a dispatch source per job: setting up and tearing down a
/// source costs more than the rest of noticing a job's end.
final class ExitMonitor: Sendable {
    /// Per job: its supervisor's pidfd, and whether this process must reap it (a supervisor
    /// the engine spawned itself is its child; the zygote reaps those it forked).
    private let pidfds = Mutex<[Int: (fd: Int32, reap: Bool)]>([:])
    private let epoll: Int32
    private let wake: Int32
    private let thread = Mutex<pthread_t?>(nil)
    /// Ids of the jobs whose supervisors exited, for the engine's run loop: those of one
    /// wake-up together, so that jobs ending at once cost the engine one turn, and whoever
    /// waits on them one wake-up.
    let exits: AsyncStream<[Int]>
    private let continuation: AsyncStream<[Int]>.Continuation

    init() {
        (exits, continuation) = AsyncStream.makeStream(of: [Int].self)
        epoll = jobkit_epoll_create()
        wake = jobkit_eventfd()
        _ = jobkit_epoll_add(epoll, wake, UInt64.max)
        let box = Unmanaged.passRetained(self)
        var handle = pthread_t()
        let rc = pthread_create(&handle, nil, { raw in
            let monitor = Unmanaged<ExitMonitor>.fromOpaque(raw!).takeRetainedValue()
            monitor.loop()
            return nil
        }, box.toOpaque())
        if rc == 0 {
            thread.withLock { $0 = handle }
        } else {
            box.release()
        }
    }

    private func loop() {
        var tags = [UInt64](repeating: 0, count: 64)
        while true {
            let n = tags.withUnsafeMutableBufferPointer { jobkit_epoll_wait(epoll, $0.baseAddress, 64) }
            if n < 0 {
                if errno == EINTR { continue }
                return
            }
            var ended: [Int] = []
            for tag in tags.prefix(Int(n)) {
                if tag == UInt64.max { return }
                if exited(Int(tag)) { ended.append(Int(tag)) }
            }
            if !ended.isEmpty { continuation.yield(ended) }
        }
    }

    /// Watches the supervisor `pid` of job `id`, through `pidfd` if one is given (this takes
    /// it over). Returns false when that process is already gone (the caller then reads the
    /// job's status itself).
    @discardableResult
    func watch(id: Int, pid: pid_t, pidfd: Int32? = nil) -> Bool {
        let fd = pidfd ?? jobkit_pidfd_open(pid)
        guard fd >= 0 else { return false }
        pidfds.withLock { $0[id] = (fd, pidfd == nil) }
        if jobkit_epoll_add(epoll, fd, UInt64(id)) != 0 {
            pidfds.withLock { _ = $0.removeValue(forKey: id) }
            close(fd)
            return false
        }
        return true
    }

    /// Stops watching job `id`'s supervisor, which exited; false if it was not watched.
    private func exited(_ id: Int) -> Bool {
        guard let (fd, reap) = pidfds.withLock({ $0.removeValue(forKey: id) }) else { return false }
        _ = jobkit_epoll_del(epoll, fd)
        // Reaped if it may be this process's child (else ECHILD: whoever started it reaps it).
        if reap { _ = jobkit_pidfd_reap(fd) }
        close(fd)
        return true
    }

    /// Sends `signal` to job `id`'s supervisor if it is still alive; false if it is not.
    @discardableResult
    func signal(id: Int, _ signal: Int32) -> Bool {
        pidfds.withLock { pidfds in
            guard let fd = pidfds[id]?.fd else { return false }
            return jobkit_pidfd_signal(fd, signal) == 0
        }
    }

    /// Stops watching everything and ends `exits`; the supervisors are not touched.
    func shutdown() {
        guard let handle = thread.withLock({ t -> pthread_t? in
            defer { t = nil }
            return t
        }) else { return }
        var one: UInt64 = 1
        _ = write(wake, &one, 8)
        pthread_join(handle, nil)
        let all = pidfds.withLock { fds in
            defer { fds.removeAll() }
            return fds.values.map(\.fd)
        }
        for fd in all { close(fd) }
        continuation.finish()
    }

    deinit {
        shutdown()
        close(epoll)
        close(wake)
    }
}
