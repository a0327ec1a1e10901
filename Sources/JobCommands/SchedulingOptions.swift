import ArgumentParser
import FoundationEssentials
import JobModel
import JobProtocol

/// A verb's input that takes `--queue`, `--depends-on` and `--retry`.
protocol TakesScheduling: SendableMetatype {
    var scheduling: SchedulingInput { get set }
}

/// `--queue`, `--depends-on` and `--retry`, which `start`, `invoke` and `foreach` take alike.
struct SchedulingInput: Equatable {
    var queue: String?
    /// As given: ids, instance ids or names, comma-separated or repeated.
    var dependsOn: [String] = []
    var retry = 0

    static let queueHelp = "Put the job in queue Q (made on first use), which bounds how many of its jobs run at once."
    static let dependsOnHelp = "Start only once these jobs have all completed (fail without running otherwise); repeatable."
    static let retryHelp = "Run a child that fails again, up to N more times, after 1 s."

    /// Its options for a verb whose input holds it. (Closures through a protocol, not key
    /// paths: a key path costs the fast path its first use of the runtime's metadata.)
    static func options<Input: TakesScheduling>() -> [OptionSpec<Input>] {
        [
            OptionSpec<Input>("queue", value: "Q", help: queueHelp) { input, value in
                input.scheduling.queue = value
                return true
            },
            OptionSpec<Input>("depends-on", value: "JOB[,JOB…]", help: dependsOnHelp) { input, value in
                input.scheduling.dependsOn += dependencyWords(value)
                return true
            },
            OptionSpec<Input>("retry", value: "N", help: retryHelp) { input, value in
                guard let n = Int(value) else { return false }
                input.scheduling.retry = n
                return true
            },
        ]
    }

    static func dependencyWords(_ value: String) -> [String] {
        value.split(separator: ",").map { String($0).trimmed }.filter { !$0.isEmpty }
    }

    func validate() throws(UsageError) {
        if retry < 0 || retry > Defaults.maxRetries { throw UsageError("--retry takes 0 to \(Defaults.maxRetries), not \(retry)") }
        if let queue, queue.trimmed.isEmpty { throw UsageError("--queue needs a name") }
    }

    /// Into the request.
    func apply(to parameters: inout StartParameters) {
        parameters.queue = queue
        parameters.dependsOn = selectors(dependsOn)
        parameters.retry = retry
    }
}

/// The same options for ArgumentParser, declared with the table's names and help.
struct SchedulingOptions: ParsableArguments {
    @Option(name: .customLong("queue"), help: ArgumentHelp(SchedulingInput.queueHelp, valueName: "Q"))
    var queue: String?

    @Option(name: .customLong("depends-on"), help: ArgumentHelp(SchedulingInput.dependsOnHelp, valueName: "JOB[,JOB…]"))
    var dependsOn: [String] = []

    @Option(name: .customLong("retry"), help: ArgumentHelp(SchedulingInput.retryHelp, valueName: "N"))
    var retry = 0

    var input: SchedulingInput {
        SchedulingInput(queue: queue, dependsOn: dependsOn.flatMap(SchedulingInput.dependencyWords), retry: retry)
    }
}
