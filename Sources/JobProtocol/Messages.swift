import FoundationEssentials
import JobModel

/// The version of the request/response protocol between `job` and `jobd` (`v` in every
/// request). A daemon answers a request of another version with `unsupportedVersion` and
/// nothing else; changes within a version are additive only (new optional fields, new verbs,
/// new frame types, new error codes), so a client and a daemon of one version always agree.
public enum ProtocolVersion {
    public static let current = 1
}

/// The release of `job` and `jobd`, which `job --version` and `job daemon status` print.
public enum Release {
    public static let version = "0.2.0"
}

/// One request from a client. Each connection carries one request and its answers; on a
/// `receive` or `receiveWait` connection the client then sends `received` requests, one per
/// stretch of output it has written, which are not answered.
public struct Request: Sendable, Equatable {
    public var version: Int
    public var verb: Verb

    public init(_ verb: Verb, version: Int = ProtocolVersion.current) {
        self.version = version
        self.verb = verb
    }
}

/// What a request asks for, with its parameters. On the wire: `"verb"`, and `"params"`.
public enum Verb: Sendable, Equatable, CaseIterable {
    /// `job start`.
    case start(StartParameters)
    /// `job invoke`: one child per computer.
    case invoke(InvokeParameters)
    /// `job get`.
    case get(JobQuery)
    /// `job receive` without `--wait`: answered with slices the client reads itself.
    case receive(ReceiveParameters)
    /// `job receive --wait`: answered with output as it arrives.
    case receiveWait(ReceiveParameters)
    /// `job wait`.
    case wait(WaitParameters)
    /// `job stop`.
    case stop(StopParameters)
    /// `job remove`.
    case remove(RemoveParameters)
    /// A reader has written this output: its jobs' receive cursors move up to it. Sent on a
    /// receive's own connection (unanswered), or alone (answered with `done`).
    case received([Receipt])
    /// `job suspend`: answered with the jobs.
    case suspend([JobSelector])
    /// `job resume`: answered with the jobs.
    case resume([JobSelector])
    /// `job restart`: answered with the new jobs.
    case restart([JobSelector])
    /// `job foreach`: a parent with a child per input; answered with the parent.
    case foreach(ForeachParameters)
    /// `job queue get`: the queues named (all when none), answered with `queues`.
    case queueGet([String])
    /// `job queue set`: answered with the queue.
    case queueSet(QueueSetParameters)
    /// `job queue remove`.
    case queueRemove([String])
    /// `job session new`: answered with the sessions opened.
    case sessionNew(SessionNewParameters)
    /// `job session get`: the sessions named (all when none), answered with `sessions`.
    case sessionGet([String])
    /// `job session remove`: answered with the sessions, closed.
    case sessionRemove(SessionRemoveParameters)
    /// `job daemon status`.
    case status
    /// `job daemon stop`: the daemon exits; jobs keep running.
    case shutdown

    /// One request of each verb, with its parameters' defaults: what the golden frames and
    /// the documentation go through.
    public static let allCases: [Verb] = [
        .start(StartParameters(command: .shell("true"), workingDirectory: "/", environment: [:])),
        .invoke(InvokeParameters(computers: ["localhost"], start: StartParameters(command: .shell("true"), workingDirectory: "/", environment: [:]))),
        .get(JobQuery()), .receive(ReceiveParameters(selectors: [])), .receiveWait(ReceiveParameters(selectors: [])),
        .wait(WaitParameters(selectors: [])), .stop(StopParameters(selectors: [])), .remove(RemoveParameters()),
        .received([]), .suspend([]), .resume([]), .restart([]),
        .foreach(ForeachParameters(start: StartParameters(command: .shell("true"), workingDirectory: "/", environment: [:]))),
        .queueGet([]), .queueSet(QueueSetParameters(name: "default")), .queueRemove([]),
        .sessionNew(SessionNewParameters(workingDirectory: "/", environment: [:])), .sessionGet([]),
        .sessionRemove(SessionRemoveParameters(names: [])), .status, .shutdown,
    ]

    /// The verb's name on the wire.
    public var name: String {
        switch self {
        case .start: "start"
        case .invoke: "invoke"
        case .get: "get"
        case .receive: "receive"
        case .receiveWait: "receiveWait"
        case .wait: "wait"
        case .stop: "stop"
        case .remove: "remove"
        case .received: "received"
        case .suspend: "suspend"
        case .resume: "resume"
        case .restart: "restart"
        case .foreach: "foreach"
        case .queueGet: "queueGet"
        case .queueSet: "queueSet"
        case .queueRemove: "queueRemove"
        case .sessionNew: "sessionNew"
        case .sessionGet: "sessionGet"
        case .sessionRemove: "sessionRemove"
        case .status: "status"
        case .shutdown: "shutdown"
        }
    }

