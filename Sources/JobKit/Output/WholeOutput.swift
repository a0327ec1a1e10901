import Foundation
import JobModel
import JobOutput

/// `job foreach` without `--as-job`: each child's output whole, once the child has finished
/// (GNU parallel's default), so that children running at once never mix their lines. In the
/// order they finish, or with `ordered` in ChildJobs order (`--keep-order`). Event-driven:
/// woken by the children's ends, never polling.
public struct WholeOutputStream: AsyncSequence, Sendable {
    public typealias Element = ReceiveEvent
    let manager: JobManager
    let parents: [Int]
    let ordered: Bool

    public func makeAsyncIterator() -> Iterator { Iterator(stream: self) }

    public struct Iterator: AsyncIteratorProtocol {
        let stream: WholeOutputStream
        private var events: AsyncStream<JobEvent>.AsyncIterator?
        private var pending: [ReceiveEvent] = []
        private var progress = WholeOutputProgress()
        private var candidates: [Int]? = nil
        private var ended = false

        init(stream: WholeOutputStream) { self.stream = stream }

        public mutating func next() async throws -> ReceiveEvent? {
            if events == nil {
                let parents = Set(stream.parents)
                // Subscribed before the first look: no end goes unseen in between.
                events = stream.manager.hub.stream { event in
                    event.job.state.isFinished && (event.job.parentId.map(parents.contains) ?? parents.contains(event.job.id))
                }.makeAsyncIterator()
            }
            while true {
                if !pending.isEmpty { return pending.removeFirst() }
                if ended { return nil }
                // Handed over, not shared: a copy kept here would make every child's insert
                // there copy the set of those delivered (a pass over them all per child).
                let lent = progress
                progress = WholeOutputProgress()
                let batch = await stream.manager.wholeBatch(stream.parents, ordered: stream.ordered, candidates: candidates, consume lent)
                (pending, progress) = (batch.events, batch.progress)
                if batch.finished != nil {
                    pending.append(.finished(batch.finished ?? []))
                    ended = true
                    continue
                }
                if !pending.isEmpty { continue }
                guard let event = await events?.next() else { return nil }
                candidates = [event.job.id]
            }
        }
    }
}

/// Where a whole-output stream is: per parent, the next child in order (`ordered`), or the
/// children already handed out.
struct WholeOutputProgress: Sendable {
    var next: [Int: Int] = [:]
    var delivered: Set<Int> = []
    /// How many of each parent's children were handed out (unordered).
    var count: [Int: Int] = [:]
}

extension JobManager {
    /// Each child's output once it has finished (see `WholeOutputStream`); the selected jobs'
    /// own children, or the jobs themselves for leaves.
    public nonisolated func wholeOutput(_ parentIds: [Int], ordered: Bool) -> WholeOutputStream {
        WholeOutputStream(manager: self, parents: parentIds, ordered: ordered)
    }

    /// The children that finished and were not handed out yet — in order (from `next`), or of
    /// `candidates` (all, when nil) — as slices and failures; and once every parent has
    /// finished and all was handed out, the parents.
    func wholeBatch(_ parents: [Int], ordered: Bool, candidates: [Int]?, _ progress: consuming WholeOutputProgress)
        -> (events: [ReceiveEvent], progress: WholeOutputProgress, finished: [JobInfo]?)
    {
        faultIn(parents)
        var progress = progress
        var events: [ReceiveEvent] = []
        var allDone = true
        for parentId in parents {
            guard let parent = table[parentId] else { continue }
            let children = parent.childIds.isEmpty ? [parentId] : parent.childIds
            if ordered {
                var index = progress.next[parentId] ?? 0
                while index < children.count, let child = table[children[index]], child.state.isFinished {
                    events += whole(child)
                    index += 1
                }
                progress.next[parentId] = index
                if index < children.count { allDone = false }
            } else {
                // In the order they finished, also those that had before the first look.
                let finished = (candidates ?? children).compactMap { table[$0] }.filter { child in
                    child.state.isFinished && !progress.delivered.contains(child.id) && (child.parentId == parentId || child.id == parentId)
                }.sorted { ($0.endTime ?? .distantPast, $0.id) < ($1.endTime ?? .distantPast, $1.id) }
                for child in finished {
                    events += whole(child)
                    progress.delivered.insert(child.id)
                    progress.count[parentId, default: 0] += 1
                }
                if progress.count[parentId, default: 0] < children.count { allDone = false }
            }
            if !parent.state.isFinished { allDone = false }
        }
        guard allDone else { return (events, progress, nil) }
        return (events, progress, parents.compactMap { table.info($0) })
    }

    /// A finished leaf's output not yet received, and its failure: tagged with its input.
    private func whole(_ leaf: JobRecord) -> [ReceiveEvent] {
        var slice = unreceived(leaf)
        if let input = leaf.input { slice.origin = input }
        var events: [ReceiveEvent] = slice.isEmpty ? [] : [.whole(slice)]
        if let failure = failure(of: leaf) { events.append(.failed(failure)) }
        return events
    }
}
