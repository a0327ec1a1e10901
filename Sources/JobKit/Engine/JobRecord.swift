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
    /// For a parent made by `invoke`: its `LaunchPlan` (JSON), for children not started yet.
    var launch: String?
    /// The children, in order (not stored: derived from their `parentId`).
    var childIds: [Int] = []
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
    /// The closure ended because it was stopped.
    case cancelled
}
