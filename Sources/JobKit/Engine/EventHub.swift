import Foundation
import JobModel
import Synchronization

/// A change of one job, as announced to whoever waits on jobs.
public struct JobEvent: Sendable {
    /// The job as it is after the change.
    public var job: JobInfo
    /// True when the job was removed.
    public var removed: Bool
}

/// Fans job events out to observers. Observers are called synchronously by the engine and
/// must only hand the event on (yield to a stream, resume a continuation).
final class EventHub: Sendable {
    typealias Observer = @Sendable (JobEvent) -> Void
    private let observers = Mutex<[UInt64: Observer]>([:])
    private let nextToken = Atomic<UInt64>(0)

    func observe(_ observer: @escaping Observer) -> UInt64 {
        let token = nextToken.add(1, ordering: .relaxed).newValue
        observers.withLock { $0[token] = observer }
        return token
    }

    func remove(_ token: UInt64) {
        _ = observers.withLock { $0.removeValue(forKey: token) }
    }

    /// How many observe now (for tests: a dropped stream's observer goes).
    var observerCount: Int { observers.withLock { $0.count } }

    func publish(_ events: [JobEvent]) {
        guard !events.isEmpty else { return }
        let current = observers.withLock { Array($0.values) }
        for observer in current {
            for event in events { observer(event) }
        }
    }

    /// A stream of the events about `jobs` (all events when nil) from now on; unsubscribes
    /// when the stream is dropped. Filtering here, not in the reader, spares a waiter a
    /// wake-up for every other job's change.
    func stream(for jobs: Set<Int>? = nil) -> AsyncStream<JobEvent> {
        stream { event in jobs?.contains(event.job.id) ?? true }
    }

    /// A stream of the events that pass `filter`, from now on (see `stream(for:)`). A job's
    /// events that come faster than the reader takes them are folded into its latest, in the
    /// place of its first: every reader here wants to know how a job is, not each step it took
    /// on the way, and a foreach's parent changes with each of its children. Unfolded, a
    /// reader a moment behind would hold a copy of the parent (its every child's id) for each
    /// child that started or ended meanwhile.
    func stream(where filter: @escaping @Sendable (JobEvent) -> Bool) -> AsyncStream<JobEvent> {
        let pending = PendingEvents()
        // One wake-up waiting at most: the reader takes all that is pending on each.
        let (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let token = observe { event in
            if filter(event), pending.put(event) { wake.yield() }
        }
        // The wake-ups' stream goes when the events' stream does (it holds its iterator):
        // that is when to unsubscribe.
        wake.onTermination = { [weak self] _ in self?.remove(token) }
        let reader = WakeReader(wakes.makeAsyncIterator())
        return AsyncStream(unfolding: {
            while true {
                if let event = pending.take() { return event }
                guard await reader.next() else { return nil }
            }
        })
    }
}

/// The events a stream's reader has not taken yet, a job's latest in the place of its first.
private final class PendingEvents: Sendable {
    private struct Queue {
        var order: [Int] = []
        var head = 0
        var latest: [Int: JobEvent] = [:]
    }
    private let queue = Mutex(Queue())

    /// Keeps the event; true when nothing was pending before it (the reader may be asleep).
    func put(_ event: JobEvent) -> Bool {
        queue.withLock { queue in
            let wasEmpty = queue.latest.isEmpty
            if queue.latest.updateValue(event, forKey: event.job.id) == nil { queue.order.append(event.job.id) }
            return wasEmpty
        }
    }

    func take() -> JobEvent? {
        queue.withLock { queue in
            while queue.head < queue.order.count {
                let id = queue.order[queue.head]
                queue.head += 1
                if queue.head == queue.order.count {
                    queue.order.removeAll(keepingCapacity: true)
                    queue.head = 0
                }
                if let event = queue.latest.removeValue(forKey: id) { return event }
            }
            return nil
        }
    }
}

/// The wake-ups' iterator, called by one reader at a time (an AsyncStream's unfolding
/// closure is never run twice at once).
private final class WakeReader: @unchecked Sendable {
    private var iterator: AsyncStream<Void>.AsyncIterator

    init(_ iterator: AsyncStream<Void>.AsyncIterator) { self.iterator = iterator }

    /// False once the stream ended.
    func next() async -> Bool { await iterator.next() != nil }
}