    /// Whether the client sends `received` frames on the connection after this request.
    public var takesReceipts: Bool {
        switch self {
        case .receive, .receiveWait: true
        default: false
        }
    }

    /// Whether the answer streams (output as it arrives, progress as jobs end) rather than
    /// coming all at once at the end.
    public var streams: Bool {
        switch self {
        case .receiveWait: true
        case .wait(let parameters): parameters.progress
        default: false
        }
    }
}

/// What a job runs: a line for `/bin/sh -c`, or a program and its arguments.
public enum CommandParameter: Sendable, Equatable {
    case shell(String)
    case argv([String])
}

public struct StartParameters: Sendable, Equatable {
    public var command: CommandParameter
    public var name: String?
    public var workingDirectory: String
    public var environment: [String: String]
    /// Its standard error into its standard output (`2>&1`).
    public var mergeError: Bool
    /// Its standard input is the client's (`job start --stdin`): the daemon opens the client's
    /// fd 0 (through /proc, the client being the peer of the connection) while it answers.
    public var stdin: Bool
    /// Its queue (`--queue`); the default queue when nil.
    public var queue: String?
    /// The jobs it waits for (`--depends-on`).
    public var dependsOn: [JobSelector]
    /// How many more times a failed child runs (`--retry`).
    public var retry: Int

    public init(
        command: CommandParameter, name: String? = nil, workingDirectory: String, environment: [String: String],
        mergeError: Bool = false, stdin: Bool = false, queue: String? = nil, dependsOn: [JobSelector] = [], retry: Int = 0
    ) {
        self.command = command
        self.name = name
        self.workingDirectory = workingDirectory
        self.environment = environment
        self.mergeError = mergeError
        self.stdin = stdin
        self.queue = queue
        self.dependsOn = dependsOn
        self.retry = retry
    }
}

public struct ForeachParameters: Sendable, Equatable {
    /// The command (with its replacement strings), name, directory, environment, queue,
    /// dependencies and retries, as `start` takes them.
    public var start: StartParameters
    /// At most this many children run at once; the daemon's online CPUs when nil.
    public var throttle: Int?
    /// The file the inputs are read from (absolute); the client's standard input when nil.
    public var inputFile: String?
    /// Inputs are separated by NUL, not by newlines (`-0`).
    public var nul: Bool

    public init(start: StartParameters, throttle: Int? = nil, inputFile: String? = nil, nul: Bool = false) {
        self.start = start
        self.throttle = throttle
        self.inputFile = inputFile
        self.nul = nul
    }
}

public struct QueueSetParameters: Sendable, Equatable {
    public var name: String
    /// Nil lifts the limit.
    public var limit: Int?

    public init(name: String, limit: Int? = nil) {
        self.name = name
        self.limit = limit
    }
}

public struct InvokeParameters: Sendable, Equatable {
    /// The default of `--throttle`: how many computers are worked on at once.
    public static let defaultThrottle = Defaults.throttle

    public var computers: [String]
    /// The command, its name, working directory and environment, as `start` takes them.
    public var start: StartParameters
    public var throttle: Int
    /// `ssh -F FILE` for the remote computers (absolute); the user's own configuration when nil.
    public var sshConfig: String?
    /// `--session`: the sessions to run the command in (Ids or Names), instead of computers.
    public var sessions: [String]?
    /// `--detached`: each command runs detached from its connection on its computer.
    public var detached: Bool

    public init(
        computers: [String], start: StartParameters, throttle: Int = defaultThrottle, sshConfig: String? = nil,
        sessions: [String]? = nil, detached: Bool = false
    ) {
        self.computers = computers
        self.start = start
        self.throttle = throttle
        self.sshConfig = sshConfig
        self.sessions = sessions
        self.detached = detached
    }
}

public struct SessionNewParameters: Sendable, Equatable {
    /// One session per computer.
    public var computers: [String]
    public var name: String?
    /// The session's shell (`--shell`); `/bin/sh` when nil.
    public var shell: String?
    /// Where its shell starts, and with what environment: the client's.
    public var workingDirectory: String
    public var environment: [String: String]
    /// `ssh -F FILE` for other computers (absolute); the user's own configuration when nil.
    public var sshConfig: String?

    public init(
        computers: [String] = ["localhost"], name: String? = nil, shell: String? = nil, workingDirectory: String,
        environment: [String: String], sshConfig: String? = nil
    ) {
        self.computers = computers
        self.name = name
        self.shell = shell
        self.workingDirectory = workingDirectory
        self.environment = environment
        self.sshConfig = sshConfig
    }
}

public struct SessionRemoveParameters: Sendable, Equatable {
    public var names: [String]
    /// How long a command running in one has to end, once asked, before it is killed.
    public var graceSeconds: Double

    public init(names: [String], graceSeconds: Double = StopParameters.defaultGraceSeconds) {
        self.names = names
        self.graceSeconds = graceSeconds
    }
}

