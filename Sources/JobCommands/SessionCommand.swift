import ArgumentParser
import FoundationEssentials
import JobModel
import JobProtocol

#if canImport(Glibc)
import Glibc
#endif

struct SessionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "session",
        abstract: "Open, show or remove sessions: long-lived shells for several related commands.",
        discussion: """
            A session is a shell (/bin/sh, or --shell) that keeps its state between commands: run them \
            in it with 'job invoke --session S'. Each command is a child job with its own output and \
            exit status; a session runs one at a time, in order. Stopping a command leaves the session \
            as it was; a command that ends the shell (exit) makes it Broken. Sessions outlive the \
            daemon, as jobs do.
            """,
        subcommands: [New.self, Get.self, Remove.self]
    )

    struct New: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Open a session per computer and print them.")
        @OptionGroup var options: GlobalOptions

        @Option(help: ArgumentHelp("The computers, one session each (default localhost).", valueName: "HOST[,HOST…]"))
        var computer = "localhost"

        @Option(help: ArgumentHelp("The session's name (default Session<Id>).", valueName: "NAME"))
        var name: String?

        @Option(help: ArgumentHelp("The shell it runs: a POSIX shell (default /bin/sh).", valueName: "PATH"))
        var shell: String?

        @Option(name: InvokeInput.sshConfigOption.names, help: InvokeInput.sshConfigOption.argumentHelp)
        var sshConfig: String?

        var computers: [String] { InvokeInput.list(computer) }

        /// As `invoke` takes it.
        var ssh: InvokeInput { InvokeInput(computer: computer, sshConfig: sshConfig) }

        func validate() throws {
            try options.validateJobFormat()
            if computers.isEmpty { throw ValidationError("--computer needs at least one host") }
            if let file = ssh.sshConfigFile, access(file, R_OK) != 0 {
                throw ValidationError("cannot read the ssh config file \(file); check --ssh-config or JOB_SSH_CONFIG")
            }
        }

        func run() throws {
            let parameters = SessionNewParameters(
                computers: computers, name: name, shell: shell, workingDirectory: currentDirectory(),
                environment: currentEnvironment(), sshConfig: ssh.sshConfigFile)
            try runSessions(.sessionNew(parameters), options)
        }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show sessions: Id, Name, ComputerName, State, Availability.")
        @OptionGroup var options: GlobalOptions

        @Argument(help: ArgumentHelp("Sessions by id or name (wildcards allowed); all when none is named.", valueName: "SESSION"))
        var names: [String] = []

        func validate() throws { try options.validateJobFormat() }

        func run() throws { try runSessions(.sessionGet(names), options) }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "End sessions: a command running in one is stopped first, then its shell ends.")
        @OptionGroup var options: GlobalOptions

        @Argument(help: ArgumentHelp("Sessions by id or name.", valueName: "SESSION"))
        var names: [String] = []

        @Option(parsing: .unconditional, help: ArgumentHelp("Seconds a running command has between SIGTERM and SIGKILL.", valueName: "SECONDS"))
        var grace: Double = Defaults.graceSeconds

        func validate() throws {
            if names.isEmpty { throw ValidationError("name at least one SESSION") }
            try validating { () throws(UsageError) in try checkSeconds(grace, of: "--grace") }
        }

        func run() throws {
            let (_, status) = try perform(Request(.sessionRemove(SessionRemoveParameters(names: names, graceSeconds: grace))), with: options) { _ in }
            if status != ExitStatus.ok { throw Exit(status: status) }
        }
    }
}

/// Sends a session request and shows the sessions it answers with.
private func runSessions(_ verb: Verb, _ options: GlobalOptions) throws {
    try RecordRender.run(verb, options, taking: { if case .sessions(let s) = $0 { s } else { nil } }, show: SessionRender.show)
}

/// Sessions as a table, a list or JSON (`id, name, computerName, state, availability, reason`).
enum SessionRender {
    static let columns = ["Id", "Name", "ComputerName", "State", "Availability"]
    static let properties = columns + ["Reason", "Shell"]

    static func show(_ sessions: [SessionInfo], _ options: CommonOptions) throws {
        let defaults = options.format == .json || options.format == .jsonl ? columns + ["Reason"] : columns
        try RecordRender.show(sessions, options, defaults: defaults, among: properties, text: text, json: json)
    }

    static func text(_ session: SessionInfo, _ property: String) -> String {
        switch property {
        case "Id": String(session.id)
        case "Name": session.name
        case "ComputerName": session.computerName
        case "State": session.state.rawValue
        case "Availability": session.availability.rawValue
        case "Reason": session.reason ?? ""
        default: session.shell
        }
    }

    static func json(_ session: SessionInfo, _ property: String) -> JSON {
        switch property {
        case "Id": .int(session.id)
        case "Reason": session.reason.map(JSON.string) ?? .null
        default: .string(text(session, property))
        }
    }
}

/// Records of one kind (queues, sessions) as a table, a list or JSON, with the properties
/// chosen (`--property`); JSON keys are the properties in lower camel case.
enum RecordRender {
    /// Sends a request and shows the records its frames carry (`taking`), also those that came
    /// before an error; the error's status is the command's.
    static func run<Item>(
        _ verb: Verb, _ options: GlobalOptions, taking: (Response) -> [Item]?, show: ([Item], CommonOptions) throws -> Void
    ) throws {
        var items: [Item] = []
        let (_, status) = try perform(Request(verb), with: options) { frame in items += taking(frame) ?? [] }
        if !items.isEmpty || status == ExitStatus.ok { try show(items, options.common) }
        if status != ExitStatus.ok { throw Exit(status: status) }
    }

    static func show<Item>(
        _ items: [Item], _ options: CommonOptions, defaults: [String], among properties: [String],
        text: (Item, String) -> String, json: (Item, String) -> JSON
    ) throws {
        let chosen = try JobRender.resolve(options.properties, default: defaults, among: properties)
        switch options.format {
        case .table, .raw:
            guard !items.isEmpty else { return }
            try writeOut(JobRender.table(columns: chosen, rows: items.map { item in chosen.map { text(item, $0) } }))
        case .list:
            try writeOut(JobRender.list(properties: chosen, items: items.map { item in chosen.map { text(item, $0) } }))
        case .json, .jsonl:
            let objects = items.map { item in JSON.object(chosen.map { (key($0), json(item, $0)) }) }
            if options.format == .jsonl {
                try writeOut(objects.map { $0.text(pretty: false) + "\n" }.joined())
            } else {
                try writeOut(JobRender.jsonText(.array(objects)))
            }
        }
    }

    /// `ComputerName` → `computerName`.
    static func key(_ property: String) -> String {
        property.prefix(1).lowercased() + property.dropFirst()
    }
}
