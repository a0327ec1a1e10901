import ArgumentParser
import FoundationEssentials
import JobModel
import JobOutput
import JobProtocol

#if canImport(Glibc)
import Glibc
#endif

struct ReceiveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "receive",
        abstract: "Write what jobs printed and has not been received yet.",
        discussion: """
            Output goes to stdout and errors to stderr, byte for byte (-o raw, the default); what is \
            written counts as received unless --keep. For a parent, its children's output in order. \
            -o table, list or json write one record per line, with the keys of lines that are JSON \
            objects.
            """
    )

    @OptionGroup var options: GlobalOptions

    @Argument(help: ArgumentHelp("Jobs by id, instance id or name.", valueName: "JOB"))
    var jobs: [String]

    @Flag(help: "Do not count what is written as received.")
    var keep = false

    @Flag(name: .customLong("wait"), help: "Stream output as it arrives until the jobs end.")
    var follow = false

    @Flag(help: "With --wait: remove the jobs at the end.")
    var autoRemove = false

    @Option(help: ArgumentHelp("Only the child jobs at these computers.", valueName: "HOST[,HOST…]"))
    var location: String?

    @Flag(help: "Only the named jobs' own output, not their children's.")
    var noRecurse = false

    @Flag(help: "Prefix each line with 'HOST: '.")
    var prefix = false

    mutating func validate() throws {
        if keep && follow { throw ValidationError("--keep cannot be combined with --wait") }
        if autoRemove && !follow { throw ValidationError("--auto-remove needs --wait") }
        if jobs.isEmpty { throw ValidationError("name at least one JOB") }
    }

    func run() throws {
        let locations = location.map { $0.split(separator: ",").map(String.init) }
        let parameters = ReceiveParameters(
            selectors: selectors(jobs), keep: keep, recurse: !noRecurse, locations: locations, autoRemove: autoRemove)
        let format = options.outputOption ?? .raw
        let writer = OutputPrinter(format: format, properties: options.properties, prefix: prefix, live: follow)
        var failed = false
        var readError: String?
        let request = Request(follow ? .receiveWait(parameters) : .receive(parameters))
        let (_, status) = try perform(request, with: options) { frame in
            switch frame {
            case .slices(let slices):
                // Read straight from the job's files: the daemon only said where.
                for slice in slices {
                    do {
                        let reader = try OutputSliceReader(slice: slice, coalesce: format == .raw)
                        while let chunk = try reader.nextChunk() { writer.write(chunk) }
                    } catch {
                        readError = (error as? JobError)?.message ?? "\(error)"
                    }
                }
            case .output(let chunk):
                writer.write(chunk)
            case .failure(let failure):
                failed = true
                writer.flush()
                complain("\(failure.jobName) failed: \(failure.reason)")
            case .jobs(let jobs):
                if jobs.contains(where: { $0.state == .failed || $0.state == .stopped }) { failed = true }
            default:
                break
            }
        }
        writer.finish()
        if let readError { complain(readError) }
        if status != ExitStatus.ok { throw Exit(status: status) }
        if failed || readError != nil { throw Exit(status: ExitStatus.failed) }
    }
}

/// Writes received output: raw bytes (optionally prefixed by host per line), or one record per
/// line in table, list or JSON form.
final class OutputPrinter {
    private let format: OutputFormatOption
    private let properties: [String]?
    private let prefix: Bool
    /// Output arrives as it is written (`--wait`, `invoke`): records are written at once
    /// rather than gathered into one aligned table.
    private let live: Bool
    /// The line begun but not ended, per job and stream (for records and prefixed lines).
    private var pending: [String: (chunk: OutputChunk, bytes: [UInt8])] = [:]
    private var order: [String] = []

    init(format: OutputFormatOption, properties: [String]?, prefix: Bool, live: Bool) {
        self.format = format
        self.properties = properties
        self.prefix = prefix
        self.live = live
    }

    private func key(_ chunk: OutputChunk) -> String { "\(chunk.jobId)/\(chunk.stream.rawValue)" }

