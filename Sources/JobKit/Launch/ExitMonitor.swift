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
    /// A foreach's lanes (supervisors that run one job after another, see lane.c): each one's
    /// pidfd, the engine's ends of its pipes, its foreach and the job it runs, if any.
    private struct Lane {
        let pidfd: Int32
        var request: Int32
        let report: Int32
        let parent: Int
        var current: Int?

        func closeDescriptors() {
            close(pidfd)
            close(report)
            if request >= 0 { close(request) }
        }
    }
    private struct Lanes {
        var lanes: [Int: Lane] = [:]
        var laneOfJob: [Int: Int] = [:]
        /// What lanes said of their jobs' output as they ended, until the engine asks.
        var records: [Int: Int] = [:]
        var next = 0

        /// Lane `number` is asked nothing more: it ends once its job has.
        mutating func closeRequests(of number: Int) {
            guard let request = lanes[number]?.request, request >= 0 else { return }
            close(request)
            lanes[number]?.request = -1
        }
    }
    private let lanes = Mutex(Lanes())
    /// Epoll tags: a job's id, or one of these with a lane's number.
    private static let lanePidTag: UInt64 = 1 << 62
    private static let laneReportTag: UInt64 = 1 << 61
    private static let laneMask: UInt64 = (1 << 48) - 1
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
                if tag & Self.lanePidTag != 0 {
                    ended += laneExited(Int(tag & Self.laneMask))
                } else if tag & Self.laneReportTag != 0 {
                    ended += laneReported(Int(tag & Self.laneMask))
                } else if exited(Int(tag)) {
                    ended.append(Int(tag))
                }
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

    // MARK: Lanes

    /// Watches a new lane (its supervisor `pid`, through `pidfd` if given: taken over), which
    /// runs job `id` first, and keeps the engine's ends of its pipes. False when that process
    /// is already gone (the caller then reads the job's status itself).
    func watchLane(id: Int, pid: pid_t, pidfd given: Int32?, pipes: Supervisor.LanePipes, parent: Int) -> Bool {
        let fd = given ?? jobkit_pidfd_open(pid)
        guard fd >= 0 else {
            pipes.closeEngineEnds()
            return false
        }
        let number = lanes.withLock { state in
            state.next += 1
            state.lanes[state.next] = Lane(pidfd: fd, request: pipes.requestWrite, report: pipes.reportRead, parent: parent, current: id)
            state.laneOfJob[id] = state.next
            return state.next
        }
        guard jobkit_epoll_add(epoll, fd, Self.lanePidTag | UInt64(number)) == 0 else {
            _ = removeLane(number)
            return false
        }
        _ = jobkit_epoll_add(epoll, pipes.reportRead, Self.laneReportTag | UInt64(number))
        return true
    }

    /// Hands job `id` to an idle lane of `parent`: `send` writes its request to the lane's
    /// request pipe (0, or an errno: that lane is not there to take it). False when no lane
    /// took it.
    func dispatch(parent: Int, id: Int, send: (Int32) -> Int32) -> Bool {
        lanes.withLock { state in
            for (number, lane) in state.lanes where lane.parent == parent && lane.current == nil && lane.request >= 0 {
                guard send(lane.request) == 0 else { continue }
                state.lanes[number]?.current = id
                state.laneOfJob[id] = number
                return true
            }
            return false
        }
    }

    /// Whether job `id` runs in a lane (its start is then in its slot, as an asked one's).
    func inLane(_ id: Int) -> Bool { lanes.withLock { $0.laneOfJob[id] != nil } }

    /// How many records job `id`'s index holds, if its lane said so as it ended (once).
    func takeRecordCount(_ id: Int) -> Int? { lanes.withLock { $0.records.removeValue(forKey: id) } }

    /// No more jobs for `parent`'s lanes: each ends once its job has.
    func closeLanes(parent: Int) {
        lanes.withLock { state in
            for (number, lane) in state.lanes where lane.parent == parent { state.closeRequests(of: number) }
        }
    }

    /// A lane's reports: the jobs that ended (their slots say how).
    private func laneReported(_ number: Int) -> [Int] {
        guard let report = lanes.withLock({ $0.lanes[number]?.report }) else { return [] }
        var ids = [Int64](repeating: 0, count: 64)
        var records = [UInt32](repeating: 0, count: 64)
        var ended: [Int] = []
        var counted: [(Int, Int)] = []
        while true {
            let count = ids.withUnsafeMutableBufferPointer { ids in
                records.withUnsafeMutableBufferPointer { jobkit_lane_read_reports(report, ids.baseAddress, $0.baseAddress, 64) }
            }
            if count < 0 {
                // The lane is gone, or going: its pidfd says when.
                _ = jobkit_epoll_del(epoll, report)
                break
            }
            if count == 0 { break }
            ended += ids.prefix(Int(count)).map { Int($0) }
            for (id, known) in zip(ids.prefix(Int(count)), records) where known > 0 { counted.append((Int(abs(id)), Int(known) - 1)) }
        }
        lanes.withLock { state in
            for (id, count) in counted { state.records[id] = count }
            for signed in ended {
                let id = abs(signed)
                guard state.laneOfJob.removeValue(forKey: id) != nil, let lane = state.lanes[number] else { continue }
                if lane.current == id { state.lanes[number]?.current = nil }
                // A lane that goes (its job left processes behind) is asked nothing more.
                if signed < 0 { state.closeRequests(of: number) }
            }
        }
        return ended.map(abs)
    }

    /// A lane exited: the job it ran, if any, ended with it (its slot says how, or nothing).
    private func laneExited(_ number: Int) -> [Int] {
        let reported = laneReported(number)
        return reported + (removeLane(number).map { [$0] } ?? [])
    }

    private func removeLane(_ number: Int) -> Int? {
        guard let lane = lanes.withLock({ state -> Lane? in
            guard let lane = state.lanes.removeValue(forKey: number) else { return nil }
            if let current = lane.current { state.laneOfJob.removeValue(forKey: current) }
            return lane
        }) else { return nil }
        _ = jobkit_epoll_del(epoll, lane.pidfd)
        _ = jobkit_epoll_del(epoll, lane.report)
        lane.closeDescriptors()
        return lane.current
    }

    /// Sends `signal` to job `id`'s supervisor if it is still alive; false if it is not. A
    /// lane's job gets it through its lane, addressed to it.
    @discardableResult
    func signal(id: Int, _ signal: Int32) -> Bool {
        if let pidfd = lanes.withLock({ state in state.laneOfJob[id].flatMap { state.lanes[$0]?.pidfd } }) {
            return jobkit_pidfd_sigqueue(pidfd, jobkit_lane_signal(), UInt64(id) << 8 | UInt64(signal)) == 0
        }
        return pidfds.withLock { pidfds in
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
        let lanesLeft = lanes.withLock { state in
            defer { state = Lanes() }
            return Array(state.lanes.values)
        }
        // The lanes finish the jobs they run, then end: the next engine reads their slots.
        for lane in lanesLeft { lane.closeDescriptors() }
        continuation.finish()
    }

    deinit {
        shutdown()
        close(epoll)
        close(wake)
    }
}
