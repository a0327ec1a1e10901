import ArgumentParser
import FoundationEssentials
import JobModel
import JobProtocol

struct RemoveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove",
        abstract: "Delete jobs and their stored output.",
        discussion: """
            A job that is not finished is refused unless --force, which stops it first. Child jobs \
            go with their parent. --state and --command select top-level jobs and, as PowerShell's \
            Remove-Job does, stop running ones first.
            """
    )

    @OptionGroup var options: GlobalOptions

    @Argument(help: ArgumentHelp("Jobs by id, instance id or name.", valueName: "JOB"))
    var jobs: [String] = []

    @Flag(help: "Stop unfinished jobs first instead of refusing them.")
    var force = false

    @Option(help: "Remove the top-level jobs in this state.")
    var state: String?

    @Option(help: ArgumentHelp("Remove the top-level jobs whose command matches this pattern.", valueName: "PATTERN"))
    var command: String?

    func validate() throws {
        let ways = (jobs.isEmpty ? 0 : 1) + (state == nil ? 0 : 1) + (command == nil ? 0 : 1)
        if ways != 1 { throw ValidationError("give JOB…, --state STATE or --command PATTERN (one of them)") }
    }

    func run() throws {
        let parameters = RemoveParameters(
            selectors: selectors(jobs), force: force, state: try state.map(parseState), command: command)
        let (_, status) = try perform(Request(.remove(parameters)), with: options) { _ in }
        if status != ExitStatus.ok { throw Exit(status: status) }
    }
}
