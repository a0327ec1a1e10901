/// Every error the engine reports: a code to branch on and one line a person can act on.
///
/// A job that exits non-zero is not an error: that is its result (`Failed`, with a reason).
public struct JobError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What kind of error it is. An open set, as NIO's error codes are: a newer daemon may
    /// send a code this side has no name for, and it is kept as it came, not refused.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// A selector matched no job.
        public static let notFound = Code("notFound")
        /// The operation is not allowed on this job as it is (unfinished, or a child).
        public static let refused = Code("refused")
        /// An argument was wrong: bad selector, pattern, directory, option combination; a
        /// request that could not be read.
        public static let invalidArgument = Code("invalidArgument")
        /// A request named a verb this daemon does not know (it is older than the client).
        public static let unknownVerb = Code("unknownVerb")
        /// A request of a protocol version this daemon does not speak.
        public static let unsupportedVersion = Code("unsupportedVersion")
        /// Another engine holds this home.
        public static let homeInUse = Code("homeInUse")
        /// The database or the output files could not be read or written.
        public static let storage = Code("storage")
        /// The supervisor program could not be found or started.
        public static let supervisor = Code("supervisor")
        /// The engine is shutting down or not running.
        public static let unavailable = Code("unavailable")
        /// A computer could not be reached (ssh could not connect or authenticate).
        public static let unreachable = Code("unreachable")
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    public static func noJob(id: Int) -> JobError { JobError(.notFound, "no job with id \(id)") }
    public static func noJob(named name: String) -> JobError { JobError(.notFound, "no job named '\(shown(name))'") }

    /// A word from the user as a message shows it: whole when short, else its start (a name
    /// of 15 MiB must not come back whole in a one-line error).
    public static func shown(_ word: String) -> String {
        word.count <= 80 ? word : String(word.prefix(77)) + "…"
    }
}
