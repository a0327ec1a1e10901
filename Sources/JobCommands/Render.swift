import FoundationEssentials

#if canImport(Glibc)
import Glibc
#endif
import JobModel
import JobProtocol

/// Shows jobs as a table (the seed document's columns), a list (Format-List's
/// `Property : value`), or JSON (the contract's keys).
enum JobRender {
    static let allProperties = [
        "Id", "Name", "InstanceId", "Type", "State", "HasMoreData", "Location", "Command", "ChildJobs", "ParentId",
        "BeginTime", "EndTime", "ExitCode", "Reason", "Queue", "DependsOn", "Attempt", "Input", "Duration", "CpuTime",
        "MaxRss",
    ]
    static let tableProperties = ["Id", "Name", "State", "HasMoreData", "Location", "Command"]
    static let listProperties = allProperties

    /// The properties asked for, in their proper case; an unknown name is a usage error.
    static func resolve(_ requested: [String]?, default defaults: [String], among known: [String] = allProperties) throws -> [String] {
        guard let requested else { return defaults }
        return try requested.map { name in
            guard let match = known.first(where: { $0.lowercased() == name.lowercased() }) else {
                throw UsageError("unknown property '\(JobError.shown(name))': use \(known.joined(separator: ", "))")
            }
            return match
        }
    }

    static func text(_ job: JobInfo, _ property: String) -> String {
        switch property {
        case "Id": String(job.id)
        case "Name": job.name
        case "InstanceId": job.instanceId.uuidString.lowercased()
        case "Type": job.type.rawValue
        case "State": job.state.rawValue
        case "HasMoreData": job.hasMoreData ? "True" : "False"
        case "Location": job.location
        case "Command": job.command
        case "ChildJobs": "{" + job.childJobs.map { "Job\($0)" }.joined(separator: ", ") + "}"
        case "ParentId": job.parentId.map(String.init) ?? ""
        case "BeginTime": job.beginTime.map(isoTime) ?? ""
        case "EndTime": job.endTime.map(isoTime) ?? ""
        case "ExitCode": job.exitCode.map(String.init) ?? ""
        case "Reason": job.reason ?? ""
        case "Queue": job.queue
        case "DependsOn": job.dependsOn.isEmpty ? "" : "{" + job.dependsOn.map { "Job\($0)" }.joined(separator: ", ") + "}"
        case "Attempt": String(job.attempt)
        case "Input": job.input ?? ""
        case "Duration": job.durationSeconds().map(seconds) ?? ""
        case "CpuTime": job.cpuSeconds.map(seconds) ?? ""
        case "MaxRss": job.maxRssBytes.map(bytes) ?? ""
        default: ""
        }
    }

    /// A time for people: `0.512 s`, `12.3 s`, `2 m 5 s`, `3 h 20 m`.
    static func seconds(_ value: Double) -> String {
        if value < 10 { return fixed(value, digits: 3) + " s" }
        if value < 60 { return fixed(value, digits: 1) + " s" }
        let whole = Int(value.rounded())
        if whole < 3600 { return "\(whole / 60) m \(whole % 60) s" }
        return "\(whole / 3600) h \((whole % 3600) / 60) m"
    }

    /// A size for people, in binary units: `812 KiB`, `104.2 MiB`.
    static func bytes(_ value: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var size = Double(value)
        var unit = 0
        while size >= 1024, unit < units.count - 1 {
            size /= 1024
            unit += 1
        }
        return unit == 0 ? "\(value) B" : fixed(size, digits: size < 100 ? 1 : 0) + " " + units[unit]
    }

    /// `value` with exactly `digits` decimals (Foundation's formatting costs the CLI a start-up).
    static func fixed(_ value: Double, digits: Int) -> String {
        var scale = 1
        for _ in 0..<digits { scale *= 10 }
        let scaled = Int((value * Double(scale)).rounded())
        guard digits > 0 else { return String(scaled) }
        let fraction = String(scaled % scale)
        return "\(scaled / scale)." + String(repeating: "0", count: digits - fraction.count) + fraction
    }

