import Foundation
import JobModel

#if canImport(Glibc)
import Glibc
#endif

/// The jobs and the rules that move them from state to state, with no I/O: every mutating
/// method returns the records it changed, for the caller to persist and announce. Owned by
/// `JobManager`; tested on its own without processes.
struct JobTable: Sendable, JobSource {
    private(set) var records: [Int: JobRecord] = [:]
    /// Every id, ascending: new ids are always larger, so adding appends.
    private(set) var ids: [Int] = []

    init(_ loaded: [JobRecord] = []) {
        // The database hands records out in id order: then there is nothing to sort (a page
        // of history is read this way thousands of times for one listing).
        let inOrder = zip(loaded, loaded.dropFirst()).allSatisfy { $0.id < $1.id }
        let sorted = inOrder ? loaded : loaded.sorted { $0.id < $1.id }
        records.reserveCapacity(sorted.count)
        for record in sorted { records[record.id] = record }
        ids = inOrder ? sorted.map(\.id) : records.keys.sorted()
        for record in sorted {
            if let parentId = record.parentId { records[parentId]?.childIds.append(record.id) }
        }
    }

    subscript(id: Int) -> JobRecord? { records[id] }

    /// Adds a new job (a parent with its children, or a lone thread job).
    mutating func add(_ new: [JobRecord]) {
        for record in new {
            if records.updateValue(record, forKey: record.id) == nil {
                if let last = ids.last, last > record.id {
                    ids.insert(record.id, at: ids.firstIndex { $0 > record.id } ?? ids.endIndex)
                } else {
                    ids.append(record.id)
                }
            }
        }
        for record in new {
            if let parentId = record.parentId, records[parentId]?.childIds.contains(record.id) == false {
                records[parentId]?.childIds.append(record.id)
            }
        }
    }

    /// A leaf ended: its state, exit code and reason follow from how, and whether a stop was
    /// asked for; then its parent's state follows from its children's.
    /// `lost` says what of its output could not be stored: that fails a job that did not fail
    /// otherwise (its exit code stays), and is added to the reason of one that did.
    mutating func leafEnded(_ id: Int, outcome: LeafOutcome, at time: Date, recorded: Int, lost: String? = nil) -> [JobRecord] {
        guard var leaf = records[id], !leaf.state.isFinished else { return [] }
        (leaf.state, leaf.exitCode, leaf.reason) = Self.result(of: outcome, stopRequested: leaf.stopRequested, command: leaf)
        if let lost, leaf.state != .stopped {
            leaf.state = .failed
            leaf.reason = leaf.reason.map { "\($0); \(lost)" } ?? lost
        }
        leaf.beginTime = leaf.beginTime ?? time
        leaf.endTime = time
        leaf.recorded = recorded
        records[id] = leaf
        return [leaf] + updateParent(of: leaf, at: time)
    }

    /// A child that waited for a throttle slot starts now.
    mutating func begin(_ id: Int, at time: Date) -> [JobRecord] {
        guard var leaf = records[id], leaf.state == .notStarted else { return [] }
        leaf.state = .running
        leaf.beginTime = time
        records[id] = leaf
        return [leaf]
    }

    /// The scheduler's step for one parent: its first waiting child, begun, when fewer than
    /// `throttle` of its children are running or stopping; nil when none is to start. The
    /// caller launches the child and asks again (a child that fails to launch frees its slot).
    mutating func beginNext(ofParent parentId: Int, throttle: Int, at time: Date) -> (child: Int, changed: [JobRecord])? {
        guard let parent = records[parentId], !parent.state.isFinished else { return nil }
        let active = parent.childIds.filter { [.running, .stopping].contains(records[$0]?.state) }.count
        guard active < throttle, let next = parent.childIds.first(where: { records[$0]?.state == .notStarted }) else {
            return nil
        }
        return (next, begin(next, at: time))
    }

    /// A child that was connecting when its engine went away waits for a slot again.
    mutating func requeue(_ id: Int) -> [JobRecord] {
        guard var leaf = records[id], leaf.state == .running else { return [] }
        leaf.state = .notStarted
        leaf.beginTime = nil
        records[id] = leaf
        return [leaf]
    }

    /// Parents that have children waiting to start, and the plan to start them with.
    var parentsWithWaitingChildren: [Int] {
        ids.filter { id in
            guard let job = records[id], job.launch != nil, !job.state.isFinished else { return false }
            return job.childIds.contains { records[$0]?.state == .notStarted }
        }
    }

