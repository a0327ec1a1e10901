import ArgumentParser
import FoundationEssentials
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

    var properties: [String]? { property.map(propertyList) }

    /// What the verbs' shared code takes, however the command line was parsed.
    var common: CommonOptions { CommonOptions(home: home, format: output, properties: properties) }
    var client: DaemonClient { common.client }

    func validateJobFormat() throws {
        if output == .raw { throw ValidationError("-o raw is for 'job receive'; use table, list or json") }
    }
}

/// The options every command takes, as the ArgumentParser commands and the fast path both
/// hand them to the verbs.
struct CommonOptions: Equatable {
    var home: String?
    var format: OutputFormatOption = .table
    var properties: [String]?

    var client: DaemonClient { DaemonClient(home: JobHome(explicit: home)) }
}

/// `--property A,B` as a list of names.
func propertyList(_ text: String) -> [String] {
    text.split(separator: ",").map { String($0).trimmed }.filter { !$0.isEmpty }
}

/// The command of `start`, `invoke` (and later verbs): `-c LINE` or `-- PROGRAM [ARG…]`,
/// exactly one of them.
struct CommandInput: Equatable {
    var line: String?
    var program: [String] = []

    func validate() throws(UsageError) {
        if (line == nil) == program.isEmpty {
            throw UsageError("give either -c 'LINE' or -- PROGRAM [ARG…], not both and not neither")
        }
    }

    var parameter: CommandParameter { line.map(CommandParameter.shell) ?? .argv(program) }
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
    writeAll(2, Array("job: \(message)\n".utf8))
}

/// `job: HOST: REASON` for a child of `invoke` that failed. A connection's reason already
/// starts with its computer (the contract puts it there); it is not named twice.
func complainOfFailure(at location: String, _ reason: String) {
    complain(reason.hasPrefix(location + ": ") ? reason : "\(location): \(reason)")
}

func writeOut(_ text: String) {
    writeAll(1, Array(text.utf8))
}

/// Runs one request: frames go to `onFrame`; unknown words and errors are reported; returns
/// the exit status the outcome calls for (throws `Exit` for the daemon being unreachable).
func perform(_ request: Request, with options: GlobalOptions, onFrame: (Response) throws -> Void) throws -> (Outcome, Int32) {
    try perform(request, with: options.common, onFrame: onFrame)
}

func perform(_ request: Request, with options: CommonOptions, onFrame: (Response) throws -> Void) throws -> (Outcome, Int32) {
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
    if let date = try? Date.ISO8601FormatStyle().parse(text) { return date }
    if let date = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text) { return date }
    // Without a zone: local time, `YYYY-MM-DD[THH:MM[:SS]]` (a space may stand for the T).
    let parts = text.split(whereSeparator: { $0 == "T" || $0 == " " }).map(String.init)
    let day = parts.first?.split(separator: "-").compactMap { Int($0) } ?? []
    let time = parts.count > 1 ? parts[1].split(separator: ":").compactMap { Int($0) } : []
    if parts.count <= 2, day.count == 3, parts.count == 1 || (2...3).contains(time.count) {
        var components = DateComponents()
        (components.year, components.month, components.day) = (day[0], day[1], day[2])
        components.hour = time.first ?? 0
        components.minute = time.count > 1 ? time[1] : 0
        components.second = time.count > 2 ? time[2] : 0
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = .current
        if let date = calendar.date(from: components) { return date }
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

/// Runs `body` on a new thread (the CLI links no Foundation `Thread`). False if none could
/// be made.
@discardableResult
func startThread(_ body: @escaping @Sendable () -> Void) -> Bool {
    final class Context: Sendable {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    let context = Unmanaged.passRetained(Context(body)).toOpaque()
    var thread = pthread_t()
    let rc = pthread_create(&thread, nil, { raw in
        guard let raw else { return nil }
        Unmanaged<Context>.fromOpaque(raw).takeRetainedValue().body()
        return nil
    }, context)
    guard rc == 0 else {
        Unmanaged<Context>.fromOpaque(context).release()
        return false
    }
    pthread_detach(thread)
    return true
}
