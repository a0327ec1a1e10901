import Foundation
import JobModel

#if canImport(Glibc)
import Glibc
#endif

/// `job foreach` (PowerShell's `ForEach-Object -Parallel -AsJob`, GNU parallel's everyday
/// use): a parent with one child per input, made as the inputs are read and the children are
/// needed, a batch (one transaction) at a time.
extension JobManager {
    /// Where a `foreach` job's inputs come from.
    public enum ForeachInput: Sendable {
        /// These, in order.
        case list([String])
        /// Read from this descriptor (a pipe or a file), which the engine takes: separated by
        /// newlines, or by NUL with `nul`. Read as the children are needed: a pipe's writer
        /// waits meanwhile, as for any reader.
        case descriptor(Int32, nul: Bool)
    }

    /// How many children of a foreach may wait to start before its input is read on.
    static let feedAhead = 1_000

    /// Starts a `foreach` job: a parent (`PSTaskJob`, Location `localhost`) with one child per
    /// input, in order, each running `template` with the replacement strings filled in (see
    /// `ForeachTemplate`) and `$JOB_INPUT` set to its input; at most `throttle` at once. Returns
    /// the parent at once. An empty input makes a parent with no children, Completed.
    public func foreach(
        _ template: ProcessSpec, input: ForeachInput, name: String? = nil, throttle: Int,
        scheduling: StartOptions = StartOptions()
    ) throws(JobError) -> JobInfo {
        var descriptor: Int32?
        if case .descriptor(let fd, _) = input { descriptor = fd }
        do {
            return try startForeach(template, input: input, name: name, throttle: throttle, scheduling: scheduling)
        } catch {
            if let descriptor { close(descriptor) }
            throw error
        }
    }

    private func startForeach(
        _ template: ProcessSpec, input: ForeachInput, name: String?, throttle: Int, scheduling: StartOptions
    ) throws(JobError) -> JobInfo {
        try checkOpen()
        guard throttle >= 1 else { throw JobError(.invalidArgument, "the throttle must be 1 or more, not \(throttle)") }
        let (queue, dependsOn, waits) = try checked(scheduling)
        let plan = LaunchPlan(spec: template, options: InvokeOptions(throttle: throttle))
        var parent = JobRecord(
            id: 0, instanceId: .random(), name: name ?? "", type: .psTaskJob, state: .notStarted, location: "localhost",
            command: template.commandText)
        (parent.queue, parent.dependsOn, parent.throttle, parent.launch) = (queue, dependsOn, throttle, try plan.encoded())
        (parent.dependenciesMet, parent.feed, parent.retries) = (!dependsOn.isEmpty && !waits, .open, scheduling.retry)
        let inserted = try withUnsaved { pending throws(JobError) in
            try store.insert([parent], environment: template.environment, alsoSaving: pending)
        }
        added(inserted, plan: plan)
        let id = inserted[0].id
        // Blocked before its first children come, decided (below) once they have.
        if waits { table.block(id) }
        switch input {
        case .list(let inputs):
            try addChildren(id, inputs: inputs)
            try persist(closeFeed(id))
        case .descriptor(let fd, let nul):
            feeds[id] = InputFeed(fd: fd, nul: nul)
            workContinuation.yield(.feed(id))
        }
        if waits { try? persist(releaseDependents(of: dependsOn)) }
        return try startedJob(id)
    }

    /// Makes children for these inputs (one transaction), and starts those that may start.
    func addChildren(_ parentId: Int, inputs: [String]) throws(JobError) {
        guard let parent = table[parentId], !inputs.isEmpty else { return }
        guard let plan = plan(of: parentId) else { throw JobError(.storage, "how to start job \(parentId)'s children was not kept") }
        let template = ForeachTemplate(plan.spec.command)
        let first = parent.childIds.count + 1
        let children = inputs.enumerated().map { index, input in
            let command = template.command(for: input, sequence: first + index)
            var child = JobRecord(
                id: 0, instanceId: .random(), name: "", type: .psTaskJob, state: .notStarted, location: "localhost",
                command: ProcessSpec.text(of: command), parentId: parentId, program: ProcessSpec.argv(of: command).first,
                workingDirectory: plan.spec.workingDirectory)
            (child.queue, child.retries, child.input) = (parent.queue, parent.retries, input)
            return child
        }
        let inserted = try withUnsaved { pending throws(JobError) in
            try store.insertChildren(children, alsoSaving: pending)
        }
        table.add(inserted)
        var changed = table.refreshParent(parentId, at: Date())
        changed += startReady()
        try persist(changed)
    }

    /// The input is all read (or cut short, or the parent stopped): the parent finishes with
    /// its children.
    func closeFeed(_ parentId: Int, cut: Bool = false) -> [JobRecord] {
        feeds.removeValue(forKey: parentId)?.close()
        wakeFeed(parentId)
        guard var parent = table[parentId], parent.feed == .open else { return [] }
        parent.feed = cut ? .cut : .none
        table.put(parent)
        return [parent] + table.refreshParent(parentId, at: Date())
    }

    /// Reads a foreach's inputs, a batch whenever its waiting children run low, until the
    /// input ends, the parent is stopped or the engine shuts down.
    func runFeed(_ parentId: Int) async {
        guard let feed = feeds[parentId] else { return }
        while !isShutDown {
            await inputWanted(parentId)
            guard let parent = table[parentId], parent.feed == .open, !parent.stopRequested, !isShutDown,
                let inputs = await feed.next(limit: Self.feedAhead)
            else { break }
            do {
                try addChildren(parentId, inputs: inputs)
            } catch {
                feed.cancel()
                break
            }
        }
        // Shutting down leaves it open: the next engine finds it cut (it cannot read on).
        guard !isShutDown else { return }
        try? persist(closeFeed(parentId, cut: feed.error != nil))
    }

    /// Returns once the foreach wants more children: fewer than `feedAhead` wait to start.
    private func inputWanted(_ parentId: Int) async {
        guard !feedWants(parentId) else { return }
        await withCheckedContinuation { feedWaiters[parentId] = $0 }
    }

    func feedWants(_ parentId: Int) -> Bool {
        guard let parent = table[parentId], parent.feed == .open, !parent.stopRequested, !isShutDown else { return true }
        return (table.tallies[parentId]?.waiting ?? 0) < Self.feedAhead
    }

    /// Lets the feeds that wait go on reading, where they want to (after children started).
    func wakeFeeds() {
        for parentId in feedWaiters.keys where feedWants(parentId) { wakeFeed(parentId) }
    }

    func wakeFeed(_ parentId: Int) {
        feedWaiters.removeValue(forKey: parentId)?.resume()
    }

    /// A foreach child's command: the template with its input, `$JOB_INPUT` set.
    func childSpec(_ child: JobRecord, plan: LaunchPlan) -> ProcessSpec {
        guard let input = child.input, let parentId = child.parentId, let parent = table[parentId] else { return plan.spec }
        var spec = plan.spec
        let sequence = JobTable.insertionIndex(of: child.id, in: parent.childIds) + 1
        spec.command = ForeachTemplate(plan.spec.command).command(for: input, sequence: sequence)
        spec.environment["JOB_INPUT"] = input
        return spec
    }
}

extension ProcessSpec {
    /// The Command users see of a command.
    static func text(of command: Command) -> String {
        ProcessSpec(command, workingDirectory: "/", environment: [:]).commandText
    }

    static func argv(of command: Command) -> [String] {
        ProcessSpec(command, workingDirectory: "/", environment: [:]).argv
    }
}
