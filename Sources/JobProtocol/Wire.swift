import FoundationEssentials
import JobModel

/// The wire format, written once: every request and answer frame to and from JSON, for the
/// CLI (all of its commands), the daemon and any other client. `Documentation/Protocol.md`
/// describes it; the golden frames under `Tests/JobProtocolTests/Golden/` pin it.
///
/// A request is `{"v":1,"verb":"start","params":{…}}`; `v` and `verb` are read first, so that
/// a request of another version is told `unsupportedVersion` and an unknown verb
/// `unknownVerb`, whatever its parameters. An answer frame is an object with a `type`.
/// Absent optional fields take their defaults and unknown fields are ignored: a field added
/// later does not break an older reader.
public enum Wire {
    // MARK: Requests

    public static func encode(_ request: Request) -> [UInt8] { json(request).bytes() }

    public static func json(_ request: Request) -> JSON {
        .object([("v", .int(request.version)), ("verb", .string(request.verb.name)), ("params", .object(params(request.verb)))])
    }

    /// Reads a request, checking its version and verb before anything else.
    public static func decodeRequest(_ body: [UInt8]) throws(JobError) -> Request {
        guard let json = JSONParser.parse(body), let fields = json.fields else {
            throw JobError(.invalidArgument, "malformed request: not a JSON object")
        }
        let request = Fields(fields, path: "request")
        let version = try request.int("v")
        guard version == ProtocolVersion.current else {
            throw JobError(
                .unsupportedVersion,
                "protocol version \(version) is not \(ProtocolVersion.current): use a job and a jobd of the same release")
        }
        let name = try request.string("verb")
        let params = try request.object("params", orEmpty: true)
        return Request(try verb(name, params), version: version)
    }

    private static func params(_ verb: Verb) -> [(String, JSON)] {
        switch verb {
        case .start(let p): start(p)
        case .invoke(let p):
            [("computers", .array(p.computers.map(JSON.string)))] + start(p.start)
                + [
                    ("throttle", .int(p.throttle)), ("sshConfig", optional(p.sshConfig, JSON.string)),
                    ("sessions", optional(p.sessions) { .array($0.map(JSON.string)) }),
                ] + (p.detached ? [("detached", .bool(true))] : [])
        case .get(let q):
            [
                ("selectors", selectors(q.selectors)), ("state", optional(q.state) { .string($0.rawValue) }),
                ("includeChildren", .bool(q.includeChildren)), ("childState", optional(q.childState) { .string($0.rawValue) }),
                ("hasMoreData", optional(q.hasMoreData, JSON.bool)), ("before", time(q.before)), ("after", time(q.after)),
                ("newest", optional(q.newest, JSON.int)),
            ]
        case .receive(let p), .receiveWait(let p):
            [
                ("selectors", selectors(p.selectors)), ("keep", .bool(p.keep)), ("recurse", .bool(p.recurse)),
                ("locations", optional(p.locations) { .array($0.map(JSON.string)) }), ("autoRemove", .bool(p.autoRemove)),
                ("whole", .bool(p.whole)), ("ordered", .bool(p.ordered)),
            ]
        case .wait(let p):
            [
                ("selectors", selectors(p.selectors)), ("any", .bool(p.any)),
                ("timeoutSeconds", optional(p.timeoutSeconds, JSON.double)), ("force", .bool(p.force)),
                ("progress", .bool(p.progress)),
            ]
        case .stop(let p): [("selectors", selectors(p.selectors)), ("graceSeconds", .double(p.graceSeconds))]
        case .remove(let p):
            [
                ("selectors", selectors(p.selectors)), ("force", .bool(p.force)),
                ("state", optional(p.state) { .string($0.rawValue) }), ("command", optional(p.command, JSON.string)),
            ]
        case .received(let receipts):
            [("receipts", .array(receipts.map { .object([("jobId", .int($0.jobId)), ("upTo", .int($0.upTo))]) }))]
        case .suspend(let list), .resume(let list), .restart(let list): [("selectors", selectors(list))]
        case .foreach(let p):
            start(p.start)
                + [("throttle", optional(p.throttle, JSON.int)), ("inputFile", optional(p.inputFile, JSON.string)), ("nul", .bool(p.nul))]
        case .queueGet(let names), .queueRemove(let names): [("names", .array(names.map(JSON.string)))]
        case .queueSet(let p): [("name", .string(p.name)), ("limit", optional(p.limit, JSON.int))]
        case .sessionNew(let p):
            [
                ("computers", .array(p.computers.map(JSON.string))), ("name", optional(p.name, JSON.string)),
                ("shell", optional(p.shell, JSON.string)), ("workingDirectory", .string(p.workingDirectory)),
                ("environment", environment(p.environment)), ("sshConfig", optional(p.sshConfig, JSON.string)),
            ]
        case .sessionGet(let names): [("names", .array(names.map(JSON.string)))]
        case .sessionRemove(let p): [("names", .array(p.names.map(JSON.string))), ("graceSeconds", .double(p.graceSeconds))]
        case .status, .shutdown: []
        }
    }

