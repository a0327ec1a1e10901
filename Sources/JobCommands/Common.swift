import ArgumentParser
import Foundation
import JobClient
import JobModel
import JobProtocol

#if canImport(Glibc)
import Glibc
#endif

/// How a command's answer is shown.
enum OutputFormatOption: String, ExpressibleByArgument, CaseIterable {
    case table, list, json, raw
}

/// Options every command takes.
struct GlobalOptions: ParsableArguments {
    @Option(name: [.short, .customLong("output")], help: "table (the default), list or json; receive also raw (its default).")
    var outputOption: OutputFormatOption?

    /// The format asked for, or table.
    var output: OutputFormatOption { outputOption ?? .table }

    @Option(help: ArgumentHelp("Which columns or fields to show (case-insensitive).", valueName: "NAME[,NAME…]"))
    var property: String?

    @Option(help: ArgumentHelp("The job home (default: $JOB_HOME, $XDG_STATE_HOME/job, ~/.local/state/job).", valueName: "DIR"))
    var home: String?

    var jobHome: JobHome { JobHome(explicit: home) }
    var client: DaemonClient { DaemonClient(home: jobHome) }

    var properties: [String]? {
        property.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
    }

    func validateJobFormat() throws {
        if output == .raw { throw ValidationError("-o raw is for 'job receive'; use table, list or json") }
    }
}

/// A command's end: an exit status, after its errors were written.
struct Exit: Error {
    var status: Int32
}

enum ExitStatus {
    static let ok: Int32 = 0
    static let failed: Int32 = 1
    static let usage: Int32 = 64
    static let unreachable: Int32 = 69
    static let timedOut: Int32 = 124
}

/// Writes one `job: …` line to stderr.
func complain(_ message: String) {
    FileHandle.standardError.write(Data("job: \(message)\n".utf8))
}

func writeOut(_ text: String) {
    FileHandle.standardOutput.write(Data(text.utf8))
}

/// Runs one request: frames go to `onFrame`; unknown words and errors are reported; returns
/// the exit status the outcome calls for (throws `Exit` for the daemon being unreachable).
func perform(_ request: Request, with options: GlobalOptions, onFrame: (Response) throws -> Void) throws -> (Outcome, Int32) {
    let outcome: Outcome
    do {
        outcome = try options.client.call(request, onFrame: onFrame)
    } catch let error as ClientError {
        complain(error.message)
        throw Exit(status: ExitStatus.unreachable)
    }
    for error in outcome.notFound { complain(error.message) }
    if let error = outcome.error {
        complain(error.message)
        return (outcome, error.code == .invalidArgument ? ExitStatus.usage : ExitStatus.failed)
    }
    return (outcome, outcome.notFound.isEmpty ? ExitStatus.ok : ExitStatus.failed)
}

/// Parses `JOB…` words.
func selectors(_ words: [String]) -> [JobSelector] { words.map(JobSelector.init) }

/// Parses a time given on the command line: ISO 8601, with or without fractional seconds or a
/// time zone (local time then).
func parseTime(_ text: String) throws -> Date {
    let withZone = ISO8601DateFormatter()
    withZone.formatOptions = [.withInternetDateTime]
    if let date = withZone.date(from: text) { return date }
    withZone.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    if let date = withZone.date(from: text) { return date }
    let local = DateFormatter()
    local.locale = Locale(identifier: "en_US_POSIX")
    for format in ["yyyy-MM-dd'T'HH:mm:ss", "yyyy-MM-dd HH:mm:ss", "yyyy-MM-dd'T'HH:mm", "yyyy-MM-dd"] {
        local.dateFormat = format
        if let date = local.date(from: text) { return date }
    }
    throw ValidationError("'\(text)' is not a time: use ISO 8601, e.g. 2026-11-24T18:30:00Z")
}

func parseState(_ text: String) throws -> JobState {
    guard let state = JobState(name: text) else {
        throw ValidationError(
            "'\(text)' is not a job state: use one of \(JobState.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    return state
}
