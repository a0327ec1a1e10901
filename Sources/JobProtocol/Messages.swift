import FoundationEssentials
import JobModel

/// The version of the request/response protocol between `job` and `jobd`. A daemon answers a
/// request of another major version with `versionMismatch` and nothing else; changes within a
/// version are additive only (new optional fields, new verbs).
public enum ProtocolVersion {
    public static let current = 1
}

/// One request from a client. Each connection carries one request and its answers.
public struct Request: Codable, Sendable, Equatable {
    public var version: Int
    public var verb: Verb

    public init(_ verb: Verb, version: Int = ProtocolVersion.current) {
        self.version = version
        self.verb = verb
    }
}

public enum Verb: Codable, Sendable, Equatable {
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
    /// `job daemon status`.
    case status
    /// `job daemon stop`: the daemon exits; jobs keep running.
    case shutdown
}

public struct StartParameters: Codable, Sendable, Equatable {
    /// `/bin/sh -c` this line, or nil to run `argv`.
    public var shell: String?
    public var argv: [String]?
    public var name: String?
    public var workingDirectory: String
    public var environment: [String: String]

    public init(shell: String?, argv: [String]?, name: String?, workingDirectory: String, environment: [String: String]) {
        self.shell = shell
        self.argv = argv
        self.name = name
        self.workingDirectory = workingDirectory
        self.environment = environment
    }
}

public struct InvokeParameters: Codable, Sendable, Equatable {
    public var computers: [String]
    public var command: StartParameters
    public var throttle: Int
    /// `ssh -F FILE` for the remote computers (absolute); the user's own configuration when nil.
    public var sshConfig: String?

    public init(computers: [String], command: StartParameters, throttle: Int = 32, sshConfig: String? = nil) {
        self.computers = computers
        self.command = command
        self.throttle = throttle
        self.sshConfig = sshConfig
    }
}

public struct ReceiveParameters: Codable, Sendable, Equatable {
    public var selectors: [JobSelector]
    public var keep: Bool
    public var recurse: Bool
    public var locations: [String]?
    public var autoRemove: Bool

    public init(selectors: [JobSelector], keep: Bool = false, recurse: Bool = true, locations: [String]? = nil, autoRemove: Bool = false) {
        self.selectors = selectors
        self.keep = keep
        self.recurse = recurse
        self.locations = locations
        self.autoRemove = autoRemove
    }
}

public struct WaitParameters: Codable, Sendable, Equatable {
    public var selectors: [JobSelector]
    public var any: Bool
    /// Seconds; nil waits for ever.
    public var timeout: Double?
    public var force: Bool
    /// Send `progress` frames as jobs finish.
    public var progress: Bool

    public init(selectors: [JobSelector], any: Bool = false, timeout: Double? = nil, force: Bool = false, progress: Bool = false) {
        self.selectors = selectors
        self.any = any
        self.timeout = timeout
        self.force = force
        self.progress = progress
    }
}

public struct StopParameters: Codable, Sendable, Equatable {
    public var selectors: [JobSelector]
    public var grace: Double

    public init(selectors: [JobSelector], grace: Double = 5) {
        self.selectors = selectors
        self.grace = grace
    }
}

public struct RemoveParameters: Codable, Sendable, Equatable {
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
public struct DaemonStatus: Codable, Sendable, Equatable {
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
public enum Response: Codable, Sendable, Equatable {
    case jobs([JobInfo])
    /// Output to read from the files named (non-streaming receive).
    case slices([OutputSlice])
    case chunk(OutputChunk)
    case failure(JobFailure)
    case progress(finished: Int, total: Int)
    case status(DaemonStatus)
    /// The end of the answer: the words that matched no job (the rest was acted on), whether a
    /// wait timed out, or the error that stopped the request.
    case done(Outcome)
}

public struct Outcome: Codable, Sendable, Equatable {
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

extension JobError: Codable {
    private enum CodingKeys: String, CodingKey { case code, message }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(try c.decode(Code.self, forKey: .code), try c.decode(String.self, forKey: .message))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(code, forKey: .code)
        try c.encode(message, forKey: .message)
    }
}
