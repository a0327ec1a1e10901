/// Every error the engine reports: a code to branch on and one line a person can act on.
///
/// A job that exits non-zero is not an error: that is its result (`Failed`, with a reason).
public struct JobError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable, Codable {
        /// A selector matched no job.
        case notFound
        /// The operation is not allowed on this job as it is (unfinished, or a child).
        case refused
        /// An argument was wrong: bad selector, pattern, directory, option combination.
        case invalidArgument
        /// Another engine holds this home.
        case homeInUse
        /// The database or the output files could not be read or written.
        case storage
        /// The supervisor program could not be found or started.
        case supervisor
        /// The engine is shutting down or not running.
        case unavailable
        /// A computer could not be reached (ssh could not connect or authenticate).
        case unreachable
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    public static func noJob(id: Int) -> JobError { JobError(.notFound, "no job with id \(id)") }
    public static func noJob(named name: String) -> JobError { JobError(.notFound, "no job named '\(name)'") }
}
