import Foundation
import JobModel

/// How `invoke` works on many computers.
public struct InvokeOptions: Sendable, Equatable, Codable {
    /// At most this many computers are worked on (connecting or running) at once; the rest
    /// wait as `NotStarted`.
    public var throttle: Int
    /// An ssh client configuration file (`ssh -F`); the user's own (`~/.ssh/config`) when nil.
    public var sshConfigFile: String?
    /// Each remote child's command runs on its computer detached from the connection (see
    /// `DetachedCommand`): it outlives the connection, the master, the engine and this
    /// machine, and the child follows it, `Disconnected` while the computer cannot be reached.
    public var detached: Bool

    public init(throttle: Int = Defaults.throttle, sshConfigFile: String? = nil, detached: Bool = false) {
        self.throttle = throttle
        self.sshConfigFile = sshConfigFile
        self.detached = detached
    }

    private enum CodingKeys: String, CodingKey { case throttle, sshConfigFile, detached }

    // Plans written before `detached` existed have no such key.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        throttle = try container.decode(Int.self, forKey: .throttle)
        sshConfigFile = try container.decodeIfPresent(String.self, forKey: .sshConfigFile)
        detached = try container.decodeIfPresent(Bool.self, forKey: .detached) ?? false
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

    /// The plan without its environment, as the parent's record keeps it: the JSON that
    /// `Codable` reads back (`decode`), written by hand, since this is on every job's path and
    /// `JSONEncoder` was a quarter of what `start` cost the engine.
    func encoded() throws(JobError) -> String {
        let command: String
        switch spec.command {
        case .shell(let line): command = #"{"shell":{"_0":"# + Self.quoted(line) + "}}"
        case .argv(let words): command = #"{"argv":{"_0":["# + words.map(Self.quoted).joined(separator: ",") + "]}}"
        }
        let ssh = (options.sshConfigFile.map { #","sshConfigFile":"# + Self.quoted($0) } ?? "")
            + (options.detached ? #","detached":true"# : "")
        return #"{"spec":{"command":"# + command + #","workingDirectory":"# + Self.quoted(spec.workingDirectory)
            + #","environment":{},"mergeError":"# + (spec.mergeError ? "true" : "false") + #"},"options":{"throttle":"#
            + String(options.throttle) + ssh + "}}"
    }

    /// A JSON string literal.
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    static func decode(_ text: String?) -> LaunchPlan? {
        guard let text else { return nil }
        return try? JSONDecoder().decode(LaunchPlan.self, from: Data(text.utf8))
    }
}

/// Whether a computer name means this machine.
func isLocal(_ computer: String) -> Bool { computer.lowercased() == "localhost" }
