import ArgumentParser
import FoundationEssentials

#if canImport(Glibc)
import Glibc
#endif
import JobModel
import JobProtocol

struct StartCommand: InputCommand {
    static let configuration = CommandConfiguration(
        commandName: "start",
        abstract: "Start a background job and print it at once.",
        discussion: """
            -c runs the line with /bin/sh -c; after --, the program runs directly. The job runs in \
            the current directory (or --cwd) with your environment as it is now (plus --env).
            """
    )

    @OptionGroup var options: GlobalOptions

    @Option(name: StartInput.nameOption.names, help: StartInput.nameOption.argumentHelp)
    var name: String?

    @Option(name: StartInput.cwdOption.names, help: StartInput.cwdOption.argumentHelp)
    var cwd: String?

    @Option(name: StartInput.envOption.names, help: StartInput.envOption.argumentHelp)
    var env: [String] = []

    @Flag(name: StartInput.mergeErrorOption.names, help: StartInput.mergeErrorOption.argumentHelp)
    var mergeError = false

    @Flag(name: StartInput.stdinOption.names, help: StartInput.stdinOption.argumentHelp)
    var stdin = false

    @OptionGroup var scheduling: SchedulingOptions

    @Option(name: StartInput.lineOption.names, help: StartInput.lineOption.argumentHelp)
    var line: String?

    @Argument(parsing: .postTerminator, help: ArgumentHelp("The program and its arguments, after --.", valueName: "PROGRAM"))
    var program: [String] = []

    var input: StartInput {
        StartInput(
            name: name, cwd: cwd, env: env, mergeError: mergeError, stdin: stdin, command: CommandInput(line: line, program: program),
            scheduling: scheduling.input)
    }
}

/// What `job start` takes, from ArgumentParser or the fast path alike.
struct StartInput: TabledInput, TakesScheduling {
    var name: String?
    var cwd: String?
    var env: [String] = []
    var mergeError = false
    var stdin = false
    var command = CommandInput()
    var scheduling = SchedulingInput()

    static let nameOption = OptionSpec<Self>("name", help: "The job's name (default Job<Id>).") { $0.name = $1; return true }
    static let cwdOption = OptionSpec<Self>("cwd", value: "DIR", help: "The working directory (default: the current one).") {
        $0.cwd = $1
        return true
    }
    static let envOption = OptionSpec<Self>("env", value: "KEY=VALUE", help: "Add or override an environment variable.") {
        $0.env.append($1)
        return true
    }
    static let lineOption = OptionSpec<Self>.line(help: "A command line for /bin/sh -c.") { $0.command.line = $1 }
    static let mergeErrorOption = OptionSpec<Self>(
        flag: "merge-error", help: "Send its standard error into its standard output (2>&1), in exact order."
    ) {
        $0.mergeError = true
    }
    static let stdinOption = OptionSpec<Self>(
        flag: "stdin", help: "Give the job this command's standard input (a file or a pipe), not /dev/null."
    ) {
        $0.stdin = true
    }
    static let options = [nameOption, cwdOption, envOption, mergeErrorOption, stdinOption, lineOption]
        + SchedulingInput.options()
    static let program: (@Sendable (inout Self, [String]) -> Void)? = { $0.command.program = $1 }

    func validate() throws(UsageError) {
        try command.validate()
        try scheduling.validate()
        for pair in env where !pair.contains("=") || pair.hasPrefix("=") {
            throw UsageError("--env takes KEY=VALUE, not '\(JobError.shown(pair))'")
        }
    }

    /// Starts the job and prints it; returns the exit status.
    func run(_ options: CommonOptions) throws -> Int32 {
        var parameters = try startParameters(command: command.parameter, name: name, cwd: cwd, env: env)
        parameters.mergeError = mergeError
        parameters.stdin = stdin
        scheduling.apply(to: &parameters)
        var started: [JobInfo] = []
        let (_, status) = try perform(Request(.start(parameters)), with: options) { frame in
            if case .job(let job) = frame { started = [job] }
        }
        if !started.isEmpty { try show(started, options) }
        return status
    }
}

/// What `start` (and `invoke` on localhost) sends: the command, and the caller's directory and
/// environment as they are now. A directory that does not exist is an error here, before
/// anything starts.
func startParameters(command: CommandParameter, name: String?, cwd: String?, env: [String]) throws -> StartParameters {
    let current = currentDirectory()
    var directory = current
    if let cwd {
        // getcwd's answer is already absolute and plain; only a given one needs tidying.
        directory = URL(fileURLWithPath: cwd.hasPrefix("/") ? cwd : current + "/" + cwd).standardizedFileURL.path
    }
    var info = stat()
    guard stat(directory, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else {
        // A refusal, not a usage error: the command line was right (CLI.md: exit 1).
        complain("no such directory: \(cwd ?? directory)")
        throw Exit(status: ExitStatus.failed)
    }
    var environment = currentEnvironment()
    for pair in env {
        let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        environment[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
    }
    return StartParameters(command: command, name: name, workingDirectory: directory, environment: environment)
}

/// The current directory, as getcwd(3) says (FileManager's costs a start-up).
func currentDirectory() -> String {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    guard getcwd(&buffer, buffer.count) != nil else { return FileManager.default.currentDirectoryPath }
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// The process's environment, read from `environ` (ProcessInfo's costs a start-up).
func currentEnvironment() -> [String: String] {
    var result: [String: String] = [:]
    result.reserveCapacity(64)
    var entry = environ
    while let pointer = entry.pointee {
        let pair = String(cString: pointer)
        if let equals = pair.firstIndex(of: "=") {
            result[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
        }
        entry += 1
    }
    return result
}
