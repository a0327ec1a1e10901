import FoundationEssentials

/// A session as `job session get` shows it: a long-lived shell on one computer in which
/// commands run one after another and keep their state (PowerShell's PSSession).
public struct SessionInfo: Sendable, Equatable {
    /// From the sessions' own counter, never reused.
    public var id: Int
    public var name: String
    public var computerName: String
    public var state: SessionState
    public var availability: SessionAvailability
    /// Why it is `Broken` (or how it was closed), in one line; nil while it is `Opened`.
    public var reason: String?
    /// The shell it runs.
    public var shell: String

    public init(
        id: Int, name: String, computerName: String, state: SessionState, availability: SessionAvailability,
        reason: String?, shell: String
    ) {
        self.id = id
        self.name = name
        self.computerName = computerName
        self.state = state
        self.availability = availability
        self.reason = reason
        self.shell = shell
    }
}

public enum SessionState: String, Sendable, CaseIterable {
    /// Its shell runs and takes commands.
    case opened = "Opened"
    /// Its shell (or its connection) died: it takes no more commands; Reason says why.
    case broken = "Broken"
    /// Removed: its shell was ended.
    case closed = "Closed"
}

public enum SessionAvailability: String, Sendable, CaseIterable {
    case available = "Available"
    /// Running a command.
    case busy = "Busy"
}

/// Resolves session selectors as job selectors are (an Id, or a Name with wildcards; the
/// names case-insensitively), among `sessions`: in the order named, each once, and an error
/// for each word that matched nothing (a name with wildcards may match nothing).
public enum SessionSelection {
    public static func resolve(_ words: [String], in sessions: [SessionInfo]) -> (sessions: [SessionInfo], errors: [JobError]) {
        var found: [SessionInfo] = []
        var seen = Set<Int>()
        var errors: [JobError] = []
        for word in words {
            let matches: [SessionInfo]
            if let id = Int(word), id > 0 {
                matches = sessions.filter { $0.id == id }
                if matches.isEmpty { errors.append(JobError(.notFound, "no session with id \(id)")) }
            } else {
                let pattern = Wildcard(word)
                matches = sessions.filter { pattern.matches($0.name) }
                if matches.isEmpty && !Wildcard.hasWildcards(word) {
                    errors.append(JobError(.notFound, "no session named '\(JobError.shown(word))'"))
                }
            }
            for session in matches where seen.insert(session.id).inserted { found.append(session) }
        }
        return (found, errors)
    }
}
