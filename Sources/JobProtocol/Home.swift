import FoundationEssentials

/// Where a user's jobs live: `--home DIR`, else `$JOB_HOME`, else `$XDG_STATE_HOME/job`, else
/// `~/.local/state/job`. Two homes are two independent job worlds.
public struct JobHome: Sendable, Equatable {
    public let path: String

    public init(explicit: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment) {
        let chosen: String
        if let explicit, !explicit.isEmpty {
            chosen = explicit
        } else if let home = environment["JOB_HOME"], !home.isEmpty {
            chosen = home
        } else if let state = environment["XDG_STATE_HOME"], !state.isEmpty {
            chosen = state + "/job"
        } else {
            chosen = (environment["HOME"] ?? FileManager.default.homeDirectoryForCurrentUser.path) + "/.local/state/job"
        }
        path = Self.absolute(chosen)
    }

    private static func absolute(_ path: String) -> String {
        let full = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        return URL(fileURLWithPath: full).standardizedFileURL.path
    }

    /// The daemon's socket.
    public var socket: String { path + "/jobd.sock" }
    /// Where a daemon started in the background writes what it has to say.
    public var log: String { path + "/jobd.log" }
}
