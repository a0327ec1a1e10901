import Foundation
import JobModel

/// How `invoke` works on many computers.
public struct InvokeOptions: Sendable, Equatable, Codable {
    /// At most this many computers are worked on (connecting or running) at once; the rest
    /// wait as `NotStarted`.
    public var throttle: Int
    /// An ssh client configuration file (`ssh -F`); the user's own (`~/.ssh/config`) when nil.
    public var sshConfigFile: String?

    public init(throttle: Int = Defaults.throttle, sshConfigFile: String? = nil) {
        self.throttle = throttle
        self.sshConfigFile = sshConfigFile
    }
}

/// When and how often a job runs: its queue, the jobs it waits for, its retries. For
/// `start`, `invoke` and `foreach` alike.
public struct StartOptions: Sendable, Equatable {
    /// The queue whose limit it counts against (made on first use, with no limit).
    public var queue: String
    /// It starts once these have all ended, if they all completed; otherwise it fails
    /// without running. Each must name a job that exists now.
    public var dependsOn: [JobSelector]
    /// A child that fails is run again in place, up to this many more times.
    public var retry: Int

    public init(queue: String = Defaults.queue, dependsOn: [JobSelector] = [], retry: Int = 0) {
        self.queue = queue
        self.dependsOn = dependsOn
        self.retry = retry
    }
}

/// What a parent needs to start its children, kept with it so that children waiting for a
/// slot still start after the engine restarts, and so that `restart` can start it again.
/// Its environment is kept apart (`JobRecord.environmentId`): it is the bulk of it, and
/// mostly the same from job to job.
struct LaunchPlan: Sendable, Codable, Equatable {
    var spec: ProcessSpec
    var options: InvokeOptions

    /// The plan without its environment, as the parent's record keeps it.
    func encoded() throws(JobError) -> String {
        var bare = self
        bare.spec.environment = [:]
        do {
            return String(decoding: try JSONEncoder().encode(bare), as: UTF8.self)
        } catch {
            throw JobError(.storage, "cannot record how to start the job: \(error)")
        }
    }

    static func decode(_ text: String?) -> LaunchPlan? {
        guard let text else { return nil }
        return try? JSONDecoder().decode(LaunchPlan.self, from: Data(text.utf8))
    }
}

/// Whether a computer name means this machine.
func isLocal(_ computer: String) -> Bool { computer.lowercased() == "localhost" }
