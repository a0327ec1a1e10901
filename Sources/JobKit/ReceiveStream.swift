import CJobKitSystem
import Dispatch
import Foundation
import JobModel

#if canImport(Glibc)
import Glibc
#endif

/// What `receiveStream` yields: output as it arrives, failed jobs' reasons, and last of all
/// the selected top-level jobs as they finished (before `autoRemove` removes them).
public enum ReceiveEvent: Sendable, Equatable {
    case output(OutputChunk)
    case failed(JobFailure)
    case finished([JobInfo])
}

/// `job receive --wait` as an AsyncSequence: output of the selected jobs as it arrives
/// (consumed), until they have all finished and all of it was read. Woken by inotify on
/// the jobs' output and by job events: nothing polls.
public struct ReceiveStream: AsyncSequence, Sendable {
    public typealias Element = ReceiveEvent
    let manager: JobManager
    let selectors: [JobSelector]
    let recurse: Bool
    let locations: [String]?
    let autoRemove: Bool

    public func makeAsyncIterator() -> Iterator {
        Iterator(stream: self)
    }

    public struct Iterator: AsyncIteratorProtocol {
        let stream: ReceiveStream
        private var started = false
        private var leaves: [Int] = []
        private var topLevel: [Int] = []
        private var watch: OutputWatch?
        private var pendingSlices: [OutputSlice] = []
        private var pendingFailures: [JobFailure] = []
        private var reader: OutputSliceReader?
        private var reported = Set<Int>()
        private var done = false
        private var reportedFinal = false
        private var finished = false

        init(stream: ReceiveStream) {
            self.stream = stream
        }

        public mutating func next() async throws -> ReceiveEvent? {
            if finished { return nil }
            if !started {
                started = true
                let targets = try await stream.manager.streamTargets(
                    stream.selectors, recurse: stream.recurse, locations: stream.locations)
                leaves = targets.leaves
                topLevel = targets.topLevel
                // Watch before the first look, so nothing written in between goes unnoticed.
                watch = OutputWatch(jobsDirectory: targets.jobsDirectory, jobs: Set(leaves), events: stream.manager.hub)
            }
            while true {
                if let reader, let chunk = try reader.nextChunk() { return .output(chunk) }
                reader = nil
                if !pendingSlices.isEmpty {
                    reader = try OutputSliceReader(slice: pendingSlices.removeFirst())
                    continue
                }
                if !pendingFailures.isEmpty { return .failed(pendingFailures.removeFirst()) }
                if done && !reportedFinal {
                    reportedFinal = true
                    var jobs: [JobInfo] = []
                    for id in topLevel { if let job = await stream.manager.job(id) { jobs.append(job) } }
                    return .finished(jobs)
                }
                if done {
                    finished = true
                    watch = nil
                    if stream.autoRemove, !topLevel.isEmpty {
                        try await stream.manager.remove(topLevel.map { .id($0) }, force: true)
                    }
                    return nil
                }
                let batch = try await stream.manager.takeStreamBatch(leaves, reported: reported)
                pendingSlices = batch.slices
                pendingFailures = batch.failures
                reported.formUnion(batch.ended)
                done = batch.done
                if pendingSlices.isEmpty && pendingFailures.isEmpty && !done {
                    guard let watch, await watch.next() else {
                        // The engine shut down, or our task was cancelled.
                        finished = true
                        return nil
                    }
                }
            }
        }
    }
}

/// Wakes a receive stream when any of its jobs writes output or changes state. (Writes of
/// other jobs in the home wake it too; it then finds nothing new and waits again.)
final class OutputWatch: @unchecked Sendable {
    // Sendable by construction: the fd and source are set once in init and only closed in
    // deinit; the stream is itself Sendable.
    private let inotify: Int32
    private let source: (any DispatchSourceRead)?
    private let hub: EventHub
    private let token: UInt64
    private let wakeups: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation
    private var iterator: AsyncStream<Void>.AsyncIterator

    init(jobsDirectory: String, jobs: Set<Int>, events hub: EventHub) {
        (wakeups, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        iterator = wakeups.makeAsyncIterator()
        self.hub = hub
        let continuation = continuation
        token = hub.observe { event in
            if jobs.contains(event.job.id) { continuation.yield() }
        }
        inotify = jobkit_inotify_init()
        if inotify >= 0 {
            // The whole jobs directory: a job's files appear only when it first writes.
            _ = jobkit_inotify_add_watch(inotify, jobsDirectory, jobkit_in_modify | jobkit_in_moved_to | jobkit_in_create)
            let fd = inotify
            let source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: DispatchQueue.global())
            source.setEventHandler {
                var buffer = [UInt8](repeating: 0, count: 4096)
                while buffer.withUnsafeMutableBytes({ read(fd, $0.baseAddress, $0.count) }) > 0 {}
                continuation.yield()
            }
            source.resume()
            self.source = source
        } else {
            source = nil
        }
    }

    /// Waits for the next wake-up; false when there will be none.
    func next() async -> Bool {
        await iterator.next() != nil
    }

    deinit {
        hub.remove(token)
        continuation.finish()
        if let source {
            let fd = inotify
            source.setCancelHandler { close(fd) }
            source.cancel()
        } else if inotify >= 0 {
            close(inotify)
        }
    }
}
