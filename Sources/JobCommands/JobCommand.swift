import ArgumentParser
import FoundationEssentials

#if canImport(Glibc)
import Glibc
#endif
import JobModel
import JobProtocol

/// `job`: PowerShell's background jobs for the Unix shell.
public struct JobCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "job",
        abstract: "Run commands as background jobs that outlive your shell, and collect their output.",
        discussion: """
            Jobs belong to you, not to your terminal: a per-user daemon (jobd, started when \
            needed) keeps them, with their output on disk.
            """,
        version: Release.version,
        subcommands: [
            StartCommand.self, InvokeCommand.self, GetCommand.self, ReceiveCommand.self, WaitCommand.self, StopCommand.self,
            RemoveCommand.self, DaemonCommand.self,
        ]
    )

    public init() {}

    /// Runs the command line, with the contract's exit statuses.
    /// Synchronous on purpose: the client blocks on one socket, and an async main would cost
    /// a thread and a hop at every start.
    public static func runMain() {
        let args = hoistingGlobalOptions(Array(CommandLine.arguments.dropFirst()))
        if let status = FastPath.run(args) { Glibc.exit(status) }
        do {
            var command = try parseAsRoot(args)
            try command.run()
        } catch let exit as Exit {
            Glibc.exit(exit.status)
        } catch let usage as UsageError {
            complain(usage.message)
            Glibc.exit(ExitStatus.usage)
        } catch where exitCode(for: error) == .success && (args.contains("--help") || args.contains("-h") || args.first == "help") {
            print(fullMessage(for: error).trimmed)
            print("")
            print(Examples.text(for: args), terminator: "")
        } catch {
            exit(withError: error)
        }
    }
}

/// Moves global options written before the subcommand (`job --home H get`) to after it, where
/// the parser looks for them.
func hoistingGlobalOptions(_ args: [String]) -> [String] {
    // An array, not a Set: hashing would cost this hot path a random seed and generic metadata.
    let takesValue = CommonOptionTable.spellings
    var globals: [String] = []
    var rest: [String] = []
    var index = 0
    while index < args.count, args[index].hasPrefix("-"), args[index] != "--" {
        let word = args[index]
        let name = word.split(separator: "=", maxSplits: 1).first.map(String.init) ?? word
        guard takesValue.contains(name) else { break }
        globals.append(word)
        if !word.contains("="), index + 1 < args.count {
            globals.append(args[index + 1])
            index += 1
        }
        index += 1
    }
    rest = Array(args[index...])
    guard !globals.isEmpty, let first = rest.first, !first.hasPrefix("-") else { return args }
    var commandWords = 1
    if first == "daemon", rest.count > 1, !rest[1].hasPrefix("-") { commandWords = 2 }
    return Array(rest[..<commandWords]) + globals + Array(rest[commandWords...])
}

/// Prints jobs in the chosen format.
func show(_ jobs: [JobInfo], _ options: GlobalOptions) throws {
    try show(jobs, options.common)
}

func show(_ jobs: [JobInfo], _ options: CommonOptions) throws {
    writeOut(try JobRender.render(jobs, format: options.format, properties: options.properties))
}
