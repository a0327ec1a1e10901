import Foundation
import JobModel

#if canImport(Glibc)
import Glibc
#endif

/// The jobs and the rules that move them from state to state, with no I/O: every mutating
/// method returns the records it changed, for the caller to persist and announce. Owned by
/// `JobManager`; tested on its own without processes.
///
/// Every record goes in through `put`, which keeps the tallies the rules read (how many of a
/// parent's children, and of a queue's jobs, are in each state): a parent with 100,000
/// children must not cost a pass over them at each child's end.
struct JobTable: Sendable, JobSource {
    private(set) var records: [Int: JobRecord] = [:]
    /// Every id, ascending: new ids are always larger, so adding appends.
    private(set) var ids: [Int] = []
    /// Per parent: its children by state and phase.
    private(set) var tallies: [Int: Tally] = [:]
    /// Per queue (by `queueKey`): its leaves by phase.
    private(set) var queueTallies: [String: Tally] = [:]
    /// Per queue: the parents that have children ready to start, ascending (see `beginReady`).
    var ready: [String: [Int]] = [:]
    /// Per parent: the index in its children before which none is waiting to start.
    var cursors: [Int: Int] = [:]
    /// Parents that wait for the jobs they depend on to end.
    var blocked: Set<Int> = []
    /// For each job some parent waits for: those parents.
    var dependents: [Int: [Int]] = [:]
    /// Per session: its leaves that hold it (running, stopping, suspended, between attempts),
    /// and those waiting for it.
    private(set) var sessionActive: [Int: Int] = [:]
    private(set) var sessionWaiting: [Int: Int] = [:]

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
        for record in sorted { count(record, in: 1) }
        for record in sorted where record.parentId == nil { refreshReady(record.id) }
    }

    subscript(id: Int) -> JobRecord? { records[id] }

    /// Adds a new job (a parent with its children, or a lone thread job), or brings a
    /// finished family back from the database.
    mutating func add(_ new: [JobRecord]) {
        var parents: [Int] = []
        for record in new {
            if let old = records.updateValue(record, forKey: record.id) {
                count(old, in: -1)
            } else if let last = ids.last, last > record.id {
                ids.insert(record.id, at: ids.firstIndex { $0 > record.id } ?? ids.endIndex)
            } else {
                ids.append(record.id)
            }
            count(record, in: 1)
            parents.append(record.parentId ?? record.id)
        }
        for record in new {
            // Children come in id order (a foreach's, a batch at a time): a look at the last
            // one, not a pass over them all, for each. No copy of the list is held meanwhile,
            // or the append would copy it all.
            guard let parentId = record.parentId, let last = records[parentId].map({ $0.childIds.last }) else { continue }
            if last.map({ $0 < record.id }) ?? true {
                records[parentId]?.childIds.append(record.id)
            } else if records[parentId]?.childIds.contains(record.id) == false {
                let index = records[parentId].map { Self.insertionIndex(of: record.id, in: $0.childIds) } ?? 0
                records[parentId]?.childIds.insert(record.id, at: index)
            }
        }
        for id in Set(parents) where records[id]?.parentId == nil { refreshReady(id) }
    }

    /// Replaces a record, keeping the tallies and the parent's place among the ready ones.
    mutating func put(_ record: JobRecord) {
        guard let old = records[record.id] else {
            records[record.id] = record
            count(record, in: 1)
            return
        }
        var kept = record
        kept.childIds = old.childIds
        records[record.id] = kept
        guard Tally.Slot(old) != Tally.Slot(record) else { return }
        count(old, in: -1)
        count(record, in: 1)
        if let parentId = record.parentId { refreshReady(parentId) }
    }

    /// A leaf counts in its parent's tally and its queue's.
    private mutating func count(_ record: JobRecord, in sign: Int) {
        guard let parentId = record.parentId else { return }
        tallies[parentId, default: Tally()].add(record, sign)
        queueTallies[Self.queueKey(record.queue), default: Tally()].add(record, sign)
        if let session = record.sessionId {
            switch Tally.phase(record) {
            case .active: Self.add(sign, to: &sessionActive, session)
            case .waiting: Self.add(sign, to: &sessionWaiting, session)
            case .finished: break
            }
        }
    }

    private static func add(_ sign: Int, to counts: inout [Int: Int], _ key: Int) {
        let count = (counts[key] ?? 0) + sign
        counts[key] = count > 0 ? count : nil
    }

    /// Whether a command runs in the session now: the next waits for it to end.
    func isBusy(session: Int) -> Bool { sessionActive[session] != nil }

    /// Whether a new command may start in the session at once: none runs there, and none
    /// waits for it (which would go first).
    func isFree(session: Int) -> Bool { sessionActive[session] == nil && sessionWaiting[session] == nil }

    /// Queue names are told apart without regard to case.
    static func queueKey(_ name: String) -> String { name.lowercased() }

    /// A leaf ended: its state, exit code and reason follow from how, and whether a stop was
    /// asked for; then its parent's state follows from its children's. A leaf that failed
    /// with runs left does not end: it waits for its next attempt (`retryPending`).
    /// `lost` says what of its output could not be stored: that fails a job that did not fail
    /// otherwise (its exit code stays), and is added to the reason of one that did.
    mutating func leafEnded(
        _ id: Int, outcome: LeafOutcome, at time: Date, recorded: Int, lost: String? = nil, usage: ResourceUsage? = nil
    ) -> [JobRecord] {
        guard var leaf = records[id], !leaf.state.isFinished, !leaf.retryPending else { return [] }
        var (state, exitCode, reason) = Self.result(of: outcome, stopRequested: leaf.stopRequested, command: leaf)
        if let lost, state != .stopped {
            state = .failed
            reason = reason.map { "\($0); \(lost)" } ?? lost
        }
        leaf.usage = leaf.usage + usage
        leaf.recorded = recorded
        if state == .failed, !leaf.stopRequested, leaf.attempt <= leaf.retries, leaf.beginTime != nil {
            leaf.retryPending = true
            put(leaf)
            return [leaf]
        }
        (leaf.state, leaf.exitCode, leaf.reason) = (state, exitCode, reason)
        if case .notRun = outcome {} else { leaf.beginTime = leaf.beginTime ?? time }
        leaf.endTime = time
        put(leaf)
        return [leaf] + refreshParent(of: leaf, at: time)
    }

    /// A leaf waiting for its next attempt gets it: the caller starts its process.
    mutating func beginAttempt(_ id: Int, at time: Date) -> [JobRecord] {
        guard var leaf = records[id], leaf.retryPending, !leaf.state.isFinished, leaf.state != .suspended else { return [] }
        leaf.retryPending = false
        leaf.attempt += 1
        put(leaf)
        return [leaf] + refreshParent(of: leaf, at: time)
    }

    /// A child waiting for its slot starts now.
    mutating func begin(_ id: Int, at time: Date) -> [JobRecord] {
        guard var leaf = records[id], leaf.state == .notStarted else { return [] }
        leaf.state = .running
        leaf.beginTime = time
        put(leaf)
        return [leaf] + refreshParent(of: leaf, at: time)
    }

    /// A child that was connecting when its engine went away waits for a slot again.
    mutating func requeue(_ id: Int) -> [JobRecord] {
        guard var leaf = records[id], leaf.state == .running else { return [] }
        leaf.state = .notStarted
        leaf.beginTime = nil
        put(leaf)
        return [leaf]
    }

    /// Marks jobs (and, for a parent, its children) as being stopped. Returns the records
    /// changed and the leaves whose runners must now be told to stop; leaves with no process
    /// (not started, held back, or between attempts) become `Stopped` at once.
    mutating func requestStop(_ ids: [Int], at time: Date) -> (changed: [JobRecord], toSignal: [Int]) {
        var changed: [Int: JobRecord] = [:]
        var toSignal: [Int] = []
        // A parent asked to stop takes no more children (a foreach's next inputs).
        for id in ids {
            guard var parent = records[id], parent.parentId == nil, parent.type != .threadJob, !parent.state.isFinished,
                !parent.stopRequested
            else { continue }
            parent.stopRequested = true
            put(parent)
            changed[id] = parent
        }
        for leafId in leaves(of: ids) {
            guard var leaf = records[leafId], !leaf.state.isFinished else { continue }
            if leaf.hasNoProcess {
                leaf.stopRequested = true
                leaf.retryPending = false
                put(leaf)
                for record in leafEnded(leafId, outcome: .cancelled, at: time, recorded: leaf.recorded) {
                    changed[record.id] = record
                }
                continue
            }
            if !leaf.stopRequested || leaf.state != .stopping {
                leaf.stopRequested = true
                leaf.state = .stopping
                put(leaf)
                changed[leafId] = leaf
                if let parentId = leaf.parentId, var parent = records[parentId], !parent.state.isFinished,
                    parent.state != .stopping
                {
                    parent.state = .stopping
                    put(parent)
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
        put(leaf)
        return leaf
    }

    /// Lets go of the finished families (all committed, so none of `keeping`): the database
    /// has them, and `History` reads them from there.
    /// Looks at the families of `candidates` only (all when nil): a commit touches a few, and
    /// the table may hold thousands under way. Returns the candidates it kept.
    @discardableResult
    mutating func evictFinished(_ candidates: Set<Int>? = nil, keeping uncommitted: Set<Int>) -> Set<Int> {
        let tops = candidates.map { Set($0.compactMap { records[$0].map { $0.parentId ?? $0.id } }) } ?? Set(ids)
        // A parent finishes after its children: its own state says the family's. What is
        // not committed yet stays, with its family.
        let unsavedFamilies = Set(uncommitted.compactMap { records[$0].map { $0.parentId ?? $0.id } })
        var done: [Int] = []
        var kept = Set<Int>()
        for id in tops {
            guard let job = records[id], job.parentId == nil else { continue }
            if job.state.isFinished && !unsavedFamilies.contains(id) { done.append(id) } else { kept.insert(id) }
        }
        if !done.isEmpty { _ = remove(done) }
        return kept
    }

    /// Drops top-level jobs and their children; returns every id dropped.
    mutating func remove(_ removed: [Int]) -> [Int] {
        var dropped: [Int] = []
        for id in removed {
            guard let job = records[id] else { continue }
            for childId in job.childIds {
                if let child = records.removeValue(forKey: childId) {
                    count(child, in: -1)
                    dropped.append(childId)
                }
            }
            records.removeValue(forKey: id)
            tallies.removeValue(forKey: id)
            cursors.removeValue(forKey: id)
            unready(id, queue: job.queue)
            if blocked.remove(id) != nil {
                for dependency in Set(job.dependsOn) {
                    dependents[dependency]?.removeAll { $0 == id }
                    if dependents[dependency]?.isEmpty == true { dependents.removeValue(forKey: dependency) }
                }
            }
            dropped.append(id)
        }
        // A few at a time (a commit's families): found by halving, not by a pass over all.
        if dropped.count < 64 {
            for id in dropped {
                let low = Self.insertionIndex(of: id, in: ids)
                if low < ids.count, ids[low] == id { ids.remove(at: low) }
            }
        } else {
            let gone = Set(dropped)
            ids.removeAll { gone.contains($0) }
        }
        shrinkIfMostlyEmpty()
        return dropped
    }

    /// Storage sized for a family of 100,000 children stays that large once they are gone
    /// (a dictionary never shrinks by itself): made again for what is left.
    private mutating func shrinkIfMostlyEmpty() {
        guard records.capacity > 4_096, records.count * 8 < records.capacity else { return }
        var fresh = [Int: JobRecord](minimumCapacity: records.count)
        for (id, record) in records { fresh[id] = record }
        records = fresh
        ids = Array(ids)
        var freshTallies = [Int: Tally](minimumCapacity: tallies.count)
        for (id, tally) in tallies { freshTallies[id] = tally }
        tallies = freshTallies
    }

    /// Where `id` is, or would go, in an ascending list.
    static func insertionIndex(of id: Int, in list: [Int]) -> Int {
        var low = 0
        var high = list.count
        while low < high {
            let middle = (low + high) / 2
            if list[middle] < id { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// The leaves that do a job's work: its children, or itself when it has none.
    func leaves(of ids: [Int]) -> [Int] {
        var result: [Int] = []
        var seen = Set<Int>()
        for id in ids {
            guard let job = records[id] else { continue }
            // A parent with no children yet (a foreach whose inputs are still read) has none.
            let isLeaf = job.parentId != nil || job.type == .threadJob
            for leaf in job.childIds.isEmpty ? (isLeaf ? [id] : []) : job.childIds where seen.insert(leaf).inserted {
                result.append(leaf)
            }
        }
        return result
    }

    /// What users see of a job.
    func info(_ id: Int) -> JobInfo? {
        guard let job = records[id] else { return nil }
        return JobInfo(
            id: job.id, instanceId: job.instanceId, name: job.name, type: job.type, state: job.state,
            hasMoreData: hasMoreData(job), location: job.location, command: job.command, childJobs: job.childIds,
            parentId: job.parentId, beginTime: job.beginTime, endTime: job.endTime, exitCode: job.exitCode,
            reason: job.reason, queue: job.queue, dependsOn: job.dependsOn, attempt: job.attempt, input: job.input,
            cpuSeconds: job.state.isFinished ? job.usage.map { Double($0.cpuMicroseconds) / 1e6 } : nil,
            maxRssBytes: job.state.isFinished ? job.usage?.maxRssBytes : nil)
    }

    var allInfo: [JobInfo] { ids.compactMap { info($0) } }

    func job(withId id: Int) -> JobInfo? { info(id) }
    var allJobs: [JobInfo] { allInfo }

    private func hasMoreData(_ job: JobRecord) -> Bool {
        guard job.state.isFinished else { return true }
        if job.childIds.isEmpty { return job.received < job.recorded }
        return job.childIds.contains { records[$0].map(hasMoreData) ?? false }
    }

    // A parent's state follows its children's (see `parentState`); once they have all
    // finished it takes their end, and a lone child's exit code and reason.
    mutating func refreshParent(of leaf: JobRecord, at time: Date) -> [JobRecord] {
        guard let parentId = leaf.parentId else { return [] }
        return refreshParent(parentId, attempt: leaf.attempt, begun: leaf.beginTime, at: time)
    }

    mutating func refreshParent(_ parentId: Int, attempt: Int = 1, begun: Date? = nil, at time: Date) -> [JobRecord] {
        guard var parent = records[parentId], !parent.state.isFinished else { return [] }
        let tally = tallies[parentId] ?? Tally()
        let before = parent
        parent.state = Self.parentState(tally, stopping: parent.state == .stopping)
        if parent.feed == .open, parent.state.isFinished || tally.total == 0 {
            // More children may come.
            parent.state = blocked.contains(parentId) || tally.total == 0 && parent.beginTime == nil ? .notStarted : .running
        }
        parent.attempt = max(parent.attempt, attempt)
        if let begun, parent.beginTime == nil { parent.beginTime = begun }
        if parent.state.isFinished {
            if tally.total == 0 {
                // A foreach of no input, or one stopped before its first child.
                parent.state = parent.stopRequested ? .stopped : .completed
                parent.beginTime = parent.beginTime ?? time
            }
            if parent.feed == .cut {
                parent.state = .failed
                parent.reason = "its inputs were cut short: the engine that read them exited"
            }
            // Once, at the end: a pass over the children (not a copy of them: a foreach's may
            // be 100,000).
            var endTime: Date?
            var usage: ResourceUsage?
            var failed: [JobRecord] = []
            for childId in parent.childIds {
                guard let child = records[childId] else { continue }
                if let end = child.endTime, endTime.map({ end > $0 }) ?? true { endTime = end }
                usage = usage + child.usage
                if child.state == .failed { failed.append(child) }
            }
            parent.endTime = endTime ?? time
            parent.usage = usage
            if parent.feed != .cut, parent.childIds.count == 1, parent.type != .psTaskJob, let only = records[parent.childIds[0]] {
                parent.exitCode = only.exitCode
                parent.reason = only.reason
            } else if parent.feed != .cut {
                parent.reason = Self.summary(ofFailed: failed)
            }
            parent.feed = .none
        }
        guard parent != before else { return [] }
        put(parent)
        return [parent]
    }

    /// A parent is NotStarted until a child starts, then Running until every child has
    /// finished; then Failed if any failed, else Stopped if any was stopped, else Completed.
    /// Suspended while every unfinished child is; Disconnected while any child is (its work
    /// goes on where nobody can see it), unless it is being stopped.
    static func parentState(_ tally: Tally, stopping: Bool = false) -> JobState {
        let finished = tally.completed + tally.failed + tally.stopped
        if finished == tally.total {
            if tally.failed > 0 { return .failed }
            if tally.stopped > 0 { return .stopped }
            return .completed
        }
        if stopping { return .stopping }
        if tally.disconnected > 0 { return .disconnected }
        if tally.suspended == tally.total - finished { return .suspended }
        if tally.notStarted + tally.suspended == tally.total { return .notStarted }
        return .running
    }

    static func parentState(_ children: [JobState], stopping: Bool = false) -> JobState {
        var tally = Tally()
        for state in children { tally.add(state: state, 1) }
        return parentState(tally, stopping: stopping)
    }

    private static func summary(ofFailed failed: [JobRecord]) -> String? {
        guard let first = failed.first else { return nil }
        if failed.count > 1, case let reason? = first.reason, failed.allSatisfy({ $0.reason == reason }) {
            return reason
        }
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
        case .failed(let reason), .notRun(let reason):
            return (.failed, nil, reason)
        case .cancelled:
            return (.stopped, job.exitCode, nil)
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

/// How many leaves are in each state, and in each phase: of one parent's children, or of
/// one queue's.
struct Tally: Sendable, Equatable {
    var notStarted = 0, running = 0, suspended = 0, stopping = 0
    var completed = 0, failed = 0, stopped = 0, disconnected = 0
    /// Holding a slot: a process (or a remote connection) of their own, or between attempts.
    var active = 0
    /// Not started yet, held back or not.
    var waiting = 0

    var total: Int { notStarted + running + suspended + stopping + completed + failed + stopped + disconnected }

    /// What of a record the tallies count.
    struct Slot: Equatable {
        var state: JobState
        var phase: Phase

        init(_ record: JobRecord) {
            state = record.state
            phase = Tally.phase(record)
        }
    }

    enum Phase { case waiting, active, finished }

    static func phase(_ record: JobRecord) -> Phase {
        if record.state.isFinished { return .finished }
        if record.state == .notStarted || (record.state == .suspended && record.beginTime == nil) { return .waiting }
        return .active
    }

    mutating func add(_ record: JobRecord, _ sign: Int) {
        add(state: record.state, sign)
        switch Self.phase(record) {
        case .waiting: waiting += sign
        case .active: active += sign
        case .finished: break
        }
    }

    mutating func add(state: JobState, _ sign: Int) {
        switch state {
        case .notStarted: notStarted += sign
        case .running: running += sign
        case .suspended: suspended += sign
        case .stopping: stopping += sign
        case .completed: completed += sign
        case .failed: failed += sign
        case .stopped: stopped += sign
        case .disconnected: disconnected += sign
        }
    }
}
