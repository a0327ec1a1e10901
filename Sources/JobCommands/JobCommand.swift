import ArgumentParser
import FoundationEssentials

#if canImport(Glibc)
import Glibc
#endif
import JobModel
import JobClient
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
            StartCommand.self, InvokeCommand.self, ForeachCommand.self, GetCommand.self, ReceiveCommand.self, WaitCommand.self,
            StopCommand.self, RemoveCommand.self, SuspendCommand.self, ResumeCommand.self, RestartCommand.self,
            QueueCommand.self, SessionCommand.self, DaemonCommand.self,
        ]
    )

    public init() {}

    /// Runs the command line, with the contract's exit statuses.
    /// Synchronous on purpose: the client blocks on one socket, and an async main would cost
    /// a thread and a hop at every start.
    public static func runMain() {
        Interrupts.catchThem()
        var args = hoistingGlobalOptions(Array(CommandLine.arguments.dropFirst()))
        if args.first == "help" {
            // `job --home H help get`: the home has no say in help.
            args = withoutCommonOptions(args)
            if let word = args.dropFirst().first, !commandNames.contains(word) {
                complain(unknownCommand(word))
                Glibc.exit(ExitStatus.usage)
            }
        }
        if let status = FastPath.run(args) { Glibc.exit(status) }
        do {
            var command = try parseAsRoot(args)
            try command.run()
        } catch let exit as Exit {
            Glibc.exit(exit.status)
        } catch let output as OutputError {
            output.exit()
        } catch let usage as UsageError {
            complain(usage.message)
            Glibc.exit(ExitStatus.usage)
        } catch where exitCode(for: error) == .success && (args.contains("--help") || args.contains("-h") || args.first == "help") {
            print(fullMessage(for: error).trimmed)
            print("")
            print(Examples.text(for: args), terminator: "")
        } catch where exitCode(for: error) == .success {
            // --version, and help asked for some other way.
            exit(withError: error)
        } catch {
            complain(usageLine(for: error, args))
            Glibc.exit(ExitStatus.usage)
        }
    }

    /// The commands' names, for "did you mean".
    static var commandNames: [String] {
        configuration.subcommands.map { $0.configuration.commandName ?? "" } + ["help"]
    }

    /// A usage error in one line, as the contract wants every error: what was wrong, and
    /// where to look.
    static func usageLine(for error: any Error, _ args: [String]) -> String {
        if let word = args.first, !word.hasPrefix("-"), !commandNames.contains(word) { return unknownCommand(word) }
        var text = message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
        if text.hasPrefix("Error: ") { text.removeFirst("Error: ".count) }
        let command = args.first.flatMap { commandNames.contains($0) ? $0 : nil }
        return text + " (job \(command.map { $0 + " " } ?? "")--help says more)"
    }

    static func unknownCommand(_ word: String) -> String {
        let near = commandNames.filter { editDistance($0, String(word.prefix(40))) <= 2 }.min {
            editDistance($0, word) < editDistance($1, word)
        }
        return "unknown command '\(word.prefix(80))'" + (near.map { "; did you mean '\($0)'?" } ?? "") + " (job --help lists them)"
    }

    /// Levenshtein's distance between two short words.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        guard !a.isEmpty else { return b.count }
        var row = Array(0...b.count)
        for i in 1...a.count {
            var previous = row[0]
            row[0] = i
            for j in stride(from: 1, through: b.count, by: 1) {
                let substitution = previous + (a[i - 1] == b[j - 1] ? 0 : 1)
                previous = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, substitution)
            }
        }
        return row[b.count]
    }
}

/// The words without the options every command takes (and their values).
func withoutCommonOptions(_ args: [String]) -> [String] {
    var result: [String] = []
    var index = 0
    while index < args.count {
        let word = args[index]
        if CommonOptionTable.spellings.contains(word) {
            index += 2
            continue
        }
        if CommonOptionTable.spellings.contains(where: { word.hasPrefix($0 + "=") }) {
            index += 1
            continue
        }
        result.append(word)
        index += 1
    }
    return result
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
    if ["daemon", "queue", "session"].contains(first), rest.count > 1, !rest[1].hasPrefix("-") { commandWords = 2 }
    return Array(rest[..<commandWords]) + globals + Array(rest[commandWords...])
}

/// Prints jobs in the chosen format.
func show(_ jobs: [JobInfo], _ options: GlobalOptions) throws {
    try show(jobs, options.common)
}

func show(_ jobs: [JobInfo], _ options: CommonOptions) throws {
    let writer = try JobListWriter(options)
    try writer.add(jobs)
    try writer.finish()
}
