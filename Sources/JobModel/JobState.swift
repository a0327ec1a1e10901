/// Where a job is in its life. The raw values are the names users see and type.
public enum JobState: String, Sendable, CaseIterable {
    case notStarted = "NotStarted"
    case running = "Running"
    case suspended = "Suspended"
    case stopping = "Stopping"
    case completed = "Completed"
    case failed = "Failed"
    case stopped = "Stopped"
    case disconnected = "Disconnected"

    /// `Completed`, `Failed` and `Stopped`: terminal; nothing changes a finished job's state.
    public var isFinished: Bool {
        switch self {
        case .completed, .failed, .stopped: true
        default: false
        }
    }

    /// What `wait` waits for by default: finished, or `Disconnected` (which needs a person).
    public var isPersistent: Bool { isFinished || self == .disconnected }

    /// Parses a state name as users type it: case-insensitively.
    public init?(name: String) {
        guard let match = Self.allCases.first(where: { $0.rawValue.lowercased() == name.lowercased() }) else {
            return nil
        }
        self = match
    }
}

/// What made a job: the names PowerShell users know from `PSJobTypeName`.
public enum JobType: String, Sendable, CaseIterable {
    /// `job start`: a parent and one local child.
    case backgroundJob = "BackgroundJob"
    /// `job invoke --as-job`: a parent and one child per computer.
    case remoteJob = "RemoteJob"
    /// `job foreach`: a parent and one local child per input (PowerShell's
    /// `ForEach-Object -Parallel -AsJob`).
    case psTaskJob = "PSTaskJob"
    /// A Swift closure run in the engine's own process; it has no children.
    case threadJob = "ThreadJob"
}

/// Which of a job's two streams a piece of output came from.
public enum OutputStreamKind: UInt8, Sendable {
    /// The job's standard output.
    case output = 1
    /// The job's standard error.
    case error = 2

    /// The name used in records: `output` or `error`.
    public var name: String { self == .output ? "output" : "error" }
}
