import FoundationEssentials
import JobClient
import JobModel
import JobProtocol

#if canImport(Glibc)
import Glibc
#endif

/// `job start …`, `job get …` and `job invoke …` in their plain forms, parsed, encoded and decoded by hand.
///
/// They are what scripts run in loops, and what makes `job` slow to start is not the work but
/// the Swift runtime's first-use metadata lookups (scanning every conformance of the binary)
/// that ArgumentParser's reflection and Codable set off: milliseconds per command, measured.
/// Anything this does not recognise — other commands, `--help`, a mistake — is left to
/// ArgumentParser, which also owns the error messages. The wire format is the one `Request`
/// and `Response` encode to.
enum FastPath {
    /// Runs `args` and returns the exit status, or nil when they are not a plain start or get.
    static func run(_ args: [String]) -> Int32? {
        if args.first == "invoke" { return invoke(args) }
        guard let verb = args.first, verb == "start" || verb == "get" else { return nil }
        var options = Options(args)
        var name: String?
        var cwd: String?
        var env: [String] = []
        var line: String?
        var program: [String] = []
        var words: [String] = []
        let parsed = options.walk { arg, options in
            switch arg {
            case "--name" where verb == "start": guard let v = options.value() else { return false }; name = v
            case "--cwd" where verb == "start": guard let v = options.value() else { return false }; cwd = v
            case "--env" where verb == "start":
                guard let v = options.value(), v.contains("="), !v.hasPrefix("=") else { return false }
                env.append(v)
            case "-c" where verb == "start": guard let v = options.value() else { return false }; line = v
            case "--" where verb == "start": program = options.rest()
            default:
                guard verb == "get", !arg.hasPrefix("-") else { return false }
                words.append(arg)
            }
            return true
        }
        guard parsed else { return nil }
        let (home, format, properties) = (options.home, options.format, options.properties)
        if verb == "start" && (line == nil) == program.isEmpty { return nil }
        if (try? JobRender.resolve(properties, default: [])) == nil { return nil }

        let verbJSON: JSON
        if verb == "start" {
            guard let parameters = try? startParameters(line: line, program: program, name: name, cwd: cwd, env: env)
            else { return ExitStatus.usage }
            verbJSON = tagged("start", .object(fields(of: parameters)))
        } else {
            verbJSON = tagged("get", .object([("selectors", .array(words.map(selectorJSON))), ("includeChildren", .bool(false))]))
        }
        var jobs: [JobInfo] = []
        let status = call(verbJSON, home: home) { frame in
            if let list = frame["jobs"]?["_0"] { jobs = list.items.compactMap(jobInfo) }
        }
        if status == ExitStatus.unreachable { return status }
        if !jobs.isEmpty || (verb == "get" && format == .json) {
            guard let text = try? JobRender.render(jobs, format: format, properties: properties) else { return ExitStatus.usage }
            writeOut(text)
        }
        return status
    }

    /// `job invoke …` with the options `InvokeCommand` takes, valid ones only: anything it
    /// would refuse is left to it, for its messages. The same two requests as it makes.
    private static func invoke(_ args: [String]) -> Int32? {
        var options = Options(args)
        var computer: String?
        var asJob = false
        var name: String?
        var throttle = 32
        var sshConfig: String?
        var hideComputerName = false
        var line: String?
        var program: [String] = []
        let parsed = options.walk { arg, options in
            switch arg {
            case "--computer": guard let v = options.value() else { return false }; computer = v
            case "--as-job": asJob = true
            case "--name": guard let v = options.value() else { return false }; name = v
            case "--throttle": guard let v = options.value(), let n = Int(v), n >= 1 else { return false }; throttle = n
            case "--ssh-config": guard let v = options.value() else { return false }; sshConfig = v
            case "--hide-computer-name": hideComputerName = true
            case "-c": guard let v = options.value() else { return false }; line = v
            case "--": program = options.rest()
            default: return false
            }
            return true
        }
        guard parsed else { return nil }
        let (home, format, properties) = (options.home, options.format, options.properties)
        let computers = (computer ?? "").split(separator: ",").map { String($0).trimmed }.filter { !$0.isEmpty }
        guard (line == nil) != program.isEmpty, !computers.isEmpty else { return nil }
        if (try? JobRender.resolve(properties, default: [])) == nil { return nil }
        // As InvokeCommand.sshConfigFile: absolute, because the daemon's ssh does not run here.
        let given = sshConfig ?? getenv("JOB_SSH_CONFIG").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 }
        if let given, access(given, R_OK) != 0 { return nil }
        let configFile = given.map { $0.hasPrefix("/") ? $0 : currentDirectory() + "/" + $0 }