    func write(_ chunk: OutputChunk) {
        if format == .raw && !prefix {
            writeAll(chunk.stream == .output ? 1 : 2, chunk.data)
            return
        }
        let key = key(chunk)
        var bytes = (pending[key]?.bytes ?? []) + chunk.data
        if pending[key] == nil { order.append(key) }
        var lineStart = 0
        while let newline = bytes[lineStart...].firstIndex(of: 10) {
            line(chunk, bytes[lineStart..<newline])
            lineStart = newline + 1
        }
        bytes.removeSubrange(..<lineStart)
        pending[key] = bytes.isEmpty ? nil : (chunk, bytes)
        if pending[key] == nil { order.removeAll { $0 == key } }
    }

    /// A whole line: prefixed with its computer (raw), or a record. Whole lines only, so that
    /// computers writing at once never share a line.
    private func line(_ chunk: OutputChunk, _ bytes: ArraySlice<UInt8>) {
        guard format == .raw else {
            record(chunk, Array(bytes))
            return
        }
        writeAll(chunk.stream == .output ? 1 : 2, Array("\(chunk.location): ".utf8) + bytes + [10])
    }

    /// One record: the contract's properties, then the line's own JSON keys, if it is an object.
    private struct Record {
        var fields: [(String, JSON)]
        var data: [(String, JSON)]?

        /// A property by name, case-insensitively, looking into the line's own keys too.
        func value(_ name: String) -> JSON? {
            let lower = name.lowercased()
            if let field = fields.first(where: { $0.0.lowercased() == lower }) { return field.1 }
            return data?.first(where: { $0.0.lowercased() == lower })?.1
        }
    }

    private var pendingRecords: [Record] = []

    private func record(_ chunk: OutputChunk, _ line: [UInt8]) {
        let text = String(decoding: line, as: UTF8.self)
        pendingRecords.append(
            Record(
                fields: [
                    ("JobId", .int(chunk.jobId)), ("JobName", .string(chunk.jobName)),
                    ("ComputerName", .string(chunk.location)), ("Stream", .string(chunk.stream.name)),
                    ("Time", .string(JobRender.isoTime(chunk.time))), ("Text", .string(text)),
                ],
                data: JSON.object(parsing: line)))
        if live && format != .json { flushRecords() }
    }

    /// Writes a line begun but not ended (the job may end it later, in another receive).
    func flush() {
        for key in order {
            if let (chunk, bytes) = pending[key] { line(chunk, bytes[...]) }
        }
        pending.removeAll()
        order.removeAll()
        if live && format != .json { flushRecords() }
    }

    func finish() {
        flush()
        if format == .table || format == .list {
            flushRecords()
        } else if format == .json {
            let objects: [JSON] = pendingRecords.map { record in
                if let properties {
                    return .object(properties.map { ($0, record.value($0) ?? .null) })
                }
                return .object(record.fields + (record.data.map { [("data", JSON.object($0))] } ?? []))
            }
            writeOut(JobRender.jsonText(.array(objects)))
            pendingRecords.removeAll()
        }
    }

    private var printedHeader = false

    /// Table and list records: live ones as they come, so that `--wait` shows them at once;
    /// the others as one aligned table at the end.
    private func flushRecords() {
        let columns = properties ?? (format == .table
            ? ["JobName", "ComputerName", "Stream", "Text"]
            : ["JobId", "JobName", "ComputerName", "Stream", "Time", "Text"])
        if format == .table && !live {
            if !pendingRecords.isEmpty {
                let rows = pendingRecords.map { record in columns.map { record.value($0)?.plain ?? "" } }
                writeOut(JobRender.table(columns: columns, rows: rows))
            }
            pendingRecords.removeAll()
            return
        }
        for record in pendingRecords {
            let values = columns.map { record.value($0)?.plain ?? "" }
            if format == .table {
                if !printedHeader {
                    writeOut(columns.joined(separator: "  ") + "\n" + columns.map { String(repeating: "-", count: $0.count) }.joined(separator: "  ") + "\n")
                    printedHeader = true
                }
                writeOut(values.joined(separator: "  ").trimmingTrailingSpaces() + "\n")
            } else {
                let width = columns.map(\.count).max() ?? 0
                writeOut(zip(columns, values).map { "\($0.padded(to: width)) : \($1)" }.joined(separator: "\n") + "\n\n")
            }
        }
        pendingRecords.removeAll()
    }
}
