import CJobKitSystem
import Dispatch
import Foundation
import JobModel
import JobOutput
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// What `receiveStream` yields: output as it arrives, failed jobs' reasons, and last of all
/// the selected top-level jobs as they finished (before `autoRemove` removes them).
public enum ReceiveEvent: Sendable, Equatable {
    case output(OutputChunk)
    /// A finished child's whole output, to read from its files (`wholeOutput`).
    case whole(OutputSlice)
    case failed(JobFailure)
    case finished([JobInfo])
}

/// `job receive --wait` as an AsyncSequence: output of the selected jobs as it arrives
/// (consumed as it is dealt with, unless `keep`), until they have all finished and all of it was read. Woken by inotify on
/// the jobs' output and by job events, and then looks at the jobs that wrote or changed
/// only: nothing polls.
public struct ReceiveStream: AsyncSequence, Sendable {
    public typealias Element = ReceiveEvent
    let manager: JobManager
    let selectors: [JobSelector]
    let keep: Bool
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
        private var watch: ReceiveWatch?
        private var pendingSlices: [OutputSlice] = []
        private var pendingFailures: [JobFailure] = []
        private var reader: OutputSliceReader?
        private var reported = Set<Int>()
        /// Where each leaf's output has been handed out up to.
        private var positions: [Int: Int] = [:]
        /// The last chunk handed out, received once the next is asked for.
        private var delivered: Receipt?
        private var done = false
        private var reportedFinal = false
        private var finished = false

        init(stream: ReceiveStream) {
            self.stream = stream
        }

        public mutating func next() async throws -> ReceiveEvent? {
            if let receipt = delivered {
                delivered = nil
                if !stream.keep { try await stream.manager.markReceived([receipt]) }
            }
            if finished { return nil }
            if !started {
                started = true
                let targets = try await stream.manager.streamTargets(
                    stream.selectors, recurse: stream.recurse, locations: stream.locations)
                leaves = targets.leaves
                topLevel = targets.topLevel
                // Watch before the first look, so nothing written in between goes unnoticed.
                watch = ReceiveWatch(jobs: Set(leaves), events: stream.manager.hub, writes: stream.manager.outputWatcher)
            }
            while true {
                if let reader, let chunk = try reader.nextChunk() {
                    positions[chunk.jobId] = chunk.end
                    delivered = Receipt(jobId: chunk.jobId, upTo: chunk.end)
                    return .output(chunk)
                }
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
                // Taken before the look: whatever is written during it wakes the next.
                let changed = watch?.take()
                let batch = await stream.manager.streamBatch(leaves, from: positions, changed: changed, reported: reported)
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

/// What a receive stream waits on: its jobs' writes (from the engine's `OutputWatcher`) and
/// their changes of state (job events), gathered into the set of jobs to look at next.
final class ReceiveWatch: @unchecked Sendable {
    // Sendable by construction: everything is set once in init, the set is behind its mutex,
    // and the iterator is used by the stream's one consumer only.
    private let hub: EventHub
    private let watcher: OutputWatcher
    private let hubToken: UInt64
    private let watcherToken: UInt64
    private let pending = Pending()
    private let continuation: AsyncStream<Void>.Continuation
    private var iterator: AsyncStream<Void>.AsyncIterator

    init(jobs: Set<Int>, events hub: EventHub, writes watcher: OutputWatcher) {
        let (wakeups, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        iterator = wakeups.makeAsyncIterator()
        self.continuation = continuation
        self.hub = hub
        self.watcher = watcher
        let pending = pending
        let mark: @Sendable (Set<Int>?) -> Void = { ids in
            pending.state.withLock { pending in
                if let ids { pending.ids.formUnion(ids) } else { pending.all = true }
            }
            continuation.yield()
        }
        hubToken = hub.observe { event in
            if jobs.contains(event.job.id) { mark([event.job.id]) }
        }
        watcherToken = watcher.subscribe(jobs, notify: mark)
    }

    /// The jobs that wrote or changed since the last call (nil: look at all), forgetting them.
    func take() -> Set<Int>? {
        pending.state.withLock { pending in
            defer { pending = ([], false) }
            return pending.all ? nil : pending.ids
        }
    }

    /// Waits for the next write or change; false when there will be none.
    func next() async -> Bool {
        await iterator.next() != nil
    }

    private final class Pending: Sendable {
        /// Jobs to look at; `all` until the first look, and when writes were lost.
        let state = Mutex<(ids: Set<Int>, all: Bool)>(([], true))
    }

    deinit {
        hub.remove(hubToken)
        watcher.unsubscribe(watcherToken)
        continuation.finish()
    }
}
