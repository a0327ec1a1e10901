import CJobKitSystem
import Foundation
import JobModel
import JobOutput

#if canImport(Glibc)
import Glibc
#endif

/// `job receive`: handing out what jobs wrote, and moving their receive cursors.
extension JobManager {
    /// `job receive`: the output not yet received of the selected jobs, as slices to read.
    ///
    /// For a parent, its children's output in ChildJobs order (then its own, which is
    /// empty); `recurse: false` reads only the named job's own output; `locations` keeps
    /// only children at those computers. Without `keep` what is returned counts as received
    /// and is not returned again; with `keep` nothing is consumed. The slices name files, so
    /// the size of the output costs nothing here.
    public func receive(
        _ selectors: [JobSelector], keep: Bool = false, recurse: Bool = true, locations: [String]? = nil
    ) throws(JobError) -> ReceivedOutput {
        let targets = readTargets(try resolveStrict(selectors).map(\.id), recurse: recurse, locations: locations)
        var output = ReceivedOutput()
        var changed: [JobRecord] = []
        for id in targets {
            guard let record = table[id] else { continue }
            if record.childIds.isEmpty {
                let slice = unreceived(record)
                if !slice.isEmpty { output.slices.append(slice) }
                if !keep, let updated = table.markReceived(id, upTo: slice.end) { changed.append(updated) }
            }
            if let failure = failure(of: record) { output.failures.append(failure) }
        }
        try persist(changed)
        return output
    }

    /// A leaf's output from its receive cursor to what is written now (at its end, to what it
    /// wrote in all).
    func unreceived(_ record: JobRecord) -> OutputSlice {
        let prefix = outputPrefix(record.id)
        let count = record.state.isFinished ? record.recorded : OutputFormat.recordCount(prefix: prefix)
        let origin = isLocal(record.location) ? record.parentId.flatMap { table[$0]?.name } ?? record.name : record.location
        return OutputSlice(
            jobId: record.id, jobName: record.name, location: record.location, origin: origin, prefix: prefix,
            start: record.received, end: count)
    }

    func failure(of record: JobRecord) -> JobFailure? {
        guard record.state == .failed, let reason = record.reason else { return nil }
        return JobFailure(jobId: record.id, jobName: record.name, location: record.location, reason: reason)
    }

    /// The jobs whose own output a receive reads, in order: for each selected job, its
    /// children (at `locations`) and then itself, each once.
    func readTargets(_ ids: [Int], recurse: Bool, locations: [String]?) -> [Int] {
        let wanted = locations.map { Set($0.map { $0.lowercased() }) }
        var result: [Int] = []
        var seen = Set<Int>()
        for id in ids {
            guard let job = table[id] else { continue }
            let candidates = recurse ? job.childIds + [id] : [id]
            for candidate in candidates where seen.insert(candidate).inserted {
                guard let record = table[candidate] else { continue }
                let isLeaf = record.childIds.isEmpty
                if let wanted, isLeaf, !wanted.contains(record.location.lowercased()) { continue }
                // A parent's own output is empty, but its Reason counts when read on its own.
                if !isLeaf && recurse { continue }
                result.append(candidate)
            }
        }
        return result
    }

    /// `job receive --wait`: the output of the selected jobs as it arrives, from their receive
    /// cursors, until every one of them has finished and all its output was read. Failed
    /// jobs' reasons come after their output. Each chunk counts as received once the next is
    /// asked for (the consumer has dealt with it); with `keep` nothing is consumed (a
    /// follow), and a reader elsewhere says what it wrote with `markReceived`. With
    /// `autoRemove`, the selected top-level jobs are removed at the end.
    public nonisolated func receiveStream(
        _ selectors: [JobSelector], keep: Bool = false, recurse: Bool = true, locations: [String]? = nil,
        autoRemove: Bool = false
    ) -> ReceiveStream {
        ReceiveStream(
            manager: self, selectors: selectors, keep: keep, recurse: recurse, locations: locations, autoRemove: autoRemove)
    }

    /// For `ReceiveStream`: the leaves it reads and the top-level jobs it may remove.
    func streamTargets(_ selectors: [JobSelector], recurse: Bool, locations: [String]?) throws(JobError)
        -> (leaves: [Int], topLevel: [Int])
    {
        let jobs = try resolveStrict(selectors)
        let targets = readTargets(jobs.map(\.id), recurse: recurse, locations: locations)
        return (targets, jobs.filter(\.isTopLevel).map(\.id))
    }

    /// For `ReceiveStream`: what the leaves wrote past `positions` (from their receive cursors
    /// for those not in it) — of those `changed` only, all when nil — and which of them
    /// ended, for their failure reasons, and whether all have. Consumes nothing.
    func streamBatch(_ leaves: [Int], from positions: [Int: Int], changed: Set<Int>?, reported: Set<Int>)
        -> (slices: [OutputSlice], ended: [Int], failures: [JobFailure], done: Bool)
    {
        var slices: [OutputSlice] = []
        var ended: [Int] = []
        var failures: [JobFailure] = []
        var done = true
        faultIn(leaves)
        for id in leaves {
            guard let record = table[id] else { continue }
            let finished = record.state.isFinished
            if !finished { done = false }
            // A leaf seen finished for the first time is read whatever the wake-up said: its end
            // may have come between the wake-up's take and this look, and its last output with it.
            if record.childIds.isEmpty, changed?.contains(id) ?? true || (finished && !reported.contains(id)) {
                var slice = unreceived(record)
                if let position = positions[id] { slice.start = max(slice.start, position) }
                if !slice.isEmpty { slices.append(slice) }
            }
            if finished, !reported.contains(id) {
                ended.append(id)
                if let failure = failure(of: record) { failures.append(failure) }
            }
        }
        return (slices, ended, failures, done)
    }

    /// Moves receive cursors forward to what readers say they have written (never back, never
    /// past what the job wrote): what a receive with `keep` handed out counts as received
    /// only once its reader says so.
    public func markReceived(_ receipts: [Receipt]) throws(JobError) {
        faultIn(receipts.map(\.jobId))
        var changed: [JobRecord] = []
        for receipt in receipts {
            guard let record = table[receipt.jobId], record.childIds.isEmpty else { continue }
            let written = unreceived(record).end
            if let updated = table.markReceived(record.id, upTo: min(receipt.upTo, written)) { changed.append(updated) }
        }
        try persist(changed)
    }

    /// Every change of the jobs with these ids (all jobs when nil) from now on, pushed as it
    /// is committed; the stream ends when dropped.
    public nonisolated func changes(of ids: Set<Int>? = nil) -> AsyncStream<JobEvent> {
        hub.stream(for: ids)
    }
}
