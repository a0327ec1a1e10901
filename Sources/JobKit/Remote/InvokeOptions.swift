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

/// What a parent needs to start its children, kept with it so that children waiting for a
/// throttle slot still start after the engine restarts.
struct LaunchPlan: Sendable, Codable, Equatable {
    var spec: ProcessSpec
    var options: InvokeOptions

    func encoded() throws(JobError) -> String {
        do {
            return String(decoding: try JSONEncoder().encode(self), as: UTF8.self)
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
