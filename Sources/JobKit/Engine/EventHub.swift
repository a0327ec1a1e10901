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

    /// A stream of the events that pass `filter`, from now on (see `stream(for:)`).
    func stream(where filter: @escaping @Sendable (JobEvent) -> Bool) -> AsyncStream<JobEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: JobEvent.self)
        let token = observe { event in
            if filter(event) { continuation.yield(event) }
        }
        continuation.onTermination = { [weak self] _ in self?.remove(token) }
        return stream
    }
}
