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

    @Option(name: GetInput.stateOption.names, help: GetInput.stateOption.argumentHelp)
    var state: String?

    @Flag(name: GetInput.includeChildrenOption.names, help: GetInput.includeChildrenOption.argumentHelp)
    var includeChildren = false

    @Option(name: GetInput.childStateOption.names, help: GetInput.childStateOption.argumentHelp)
    var childState: String?

    @Option(name: GetInput.hasMoreDataOption.names, help: GetInput.hasMoreDataOption.argumentHelp)
    var hasMoreData: Bool?

    @Option(name: GetInput.newestOption.names, help: GetInput.newestOption.argumentHelp)
    var newest: Int?

    @Option(name: GetInput.beforeOption.names, help: GetInput.beforeOption.argumentHelp)
    var before: String?

    @Option(name: GetInput.afterOption.names, help: GetInput.afterOption.argumentHelp)
    var after: String?

    var input: GetInput {
        GetInput(
            jobs: jobs, state: state, includeChildren: includeChildren, childState: childState, hasMoreData: hasMoreData,
            newest: newest, before: before, after: after)
    }
}

/// What `job get` takes, from ArgumentParser or the fast path alike.
struct GetInput: TabledInput {
    var jobs: [String] = []
    var state: String?
    var includeChildren = false
    var childState: String?
    var hasMoreData: Bool?
    var newest: Int?
    var before: String?
    var after: String?

    static let stateOption = OptionSpec<Self>("state", help: "Only jobs in this state.") { $0.state = $1; return true }
    static let includeChildrenOption = OptionSpec<Self>(flag: "include-children", help: "List child jobs too.") {
        $0.includeChildren = true
    }
    static let childStateOption = OptionSpec<Self>("child-state", help: "List the child jobs in this state too.") {
        $0.childState = $1
        return true
    }
    static let hasMoreDataOption = OptionSpec<Self>(
        "has-more-data", value: "true|false", help: "Only jobs whose HasMoreData is this."
    ) {
        guard let value = Bool($1) else { return false }
        $0.hasMoreData = value
        return true
    }
    static let newestOption = OptionSpec<Self>("newest", help: "The N jobs that ended last.") {
        guard let n = Int($1) else { return false }
        $0.newest = n
        return true
    }
    static let beforeOption = OptionSpec<Self>(
        "before", value: "TIME", help: "Only jobs that ended before this time (ISO 8601)."
    ) {
        $0.before = $1
        return true
    }
    static let afterOption = OptionSpec<Self>("after", value: "TIME", help: "Only jobs that ended after this time (ISO 8601).") {
        $0.after = $1
        return true
    }
    static let options = [
        stateOption, includeChildrenOption, childStateOption, hasMoreDataOption, newestOption, beforeOption, afterOption,
    ]
    static let word: (@Sendable (inout Self, String) -> Void)? = { $0.jobs.append($1) }

    func validate() throws(UsageError) {
        _ = try query()
    }

    /// The query, its states and times read.
    func query() throws(UsageError) -> JobQuery {
        if let newest, newest < 0 { throw UsageError("--newest takes 0 or more, not \(newest)") }
        return JobQuery(
            selectors: selectors(jobs), state: try state.map(parseState), includeChildren: includeChildren,
            childState: try childState.map(parseState), hasMoreData: hasMoreData, before: try before.map(parseTime),
            after: try after.map(parseTime), newest: newest)
    }

    /// Lists the jobs; returns the exit status.
    func run(_ options: CommonOptions) throws -> Int32 {
        let query = try query()
        let writer = try JobListWriter(options)
        let (_, status) = try perform(Request(.get(query)), with: options) { frame in
            if case .jobs(let jobs) = frame { try writer.add(jobs) }
        }
        try writer.finish()
        return status
    }
}
