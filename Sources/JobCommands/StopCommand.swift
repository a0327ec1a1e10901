import ArgumentParser
import FoundationEssentials
import JobModel
import JobProtocol

struct StopCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stop",
        abstract: "Stop running jobs; returns when they are Stopped.",
        discussion: """
            SIGTERM goes to each job's whole process group, then SIGKILL after the grace period. \
            Stopping a parent stops its children. Finished jobs are left as they are.
            """
    )

    @OptionGroup var options: GlobalOptions

    @Argument(help: ArgumentHelp("Jobs by id, instance id or name.", valueName: "JOB"))
    var jobs: [String]

    @Flag(help: "Print the jobs afterwards.")
    var passthru = false

    // Unconditional: `--grace -1` is a number out of range, not a missing value.
    @Option(parsing: .unconditional, help: ArgumentHelp("Seconds between SIGTERM and SIGKILL.", valueName: "SECONDS"))
    var grace: Double = Defaults.graceSeconds

    func validate() throws {
        try options.validateJobFormat()
        if jobs.isEmpty { throw ValidationError("name at least one JOB") }
        try validating { () throws(UsageError) in try checkSeconds(grace, of: "--grace") }
    }

    func run() throws {
        var stopped: [JobInfo] = []
        let (_, status) = try perform(Request(.stop(StopParameters(selectors: selectors(jobs), graceSeconds: grace))), with: options) { frame in
            if case .jobs(let jobs) = frame { stopped += jobs }
        }
        if passthru && !stopped.isEmpty { try show(stopped, options) }
        if status != ExitStatus.ok { throw Exit(status: status) }
    }
}
