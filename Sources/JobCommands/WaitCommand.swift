import ArgumentParser
import FoundationEssentials

#if canImport(Glibc)
import Glibc
#endif
import JobModel
import JobProtocol

struct WaitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wait",
        abstract: "Wait until jobs are finished, then print them.",
        discussion: """
            Without JOB, every top-level job. Finished means Completed, Failed or Stopped (or \
            Disconnected, unless --force). On timeout nothing is printed, the jobs go on, and the \
            exit status is 124.
            """
    )

    @OptionGroup var options: GlobalOptions

    @Argument(help: ArgumentHelp("Jobs by id, instance id or name.", valueName: "JOB"))
    var jobs: [String] = []

    @Flag(help: "Return when at least one is done, and print that one.")
    var any = false

    @Option(help: ArgumentHelp("Give up after this long; 0 looks once.", valueName: "SECONDS"))
    var timeout: Double?

    @Flag(help: "Wait through Disconnected to a finished state.")
    var force = false

    func validate() throws {
        try options.validateJobFormat()
        if let timeout, timeout < 0 { throw ValidationError("--timeout takes 0 or more seconds, not \(timeout)") }
    }

    func run() throws {
        // Progress only for a person watching: stderr is a terminal.
        let live = isatty(2) == 1
        let parameters = WaitParameters(selectors: selectors(jobs), any: any, timeout: timeout, force: force, progress: live)
        var done: [JobInfo] = []
        let started = Date()
        let (outcome, status) = try perform(Request(.wait(parameters)), with: options) { frame in
            switch frame {
            case .jobs(let jobs): done = jobs
            case .progress(let finished, let total):
                let elapsed = decimal(Date().timeIntervalSince(started), places: 1)
                writeAll(2, Array("\r\u{1B}[K\(finished)/\(total) finished, \(elapsed) s".utf8))
            default: break
            }
        }
        if live { writeAll(2, Array("\r\u{1B}[K".utf8)) }
        if outcome.timedOut { throw Exit(status: ExitStatus.timedOut) }
        if !done.isEmpty { try show(done, options) }
        if status != ExitStatus.ok { throw Exit(status: status) }
        if done.contains(where: { $0.state == .failed || $0.state == .stopped }) { throw Exit(status: ExitStatus.failed) }
    }
}
