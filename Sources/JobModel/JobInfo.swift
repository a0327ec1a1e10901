import FoundationEssentials

/// Everything a user can see of one job: the job object of `job get`.
///
/// The coding keys are the JSON keys of the command-line contract (`id`, `name`,
/// `instanceId`, …, `reason`) and are fixed.
public struct JobInfo: Codable, Sendable, Equatable, Identifiable {
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

    public init(
        id: Int, instanceId: UUID = UUID(), name: String, type: JobType, state: JobState,
        hasMoreData: Bool, location: String, command: String, childJobs: [Int] = [], parentId: Int? = nil,
        beginTime: Date? = nil, endTime: Date? = nil, exitCode: Int? = nil, reason: String? = nil
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
    }

    /// A top-level job: one made by `start` or `invoke`, or a thread job.
    public var isTopLevel: Bool { parentId == nil }
    /// A job with children runs nothing itself and has no output of its own.
    public var isParent: Bool { !childJobs.isEmpty }

    private enum CodingKeys: String, CodingKey {
        case id, name, instanceId, type, state, hasMoreData, location, command, childJobs, parentId
        case beginTime, endTime, exitCode, reason
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(Int.self, forKey: .id)
        instanceId = try c.decode(UUID.self, forKey: .instanceId)
        name = try c.decode(String.self, forKey: .name)
        type = try c.decode(JobType.self, forKey: .type)
        state = try c.decode(JobState.self, forKey: .state)
        hasMoreData = try c.decode(Bool.self, forKey: .hasMoreData)
        location = try c.decode(String.self, forKey: .location)
        command = try c.decode(String.self, forKey: .command)
        childJobs = try c.decode([Int].self, forKey: .childJobs)
        parentId = try c.decodeIfPresent(Int.self, forKey: .parentId)
        beginTime = try c.decodeIfPresent(Date.self, forKey: .beginTime)
        endTime = try c.decodeIfPresent(Date.self, forKey: .endTime)
        exitCode = try c.decodeIfPresent(Int.self, forKey: .exitCode)
        reason = try c.decodeIfPresent(String.self, forKey: .reason)
    }

    // Absent values are written as `null`, not left out: scripts read every key.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(name, forKey: .name)
        try c.encode(instanceId, forKey: .instanceId)
        try c.encode(type, forKey: .type)
        try c.encode(state, forKey: .state)
        try c.encode(hasMoreData, forKey: .hasMoreData)
        try c.encode(location, forKey: .location)
        try c.encode(command, forKey: .command)
        try c.encode(childJobs, forKey: .childJobs)
        try c.encode(parentId, forKey: .parentId)
        try c.encode(beginTime, forKey: .beginTime)
        try c.encode(endTime, forKey: .endTime)
        try c.encode(exitCode, forKey: .exitCode)
        try c.encode(reason, forKey: .reason)
    }
}
