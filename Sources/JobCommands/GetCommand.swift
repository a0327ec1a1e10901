import ArgumentParser
import FoundationEssentials
import JobModel
import JobProtocol

struct GetCommand: InputCommand {
    static let configuration = CommandConfiguration(
        commandName: "get",
        abstract: "List jobs and their state.",
        discussion: """
            Without JOB, the top-level jobs; a JOB is an id, an instance id or a name (with *, ? and \
            […], matching child jobs too).
            """
    )

    @OptionGroup var options: GlobalOptions

    @Argument(help: ArgumentHelp("Jobs by id, instance id or name.", valueName: "JOB"))
    var jobs: [String] = []

    @Option(help: "Only jobs in this state.")
    var state: String?

    @Flag(help: "List child jobs too.")
    var includeChildren = false

    @Option(help: "List the child jobs in this state too.")
    var childState: String?

    @Option(help: ArgumentHelp("Only jobs whose HasMoreData is this.", valueName: "true|false"))
    var hasMoreData: Bool?

    @Option(help: "The N jobs that ended last.")
    var newest: Int?

    @Option(help: ArgumentHelp("Only jobs that ended before this time (ISO 8601).", valueName: "TIME"))
    var before: String?

    @Option(help: ArgumentHelp("Only jobs that ended after this time (ISO 8601).", valueName: "TIME"))
    var after: String?

    var input: GetInput {
        GetInput(
            jobs: jobs, state: state, includeChildren: includeChildren, childState: childState, hasMoreData: hasMoreData,
            newest: newest, before: before, after: after)
    }
}

/// What `job get` takes, from ArgumentParser or the fast path alike.
struct GetInput: VerbInput {
    var jobs: [String] = []
    var state: String?
    var includeChildren = false
    var childState: String?
    var hasMoreData: Bool?
    var newest: Int?
    var before: String?
    var after: String?

    func validate() throws(UsageError) {
        if let newest, newest < 0 { throw UsageError("--newest takes 0 or more, not \(newest)") }
    }

    /// Lists the jobs; returns the exit status.
    func run(_ options: CommonOptions) throws -> Int32 {
        let query = JobQuery(
            selectors: selectors(jobs), state: try state.map(parseState), includeChildren: includeChildren,
            childState: try childState.map(parseState), hasMoreData: hasMoreData, before: try before.map(parseTime),
            after: try after.map(parseTime), newest: newest)
        var found: [JobInfo] = []
        let (_, status) = try perform(Request(.get(query)), with: options) { frame in
            if case .jobs(let jobs) = frame { found = jobs }
        }
        if !found.isEmpty || options.format == .json { try show(found, options) }
        return status
    }
}
