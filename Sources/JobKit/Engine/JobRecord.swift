import Foundation
import JobModel

/// One job as the engine keeps it: what users see, plus what the engine needs to carry on
/// after a restart. One row per job in the database.
struct JobRecord: Sendable, Equatable {
    var id: Int
    var instanceId: UUID
    var name: String
    var type: JobType
    var state: JobState
    var location: String
    var command: String
    var parentId: Int?
    var beginTime: Date?
    var endTime: Date?
    var exitCode: Int?
    var reason: String?
    /// Output records already received (consumed); the receive cursor.
    var received: Int = 0
    /// Output records written, as of the job's end; live jobs are counted from disk.
    var recorded: Int = 0
    /// `job stop` asked for this job to end: its end is `Stopped`, whatever the signal.
    var stopRequested = false
    /// For a process leaf: the program it runs and where, for reasons that name them.
    var program: String?
    var workingDirectory: String?
    /// For a parent: its `LaunchPlan` (JSON, without its environment), for children not
    /// started yet, attempts to come, and `restart`.
    var launch: String?
    /// For a parent: its plan's environment, kept once for all the jobs that share it (see
    /// `JobStore.insert`).
    var environmentId: Int?
    /// For a parent: at most this many of its children run at once.
    var throttle = 1
    /// The queue whose limit it counts against (a parent's, carried by its children).
    var queue: String = Defaults.queue
    /// For a parent: the jobs it waits for (`--depends-on`), which must all complete first.
    var dependsOn: [Int] = []
    /// For a parent: every job it depended on completed; it waits no more.
    var dependenciesMet = false
    /// For a leaf: which run this is, 1 unless it is retried in place.
    var attempt = 1
    /// For a leaf: how many more runs it gets if it fails (`--retry N`).
    var retries = 0
    /// For a `foreach` child: its input.
    var input: String?
    /// For a `foreach` parent: whether its inputs are still being read.
    var feed = Feed.none
    /// What its processes used (summed over attempts; a parent's over its children), once
    /// known: a local leaf's, as its supervisor recorded it.
    var usage: ResourceUsage?
    /// `job suspend` asked for it: stopped with SIGSTOP if it runs, held back if not.
    var suspendRequested = false
    /// For a child run in a session (`invoke --session`): the session.
    var sessionId: Int?
    /// For a detached remote child (`invoke --detached`): how far its command on the host is
    /// known to be, and where this attempt's output begins.
    var detached: DetachedProgress?
    /// For a leaf: it failed and runs again after a pause (it stays `Running` meanwhile, with
    /// no process). Not stored: an engine that reopens reads the failed attempt's end again,
    /// and comes to the same.
    var retryPending = false
    /// The children, in order (not stored: derived from their `parentId`).
    var childIds: [Int] = []

    /// A leaf with no process of its own now: not started, or between attempts.
    var hasNoProcess: Bool { state == .notStarted || beginTime == nil || retryPending }
}

/// A detached remote child's attempt, as the engine knows it (see `DetachedCommand`).
struct DetachedProgress: Sendable, Equatable {
    /// The host answered that it has the command (`start`): from here on it is only followed,
    /// never started again.
    var started = false
    /// The child's output before this attempt (earlier attempts'): the host's files start
    /// after it.
    var base = StreamOffsets.zero

    /// As the database keeps it: `started out err`.
    var stored: String { "\(started ? 1 : 0) \(base.output) \(base.error)" }

    init(started: Bool = false, base: StreamOffsets = .zero) {
        self.started = started
        self.base = base
    }

    init?(stored: String?) {
        let words = (stored ?? "").split(separator: " ").compactMap { Int($0) }
        guard words.count == 3 else { return nil }
        self.init(started: words[0] == 1, base: StreamOffsets(output: words[1], error: words[2]))
    }
}

/// Where a `foreach` parent's inputs are: more children may come while they are read.
enum Feed: Int, Sendable {
    /// All read (or not a foreach parent).
    case none = 0
    /// Being read: the parent is not finished even if every child it has is.
    case open = 1
    /// Cut short: the engine that read them went away. The parent fails once its children end.
    case cut = 2
}

/// The CPU time and the largest resident set of a job's processes.
struct ResourceUsage: Sendable, Equatable {
    var cpuMicroseconds: Int
    var maxRssBytes: Int
}

/// How a leaf job (a child, or a thread job) ended, as its runner saw it.
enum LeafOutcome: Sendable, Equatable {
    /// The process exited with this status.
    case exited(Int32)
    /// The process was killed by this signal.
    case signaled(Int32)
    /// The process could not be started: the step that failed and its errno.
    case couldNotStart(stage: String, errno: Int32)
    /// The closure returned.
    case returned
    /// The closure threw, or the job was lost; the reason says which.
    case failed(String)
    /// The closure ended because it was stopped (or a leaf with no process was).
    case cancelled
    /// It never ran, and never will: the reason says why (a job it depended on failed).
    case notRun(String)
}

/// Two runs' or two children's usage together: CPU time adds up, the largest set is the
/// larger. Either may be unknown.
func + (a: ResourceUsage?, b: ResourceUsage?) -> ResourceUsage? {
    guard let a else { return b }
    guard let b else { return a }
    return ResourceUsage(cpuMicroseconds: a.cpuMicroseconds + b.cpuMicroseconds, maxRssBytes: max(a.maxRssBytes, b.maxRssBytes))
}
