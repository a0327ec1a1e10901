import ArgumentParser
import Foundation
import JobModel
import JobProtocol

#if canImport(Glibc)
import Glibc
#endif

struct ReceiveCommand: AsyncParsableCommand {
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

    func run() async throws {
        let locations = location.map { $0.split(separator: ",").map(String.init) }
        let parameters = ReceiveParameters(
            selectors: selectors(jobs), keep: keep, recurse: !noRecurse, locations: locations, autoRemove: autoRemove)
        let format = options.outputOption ?? .raw
        let writer = try OutputWriter(format: format, properties: options.properties, prefix: prefix)
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
            case .chunk(let chunk):
                writer.write(chunk)
            case .failure(let failure):
                failed = true
                writer.flush()
                complain("\(failure.jobName) failed: \(failure.reason)")
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
final class OutputWriter {
    private let format: OutputFormatOption
    private let properties: [String]?
    private let prefix: Bool
    /// Where each job's stream is: at the start of a line or not (for prefixes), and the line
    /// begun but not ended (for records).
    private var atLineStart: [String: Bool] = [:]
    private var pending: [String: (chunk: OutputChunk, bytes: [UInt8])] = [:]
    private var records: [[String: Any]] = []
    private var order: [String] = []

    init(format: OutputFormatOption, properties: [String]?, prefix: Bool) throws {
        self.format = format
        self.properties = properties
        self.prefix = prefix
    }

    private func key(_ chunk: OutputChunk) -> String { "\(chunk.jobId)/\(chunk.stream.rawValue)" }

    func write(_ chunk: OutputChunk) {
        if format == .raw {
            writeRaw(chunk)
            return
        }
        let key = key(chunk)
        var bytes = (pending[key]?.bytes ?? []) + chunk.data
        if pending[key] == nil { order.append(key) }
        while let newline = bytes.firstIndex(of: 10) {
            record(chunk, Array(bytes[..<newline]))
            bytes.removeSubrange(...newline)
        }
        pending[key] = bytes.isEmpty ? nil : (chunk, bytes)
        if pending[key] == nil { order.removeAll { $0 == key } }
    }

    private func writeRaw(_ chunk: OutputChunk) {
        let fd: Int32 = chunk.stream == .output ? 1 : 2
        guard prefix else {
            writeAll(fd, chunk.data)
            return
        }
        let key = key(chunk)
        let label = Array("\(chunk.location): ".utf8)
        var out: [UInt8] = []
        var start = atLineStart[key] ?? true
        for byte in chunk.data {
            if start { out += label }
            out.append(byte)
            start = byte == 10
        }
        atLineStart[key] = start
        writeAll(fd, out)
    }

    private func record(_ chunk: OutputChunk, _ line: [UInt8]) {
        let text = String(decoding: line, as: UTF8.self)
        var record: [String: Any] = [
            "JobId": chunk.jobId, "JobName": chunk.jobName, "ComputerName": chunk.location,
            "Stream": chunk.stream.name, "Time": JobRender.isoTime(chunk.time), "Text": text,
        ]
        if text.hasPrefix("{"), let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] {
            record["data"] = object
        }
        records.append(record)
        if format != .json { flushRecords() }
    }

    /// Writes a line begun but not ended (the job may end it later, in another receive).
    func flush() {
        for key in order {
            if let (chunk, bytes) = pending[key] { record(chunk, bytes) }
        }
        pending.removeAll()
        order.removeAll()
        if format != .json { flushRecords() }
    }

    func finish() {
        flush()
        if format == .json {
            let objects = records.map { record -> [String: Any] in
                guard let properties else { return record }
                return Dictionary(uniqueKeysWithValues: properties.map { ($0, value(record, $0) ?? NSNull()) })
            }
            writeOut(JobRender.jsonText(objects))
        }
    }

    private var printedHeader = false

    /// A record's property by name, case-insensitively, looking into the line's own JSON keys.
    private func value(_ record: [String: Any], _ name: String) -> Any? {
        if let match = record.first(where: { $0.key.lowercased() == name.lowercased() && $0.key != "data" }) {
            return match.value
        }
        if let data = record["data"] as? [String: Any] {
            return data.first(where: { $0.key.lowercased() == name.lowercased() })?.value
        }
        return nil
    }

    private func text(_ value: Any?) -> String {
        switch value {
        case nil, is NSNull: ""
        case let string as String: string
        case let number as NSNumber: number.stringValue
        default:
            (try? JSONSerialization.data(withJSONObject: value as Any, options: [.fragmentsAllowed]))
                .flatMap { String(data: $0, encoding: .utf8) } ?? "\(value!)"
        }
    }

    /// Table and list records are written as they come, so that `--wait` shows them live.
    private func flushRecords() {
        let columns = properties ?? (format == .table
            ? ["JobName", "ComputerName", "Stream", "Text"]
            : ["JobId", "JobName", "ComputerName", "Stream", "Time", "Text"])
        for record in records {
            let values = columns.map { text(value(record, $0)) }
            if format == .table {
                if !printedHeader {
                    writeOut(columns.joined(separator: "  ") + "\n" + columns.map { String(repeating: "-", count: $0.count) }.joined(separator: "  ") + "\n")
                    printedHeader = true
                }
                writeOut(values.joined(separator: "  ").trimmingTrailingSpaces() + "\n")
            } else {
                let width = columns.map(\.count).max() ?? 0
                writeOut(zip(columns, values).map { "\($0.padding(toLength: width, withPad: " ", startingAt: 0)) : \($1)" }.joined(separator: "\n") + "\n\n")
            }
        }
        records.removeAll()
    }
}

func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return }
        done += n
    }
}