    static func json(_ job: JobInfo, _ property: String) -> JSON {
        switch property {
        case "Id": .int(job.id)
        case "Name": .string(job.name)
        case "InstanceId": .string(job.instanceId.uuidString.lowercased())
        case "Type": .string(job.type.rawValue)
        case "State": .string(job.state.rawValue)
        case "HasMoreData": .bool(job.hasMoreData)
        case "Location": .string(job.location)
        case "Command": .string(job.command)
        case "ChildJobs": .array(job.childJobs.map(JSON.int))
        case "ParentId": job.parentId.map(JSON.int) ?? .null
        case "BeginTime": job.beginTime.map { .string(isoTime($0)) } ?? .null
        case "EndTime": job.endTime.map { .string(isoTime($0)) } ?? .null
        case "ExitCode": job.exitCode.map(JSON.int) ?? .null
        case "Reason": job.reason.map(JSON.string) ?? .null
        case "Queue": .string(job.queue)
        case "DependsOn": .array(job.dependsOn.map(JSON.int))
        case "Attempt": .int(job.attempt)
        case "Input": job.input.map(JSON.string) ?? .null
        case "Duration": job.durationSeconds().map(JSON.double) ?? .null
        case "CpuTime": job.cpuSeconds.map(JSON.double) ?? .null
        case "MaxRss": job.maxRssBytes.map(JSON.int) ?? .null
        default: .null
        }
    }

    /// The contract's JSON keys: the property's name in lower camelCase, with its unit where
    /// the name has none.
    static func jsonKey(_ property: String) -> String {
        switch property {
        case "Duration": "durationSeconds"
        case "CpuTime": "cpuSeconds"
        case "MaxRss": "maxRssBytes"
        default: property.prefix(1).lowercased() + property.dropFirst()
        }
    }


    /// An aligned table. A cell is one line whatever it holds (a newline shows as `\\n`), and
    /// on a terminal every line is cut to its width, with `…`, the last column first; piped,
    /// nothing is cut.
    static func table(columns: [String], rows: [[String]], colorColumn: Int? = nil, width: Int? = terminalWidth) -> String {
        var cells = [columns, columns.map { String(repeating: "-", count: $0.count) }] + rows.map { $0.map(oneLine) }
        var widths = columns.indices.map { i in cells.map { $0[i].count }.max() ?? 0 }
        var tooWide = false
        if let width, let last = columns.indices.last {
            let before = widths.dropLast().reduce(0) { $0 + $1 + 2 }
            let room = max(width - before, 8)
            if widths[last] > room {
                for row in cells.indices where cells[row][last].count > room {
                    cells[row][last] = String(cells[row][last].prefix(room - 1)) + "…"
                }
                widths[last] = room
            }
            tooWide = before + widths[last] > width
        }
        return cells.enumerated().map { line, row in
            let padded = row.indices.map { i in i == row.count - 1 ? row[i] : row[i].padded(to: widths[i] + 2) }
            // Too narrow even for the other columns: whole lines are cut, without colour (its
            // escapes would be cut too).
            if tooWide, let width {
                let plain = padded.joined().trimmingTrailingSpaces()
                return plain.count > width ? String(plain.prefix(width - 1)) + "…" : plain
            }
            return padded.indices.map { i in line >= 2 && i == colorColumn ? colored(state: row[i], padded[i]) : padded[i] }
                .joined().trimmingTrailingSpaces()
        }.joined(separator: "\n") + "\n"
    }

    /// A cell's text on one line: line breaks and tabs written as escapes, other control
    /// characters as `?`, so that a command of several lines keeps its row.
    static func oneLine(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else { return text }
        var result = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F: result += "?"
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result
    }

