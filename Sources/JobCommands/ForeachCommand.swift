import ArgumentParser
import FoundationEssentials
import JobModel
import JobProtocol

#if canImport(Glibc)
import Glibc
#endif

struct ForeachCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "foreach",
        abstract: "Run a command once per input line: a parent job with a child per input (GNU parallel's everyday use).",
        discussion: """
            Inputs are the lines of standard input (NUL-separated with -0), or of --input-file. In the \
            command, {} is the input, {.} without its extension, {/} its basename, {//} its directory, \
            {/.} its basename without extension, {#} the child's number; shell-quoted in a -c line, as \
            they are in a program's arguments; with none, the input is the last argument. $JOB_INPUT \
            holds it too. Without --as-job, each child's output is written whole once it finishes, the \
            exit status is 0 if every child completed, and the job is removed; Ctrl-C stops the children.
            """
    )

    @OptionGroup var options: GlobalOptions

    @Option(help: ArgumentHelp("At most this many children at once (default: the number of online CPUs).", valueName: "N"))
    var throttle: Int?

    @Flag(help: "Return the parent job at once instead of waiting.")
    var asJob = false

    @Option(help: "The parent job's name (default Job<Id>).")
    var name: String?

    @Option(help: ArgumentHelp("Read the inputs from this file, not from standard input.", valueName: "FILE"))
    var inputFile: String?

    @Flag(name: .customShort("0"), help: "Inputs are separated by NUL, not newlines (find -print0).")
    var nul = false

    @Flag(help: "Write the children's output in input order, not in the order they finish.")
    var keepOrder = false

    @Flag(help: "Begin every line of output with the child's input and a tab.")
    var tag = false

    @OptionGroup var scheduling: SchedulingOptions

    @Option(name: .customShort("c"), help: ArgumentHelp("A command line for /bin/sh -c, once per input.", valueName: "LINE"))
    var line: String?

    @Argument(parsing: .postTerminator, help: ArgumentHelp("The program and its arguments, after --.", valueName: "PROGRAM"))
    var program: [String] = []

    func validate() throws {
        try options.validateJobFormat()
        try validating { () throws(UsageError) in
            try CommandInput(line: line, program: program).validate()
            try scheduling.input.validate()
        }
        if let throttle, throttle < 1 { throw ValidationError("--throttle takes 1 or more, not \(throttle)") }
        if asJob && (keepOrder || tag) { throw ValidationError("--keep-order and --tag shape the output of foreach without --as-job") }
        if inputFile == nil && isatty(0) == 1 {
            throw ValidationError("foreach reads its inputs from standard input: pipe them in (seq 3 | job foreach …) or use --input-file FILE")
        }
    }

    func run() throws {
        var start = try startParameters(command: CommandInput(line: line, program: program).parameter, name: name, cwd: nil, env: [])
        scheduling.input.apply(to: &start)
        var file: String?
        if let inputFile {
            let path = inputFile.hasPrefix("/") ? inputFile : currentDirectory() + "/" + inputFile
            var info = stat()
            guard stat(path, &info) == 0, info.st_mode & S_IFMT != S_IFDIR, access(path, R_OK) == 0 else {
                complain("cannot read the input file \(inputFile): \(info.st_mode & S_IFMT == S_IFDIR ? "it is a directory" : String(cString: strerror(errno)))")
                throw Exit(status: ExitStatus.failed)
            }
            file = path
        }
        var started: JobInfo?
        let request = Request(.foreach(ForeachParameters(start: start, throttle: throttle, inputFile: file, nul: nul)))
        let (_, status) = try perform(request, with: options) { frame in
            if case .job(let job) = frame { started = job }
        }
        guard status == ExitStatus.ok, let parent = started else { throw Exit(status: status) }
        if asJob {
            try show([parent], options)
            return
        }
        let printer = OutputPrinter(format: .raw, properties: nil, prefix: tag ? .input : nil, live: true)
        let receive = ReceiveParameters(selectors: [.id(parent.id)], autoRemove: true, whole: true, ordered: keepOrder)
        let result = try followOwnJob(parent, printer: printer, receive: receive, options.common) { failure in
            complain("\(failure.jobName) failed: \(failure.reason)")
        }
        if result != ExitStatus.ok { throw Exit(status: result) }
    }
}

/// Follows a job this command made and owns (`invoke` and `foreach` without `--as-job`) to
/// its end, writing its output, then removes it; interrupted, it stops and removes the job
/// and dies of the signal (130 for Ctrl-C). 0 when it completed, else 1.
func followOwnJob(
    _ parent: JobInfo, printer: OutputPrinter, receive: ReceiveParameters, _ options: CommonOptions,
    onFailure: (JobFailure) -> Void
) throws -> Int32 {
    let interruption = onInterrupt { signal in
        let selectors: [JobSelector] = [.id(parent.id)]
        _ = try? perform(Request(.stop(StopParameters(selectors: selectors))), with: options) { _ in }
        _ = try? perform(Request(.remove(RemoveParameters(selectors: selectors, force: true))), with: options) { _ in }
        Glibc.exit(128 + signal)
    }
    var failed = false
    // The stream ends with the job as it finished, then removes it: two requests in all.
    let result = try Receiving(printer: printer, acknowledge: true, coalesce: true).run(Request(.receiveWait(receive)), options) {
        failed = true
        onFailure($0)
    }
    // Stopped by the interruption: its handler says how this ends.
    interruption.waitIfInterrupted()
    if result.status != ExitStatus.ok { return result.status }
    return failed || result.jobs.first?.state != .completed ? ExitStatus.failed : ExitStatus.ok
}
