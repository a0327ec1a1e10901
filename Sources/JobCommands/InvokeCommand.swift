import ArgumentParser
import FoundationEssentials
import Synchronization
import JobModel
import JobProtocol

#if canImport(Glibc)
import Glibc
#endif

struct InvokeCommand: InputCommand {
    static let configuration = CommandConfiguration(
        commandName: "invoke",
        abstract: "Run a command on computers: a parent job with a child per computer.",
        discussion: """
            With --as-job, prints the parent job at once. Without, writes each line as it arrives \
            (prefixed 'HOST: ' when more than one computer is named), then removes the job; the exit \
            status is 0 if every child completed; Ctrl-C stops the command everywhere and removes the job. \
            localhost runs locally; other computers are reached with ssh in batch mode (your \
            ~/.ssh/config, keys, agent and known_hosts), one connection per computer kept by the daemon.
            """
    )

    @OptionGroup var options: GlobalOptions

    @Option(name: InvokeInput.computerOption.names, help: InvokeInput.computerOption.argumentHelp)
    var computer = ""

    @Option(name: InvokeInput.sessionOption.names, help: InvokeInput.sessionOption.argumentHelp)
    var session = ""

    @Flag(name: InvokeInput.asJobOption.names, help: InvokeInput.asJobOption.argumentHelp)
    var asJob = false

    @Option(name: InvokeInput.nameOption.names, help: InvokeInput.nameOption.argumentHelp)
    var name: String?

    @Option(name: InvokeInput.throttleOption.names, help: InvokeInput.throttleOption.argumentHelp)
    var throttle = InvokeParameters.defaultThrottle

    @Option(name: InvokeInput.sshConfigOption.names, help: InvokeInput.sshConfigOption.argumentHelp)
    var sshConfig: String?

    @Flag(name: InvokeInput.hideComputerNameOption.names, help: InvokeInput.hideComputerNameOption.argumentHelp)
    var hideComputerName = false

    @Flag(name: InvokeInput.detachedOption.names, help: InvokeInput.detachedOption.argumentHelp)
    var detached = false

    @OptionGroup var scheduling: SchedulingOptions

    @Option(name: InvokeInput.lineOption.names, help: InvokeInput.lineOption.argumentHelp)
    var line: String?

    @Argument(parsing: .postTerminator, help: ArgumentHelp("The program and its arguments, after --.", valueName: "PROGRAM"))
    var program: [String] = []

    var input: InvokeInput {
        InvokeInput(
            computer: computer, session: session, asJob: asJob, name: name, throttle: throttle, sshConfig: sshConfig,
            hideComputerName: hideComputerName, detached: detached, command: CommandInput(line: line, program: program),
            scheduling: scheduling.input)
    }
}

/// What `job invoke` takes, from ArgumentParser or the fast path alike.
struct InvokeInput: TabledInput, TakesScheduling {
    var computer = ""
    var session = ""
    var asJob = false
    var name: String?
    var throttle = InvokeParameters.defaultThrottle
    var sshConfig: String?
    var hideComputerName = false
    var detached = false
    var command = CommandInput()
    var scheduling = SchedulingInput()

