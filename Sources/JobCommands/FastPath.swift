import FoundationEssentials
import JobClient
import JobModel
import JobProtocol

/// `job start …` and `job get …` in their plain forms, parsed, encoded and decoded by hand.
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
        guard let verb = args.first, verb == "start" || verb == "get" else { return nil }
        var home: String?
        var format = OutputFormatOption.table
        var properties: [String]?
        var name: String?
        var cwd: String?
        var env: [String] = []
        var line: String?
        var program: [String] = []
        var words: [String] = []
        var index = 1
        func value() -> String? {
            index += 1
            return index < args.count ? args[index] : nil
        }
        while index < args.count {
            let arg = args[index]
            switch arg {
            case "--home": guard let v = value() else { return nil }; home = v
            case "-o", "--output":
                guard let v = value(), let f = OutputFormatOption(rawValue: v), f != .raw else { return nil }
                format = f
            case "--property":
                guard let v = value() else { return nil }
                properties = v.split(separator: ",").map { String($0).trimmed }.filter { !$0.isEmpty }
            case "--name" where verb == "start": guard let v = value() else { return nil }; name = v
            case "--cwd" where verb == "start": guard let v = value() else { return nil }; cwd = v
            case "--env" where verb == "start":
                guard let v = value(), v.contains("="), !v.hasPrefix("=") else { return nil }
                env.append(v)
            case "-c" where verb == "start": guard let v = value() else { return nil }; line = v
            case "--" where verb == "start":
                program = Array(args[(index + 1)...])
                index = args.count
                continue
            default:
                guard verb == "get", !arg.hasPrefix("-") else { return nil }
                words.append(arg)
            }
            index += 1
        }
        if verb == "start" && (line == nil) == program.isEmpty { return nil }
        if (try? JobRender.resolve(properties, default: [])) == nil { return nil }

        let verbJSON: JSON
        if verb == "start" {
            guard let parameters = try? startParameters(line: line, program: program, name: name, cwd: cwd, env: env)
            else { return ExitStatus.usage }
            var fields: [(String, JSON)] = []
            if let shell = parameters.shell { fields.append(("shell", .string(shell))) }
            if let argv = parameters.argv { fields.append(("argv", .array(argv.map(JSON.string)))) }
            if let name = parameters.name { fields.append(("name", .string(name))) }
            fields.append(("workingDirectory", .string(parameters.workingDirectory)))
            fields.append(("environment", .object(parameters.environment.map { ($0.key, .string($0.value)) })))
            verbJSON = .object([("start", .object([("_0", .object(fields))]))])
        } else {
            let selectors = words.map { word -> JSON in
                switch JobSelector(word) {
                case .id(let id): .object([("id", .object([("_0", .int(id))]))])
                case .instanceId(let uuid): .object([("instanceId", .object([("_0", .string(uuid.uuidString))]))])
                case .name(let name): .object([("name", .object([("_0", .string(name))]))])
                }
            }
            verbJSON = .object([
                ("get", .object([("_0", .object([("selectors", .array(selectors)), ("includeChildren", .bool(false))]))]))
            ])
        }
        let body = Array(JSON.object([("version", .int(ProtocolVersion.current)), ("verb", verbJSON)]).text(pretty: false).utf8)
        var frame = [UInt8](repeating: 0, count: 4)
        withUnsafeBytes(of: UInt32(body.count).bigEndian) { frame.replaceSubrange(0..<4, with: $0) }
        frame += body

        var jobs: [JobInfo] = []
        var status = ExitStatus.ok
        do {
            try DaemonClient(home: JobHome(explicit: home)).exchange(frame) { answer in
                guard let frame = JSONParser.parse(answer) else {
                    throw ClientError("cannot read the daemon's answer; is it the same release as job?")
                }
                if let list = frame["jobs"]?["_0"] { jobs = list.items.compactMap(jobInfo) }
                guard let outcome = frame["done"]?["_0"] else { return false }
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
        if !jobs.isEmpty || (verb == "get" && format == .json) {
            guard let text = try? JobRender.render(jobs, format: format, properties: properties) else { return ExitStatus.usage }
            writeOut(text)
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
