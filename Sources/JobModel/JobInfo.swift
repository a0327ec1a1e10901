import FoundationEssentials

/// Everything a user can see of one job: the job object of `job get`.
///
/// On the wire (`JobProtocol.Wire`) and in `job get -o json` its keys are the contract's
/// (`id`, `name`, `instanceId`, …, `reason`), and fixed.
public struct JobInfo: Sendable, Equatable, Identifiable {
    /// A positive integer from a per-home counter that is never reused.
    public var id: Int
    /// Unique across all homes and time.
    public var instanceId: UUID
    /// `Job<Id>` unless the user named it; names need not be unique.
    public var name: String
    public var type: JobType
    public var state: JobState
    /// True while the job runs, and once finished while any of its output is unreceived.
    public var hasMoreData: Bool
    /// A child's computer (`localhost` for local children); a parent's children's, joined by `,`.
    public var location: String
    /// The command text: the shell line as given, or the argv joined with shell quoting.
    public var command: String
    /// The ids of this job's children, in order; empty for a child or a thread job.
    public var childJobs: [Int]
    /// The parent's id for a child job; nil for a top-level job.
    public var parentId: Int?
    public var beginTime: Date?
    public var endTime: Date?
    /// The exit status (`128+signal` for a signal); nil while running or if it never started.
    public var exitCode: Int?
    /// Why the job is `Failed`, in one line a person can act on; nil otherwise.
    public var reason: String?
    /// The queue whose limit it counts against (`default` unless started with one).
    public var queue: String
    /// The jobs it waited, or waits, for (`--depends-on`).
    public var dependsOn: [Int]
    /// Which run this is: 1 unless it was retried (a parent's: its children's highest).
    public var attempt: Int
    /// A `foreach` child's input; nil for other jobs.
    public var input: String?
    /// The user and system CPU time of its processes, in seconds, once finished (a parent's:
    /// its children's, summed); nil when not known (running, never started, or remote).
    public var cpuSeconds: Double?
    /// The largest resident set of its processes, in bytes, once finished (a parent's: the
    /// largest of its children's); nil when not known.
    public var maxRssBytes: Int?

    public init(
        id: Int, instanceId: UUID = UUID(), name: String, type: JobType, state: JobState,
        hasMoreData: Bool, location: String, command: String, childJobs: [Int] = [], parentId: Int? = nil,
        beginTime: Date? = nil, endTime: Date? = nil, exitCode: Int? = nil, reason: String? = nil,
        queue: String = Defaults.queue, dependsOn: [Int] = [], attempt: Int = 1, input: String? = nil,
        cpuSeconds: Double? = nil, maxRssBytes: Int? = nil
    ) {
        self.id = id
        self.instanceId = instanceId
        self.name = name
        self.type = type
        self.state = state
        self.hasMoreData = hasMoreData
        self.location = location
        self.command = command
        self.childJobs = childJobs
        self.parentId = parentId
        self.beginTime = beginTime
        self.endTime = endTime
        self.exitCode = exitCode
        self.reason = reason
        self.queue = queue
        self.dependsOn = dependsOn
        self.attempt = attempt
        self.input = input
        self.cpuSeconds = cpuSeconds
        self.maxRssBytes = maxRssBytes
    }

    /// How long it ran: until its end, or until `now` while it runs; nil before it began. A
    /// parent's spans its children's.
    public func durationSeconds(now: Date = Date()) -> Double? {
        guard let beginTime else { return nil }
        return max(0, (endTime ?? now).timeIntervalSince(beginTime))
    }

    /// A top-level job: one made by `start` or `invoke`, or a thread job.
    public var isTopLevel: Bool { parentId == nil }
    /// A job with children runs nothing itself and has no output of its own.
    public var isParent: Bool { !childJobs.isEmpty }
}