public struct ReceiveParameters: Sendable, Equatable {
    public var selectors: [JobSelector]
    public var keep: Bool
    public var recurse: Bool
    public var locations: [String]?
    public var autoRemove: Bool
    /// `receiveWait`: each child's output whole once it has finished (`slices`, tagged with
    /// its input), not as it comes (`foreach` without `--as-job`).
    public var whole: Bool
    /// With `whole`: in ChildJobs order, not in the order they finish (`--keep-order`).
    public var ordered: Bool

    public init(
        selectors: [JobSelector], keep: Bool = false, recurse: Bool = true, locations: [String]? = nil, autoRemove: Bool = false,
        whole: Bool = false, ordered: Bool = false
    ) {
        self.selectors = selectors
        self.keep = keep
        self.recurse = recurse
        self.locations = locations
        self.autoRemove = autoRemove
        self.whole = whole
        self.ordered = ordered
    }
}

public struct WaitParameters: Sendable, Equatable {
    public var selectors: [JobSelector]
    public var any: Bool
    /// Nil waits for ever.
    public var timeoutSeconds: Double?
    public var force: Bool
    /// Send `progress` frames as jobs finish.
    public var progress: Bool

    public init(selectors: [JobSelector], any: Bool = false, timeoutSeconds: Double? = nil, force: Bool = false, progress: Bool = false) {
        self.selectors = selectors
        self.any = any
        self.timeoutSeconds = timeoutSeconds
        self.force = force
        self.progress = progress
    }
}

public struct StopParameters: Sendable, Equatable {
    /// The default of `--grace`.
    public static let defaultGraceSeconds = Defaults.graceSeconds

    public var selectors: [JobSelector]
    public var graceSeconds: Double

    public init(selectors: [JobSelector], graceSeconds: Double = defaultGraceSeconds) {
        self.selectors = selectors
        self.graceSeconds = graceSeconds
    }
}

public struct RemoveParameters: Sendable, Equatable {
    public var selectors: [JobSelector]
    public var force: Bool
    public var state: JobState?
    public var command: String?

    public init(selectors: [JobSelector] = [], force: Bool = false, state: JobState? = nil, command: String? = nil) {
        self.selectors = selectors
        self.force = force
        self.state = state
        self.command = command
    }
}

/// What a daemon says of itself: `job daemon status`.
public struct DaemonStatus: Sendable, Equatable {
    public var pid: Int
    public var home: String
    public var socket: String
    public var version: String
    public var uptimeSeconds: Double
    public var jobs: Int

    public init(pid: Int, home: String, socket: String, version: String, uptimeSeconds: Double, jobs: Int) {
        self.pid = pid
        self.home = home
        self.socket = socket
        self.version = version
        self.uptimeSeconds = uptimeSeconds
        self.jobs = jobs
    }
}

/// One frame of an answer. An answer is zero or more data frames, then exactly one `done`.
/// On the wire each is an object whose `"type"` says which.
public enum Response: Sendable, Equatable {
    /// The job `start` or `invoke` made.
    case job(JobInfo)
    case jobs([JobInfo])
    /// Output to read from the files named (non-streaming receive).
    case slices([OutputSlice])
    /// Output as it arrives (`receiveWait`).
    case output(OutputChunk)
    case failure(JobFailure)
    /// How far a `wait` is: jobs done of all, and the names of those that failed.
    case progress(finished: Int, total: Int, failed: [String])
    /// The queues `queueGet` and `queueSet` answer with.
    case queues([QueueInfo])
    /// The sessions `sessionNew`, `sessionGet` and `sessionRemove` answer with.
    case sessions([SessionInfo])
    case status(DaemonStatus)
    /// The end of the answer: the words that matched no job (the rest was acted on), whether a
    /// wait timed out, or the error that stopped the request.
    case done(Outcome)
    /// A frame of a type this side does not know (a newer daemon's): skipped.
    case unknown(type: String)

    /// The frame types of this version.
    public static let types = ["job", "jobs", "slices", "output", "failure", "progress", "queues", "sessions", "status", "done"]

    /// The frame's `type` on the wire.
    public var type: String {
        switch self {
        case .job: "job"
        case .jobs: "jobs"
        case .slices: "slices"
        case .output: "output"
        case .failure: "failure"
        case .progress: "progress"
        case .queues: "queues"
        case .sessions: "sessions"
        case .status: "status"
        case .done: "done"
        case .unknown(let type): type
        }
    }
}

public struct Outcome: Sendable, Equatable {
    public var notFound: [JobError]
    public var timedOut: Bool
    public var error: JobError?

    public init(notFound: [JobError] = [], timedOut: Bool = false, error: JobError? = nil) {
        self.notFound = notFound
        self.timedOut = timedOut
        self.error = error
    }

    public static let ok = Outcome()
    public static func failed(_ error: JobError) -> Outcome { Outcome(error: error) }
}