    private static func verb(_ name: String, _ p: Fields) throws(JobError) -> Verb {
        switch name {
        case "start": return .start(try start(p))
        case "invoke":
            return .invoke(
                InvokeParameters(
                    computers: try p.strings("computers"), start: try start(p),
                    throttle: try p.optionalInt("throttle") ?? InvokeParameters.defaultThrottle,
                    sshConfig: try p.optionalString("sshConfig"), sessions: try p.optionalStrings("sessions"),
                    detached: try p.bool("detached", default: false)))
        case "get":
            return .get(
                JobQuery(
                    selectors: try selectors(p), state: try p.optionalState("state"),
                    includeChildren: try p.bool("includeChildren", default: false), childState: try p.optionalState("childState"),
                    hasMoreData: try p.optionalBool("hasMoreData"), before: try p.optionalTime("before"),
                    after: try p.optionalTime("after"), newest: try p.optionalInt("newest")))
        case "receive", "receiveWait":
            let parameters = ReceiveParameters(
                selectors: try selectors(p), keep: try p.bool("keep", default: false),
                recurse: try p.bool("recurse", default: true), locations: try p.optionalStrings("locations"),
                autoRemove: try p.bool("autoRemove", default: false), whole: try p.bool("whole", default: false),
                ordered: try p.bool("ordered", default: false))
            return name == "receive" ? .receive(parameters) : .receiveWait(parameters)
        case "wait":
            return .wait(
                WaitParameters(
                    selectors: try selectors(p), any: try p.bool("any", default: false),
                    timeoutSeconds: try p.optionalSeconds("timeoutSeconds"), force: try p.bool("force", default: false),
                    progress: try p.bool("progress", default: false)))
        case "stop":
            return .stop(
                StopParameters(
                    selectors: try selectors(p),
                    graceSeconds: try p.optionalSeconds("graceSeconds") ?? StopParameters.defaultGraceSeconds))
        case "remove":
            return .remove(
                RemoveParameters(
                    selectors: try selectors(p), force: try p.bool("force", default: false),
                    state: try p.optionalState("state"), command: try p.optionalString("command")))
        case "received":
            return .received(try p.array("receipts", orEmpty: true).enumerated().map { (i, item) throws(JobError) in
                let r = try p.element(item, "receipts[\(i)]")
                let upTo = try r.int("upTo")
                guard upTo >= 0 else { throw r.invalid("upTo is a record count, 0 or more") }
                return Receipt(jobId: try r.int("jobId"), upTo: upTo)
            })
        case "suspend": return .suspend(try selectors(p))
        case "resume": return .resume(try selectors(p))
        case "restart": return .restart(try selectors(p))
        case "foreach":
            return .foreach(
                ForeachParameters(
                    start: try start(p), throttle: try p.optionalInt("throttle"), inputFile: try p.optionalString("inputFile"),
                    nul: try p.bool("nul", default: false)))
        case "queueGet": return .queueGet(try p.optionalStrings("names") ?? [])
        case "queueRemove": return .queueRemove(try p.optionalStrings("names") ?? [])
        case "queueSet": return .queueSet(QueueSetParameters(name: try p.string("name"), limit: try p.optionalInt("limit")))
        case "sessionNew":
            return .sessionNew(
                SessionNewParameters(
                    computers: try p.optionalStrings("computers") ?? ["localhost"], name: try p.optionalString("name"),
                    shell: try p.optionalString("shell"), workingDirectory: try p.string("workingDirectory"),
                    environment: try environment(p), sshConfig: try p.optionalString("sshConfig")))
        case "sessionGet": return .sessionGet(try p.optionalStrings("names") ?? [])
        case "sessionRemove":
            return .sessionRemove(
                SessionRemoveParameters(
                    names: try p.strings("names"),
                    graceSeconds: try p.optionalSeconds("graceSeconds") ?? StopParameters.defaultGraceSeconds))
        case "status": return .status
        case "shutdown": return .shutdown
        default:
            throw JobError(.unknownVerb, "this daemon does not know '\(JobError.shown(name))': use a job and a jobd of the same release")
        }
    }

