import ArgumentParser
import FoundationEssentials
import JobModel
import JobProtocol

struct QueueCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue",
        abstract: "Set, show or remove queues: how many of their jobs run at once.",
        discussion: """
            A job started with --queue Q is in queue Q (made on first use, with no limit); others are \
            in 'default'. Over its queue's limit a job waits, NotStarted; they start in id order as \
            slots free. Queues and limits outlive the daemon.
            """,
        subcommands: [Set.self, Get.self, Remove.self]
    )

    struct Set: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make a queue or change its limit, and print it.")
        @OptionGroup var options: GlobalOptions

        @Argument(help: ArgumentHelp("The queue.", valueName: "Q"))
        var name: String

        @Option(help: ArgumentHelp("At most this many of its jobs run at once; 'none' lifts the limit.", valueName: "N|none"))
        var limit: String

        func validate() throws {
            try options.validateJobFormat()
            _ = try parsedLimit()
        }

        func parsedLimit() throws -> Int? {
            if limit.lowercased() == "none" { return nil }
            guard let n = Int(limit), n >= 1 else { throw ValidationError("--limit takes a number from 1, or none, not '\(limit)'") }
            return n
        }

        func run() throws {
            try runQueues(.queueSet(QueueSetParameters(name: name, limit: try parsedLimit())), options)
        }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show queues: Name, Limit, Running, Waiting.")
        @OptionGroup var options: GlobalOptions

        @Argument(help: ArgumentHelp("Queues by name (wildcards allowed); all when none is named.", valueName: "Q"))
        var names: [String] = []

        func validate() throws { try options.validateJobFormat() }

        func run() throws { try runQueues(.queueGet(names), options) }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove queues that hold no unfinished job.")
        @OptionGroup var options: GlobalOptions

        @Argument(help: ArgumentHelp("The queues.", valueName: "Q"))
        var names: [String] = []

        func validate() throws {
            if names.isEmpty { throw ValidationError("name at least one queue") }
        }

        func run() throws {
            let (_, status) = try perform(Request(.queueRemove(names)), with: options) { _ in }
            if status != ExitStatus.ok { throw Exit(status: status) }
        }
    }
}

/// Sends a queue request and shows the queues it answers with.
private func runQueues(_ verb: Verb, _ options: GlobalOptions) throws {
    try RecordRender.run(verb, options, taking: { if case .queues(let q) = $0 { q } else { nil } }, show: QueueRender.show)
}

/// Queues as a table, a list or JSON (`name, limit, running, waiting`).
enum QueueRender {
    static let properties = ["Name", "Limit", "Running", "Waiting"]

    static func show(_ queues: [QueueInfo], _ options: CommonOptions) throws {
        try RecordRender.show(queues, options, defaults: properties, among: properties, text: text, json: json)
    }

    static func text(_ queue: QueueInfo, _ property: String) -> String {
        switch property {
        case "Name": queue.name
        case "Limit": queue.limit.map(String.init) ?? "none"
        case "Running": String(queue.running)
        default: String(queue.waiting)
        }
    }

    static func json(_ queue: QueueInfo, _ property: String) -> JSON {
        switch property {
        case "Name": .string(queue.name)
        case "Limit": queue.limit.map(JSON.int) ?? .null
        case "Running": .int(queue.running)
        default: .int(queue.waiting)
        }
    }
}
