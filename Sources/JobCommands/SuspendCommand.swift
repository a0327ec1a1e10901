import ArgumentParser
import FoundationEssentials
import JobModel
import JobProtocol

/// A verb that acts on `JOB…` and prints the jobs it answers with: suspend, resume, restart.
protocol JobsVerb: ParsableCommand {
    var options: GlobalOptions { get }
    var jobs: [String] { get }
    /// Whether the jobs are printed: restart always, suspend and resume with --passthru.
    var printsJobs: Bool { get }
    static func verb(_ selectors: [JobSelector]) -> Verb
}

extension JobsVerb {
    func validate() throws {
        try options.validateJobFormat()
        if jobs.isEmpty { throw ValidationError("name at least one JOB") }
    }

    func run() throws {
        var answered: [JobInfo] = []
        let (_, status) = try perform(Request(Self.verb(selectors(jobs))), with: options) { frame in
            if case .jobs(let jobs) = frame { answered += jobs }
        }
        if printsJobs && !answered.isEmpty { try show(answered, options) }
        if status != ExitStatus.ok { throw Exit(status: status) }
    }
}

/// `JOB…` and `--passthru`, as suspend and resume take them.
struct JobsAndPassthru: ParsableArguments {
    @Argument(help: ArgumentHelp("Jobs by id, instance id or name.", valueName: "JOB"))
    var jobs: [String] = []

    @Flag(help: "Print the jobs afterwards.")
    var passthru = false
}

struct SuspendCommand: JobsVerb {
    static let configuration = CommandConfiguration(
        commandName: "suspend",
        abstract: "Suspend running jobs: every process of theirs stopped (SIGSTOP), until resumed.",
        discussion: """
            A job not started yet (waiting for its queue, say) is held back until resumed. `job stop` \
            ends a suspended job. Local jobs only: a remote command's processes are on its computer.
            """
    )

    @OptionGroup var options: GlobalOptions
    @OptionGroup var selection: JobsAndPassthru

    var jobs: [String] { selection.jobs }
    var printsJobs: Bool { selection.passthru }
    static func verb(_ selectors: [JobSelector]) -> Verb { .suspend(selectors) }
}

struct ResumeCommand: JobsVerb {
    static let configuration = CommandConfiguration(
        commandName: "resume",
        abstract: "Resume suspended jobs: their processes continue (SIGCONT).",
        discussion: "Jobs held back before they started wait for their slot again."
    )

    @OptionGroup var options: GlobalOptions
    @OptionGroup var selection: JobsAndPassthru

    var jobs: [String] { selection.jobs }
    var printsJobs: Bool { selection.passthru }
    static func verb(_ selectors: [JobSelector]) -> Verb { .resume(selectors) }
}

struct RestartCommand: JobsVerb {
    static let configuration = CommandConfiguration(
        commandName: "restart",
        abstract: "Start finished jobs again, as new jobs, and print them.",
        discussion: """
            Each new job has the same command, working directory, environment, name, queue, computers \
            and retries as the old one (which stays as it was). An unfinished job is refused.
            """
    )

    @OptionGroup var options: GlobalOptions

    @Argument(help: ArgumentHelp("Jobs by id, instance id or name.", valueName: "JOB"))
    var jobs: [String] = []

    var printsJobs: Bool { true }
    static func verb(_ selectors: [JobSelector]) -> Verb { .restart(selectors) }
}