        guard let command = try? startParameters(line: line, program: program, name: name, cwd: nil, env: [])
        else { return ExitStatus.usage }
        var parameters: [(String, JSON)] = [
            ("computers", .array(computers.map(JSON.string))), ("command", .object(fields(of: command))),
            ("throttle", .int(throttle)),
        ]
        if let configFile { parameters.append(("sshConfig", .string(configFile))) }
        var started: [JobInfo] = []
        let status = call(tagged("invoke", .object(parameters)), home: home) { frame in
            if let list = frame["jobs"]?["_0"] { started = list.items.compactMap(jobInfo) }
        }
        guard status == ExitStatus.ok, let parent = started.first else { return status }
        if asJob {
            guard let text = try? JobRender.render(started, format: format, properties: properties) else { return ExitStatus.usage }
            writeOut(text)
            return ExitStatus.ok
        }
        // Without --as-job the job is this command's own: interrupted, it goes with it.
        let selectors = JSON.array([selectorJSON(.id(parent.id))])
        let interruption = onInterrupt { [home] signal in
            _ = call(tagged("stop", .object([("selectors", selectors), ("grace", .int(5))])), home: home) { _ in }
            _ = call(tagged("remove", .object([("selectors", selectors), ("force", .bool(true))])), home: home) { _ in }
            Glibc.exit(128 + signal)
        }
        guard let writer = try? OutputPrinter(format: .raw, properties: nil, prefix: computers.count > 1 && !hideComputerName, live: true)
        else { return ExitStatus.usage }
        // The stream ends with the job as it finished, then removes it.
        let receive = JSON.object([
            ("selectors", selectors), ("keep", .bool(false)), ("recurse", .bool(true)), ("autoRemove", .bool(true)),
        ])
        var failed = false
        var final: [JobInfo] = []
        let received = call(tagged("receiveWait", receive), home: home) { frame in
            if let chunk = frame["chunk"]?["_0"] {
                guard let id = chunk["jobId"]?.int, let jobName = chunk["jobName"]?.string,
                    let location = chunk["location"]?.string,
                    let stream = chunk["stream"]?.int.flatMap({ UInt8(exactly: $0) }).flatMap(OutputStreamKind.init(rawValue:)),
                    let time = chunk["time"]?.double, let data = chunk["data"]?.string.flatMap({ Data(base64Encoded: $0) })
                else { throw ClientError(unreadable) }
                writer.write(OutputChunk(
                    jobId: id, jobName: jobName, location: location, stream: stream,
                    time: Date(timeIntervalSince1970: time), data: Array(data)))
            } else if let failure = frame["failure"]?["_0"] {
                failed = true
                let location = failure["location"]?.string ?? "?"
                let reason = failure["reason"]?.string ?? "failed"
                complainOfFailure(at: location, reason)
            } else if let list = frame["jobs"]?["_0"] {
                final = list.items.compactMap(jobInfo)
            }
        }
        writer.finish()
        // Stopped by the interruption: its handler says how this ends.
        interruption.waitIfInterrupted()
        if received == ExitStatus.unreachable { return received }
        return failed || final.first?.state != .completed ? ExitStatus.failed : ExitStatus.ok
    }

    /// The words after the verb, read one at a time, and the options every command takes.
    private struct Options {
        let args: [String]
        var index = 1
        var home: String?
        var format = OutputFormatOption.table
        var properties: [String]?

        init(_ args: [String]) { self.args = args }

        enum Taken { case taken, invalid, other }

        /// Reads every word: the common options here, the others by `take`, which reads their
        /// values from the `Options` it is given. False as soon as a word is not understood.
        mutating func walk(_ take: (String, inout Options) -> Bool) -> Bool {
            while let word = next() {
                switch takeCommon(word) {
                case .taken: continue
                case .invalid: return false
                case .other: if !take(word, &self) { return false }
                }
            }
            return true
        }

        /// The next word, nil at the end.
        mutating func next() -> String? {
            guard index < args.count else { return nil }
            defer { index += 1 }
            return args[index]
        }

        /// The value of the option just read.
        mutating func value() -> String? { next() }

        /// Every word left (after `--`).
        mutating func rest() -> [String] {
            defer { index = args.count }
            return Array(args[min(index, args.count)...])
        }

        /// Takes `word` if it is `--home`, `-o` or `--property`, with its value.
        mutating func takeCommon(_ word: String) -> Taken {
            switch word {
            case "--home":
                guard let v = value() else { return .invalid }
                home = v
            case "-o", "--output":
                guard let v = value(), let f = OutputFormatOption(rawValue: v), f != .raw else { return .invalid }
                format = f
            case "--property":
                guard let v = value() else { return .invalid }
                properties = v.split(separator: ",").map { String($0).trimmed }.filter { !$0.isEmpty }
            default: return .other
            }
            return .taken
        }
    }

    private static let unreadable = "cannot read the daemon's answer; is it the same release as job?"

    /// `{"VERB":{"_0":PARAMETERS}}`: how `Verb` (and `Response`) encode a case.
    private static func tagged(_ verb: String, _ parameters: JSON) -> JSON {
        .object([(verb, .object([("_0", parameters)]))])
    }

    private static func selectorJSON(_ word: String) -> JSON { selectorJSON(JobSelector(word)) }

    private static func selectorJSON(_ selector: JobSelector) -> JSON {
        switch selector {
        case .id(let id): tagged("id", .int(id))
        case .instanceId(let uuid): tagged("instanceId", .string(uuid.uuidString))
        case .name(let name): tagged("name", .string(name))
        }
    }

    /// `StartParameters` as it encodes.
    private static func fields(of parameters: StartParameters) -> [(String, JSON)] {
        var fields: [(String, JSON)] = []
        if let shell = parameters.shell { fields.append(("shell", .string(shell))) }
        if let argv = parameters.argv { fields.append(("argv", .array(argv.map(JSON.string)))) }
        if let name = parameters.name { fields.append(("name", .string(name))) }
        fields.append(("workingDirectory", .string(parameters.workingDirectory)))
        fields.append(("environment", .object(parameters.environment.map { ($0.key, .string($0.value)) })))
        return fields
    }

    /// Sends one request and hands every frame but the last to `onFrame`; reports the words
    /// that matched nothing and the error, if any, and returns the exit status they call for.
    private static func call(_ verb: JSON, home: String?, onFrame: (JSON) throws -> Void) -> Int32 {
        let body = Array(JSON.object([("version", .int(ProtocolVersion.current)), ("verb", verb)]).text(pretty: false).utf8)
        var frame = [UInt8](repeating: 0, count: 4)
        withUnsafeBytes(of: UInt32(body.count).bigEndian) { frame.replaceSubrange(0..<4, with: $0) }
        frame += body
        var status = ExitStatus.ok
        do {
            try DaemonClient(home: JobHome(explicit: home)).exchange(frame) { answer in
                guard let frame = JSONParser.parse(answer) else { throw ClientError(unreadable) }
                guard let outcome = frame["done"]?["_0"] else {
                    try onFrame(frame)
                    return false
                }
                for missing in outcome["notFound"]?.items ?? [] {
                    complain(missing["message"]?.string ?? "a job was not found")
                    status = ExitStatus.failed
                }
                if let error = outcome["error"], case .object = error {
                    complain(error["message"]?.string ?? "the daemon refused the request")
                    status = error["code"]?.string == "invalidArgument" ? ExitStatus.usage : ExitStatus.failed
                }
                return true
            }
        } catch let error as ClientError {
            complain(error.message)
            return ExitStatus.unreachable
        } catch {
            complain("\(error)")
            return ExitStatus.unreachable
        }
        return status
    }

    /// A job as `JobInfo` encodes it.
    private static func jobInfo(_ json: JSON) -> JobInfo? {
        guard let id = json["id"]?.int, let name = json["name"]?.string,
            let instanceId = json["instanceId"]?.string.flatMap(UUID.init(uuidString:)),
            let type = json["type"]?.string.flatMap(JobType.init(rawValue:)),
            let state = json["state"]?.string.flatMap(JobState.init(rawValue:)),
            let hasMoreData = json["hasMoreData"]?.bool, let location = json["location"]?.string,
            let command = json["command"]?.string
        else { return nil }
        return JobInfo(
            id: id, instanceId: instanceId, name: name, type: type, state: state, hasMoreData: hasMoreData,
            location: location, command: command, childJobs: (json["childJobs"]?.items ?? []).compactMap(\.int),
            parentId: json["parentId"]?.int, beginTime: json["beginTime"]?.double.map(Date.init(timeIntervalSince1970:)),
            endTime: json["endTime"]?.double.map(Date.init(timeIntervalSince1970:)), exitCode: json["exitCode"]?.int,
            reason: json["reason"]?.string)
    }
}
