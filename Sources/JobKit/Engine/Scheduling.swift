import Foundation
import JobModel

/// The scheduler's rules, part of the state machine: which waiting children start (queues'
/// limits, parents' throttles, in id order), which parents wait for the jobs they depend on
/// and what becomes of them when those end, and suspending and resuming. No I/O, no polling:
/// the engine asks after every change that may free a slot or end a job waited for.
extension JobTable {
    // MARK: Ready parents

    /// Puts a parent among its queue's ready ones, or takes it out: ready while it has
    /// children not started (and not held back), and waits for no job.
    mutating func refreshReady(_ parentId: Int) {
        guard let parent = records[parentId] else { return }
        let isReady = !parent.state.isFinished && !blocked.contains(parentId) && (tallies[parentId]?.notStarted ?? 0) > 0
        let key = Self.queueKey(parent.queue)
        var list = ready[key] ?? []
        let index = Self.insertionIndex(of: parentId, in: list)
        let present = index < list.count && list[index] == parentId
        guard isReady != present else { return }
        if isReady { list.insert(parentId, at: index) } else { list.remove(at: index) }
        ready[key] = list.isEmpty ? nil : list
    }

    mutating func unready(_ parentId: Int, queue: String) {
        let key = Self.queueKey(queue)
        guard var list = ready[key] else { return }
        let index = Self.insertionIndex(of: parentId, in: list)
        if index < list.count, list[index] == parentId { list.remove(at: index) }
        ready[key] = list.isEmpty ? nil : list
    }

    /// The scheduler's step: begins the waiting children that may start now and returns
    /// them (and the records changed). Per queue, as far as its limit allows (`limits`, by
    /// `queueKey`; no entry, no limit), the ready parents in id order, each as far as its
    /// `throttle` allows, children in order. The caller starts their processes.
    mutating func beginReady(limits: [String: Int], at time: Date) -> (begun: [Int], changed: [JobRecord]) {
        var begun: [Int] = []
        var changed: [JobRecord] = []
        for key in ready.keys.sorted() {
            var room = limits[key].map { $0 - (queueTallies[key]?.active ?? 0) } ?? Int.max
            var after = 0
            while room > 0, let parentId = nextReady(in: key, after: after) {
                after = parentId
                guard let parent = records[parentId] else { continue }
                var parentRoom = max(1, parent.throttle) - (tallies[parentId]?.active ?? 0)
                while room > 0, parentRoom > 0, let child = nextWaiting(of: parentId) {
                    changed += begin(child, at: time)
                    begun.append(child)
                    room -= 1
                    parentRoom -= 1
                }
            }
        }
        return (begun, changed)
    }

    /// The first ready parent of a queue after `id`.
    private func nextReady(in key: String, after id: Int) -> Int? {
        guard let list = ready[key] else { return nil }
        let index = Self.insertionIndex(of: id + 1, in: list)
        return index < list.count ? list[index] : nil
    }

    /// A parent's first child not started (and not held back, nor waiting for its session),
    /// found from where the last search left off: children start in order, so the ones
    /// before it have.
    private mutating func nextWaiting(of parentId: Int) -> Int? {
        guard let children = records[parentId]?.childIds else { return nil }
        var index = cursors[parentId] ?? 0
        // Past those that started; not past one held back (suspended before it started),
        // which may start once resumed.
        while index < children.count, let child = records[children[index]], child.state != .notStarted,
            !(child.state == .suspended && child.beginTime == nil)
        {
            index += 1
        }
        cursors[parentId] = index
        var probe = index
        while probe < children.count {
            // One that runs in a busy session waits for it; the others need not.
            if let child = records[children[probe]], child.state == .notStarted,
                child.sessionId.map({ !isBusy(session: $0) }) ?? true
            {
                return children[probe]
            }
            probe += 1
        }
        return nil
    }

    /// How many more leaves the queue may start now (nil: no limit).
    func room(inQueue name: String, limits: [String: Int]) -> Int? {
        let key = Self.queueKey(name)
        return limits[key].map { max(0, $0 - (queueTallies[key]?.active ?? 0)) }
    }

    // MARK: Dependencies

