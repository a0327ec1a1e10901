import CJobKitSystem
import Foundation
import JobModel

#if canImport(Glibc)
import Glibc
#endif

/// The job engine: PowerShell's background jobs for Swift programs and for `jobd`.
///
/// One engine owns one home directory (a lock file keeps a second one out). It keeps the
/// jobs in a SQLite database and their output in files, so that process jobs outlive it: an
/// engine opened later on the same home finds them running, or finished with their true
/// state, exit code and output.
///
/// The engine needs its `run()` loop running to notice jobs ending and to run thread jobs;
/// `withManager(home:_:)` runs it for the duration of a closure:
///
/// ```swift
/// try await JobManager.withManager(home: "/tmp/jobs") { jobs in
///     let job = try await jobs.start(.shell("make test"))
///     _ = try await jobs.wait([.id(job.id)])
///     let output = try await jobs.receive([.id(job.id)])
///     print(String(decoding: try output.data(), as: UTF8.self))
/// }
/// ```
public actor JobManager {
    public struct Configuration: Sendable {
        /// Where `jobkit-supervisor` is; found automatically when nil (see `Supervisor.locate`).
        public var supervisorPath: String?

        public init(supervisorPath: String? = nil) {
            self.supervisorPath = supervisorPath
        }
    }

    /// The home directory: the database, the engine lock, the job slots, and `jobs/` (output files, locks).
    public nonisolated let home: String
    let store: JobStore
    var table: JobTable
    let supervisor: Supervisor
    let monitor = ExitMonitor()
    /// Job events, for waiters here and for `ReceiveStream`.
    let hub = EventHub()
    /// Which jobs write, for `ReceiveStream`.
    let outputWatcher: OutputWatcher
    /// The home's lock; -1 once released by `shutdown`.
    var homeLock: Int32
    /// How each computer's login shell takes the remote wrapper, learnt once per master
    /// (keyed by control socket, with the master's identity).
    var shellForms: [String: (master: String, form: RemoteCommand.Form)] = [:]
    /// The ssh configurations written (see `SSHLink.layered`), by the user's file ("" for
    /// ssh's own), in a directory made and checked: once per engine, not per job.
    var sshConfigsWritten = Set<String>()
    /// What `run()` runs as tasks of its own: thread jobs, and remote children connecting.
    let work: AsyncStream<Work>
    let workContinuation: AsyncStream<Work>.Continuation
    var threadStops: [Int: AsyncStream<Void>.Continuation] = [:]
    var isShutDown = false
    /// Ends of process jobs announced but not yet committed; they go with the next
    /// transaction (see `announceProcessEnds`).
    var unsaved: [Int: JobRecord] = [:]
    /// Children made by `start` or `invoke` and not started yet: they start once the call has
    /// answered, so that the caller does not wait for the process to be made (a fork server
    /// round trip), and at the latest when the engine shuts down.
    var toLaunch: [(ids: [Int], plan: LaunchPlan)] = []
    /// Children whose supervisor was asked of the fork server and whose answer is still to
    /// be read (by `collectAsked`): `start`'s child, asked before its commit, and the
    /// children `launchNew` starts, asked all at once.
    var asked: [(id: Int, job: Supervisor.Job)] = []
    /// Children asked for before a commit that failed: they must not run, and are ended as
    /// soon as their supervisors are collected.
    var abandoned: [(id: Int, job: Supervisor.Job)] = []
    /// The stdin handed to a child (`start(_:name:stdin:)`), the engine's until the child's
    /// supervisor has it (or the child ended without one).
    var ownedStdin: [Int: Int32] = [:]
    /// Top-level jobs whose families may have finished since the table last let go of the
    /// finished ones: what the next commit looks at (`JobTable.evictFinished`).
    var evictable: Set<Int> = []
    /// A turn of `launchNew` is on its way, and collects what is asked meanwhile.
    var collectRequested = false
    /// The queues' limits, by `JobTable.queueKey` (a queue with no limit has no entry).
    var queueLimits: [String: Int] = [:]
    /// The queues' names as first written, by `JobTable.queueKey`.
    var queueNames: [String: String] = [:]
    /// Launch plans at hand, by parent (see `plan(of:)`), and their environments by id.
    var plans: [Int: LaunchPlan] = [:]
    var environments: [Int: [String: String]] = [:]
    /// Jobs being removed (stopped first): for those waiting on them, as good as removed.
    var removing: Set<Int> = []
    /// A `flush` is on its way.
    var flushScheduled = false
    /// Leaves whose next attempt is on its way (`retry`).
    var retrying: Set<Int> = []
    /// The inputs of the foreach jobs being read, by parent, and the feeds waiting for their
    /// children to start before they read on.
    var feeds: [Int: InputFeed] = [:]
    var feedWaiters: [Int: CheckedContinuation<Void, Never>] = [:]
    /// The sessions (see `newSession`), their shells' supervisors (in `sessions/run`, with
    /// slots and locks of their own, by session id), and those being removed.
    var sessionRecords: [Int: SessionRecord] = [:]
    let sessionSupervisor: Supervisor
    let sessionMonitor = ExitMonitor()
    var closingSessions: Set<Int> = []
    /// Remote sessions' commands cut because their session ended, and how they end.
    var sessionOutcomes: [Int: LeafOutcome] = [:]
    /// Detached remote children being reached, and removed ones' host files.
    var detachedWork = DetachedWork()

    enum Work: Sendable {
        case thread(ThreadWork)
        /// Children in `toLaunch` wait to start.
        case launch
        case connect(Int)
        /// A failed child's next attempt, after a pause.
        case retry(Int)
        /// A foreach job's inputs to read.
        case feed(Int)
        /// Ends announced and not committed yet, to commit soon (`flushSoon`).
        case flush
        /// A detached child to reach (start, check, follow), after a pause.
        case reach(Int, after: Duration)
        /// A stop's grace, for a detached child's follower started after the stop.
        case killAfterGrace(Int)
        /// Removed detached children's host files to delete, after a pause.
        case cleanUp(after: Duration)
    }

    struct ThreadWork: Sendable {
        let id: Int
        let context: JobContext
        let body: JobBody
        let stop: AsyncStream<Void>
    }

    /// Opens the engine on `home` (created if missing), and re-attaches to the jobs it holds.
    ///
    /// Throws `homeInUse` when another engine has the home, `supervisor` when
    /// `jobkit-supervisor` cannot be found, `storage` when the database cannot be opened.
    public init(home: String, configuration: Configuration = Configuration()) throws(JobError) {
        self.home = home
        let executable = try Supervisor.locate(explicit: configuration.supervisorPath)
        let jobsDirectory = home + "/jobs"
        outputWatcher = OutputWatcher(jobsDirectory: jobsDirectory)
        do {
            try FileManager.default.createDirectory(
                atPath: jobsDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw JobError(.storage, "cannot create the job home \(home): \(error.localizedDescription)")
        }
        homeLock = try HomeLock.acquire(home)
        do throws(JobError) {
            let databasePath = home + "/jobs.sqlite"
            if !FileManager.default.fileExists(atPath: databasePath) {
                // Files left without their database belong to no job; ids start again at 1.
                for name in (try? FileManager.default.contentsOfDirectory(atPath: jobsDirectory)) ?? [] {
                    try? FileManager.default.removeItem(atPath: jobsDirectory + "/" + name)
                }
                try? FileManager.default.removeItem(atPath: home + "/slots")
                try? FileManager.default.removeItem(atPath: home + "/sessions")
            }
            supervisor = try Supervisor(executable: executable, jobsDirectory: jobsDirectory)
            do {
                try FileManager.default.createDirectory(
                    atPath: home + "/sessions/run", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                throw JobError(.storage, "cannot create \(home)/sessions: \(error.localizedDescription)")
            }
            sessionSupervisor = try Supervisor(executable: executable, jobsDirectory: home + "/sessions/run")
            store = try JobStore(path: databasePath)
            table = JobTable(try store.loadUnfinished())
        } catch {
            close(homeLock)
            throw error
        }
        (work, workContinuation) = AsyncStream.makeStream(of: Work.self)
        do {
            try Self.stopOrphans(store: store, supervisor: supervisor)
        } catch {
            close(homeLock)
            throw error
        }
        let recovered = Self.recover(&table, monitor: monitor, supervisor: supervisor, at: Date())
        try? store.save(recovered)
        table.evictFinished(keeping: [])
        for id in table.ids where table[id]?.parentId == nil { table.block(id) }
        // A foreach whose inputs the last engine was reading: the rest of them went with it.
        var cut: [JobRecord] = []
        for id in table.ids where table[id]?.feed == .open {
            guard var parent = table[id] else { continue }
            parent.feed = .cut
            table.put(parent)
            cut += [parent] + table.refreshParent(id, at: Date())
        }
        try? store.save(cut)
        let sessions = (try? store.sessions()) ?? []
        for session in Self.recoverSessions(sessions, supervisor: sessionSupervisor, monitor: sessionMonitor) {
            sessionRecords[session.id] = session
            if !sessions.contains(session) { try? store.saveSession(session) }
        }
        for queue in (try? store.queues()) ?? [] {
            let key = JobTable.queueKey(queue.name)
            queueNames[key] = queue.name
            if let limit = queue.limit { queueLimits[key] = limit }
        }
    }

    deinit {
        workContinuation.finish()
        monitor.shutdown()
        sessionMonitor.shutdown()
        if homeLock >= 0 { close(homeLock) }
    }

    /// Notices jobs ending and runs thread jobs until the engine shuts down or the calling task
    /// is cancelled. Run it once, in a task that lives as long as the engine is used (a
    /// `ServiceGroup` service, a task group child, or `withManager`).
    public func run() async {
        let exits = monitor.exits
        let work = self.work
        // What the last engine left waiting: jobs whose dependencies may have ended meanwhile,
        // children waiting for a slot (or connecting), failed ones waiting for their next run.
        var resumed = releaseDependents(of: Array(table.dependents.keys))
        resumed += startReady()
        for id in table.ids where table[id]?.retryPending == true { scheduleRetry(id) }
        // Detached children with no follower: the last engine's were cut, or ended while it
        // was gone, or this machine restarted.
        for id in table.ids {
            guard let record = table[id], record.detached != nil, !record.state.isFinished else { continue }
            if let parentId = record.parentId { detachedWork.parents.insert(parentId) }
            if !supervisor.isAlive(id) { workContinuation.yield(.reach(id, after: .zero)) }
        }
        workContinuation.yield(.cleanUp(after: .zero))
        // Commands of remote sessions that broke while no engine was there.
        for session in sessionRecords.values where session.state == .broken {
            endCommands(ofBroken: session, ending: sessionSupervisor.ending(session.id)?.outcome)
        }
        try? persist(resumed)
        await withDiscardingTaskGroup { group in
            group.addTask {
                for await ids in exits { await self.supervisorsExited(ids) }
            }
            let shells = sessionMonitor.exits
            group.addTask {
                for await ids in shells { await self.sessionsEnded(ids) }
            }
            for await item in work {
                switch item {
                case .thread(let thread): group.addTask { await self.runThreadJob(thread) }
                case .launch: group.addTask { await self.launchNew() }
                case .connect(let id): group.addTask { await self.connect(id) }
                case .retry(let id): group.addTask { await self.retry(id) }
                case .feed(let id): group.addTask { await self.runFeed(id) }
                case .flush: group.addTask { await self.flushSoon() }
                case .reach(let id, let delay):
                    group.addTask {
                        if delay > .zero { try? await Task.sleep(for: delay) }
                        await self.reach(id)
                    }
                case .killAfterGrace(let id): group.addTask { await self.killAfterGrace(id) }
                case .cleanUp(let delay):
                    group.addTask {
                        if delay > .zero { try? await Task.sleep(for: delay) }
                        await self.cleanUpHosts()
                    }
                }
            }
        }
    }

    /// Opens an engine, runs its loop while `body` runs, then shuts it down. Process jobs
    /// still running are left running, for a later engine to pick up.
    public static func withManager<R: Sendable>(
        home: String, configuration: Configuration = Configuration(),
        isolation: isolated (any Actor)? = #isolation,
        _ body: (JobManager) async throws -> R
    ) async throws -> R {
        let manager = try JobManager(home: home, configuration: configuration)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await manager.run() }
            defer { group.cancelAll() }
            do {
                let result = try await body(manager)
                await manager.shutdown()
                return result
            } catch {
                await manager.shutdown()
                throw error
            }
        }
    }

    /// Stops watching jobs and ends `run()`. Process jobs keep running; thread jobs are
    /// cancelled and end `Failed` (their process is going away). The engine takes no more
    /// requests.
    public func shutdown() async {
        guard !isShutDown else { return }
        // No new job from here on; started jobs start, even now: they outlive the engine like
        // the others.
        isShutDown = true
        for feed in feeds.values { feed.cancel() }
        for waiter in feedWaiters.values { waiter.resume() }
        feedWaiters.removeAll()
        await launchNew()
        try? persist([])
        workContinuation.finish()
        for stop in threadStops.values { stop.finish() }
        monitor.shutdown()
        sessionMonitor.shutdown()
        outputWatcher.shutdown()
        supervisor.shutdown()
        sessionSupervisor.shutdown()
        // Here, not in deinit: the last reference may go a moment after the caller is done,
        // and a new engine on the home must not find it still taken.
        close(homeLock)
        homeLock = -1
    }

    func checkOpen() throws(JobError) {
        if isShutDown { throw JobError(.unavailable, "the job engine has shut down") }
    }



    /// Every job, parents and children, sorted by id.
    public func all() -> [JobInfo] { history.allJobs }

    /// How many jobs the table holds in memory (those under way, and finished ones not let go
    /// of yet).
    var jobsInMemory: Int { table.records.count }

    /// The jobs under way and the finished ones on disk, for lookups.
    var history: History { History(table: table, store: store) }

    /// Brings the families of these jobs into the table, from the database for those that
    /// finished: for operations that change them (a receive's cursor, a removal). The next
    /// commit lets go of them again.
    func faultIn(_ ids: [Int]) {
        let missing = ids.filter { table[$0] == nil }
        guard !missing.isEmpty, let families = try? store.families(of: missing) else { return }
        let brought = families.filter { table[$0.id] == nil }
        table.add(brought)
        evictable.formUnion(brought.map { $0.parentId ?? $0.id })
    }

    /// One job by id, child or parent.
    public func job(_ id: Int) -> JobInfo? { history.job(withId: id) }

    /// How many jobs there are, parents and children, finished or not.
    public func count() throws(JobError) -> Int { try store.count() }

    /// Every top-level job's id, in order.
    func topLevelIds() throws(JobError) -> [Int] {
        let live = table.ids.filter { table[$0]?.parentId == nil }
        return Array(Set(try store.topLevelIds() + live)).sorted()
    }

    /// `job get`: the jobs the query selects, sorted by id.
    public func get(_ query: JobQuery = JobQuery()) throws(JobError) -> [JobInfo] {
        touching(try query.apply(to: history))
    }

    /// Jobs listed: their disconnected detached children are tried now (`touchDetached`).
    private func touching(_ jobs: [JobInfo]) -> [JobInfo] {
        touchDetached(jobs.filter { !$0.state.isFinished }.map(\.id))
        return jobs
    }

    /// One page of `get` for a query that names no jobs and keeps no `newest`: its matches
    /// among the top-level jobs after `id` (and their children), and where the next page
    /// starts, nil at the end. A listing of any length goes page by page.
    public func getPage(_ query: JobQuery, after id: Int, limit: Int = 2_000) throws(JobError) -> (jobs: [JobInfo], next: Int?) {
        guard query.selectors.isEmpty, query.newest == nil else { return (try get(query), nil) }
        guard let page = history.page(after: id, limit: limit) else {
            throw JobError(.storage, "the job database cannot be read")
        }
        if page.jobs.isEmpty { return ([], nil) }
        return (touching(try query.apply(to: JobPage(page.jobs))), page.last)
    }

    /// The jobs the selectors name (in order, each once), and an error for each word that
    /// matched nothing: for callers that act on what matched and report the rest.
    public func resolve(_ selectors: [JobSelector]) -> (jobs: [JobInfo], errors: [JobError]) {
        JobSelection.resolvePartially(selectors, in: history)
    }

    /// The jobs named, brought into the table (see `faultIn`) for the operation to act on.
    func resolveStrict(_ selectors: [JobSelector]) throws(JobError) -> [JobInfo] {
        let jobs = try JobSelection.resolve(selectors, in: history)
        faultIn(jobs.map(\.id))
        touchDetached(jobs.map(\.id))
        return jobs
    }


    /// Commits changed records (with any announced but uncommitted ends), then tells waiters:
    /// nobody hears of a change that a crash could still undo.
    ///
    /// Ends that cannot be committed (a full disk) stay for the next transaction: they are on
    /// disk already, in their supervisors' slots, so an operation that changed nothing itself
    /// (a receive with `keep`) does not fail for them.
    func persist(_ changed: [JobRecord]) throws(JobError) {
        do throws(JobError) {
            try withUnsaved { pending throws(JobError) in
                if !changed.isEmpty || !pending.isEmpty { try store.save(pending + changed) }
            }
        } catch {
            if !changed.isEmpty { throw error }
            return
        }
        announce(changed)
        // The families this commit touched, and those brought in for a look: the rest of the
        // table is under way, or waits for its end to be committed.
        evictable.formUnion(changed.map { $0.parentId ?? $0.id })
        let before = table.records.count
        evictable = table.evictFinished(evictable, keeping: Set(unsaved.keys))
        if before - table.records.count >= 10_000 { Self.returnFreedMemory() }
    }

    /// After a large family left the table: the allocator gives the pages it freed back to the
    /// system (glibc keeps them otherwise, and the daemon's RSS would stay at its peak).
    static func returnFreedMemory() {
        _ = jobkit_return_freed_memory()
    }

    func announce(_ changed: [JobRecord]) {
        var ids = Set<Int>()
        var events: [JobEvent] = []
        for record in changed {
            for id in [record.id] + (record.parentId.map { [$0] } ?? []) where ids.insert(id).inserted {
                if let info = table.info(id) { events.append(JobEvent(job: info, removed: false)) }
            }
        }
        hub.publish(events)
    }

    /// Runs a transaction with the ends announced but not committed yet (as they are now), which
    /// are then committed; if it fails they stay for the next, and the finished jobs among them
    /// stay in the table.
    func withUnsaved<T>(_ transaction: ([JobRecord]) throws(JobError) -> T) throws(JobError) -> T {
        let pending = unsaved.values.compactMap { table[$0.id] }
        let result = try transaction(pending)
        for record in pending {
            unsaved.removeValue(forKey: record.id)
            evictable.insert(record.parentId ?? record.id)
        }
        return result
    }
}
