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
    case table, list, json, jsonl, raw
}

/// Options every command takes.
struct GlobalOptions: ParsableArguments {
    @Option(name: [.short, .customLong("output")], help: CommonOptionTable.output.argumentHelp)
    var outputOption: OutputFormatOption?

    /// The format asked for, or table.
    var output: OutputFormatOption { outputOption ?? .table }

    @Option(name: CommonOptionTable.property.names, help: CommonOptionTable.property.argumentHelp)
    var property: String?

    @Option(name: CommonOptionTable.home.names, help: CommonOptionTable.home.argumentHelp)
    var home: String?

    var jobHome: JobHome { JobHome(explicit: home) }

    var properties: [String]? { property.map(propertyList) }

    /// What the verbs' shared code takes, however the command line was parsed.
    var common: CommonOptions { CommonOptions(home: home, format: output, properties: properties) }
    var client: DaemonClient { common.client }

    func validateJobFormat() throws {
        if output == .raw { throw ValidationError("-o raw is for 'job receive'; use table, list, json or jsonl") }
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

/// A verb's inputs, however the command line was parsed (ArgumentParser or the fast path):
/// they check themselves and run the verb.
protocol VerbInput: Equatable {
    func validate() throws(UsageError)
    /// Runs the verb and returns the exit status.
    func run(_ options: CommonOptions) throws -> Int32
}

/// An ArgumentParser command that is only the parser of a `VerbInput`.
protocol InputCommand: ParsableCommand {
    associatedtype Input: VerbInput
    var options: GlobalOptions { get }
    var input: Input { get }
}

/// Runs a check inside ArgumentParser's `validate()`: its error is shown with the usage, as
/// ArgumentParser shows its own.
func validating(_ check: () throws(UsageError) -> Void) throws {
    do throws(UsageError) {
        try check()
    } catch {
        throw ValidationError(error.message)
    }
}

extension InputCommand {
    func validate() throws {
        try options.validateJobFormat()
        try validating { () throws(UsageError) in try input.validate() }
    }

    func run() throws {
        let status = try input.run(options.common)
        if status != ExitStatus.ok { throw Exit(status: status) }
    }
}