    static let computerOption = OptionSpec<Self>("computer", value: "HOST[,HOST…]", help: "The computers, in order.") {
        $0.computer = $1
        return true
    }
    static let sessionOption = OptionSpec<Self>(
        "session", value: "SESSION[,SESSION…]",
        help: "Instead of --computer: run the command in these sessions' shells (Ids or Names; see 'job session')."
    ) {
        $0.session = $1
        return true
    }
    static let asJobOption = OptionSpec<Self>(flag: "as-job", help: "Return the parent job at once instead of waiting.") {
        $0.asJob = true
    }
    static let nameOption = OptionSpec<Self>("name", help: "The parent job's name (default Job<Id>).") { $0.name = $1; return true }
    static let throttleOption = OptionSpec<Self>("throttle", help: "At most this many computers at once.") {
        guard let n = Int($1) else { return false }
        $0.throttle = n
        return true
    }
    static let sshConfigOption = OptionSpec<Self>(
        "ssh-config", value: "FILE",
        help: "An ssh client configuration file (ssh -F); default $JOB_SSH_CONFIG, else your ~/.ssh/config."
    ) {
        $0.sshConfig = $1
        return true
    }
    static let hideComputerNameOption = OptionSpec<Self>(flag: "hide-computer-name", help: "No 'HOST: ' prefixes.") {
        $0.hideComputerName = true
    }
    static let detachedOption = OptionSpec<Self>(
        flag: "detached",
        help: "Run each command on its computer detached from the connection: it goes on if the connection, the daemon or this machine goes away, and the job follows it (Disconnected meanwhile)."
    ) {
        $0.detached = true
    }
    static let lineOption = OptionSpec<Self>.line(help: "A command line for the remote user's shell.") { $0.command.line = $1 }
    static let options = [
        computerOption, sessionOption, asJobOption, nameOption, throttleOption, sshConfigOption, hideComputerNameOption,
        detachedOption, lineOption,
    ] + SchedulingInput.options()
    static let program: (@Sendable (inout Self, [String]) -> Void)? = { $0.command.program = $1 }

    var computers: [String] { Self.list(computer) }
    var sessions: [String] { Self.list(session) }

    static func list(_ words: String) -> [String] { words.split(separator: ",").map { String($0).trimmed }.filter { !$0.isEmpty } }

    func validate() throws(UsageError) {
        try command.validate()
        try scheduling.validate()
        if !computer.isEmpty && !session.isEmpty { throw UsageError("give --computer or --session, not both") }
        if computer.isEmpty && session.isEmpty { throw UsageError("name the computers (--computer HOST,…) or the sessions (--session S,…)") }
        if computers.isEmpty && sessions.isEmpty { throw UsageError("--\(session.isEmpty ? "computer" : "session") needs at least one name") }
        if throttle < 1 { throw UsageError("--throttle takes 1 or more, not \(throttle)") }
        if detached && !session.isEmpty {
            throw UsageError("--detached runs commands on computers (--computer), not in sessions")
        }
        if let file = sshConfigFile, access(file, R_OK) != 0 {
            throw UsageError("cannot read the ssh config file \(file); check --ssh-config or JOB_SSH_CONFIG")
        }
    }

    /// The configuration file as an absolute path: the daemon's ssh does not run here.
    var sshConfigFile: String? {
        let given = sshConfig ?? getenv("JOB_SSH_CONFIG").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 }
        guard let given else { return nil }
        return given.hasPrefix("/") ? given : currentDirectory() + "/" + given
    }

    /// Runs the invoke: with `asJob` prints the parent; else follows it to its end, writing
    /// its output, and removes it. Returns the exit status.
    func run(_ options: CommonOptions) throws -> Int32 {
        var start = try startParameters(command: command.parameter, name: name, cwd: nil, env: [])
        scheduling.apply(to: &start)
        var started: JobInfo?
        let request = Request(
            .invoke(
                InvokeParameters(
                    computers: computers, start: start, throttle: throttle, sshConfig: sshConfigFile,
                    sessions: sessions.isEmpty ? nil : sessions, detached: detached)))
        let (_, status) = try perform(request, with: options) { frame in
            if case .job(let job) = frame { started = job }
        }
        guard status == ExitStatus.ok, let parent = started else { return status }
        if asJob {
            try show([parent], options)
            return ExitStatus.ok
        }
        // Without --as-job the job is this command's own: interrupted, it goes with it.
        let printer = OutputPrinter(format: .raw, properties: nil, prefix: parent.childJobs.count > 1 && !hideComputerName ? .location : nil, live: true)
        let receive = ReceiveParameters(selectors: [.id(parent.id)], autoRemove: true)
        return try followOwnJob(parent, printer: printer, receive: receive, options) { complainOfFailure(at: $0.location, $0.reason) }
    }
}