    /// Marks jobs (and, for a parent, its children) as being stopped. Returns the records
    /// changed and the leaves whose runners must now be told to stop; leaves that never
    /// started become `Stopped` at once.
    mutating func requestStop(_ ids: [Int], at time: Date) -> (changed: [JobRecord], toSignal: [Int]) {
        var changed: [Int: JobRecord] = [:]
        var toSignal: [Int] = []
        for leafId in leaves(of: ids) {
            guard var leaf = records[leafId], !leaf.state.isFinished else { continue }
            if leaf.state == .notStarted {
                leaf.stopRequested = true
                records[leafId] = leaf
                for record in leafEnded(leafId, outcome: .cancelled, at: time, recorded: 0) {
                    changed[record.id] = record
                }
                continue
            }
            if !leaf.stopRequested || leaf.state != .stopping {
                leaf.stopRequested = true
                leaf.state = .stopping
                records[leafId] = leaf
                changed[leafId] = leaf
                if let parentId = leaf.parentId, var parent = records[parentId], parent.state == .running {
                    parent.state = .stopping
                    records[parentId] = parent
                    changed[parentId] = parent
                }
            }
            toSignal.append(leafId)
        }
        return (changed.values.sorted { $0.id < $1.id }, toSignal)
    }

    /// Records that output up to `count` records of a leaf has been received.
    mutating func markReceived(_ id: Int, upTo count: Int) -> JobRecord? {
        guard var leaf = records[id], count > leaf.received else { return nil }
        leaf.received = count
        records[id] = leaf
        return leaf
    }

    /// Lets go of the finished families (all committed, so none of `keeping`): the database
    /// has them, and `History` reads them from there.
    /// Looks at the families of `candidates` only (all when nil): a commit touches a few, and
    /// the table may hold thousands under way. Returns the candidates it kept.
    @discardableResult
    mutating func evictFinished(_ candidates: Set<Int>? = nil, keeping uncommitted: Set<Int>) -> Set<Int> {
        let tops = candidates.map { Set($0.compactMap { records[$0].map { $0.parentId ?? $0.id } }) } ?? Set(ids)
        var done: [Int] = []
        var kept = Set<Int>()
        for id in tops {
            guard let job = records[id], job.parentId == nil else { continue }
            let finished = job.state.isFinished && !uncommitted.contains(id)
                && job.childIds.allSatisfy { child in records[child]?.state.isFinished ?? true && !uncommitted.contains(child) }
            if finished { done.append(id) } else { kept.insert(id) }
        }
        if !done.isEmpty { _ = remove(done) }
        return kept
    }

    /// Drops top-level jobs and their children; returns every id dropped.
    mutating func remove(_ removed: [Int]) -> [Int] {
        var dropped: [Int] = []
        for id in removed {
            guard let job = records[id] else { continue }
            for childId in job.childIds where records.removeValue(forKey: childId) != nil {
                dropped.append(childId)
            }
            records.removeValue(forKey: id)
            dropped.append(id)
        }
        // A few at a time (a commit's families): found by halving, not by a pass over all.
        if dropped.count < 64 {
            for id in dropped {
                var low = 0
                var high = ids.count
                while low < high {
                    let middle = (low + high) / 2
                    if ids[middle] < id { low = middle + 1 } else { high = middle }
                }
                if low < ids.count, ids[low] == id { ids.remove(at: low) }
            }
        } else {
            let gone = Set(dropped)
            ids.removeAll { gone.contains($0) }
        }
        return dropped
    }

    /// The leaves that do a job's work: its children, or itself when it has none.
    func leaves(of ids: [Int]) -> [Int] {
        var result: [Int] = []
        var seen = Set<Int>()
        for id in ids {
            guard let job = records[id] else { continue }
            for leaf in job.childIds.isEmpty ? [id] : job.childIds where seen.insert(leaf).inserted {
                result.append(leaf)
            }
        }
        return result
    }

    /// What users see of a job. `liveRecords` counts a running leaf's output on disk, for
    /// HasMoreData once it has finished but was never re-read (it is stored at the end).
    func info(_ id: Int) -> JobInfo? {
        guard let job = records[id] else { return nil }
        return JobInfo(
            id: job.id, instanceId: job.instanceId, name: job.name, type: job.type, state: job.state,
            hasMoreData: hasMoreData(job), location: job.location, command: job.command, childJobs: job.childIds,
            parentId: job.parentId, beginTime: job.beginTime, endTime: job.endTime, exitCode: job.exitCode,
            reason: job.reason)
    }

    var allInfo: [JobInfo] { ids.compactMap { info($0) } }