    /// The terminal's width when stdout is one, else nil (piped output is never cut).
    static let terminalWidth: Int? = {
        guard isatty(1) == 1 else { return nil }
        var size = winsize()
        guard ioctl(1, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 else { return nil }
        return Int(size.ws_col)
    }()

    /// Colours only for a person at a terminal, and never with NO_COLOR set (no-color.org).
    static let useColor: Bool = isatty(1) == 1 && (getenv("NO_COLOR").map { String(cString: $0) } ?? "").isEmpty
        && getenv("TERM").map { String(cString: $0) } != "dumb"

    static func colored(state: String, _ padded: String) -> String {
        guard useColor else { return padded }
        let code: String
        switch state {
        case "Completed": code = "32"
        case "Failed": code = "31"
        case "Stopped", "Stopping", "Disconnected": code = "33"
        case "Running": code = "36"
        default: return padded
        }
        let trimmed = padded.trimmingTrailingSpaces()
        return "\u{1B}[\(code)m\(trimmed)\u{1B}[0m" + String(repeating: " ", count: padded.count - trimmed.count)
    }

    static func list(properties: [String], items: [[String]]) -> String {
        let width = properties.map(\.count).max() ?? 0
        return items.map { values in
            zip(properties, values).map { name, value in
                "\(name.padded(to: width)) : \(value)"
            }.joined(separator: "\n") + "\n"
        }.joined(separator: "\n")
    }

    static func jsonText(_ value: JSON) -> String {
        value.text(pretty: true) + "\n"
    }

    static func isoTime(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .current))
    }
}

/// Jobs shown in the chosen format, as every command shows them; a listing is written as it
/// comes, frame by frame: JSON (an array, or an object per line) and lists at once, so that a
/// listing of any length is never held whole; a table is gathered, for its columns to line up.
final class JobListWriter {
    private let format: OutputFormatOption
    private let properties: [String]
    private var gathered: [JobInfo] = []
    private var written = 0

    init(_ options: CommonOptions) throws {
        format = options.format
        let defaults: [String] =
            switch options.format {
            case .table, .raw: JobRender.tableProperties
            case .list: JobRender.listProperties
            case .json, .jsonl: JobRender.allProperties
            }
        properties = try JobRender.resolve(options.properties, default: defaults)
    }

    func add(_ jobs: [JobInfo]) throws {
        guard !jobs.isEmpty else { return }
        switch format {
        case .table, .raw:
            gathered += jobs
        case .list:
            let text = JobRender.list(properties: properties, items: jobs.map { job in properties.map { JobRender.text(job, $0) } })
            try writeOut((written > 0 ? "\n" : "") + text)
        case .json, .jsonl:
            // Bytes, not text: a listing of 100,000 jobs is mostly this.
            var bytes: [UInt8] = []
            for (index, job) in jobs.enumerated() {
                let object = JSON.object(properties.map { (JobRender.jsonKey($0), JobRender.json(job, $0)) })
                if format == .jsonl {
                    object.write(into: &bytes)
                    bytes.append(10)
                } else {
                    bytes += Array(((written == 0 && index == 0 ? "[\n" : ",\n") + "  " + object.text(pretty: true, indent: "  ")).utf8)
                }
            }
            try writeOut(bytes)
        }
        written += jobs.count
    }

    func finish() throws {
        switch format {
        case .table, .raw:
            guard !gathered.isEmpty else { break }
            let rows = gathered.map { job in properties.map { JobRender.text(job, $0) } }
            try writeOut(JobRender.table(columns: properties, rows: rows, colorColumn: properties.firstIndex(of: "State")))
        case .json:
            try writeOut(written == 0 ? "[]\n" : "\n]\n")
        case .list, .jsonl:
            break
        }
    }
}

/// A usage error found after parsing (an unknown property, say): exit status 64.
struct UsageError: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

extension String {
    func trimmingTrailingSpaces() -> String {
        var s = self
        while s.last == " " { s.removeLast() }
        return s
    }
}
