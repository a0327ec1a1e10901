import CJobKitSystem
import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Which jobs wrote output, for receive streams: one inotify watch on the jobs directory for
/// the whole engine. A watch per stream cost more than the rest of the stream's work: adding
/// one makes the kernel walk every entry it has cached for the directory (the files of jobs
/// long removed, too). And a stream told which of its jobs wrote looks at those only, not at
/// every job it follows on every write. The watch ends a while after its last subscriber, so
/// that output nobody waits for wakes nobody.
final class OutputWatcher: Sendable {
    /// Given the subscriber's jobs whose output grew, or nil when events were lost (any may have).
    typealias Subscriber = @Sendable (_ written: Set<Int>?) -> Void

    private struct State {
        var source: (any DispatchSourceRead)?
        var subscribers: [UInt64: (jobs: Set<Int>, notify: Subscriber)] = [:]
        var nextToken: UInt64 = 0
        /// Changes with every (un)subscription: an idle check finding it unchanged knows that
        /// nobody came meanwhile.
        var generation: UInt64 = 0
        var isShutDown = false
    }

    private let directory: String
    private let idleTime: DispatchTimeInterval
    private let state = Mutex(State())

    init(jobsDirectory: String, idleTime: DispatchTimeInterval = .seconds(10)) {
        directory = jobsDirectory
        self.idleTime = idleTime
    }

    /// Calls `notify` (on a dispatch thread) whenever some of `jobs` write, until
    /// `unsubscribe`. Without inotify, never: the caller still has job events.
    func subscribe(_ jobs: Set<Int>, notify: @escaping Subscriber) -> UInt64 {
        state.withLock { state in
            state.nextToken += 1
            state.generation += 1
            state.subscribers[state.nextToken] = (jobs, notify)
            if state.source == nil && !state.isShutDown { state.source = watch() }
            return state.nextToken
        }
    }

    func unsubscribe(_ token: UInt64) {
        let idle: UInt64? = state.withLock { state in
            state.subscribers.removeValue(forKey: token)
            state.generation += 1
            return state.subscribers.isEmpty && state.source != nil ? state.generation : nil
        }
        guard let idle else { return }
        DispatchQueue.global().asyncAfter(deadline: .now() + idleTime) { [weak self] in
            self?.state.withLock { state in
                guard state.generation == idle else { return }
                state.source?.cancel()
                state.source = nil
            }
        }
    }

    /// Whether the inotify watch is on.
    var isWatching: Bool { state.withLock { $0.source != nil } }

    func shutdown() {
        state.withLock { state in
            state.isShutDown = true
            state.subscribers = [:]
            state.source?.cancel()
            state.source = nil
        }
    }

    private func watch() -> (any DispatchSourceRead)? {
        let fd = jobkit_inotify_init()
        guard fd >= 0 else { return nil }
        // Writes only: a job's index file is created and written at once (its first record),
        // and the creations of other files (every remote job's ssh log) would be wake-ups for
        // nothing.
        guard jobkit_inotify_add_watch(fd, directory, jobkit_in_modify) >= 0 else {
            close(fd)
            return nil
        }
        let source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: DispatchQueue.global())
        source.setEventHandler { [weak self] in
            let written = Self.readEvents(fd)
            self?.deliver(written)
        }
        source.setCancelHandler { close(fd) }
        source.resume()
        return source
    }

    /// The ids of the jobs whose index file changed, from every event waiting; nil when the
    /// kernel's queue overflowed.
    private static func readEvents(_ fd: Int32) -> Set<Int>? {
        var written = Set<Int>()
        var lost = false
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard count > 0 else { break }
            // struct inotify_event: wd, mask, cookie, len (4 bytes each), then len bytes of
            // name, NUL-padded.
            var offset = 0
            while offset + 16 <= count {
                let (mask, length) = buffer.withUnsafeBytes {
                    ($0.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self),
                     Int($0.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self)))
                }
                if mask & jobkit_in_q_overflow != 0 { lost = true }
                let name = buffer[(offset + 16)..<min(count, offset + 16 + length)].prefix { $0 != 0 }
                if let id = jobId(indexFile: name) { written.insert(id) }
                offset += 16 + length
            }
        }
        return lost ? nil : written
    }

    /// `<id>.index` → id.
    private static func jobId(indexFile name: ArraySlice<UInt8>) -> Int? {
        let suffix = Array(".index".utf8)
        guard name.count > suffix.count, name.suffix(suffix.count).elementsEqual(suffix) else { return nil }
        var id = 0
        for byte in name.dropLast(suffix.count) {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9"), id < Int.max / 10 - 9 else { return nil }
            id = id * 10 + Int(byte - UInt8(ascii: "0"))
        }
        return id
    }

    private func deliver(_ written: Set<Int>?) {
        let subscribers = state.withLock { Array($0.subscribers.values) }
        for subscriber in subscribers {
            guard let written else {
                subscriber.notify(nil)
                continue
            }
            let mine = subscriber.jobs.intersection(written)
            if !mine.isEmpty { subscriber.notify(mine) }
        }
    }
}