    private static func environment(_ environment: [String: String]) -> JSON {
        .object(environment.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })
    }

    private static func environment(_ p: Fields) throws(JobError) -> [String: String] {
        var environment: [String: String] = [:]
        for (key, value) in try p.object("environment", orEmpty: true).fields {
            guard let text = value.string else { throw p.invalid("environment.\(key) must be a string") }
            environment[key] = text
        }
        return environment
    }

    private static func start(_ p: StartParameters) -> [(String, JSON)] {
        let command: JSON =
            switch p.command {
            case .shell(let line): .object([("shell", .string(line))])
            case .argv(let argv): .object([("argv", .array(argv.map(JSON.string)))])
            }
        return [
            ("command", command), ("name", optional(p.name, JSON.string)), ("workingDirectory", .string(p.workingDirectory)),
            ("environment", environment(p.environment)),
            ("mergeError", .bool(p.mergeError)), ("stdin", .bool(p.stdin)), ("queue", optional(p.queue, JSON.string)),
            ("dependsOn", selectors(p.dependsOn)), ("retry", .int(p.retry)),
        ]
    }

    private static func start(_ p: Fields) throws(JobError) -> StartParameters {
        let command = try p.object("command")
        let parsed: CommandParameter
        switch (try command.optionalString("shell"), try command.optionalStrings("argv")) {
        case (let line?, nil): parsed = .shell(line)
        case (nil, let argv?) where !argv.isEmpty: parsed = .argv(argv)
        default: throw command.invalid("holds either \"shell\" (a line) or \"argv\" (a program and its arguments)")
        }
        return StartParameters(
            command: parsed, name: try p.optionalString("name"), workingDirectory: try p.string("workingDirectory"),
            environment: try environment(p), mergeError: try p.bool("mergeError", default: false),
            stdin: try p.bool("stdin", default: false), queue: try p.optionalString("queue"),
            dependsOn: try selectors(p, "dependsOn"), retry: try p.optionalInt("retry") ?? 0)
    }

    private static func selectors(_ selectors: [JobSelector]) -> JSON {
        .array(selectors.map { selector in
            switch selector {
            case .id(let id): .object([("id", .int(id))])
            case .instanceId(let uuid): .object([("instanceId", .string(uuid.uuidString.lowercased()))])
            case .name(let name): .object([("name", .string(name))])
            }
        })
    }

    private static func selectors(_ p: Fields, _ key: String = "selectors") throws(JobError) -> [JobSelector] {
        var result: [JobSelector] = []
        for (index, item) in try p.array(key, orEmpty: true).enumerated() {
            let selector = Fields(item.fields ?? [], path: "\(p.path).\(key)[\(index)]")
            if let id = try selector.optionalInt("id") {
                result.append(.id(id))
            } else if let text = try selector.optionalString("instanceId") {
                guard let uuid = UUID(uuidString: text) else { throw selector.invalid("instanceId is not a UUID") }
                result.append(.instanceId(uuid))
            } else if let name = try selector.optionalString("name") {
                result.append(.name(name))
            } else {
                throw selector.invalid("holds one of \"id\", \"instanceId\" or \"name\"")
            }
        }
        return result
    }

    // MARK: Answers

    public static func encode(_ response: Response) -> [UInt8] { json(response).bytes() }

    public static func json(_ response: Response) -> JSON {
        let fields: [(String, JSON)] =
            switch response {
            case .job(let job): [("job", json(job))]
            case .jobs(let jobs): [("jobs", .array(jobs.map(json)))]
            case .slices(let slices):
                [
                    ("slices", .array(slices.map { s in
                        .object([
                            ("jobId", .int(s.jobId)), ("jobName", .string(s.jobName)), ("location", .string(s.location)),
                            ("origin", .string(s.origin)), ("prefix", .string(s.prefix)), ("start", .int(s.start)), ("end", .int(s.end)),
                        ])
                    }))
                ]
            case .output(let c):
                [
                    ("jobId", .int(c.jobId)), ("jobName", .string(c.jobName)), ("location", .string(c.location)),
                    ("origin", .string(c.origin)), ("stream", .string(c.stream.name)), ("time", .double(c.time.timeIntervalSince1970)),
                    ("data", .string(Data(c.data).base64EncodedString())), ("start", .int(c.start)), ("end", .int(c.end)),
                ]
            case .failure(let f):
                [("jobId", .int(f.jobId)), ("jobName", .string(f.jobName)), ("location", .string(f.location)), ("reason", .string(f.reason))]
            case .progress(let finished, let total, let failed):
                [("finished", .int(finished)), ("total", .int(total)), ("failed", .array(failed.map(JSON.string)))]
            case .queues(let queues):
                [
                    ("queues", .array(queues.map { q in
                        .object([
                            ("name", .string(q.name)), ("limit", optional(q.limit, JSON.int)), ("running", .int(q.running)),
                            ("waiting", .int(q.waiting)),
                        ])
                    }))
                ]
            case .sessions(let sessions): [("sessions", .array(sessions.map(json)))]
            case .status(let s):
                [
                    ("pid", .int(s.pid)), ("home", .string(s.home)), ("socket", .string(s.socket)), ("version", .string(s.version)),
                    ("uptimeSeconds", .double(s.uptimeSeconds)), ("jobs", .int(s.jobs)),
                ]
            case .done(let o):
                [("notFound", .array(o.notFound.map(json))), ("timedOut", .bool(o.timedOut)), ("error", optional(o.error, json))]
            case .unknown: []
            }
        return .object([("type", .string(response.type))] + fields)
    }

    /// Reads an answer frame; one of a type this side does not know is `.unknown`, to skip.
    public static func decodeResponse(_ body: [UInt8]) throws(JobError) -> Response {
        guard let json = JSONParser.parse(body), let fields = json.fields else {
            throw JobError(.invalidArgument, "malformed answer: not a JSON object")
        }
        let f = Fields(fields, path: "answer")
        let type = try f.string("type")
        switch type {
        case "job": return .job(try jobInfo(try f.object("job")))
        case "jobs": return .jobs(try f.array("jobs").enumerated().map { (i, item) throws(JobError) in try jobInfo(f.element(item, "jobs[\(i)]")) })
        case "slices":
            return .slices(try f.array("slices").enumerated().map { (i, item) throws(JobError) in
                let s = try f.element(item, "slices[\(i)]")
                let location = try s.string("location")
                return OutputSlice(
                    jobId: try s.int("jobId"), jobName: try s.string("jobName"), location: location,
                    origin: try s.optionalString("origin") ?? location, prefix: try s.string("prefix"),
                    start: try s.int("start"), end: try s.int("end"))
            })
        case "output":
            guard let stream = [OutputStreamKind.output, .error].first(where: { $0.name == (try? f.string("stream")) }) else {
                throw f.invalid("stream is \"output\" or \"error\"")
            }
            guard let data = Data(base64Encoded: try f.string("data")) else { throw f.invalid("data is not base64") }
            let location = try f.string("location")
            return .output(
                OutputChunk(
                    jobId: try f.int("jobId"), jobName: try f.string("jobName"), location: location,
                    origin: try f.optionalString("origin") ?? location, stream: stream, time: Date(timeIntervalSince1970: try f.double("time")), data: Array(data),
                    start: try f.optionalInt("start") ?? 0, end: try f.optionalInt("end") ?? 0))
        case "failure":
            return .failure(
                JobFailure(
                    jobId: try f.int("jobId"), jobName: try f.string("jobName"), location: try f.string("location"),
                    reason: try f.string("reason")))
        case "progress":
            return .progress(finished: try f.int("finished"), total: try f.int("total"), failed: try f.optionalStrings("failed") ?? [])
        case "queues":
            return .queues(try f.array("queues").enumerated().map { (i, item) throws(JobError) in
                let q = try f.element(item, "queues[\(i)]")
                return QueueInfo(
                    name: try q.string("name"), limit: try q.optionalInt("limit"), running: try q.int("running"),
                    waiting: try q.int("waiting"))
            })
        case "sessions":
            return .sessions(try f.array("sessions").enumerated().map { (i, item) throws(JobError) in
                try sessionInfo(try f.element(item, "sessions[\(i)]"))
            })
        case "status":
            return .status(
                DaemonStatus(
                    pid: try f.int("pid"), home: try f.string("home"), socket: try f.string("socket"),
                    version: try f.string("version"), uptimeSeconds: try f.double("uptimeSeconds"), jobs: try f.int("jobs")))
        case "done":
            var notFound: [JobError] = []
            for (i, item) in try f.array("notFound", orEmpty: true).enumerated() {
                notFound.append(try error(try f.element(item, "notFound[\(i)]")))
            }
            let failure = try f.optionalObject("error").map { (e: Fields) throws(JobError) in try error(e) }
            return .done(Outcome(notFound: notFound, timedOut: try f.bool("timedOut", default: false), error: failure))
        default: return .unknown(type: type)
        }
    }

    /// A session on the wire: the contract's keys (`id, name, computerName, state,
    /// availability, reason`), and its shell.
    public static func json(_ session: SessionInfo) -> JSON {
        .object([
            ("id", .int(session.id)), ("name", .string(session.name)), ("computerName", .string(session.computerName)),
            ("state", .string(session.state.rawValue)), ("availability", .string(session.availability.rawValue)),
            ("reason", optional(session.reason, JSON.string)), ("shell", .string(session.shell)),
        ])
    }

    private static func sessionInfo(_ s: Fields) throws(JobError) -> SessionInfo {
        guard let state = SessionState(rawValue: try s.string("state")) else { throw s.invalid("state is not a session state") }
        guard let availability = SessionAvailability(rawValue: try s.string("availability")) else {
            throw s.invalid("availability is Available or Busy")
        }
        return SessionInfo(
            id: try s.int("id"), name: try s.string("name"), computerName: try s.string("computerName"), state: state,
            availability: availability, reason: try s.optionalString("reason"), shell: try s.optionalString("shell") ?? "/bin/sh")
    }

    /// A job object on the wire: the contract's keys, in its order; times in seconds since
    /// 1970 (UTC), null when absent.
    public static func json(_ job: JobInfo) -> JSON {
        .object([
            ("id", .int(job.id)), ("name", .string(job.name)), ("instanceId", .string(job.instanceId.uuidString.lowercased())),
            ("type", .string(job.type.rawValue)), ("state", .string(job.state.rawValue)), ("hasMoreData", .bool(job.hasMoreData)),
            ("location", .string(job.location)), ("command", .string(job.command)),
            ("childJobs", .array(job.childJobs.map(JSON.int))), ("parentId", optional(job.parentId, JSON.int)),
            ("beginTime", time(job.beginTime)), ("endTime", time(job.endTime)), ("exitCode", optional(job.exitCode, JSON.int)),
            ("reason", optional(job.reason, JSON.string)), ("queue", .string(job.queue)),
            ("dependsOn", .array(job.dependsOn.map(JSON.int))), ("attempt", .int(job.attempt)),
            ("input", optional(job.input, JSON.string)), ("cpuSeconds", optional(job.cpuSeconds, JSON.double)),
            ("maxRssBytes", optional(job.maxRssBytes, JSON.int)),
        ])
    }

    private static func jobInfo(_ f: Fields) throws(JobError) -> JobInfo {
        guard let instanceId = UUID.parse(try f.string("instanceId")) else { throw f.invalid("instanceId is not a UUID") }
        guard let type = JobType(rawValue: try f.string("type")) else { throw f.invalid("type is not a job type") }
        guard let state = JobState(rawValue: try f.string("state")) else { throw f.invalid("state is not a job state") }
        func ids(_ key: String) throws(JobError) -> [Int] {
            var result: [Int] = []
            for item in try f.array(key, orEmpty: true) {
                guard let id = item.int else { throw f.invalid("\(key) holds ids") }
                result.append(id)
            }
            return result
        }
        return JobInfo(
            id: try f.int("id"), instanceId: instanceId, name: try f.string("name"), type: type, state: state,
            hasMoreData: try f.bool("hasMoreData", default: false), location: try f.string("location"),
            command: try f.string("command"), childJobs: try ids("childJobs"), parentId: try f.optionalInt("parentId"),
            beginTime: try f.optionalTime("beginTime"), endTime: try f.optionalTime("endTime"),
            exitCode: try f.optionalInt("exitCode"), reason: try f.optionalString("reason"),
            queue: try f.optionalString("queue") ?? Defaults.queue, dependsOn: try ids("dependsOn"),
            attempt: try f.optionalInt("attempt") ?? 1, input: try f.optionalString("input"),
            cpuSeconds: try f.optionalDouble("cpuSeconds"), maxRssBytes: try f.optionalInt("maxRssBytes"))
    }

    private static func json(_ error: JobError) -> JSON {
        .object([("code", .string(error.code.rawValue)), ("message", .string(error.message))])
    }

    private static func error(_ f: Fields) throws(JobError) -> JobError {
        JobError(JobError.Code(try f.string("code")), try f.string("message"))
    }

    // MARK: Values

    private static func optional<T>(_ value: T?, _ make: (T) -> JSON) -> JSON { value.map(make) ?? .null }
    private static func time(_ date: Date?) -> JSON { optional(date) { .double($0.timeIntervalSince1970) } }
}
