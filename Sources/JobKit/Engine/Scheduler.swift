import Foundation
import JobModel

/// What follows a change: jobs waiting for the ones that ended are decided, failed children
/// with runs left get their next attempt, and waiting children take the slots freed — the
/// table's rules (`JobTable.beginReady`, `decide`), applied by the engine, which starts the
/// processes. Asked after every change that can free a slot or end a job, never on a timer.
extension JobManager {
    /// Everything that follows `changed`; returns the records it changed in turn.
    func schedule(after changed: [JobRecord]) -> [JobRecord] {
        for record in changed where record.retryPending && !record.state.isFinished && record.state != .suspended {
            scheduleRetry(record.id)
        }
        let ended = changed.filter(\.state.isFinished).map(\.id)
        var result = releaseDependents(of: ended)
        if !ended.isEmpty || !result.isEmpty { result += startReady() }
        return result
    }

    /// The waiting children that may start now, started (see `JobTable.beginReady`). One
    /// that cannot start at all frees its slot at once, for the next.
    func startReady() -> [JobRecord] {
        var result: [JobRecord] = []
        while true {
            let (begun, changed) = table.beginReady(limits: queueLimits, at: Date())
            result += changed
            var ended: [Int] = []
            for id in begun {
                var launched: [JobRecord]
                if let parentId = table[id]?.parentId, let plan = plan(of: parentId) {
                    launched = launch(id, plan: plan)
                } else {
                    launched = table.leafEnded(id, outcome: .failed("how to start it was not kept"), at: Date(), recorded: 0)
                }
                result += launched
                ended += launched.filter(\.state.isFinished).map(\.id)
            }
            guard !ended.isEmpty else {
                // Children started: a foreach that waits may read more inputs.
                if !begun.isEmpty { wakeFeeds() }
                return result
            }
            result += releaseDependents(of: ended)
        }
    }

    // MARK: A new job

    /// A new job's scheduling, checked: its queue (by the name it was first given), the ids
    /// of the jobs it depends on, and whether it must wait for them.
    func checked(_ scheduling: StartOptions) throws(JobError) -> (queue: String, dependsOn: [Int], waits: Bool) {
        let given = try Self.checkedQueueName(scheduling.queue)
        guard (0...Defaults.maxRetries).contains(scheduling.retry) else {
            throw JobError(.invalidArgument, "--retry takes 0 to \(Defaults.maxRetries), not \(scheduling.retry)")
        }
        let (dependsOn, waits) = try dependencies(scheduling.dependsOn)
        return (queueNames[JobTable.queueKey(given)] ?? given, dependsOn, waits)
    }

    /// A new family is in the table: its queue is known by its name from now on, and its plan
    /// is at hand for its children.
    func added(_ inserted: [JobRecord], plan: LaunchPlan) {
        table.add(inserted)
        guard let parent = inserted.first else { return }
        let key = JobTable.queueKey(parent.queue)
        if queueNames[key] == nil { queueNames[key] = parent.queue }
        remember(plan, of: parent)
    }

    // MARK: Dependencies

    /// The ids the selectors name (each must name a job), and whether the new job must wait:
    /// false when every one of them has completed already.
    func dependencies(_ selectors: [JobSelector]) throws(JobError) -> (ids: [Int], waits: Bool) {
        guard !selectors.isEmpty else { return ([], false) }
        let jobs = try JobSelection.resolve(selectors, in: history)
        return (jobs.map(\.id), !jobs.allSatisfy { $0.state == .completed })
    }

    /// The parents that waited for these jobs (ended, or removed), decided where they can be,
    /// and those that waited for them in turn.
    func releaseDependents(of ids: [Int]) -> [JobRecord] {
        var pending = table.waiting(for: ids)
        var changed: [JobRecord] = []
        while !pending.isEmpty {
            var next: [Int] = []
            for parentId in pending {
                guard let dependsOn = table[parentId]?.dependsOn,
                    let decided = table.decide(parentId, states: states(of: dependsOn), at: Date())
                else { continue }
                changed += decided
                next += table.waiting(for: decided.filter(\.state.isFinished).map(\.id))
            }
            pending = next
        }
        return changed
    }

    /// What the table says of these jobs, and the database of those it has let go of. Jobs
    /// being removed are missing: they count as removed, not as the `Stopped` the removal's
    /// stop makes them on the way.
    private func states(of ids: [Int]) -> [Int: JobState] {
        var states: [Int: JobState] = [:]
        var missing: [Int] = []
        for id in ids where !removing.contains(id) {
            if let record = table[id] { states[id] = record.state } else { missing.append(id) }
        }
        if !missing.isEmpty, let stored = try? store.states(of: missing) { states.merge(stored) { live, _ in live } }
        return states
    }

    // MARK: Retries

    /// A failed child's next attempt comes after `Defaults.retryDelay`, in `run()`.
    func scheduleRetry(_ id: Int) {
        guard retrying.insert(id).inserted else { return }
        workContinuation.yield(.retry(id))
    }

    func retry(_ id: Int) async {
        try? await Task.sleep(for: Defaults.retryDelay)
        retrying.remove(id)
        guard !isShutDown, let leaf = table[id], leaf.retryPending, let parentId = leaf.parentId else { return }
        let begun = table.beginAttempt(id, at: Date())
        guard !begun.isEmpty else { return }
        // The attempt is committed before its process exists: an engine that dies in between
        // finds its slot holding the last attempt's end, and starts this one again.
        try? persist(begun)
        guard let plan = plan(of: parentId) else {
            try? persist(table.leafEnded(id, outcome: .failed("how to start it was not kept"), at: Date(), recorded: leaf.recorded))
            return
        }
        let launched = launch(id, plan: plan)
        try? persist(launched + schedule(after: launched))
    }

    // MARK: Launch plans

    /// How a parent's children are started: its plan, with its environment (kept apart, see
    /// `LaunchPlan`). Remembered for a while: children of one parent start one after another.
    /// The parent is in the table: its children are, to be started (or it was brought in, to
    /// be restarted).
    func plan(of parentId: Int) -> LaunchPlan? {
        if let known = plans[parentId] { return known }
        guard let parent = table[parentId], var plan = LaunchPlan.decode(parent.launch) else { return nil }
        if let environmentId = parent.environmentId {
            guard let environment = environments[environmentId] ?? (try? store.environment(environmentId)) ?? nil else { return nil }
            plan.spec.environment = environment
        }
        remember(plan, of: parent)
        return plan
    }

    /// Keeps a parent's plan at hand while its children start; a bounded few, the rest read
    /// again when needed (a queue of thousands of jobs must not hold thousands of plans).
    func remember(_ plan: LaunchPlan, of parent: JobRecord) {
        guard !parent.state.isFinished else { return }
        if plans.count >= 256 { plans.removeAll(keepingCapacity: true) }
        plans[parent.id] = plan
        if let environmentId = parent.environmentId, environments[environmentId] == nil {
            if environments.count >= 64 { environments.removeAll(keepingCapacity: true) }
            environments[environmentId] = plan.spec.environment
        }
    }
}