    /// A parent waits for `dependsOn` (its record names them) to end: one that is new, or
    /// found waiting when the engine reopens.
    mutating func block(_ parentId: Int) {
        guard let parent = records[parentId], !parent.dependsOn.isEmpty, !parent.dependenciesMet, !parent.state.isFinished
        else { return }
        blocked.insert(parentId)
        for id in Set(parent.dependsOn) { dependents[id, default: []].append(parentId) }
        refreshReady(parentId)
    }

    /// The parents waiting for these jobs (which ended, or were removed).
    func waiting(for ids: [Int]) -> [Int] {
        Array(Set(ids.flatMap { dependents[$0] ?? [] })).sorted()
    }

    /// Decides a waiting parent once every job it depends on has ended, given their states
    /// (`states`; a job missing from it was removed): it is released if all completed,
    /// else its children end `Failed` without running. Nil while it must wait on.
    mutating func decide(_ parentId: Int, states: [Int: JobState], at time: Date) -> [JobRecord]? {
        guard blocked.contains(parentId), let parent = records[parentId] else { return nil }
        guard parent.dependsOn.allSatisfy({ states[$0].map(\.isFinished) ?? true }) else { return nil }
        blocked.remove(parentId)
        for id in Set(parent.dependsOn) {
            dependents[id]?.removeAll { $0 == parentId }
            if dependents[id]?.isEmpty == true { dependents.removeValue(forKey: id) }
        }
        let failed = parent.dependsOn.first { states[$0] != .completed }
        guard let failed else {
            var released = parent
            released.dependenciesMet = true
            put(released)
            refreshReady(parentId)
            return [released]
        }
        let reason = states[failed].map { "job \(failed) \($0.rawValue)" } ?? "job \(failed) was removed"
        var changed: [JobRecord] = []
        for child in parent.childIds where records[child]?.state.isFinished == false {
            changed += leafEnded(child, outcome: .notRun(reason), at: time, recorded: 0)
        }
        return changed
    }

    /// A leaf whose current attempt never began (the engine went away first) waits for it
    /// again, as after the attempt before.
    mutating func awaitRetry(_ id: Int) -> [JobRecord] {
        guard var leaf = records[id], !leaf.state.isFinished, leaf.attempt > 1 else { return [] }
        leaf.attempt -= 1
        leaf.retryPending = true
        put(leaf)
        return []
    }

    // MARK: Suspend and resume

    /// `job suspend`: leaves that run become `Suspended` (the caller stops their processes:
    /// `toSignal`); those not started are held back, `Suspended` too, until resumed.
    mutating func requestSuspend(_ ids: [Int]) -> (changed: [JobRecord], toSignal: [Int]) {
        var changed: [JobRecord] = []
        var toSignal: [Int] = []
        for leafId in leaves(of: ids) {
            guard var leaf = records[leafId], [.running, .notStarted].contains(leaf.state) else { continue }
            let runs = !leaf.hasNoProcess
            leaf.state = .suspended
            leaf.suspendRequested = true
            put(leaf)
            changed += [leaf] + refreshParent(of: leaf, at: Date())
            if runs { toSignal.append(leafId) }
        }
        return (changed, toSignal)
    }

    /// `job resume`: suspended leaves run on (the caller continues their processes:
    /// `toSignal`), or, held back before they started, wait for their slot again.
    mutating func requestResume(_ ids: [Int]) -> (changed: [JobRecord], toSignal: [Int]) {
        var changed: [JobRecord] = []
        var toSignal: [Int] = []
        for leafId in leaves(of: ids) {
            guard var leaf = records[leafId], leaf.state == .suspended else { continue }
            let held = leaf.beginTime == nil
            leaf.state = held ? .notStarted : .running
            leaf.suspendRequested = false
            put(leaf)
            if held, let parentId = leaf.parentId, let index = records[parentId]?.childIds.firstIndex(of: leafId) {
                cursors[parentId] = min(cursors[parentId] ?? 0, index)
                refreshReady(parentId)
            }
            changed += [leaf] + refreshParent(of: leaf, at: Date())
            if !leaf.hasNoProcess { toSignal.append(leafId) }
        }
        return (changed, toSignal)
    }
}