    func job(withId id: Int) -> JobInfo? { info(id) }
    var allJobs: [JobInfo] { allInfo }

    private func hasMoreData(_ job: JobRecord) -> Bool {
        guard job.state.isFinished else { return true }
        if job.childIds.isEmpty { return job.received < job.recorded }
        return job.childIds.contains { records[$0].map(hasMoreData) ?? false }
    }

    // A parent is Running until every child has finished; then Failed if any failed, else
    // Stopped if any was stopped, else Completed. Disconnected children make it Disconnected.
    private mutating func updateParent(of leaf: JobRecord, at time: Date) -> [JobRecord] {
        guard let parentId = leaf.parentId, var parent = records[parentId], !parent.state.isFinished else { return [] }
        let children = parent.childIds.compactMap { records[$0] }
        let state = Self.parentState(children.map(\.state), stopping: parent.state == .stopping)
        guard state != parent.state else { return [] }
        parent.state = state
        if state.isFinished {
            // Its children have all started and ended: the plan (with its environment) is spent.
            parent.launch = nil
            parent.endTime = children.compactMap(\.endTime).max() ?? time
            if children.count == 1 {
                parent.exitCode = children[0].exitCode
                parent.reason = children[0].reason
            } else {
                parent.reason = Self.summary(ofFailed: children.filter { $0.state == .failed })
            }
        }
        records[parentId] = parent
        return [parent]
    }

    static func parentState(_ children: [JobState], stopping: Bool = false) -> JobState {
        if children.allSatisfy(\.isFinished) {
            if children.contains(.failed) { return .failed }
            if children.contains(.stopped) { return .stopped }
            return .completed
        }
        if children.allSatisfy(\.isPersistent) { return .disconnected }
        return stopping ? .stopping : .running
    }

    private static func summary(ofFailed failed: [JobRecord]) -> String? {
        guard let first = failed.first else { return nil }
        let line = "\(first.name): \(first.reason ?? "failed")"
        return failed.count == 1 ? line : "\(line) (and \(failed.count - 1) more failed child jobs)"
    }

    static func result(of outcome: LeafOutcome, stopRequested: Bool, command job: JobRecord)
        -> (JobState, Int?, String?)
    {
        switch outcome {
        case .exited(let status):
            if stopRequested { return (.stopped, Int(status), nil) }
            return status == 0 ? (.completed, 0, nil) : (.failed, Int(status), "exited with status \(status)")
        case .signaled(let signal):
            if stopRequested { return (.stopped, 128 + Int(signal), nil) }
            return (.failed, 128 + Int(signal), "killed by signal \(signalName(signal))")
        case .couldNotStart(let stage, let errno):
            return (.failed, nil, startFailure(stage: stage, errno: errno, job: job))
        case .returned:
            return stopRequested ? (.stopped, nil, nil) : (.completed, nil, nil)
        case .failed(let reason):
            return (.failed, nil, reason)
        case .cancelled:
            return (.stopped, nil, nil)
        }
    }

    private static func startFailure(stage: String, errno: Int32, job: JobRecord) -> String {
        let message = String(cString: strerror(errno))
        switch (stage, errno) {
        case ("exec", ENOENT): return "no such program: \(job.program ?? job.command)"
        case ("exec", EACCES): return "cannot run \(job.program ?? job.command): permission denied"
        case ("exec", _): return "cannot run \(job.program ?? job.command): \(message)"
        case ("chdir", ENOENT): return "no such directory: \(job.workingDirectory ?? "?")"
        case ("chdir", _): return "cannot enter \(job.workingDirectory ?? "the working directory"): \(message)"
        default: return "the job could not be started (\(stage)): \(message)"
        }
    }

    static func signalName(_ signal: Int32) -> String {
        let names: [Int32: String] = [
            SIGHUP: "SIGHUP", SIGINT: "SIGINT", SIGQUIT: "SIGQUIT", SIGILL: "SIGILL", SIGTRAP: "SIGTRAP",
            SIGABRT: "SIGABRT", SIGBUS: "SIGBUS", SIGFPE: "SIGFPE", SIGKILL: "SIGKILL", SIGUSR1: "SIGUSR1",
            SIGSEGV: "SIGSEGV", SIGUSR2: "SIGUSR2", SIGPIPE: "SIGPIPE", SIGALRM: "SIGALRM", SIGTERM: "SIGTERM",
            SIGXCPU: "SIGXCPU", SIGXFSZ: "SIGXFSZ", SIGSYS: "SIGSYS",
        ]
        return names[signal] ?? "\(signal)"
    }
}
