import FoundationEssentials

#if canImport(Glibc)
import Glibc
#endif

/// Where a user's jobs live: `--home DIR`, else `$JOB_HOME`, else `$XDG_STATE_HOME/job`, else
/// `~/.local/state/job`. Two homes are two independent job worlds.
public struct JobHome: Sendable, Equatable {
    public let path: String

    /// - Parameter environment: where to look the variables up; the process's own when nil
    ///   (read one by one: every `job` command starts here, and the whole environment as a
    ///   dictionary costs start-up time).
    public init(explicit: String? = nil, environment: [String: String]? = nil) {
        let variable: (String) -> String? = { name in
            guard let environment else { return getenv(name).map { String(cString: $0) } }
            return environment[name]
        }
        let chosen: String
        if let explicit, !explicit.isEmpty {
            chosen = explicit
        } else if let home = variable("JOB_HOME"), !home.isEmpty {
            chosen = home
        } else if let state = variable("XDG_STATE_HOME"), !state.isEmpty {
            chosen = state + "/job"
        } else {
            chosen = (variable("HOME") ?? FileManager.default.homeDirectoryForCurrentUser.path) + "/.local/state/job"
        }
        path = Self.absolute(chosen)
    }

    private static func absolute(_ path: String) -> String {
        // Already plain (the usual case): no URL machinery on the start-up path.
        if path.hasPrefix("/"), !path.hasSuffix("/"), !path.contains("//"), !path.contains("/./"),
            !path.contains("/../"), !path.hasSuffix("/."), !path.hasSuffix("/..")
        {
            return path
        }
        let full = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        return URL(fileURLWithPath: full).standardizedFileURL.path
    }

    /// The daemon's socket.
    public var socket: String { path + "/jobd.sock" }
    /// Where a daemon started in the background writes what it has to say.
    public var log: String { path + "/jobd.log" }
}
