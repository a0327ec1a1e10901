import FoundationEssentials
import JobModel
import JobProtocol

#if canImport(Glibc)
import Glibc
#endif

/// Writes received output: raw bytes (optionally prefixed per line), or one record per line
/// as a table, a list, JSON objects one per line (`jsonl`) or one JSON array, written as it
/// goes. It keeps count of what is really on stdout and stderr, for the receipts that alone
/// make output count as received.
final class OutputPrinter {
    /// What `--prefix` puts before each line.
    enum Prefix {
        /// The child's computer (`invoke`, which names computers).
        case location
        /// Its computer for a remote child, its parent's Name for a local one (`receive`).
        case origin
        /// The child's input and a tab (`foreach --tag`; the daemon puts it in `origin`).
        case input
    }

    private let format: OutputFormatOption
    private let properties: [String]?
    private let prefix: Prefix?
    /// Output arrives as it is written (`--wait`, `invoke`): table records are written at once
    /// rather than gathered into one aligned table.
    private let live: Bool
    /// The line begun but not ended, per job and stream, with the record its first byte came
    /// from (for records and prefixed lines).
    private var pending: [Key: (chunk: OutputChunk, bytes: [UInt8], from: Int)] = [:]
    /// Bytes not yet written, and the stream they are for: written in batches (a record per
    /// write would be a system call per line), in order (switching streams writes them).
    private var buffer: [UInt8] = []
    private var bufferFD: Int32 = 1
    /// Per job, the record before which everything is handed to `buffer`; `written`, what
    /// of that was on stdout and stderr at the last write that succeeded.
    private var complete: [Int: Int] = [:]
    private var written: [Int: Int] = [:]
    private var reported: [Int: Int] = [:]
    private var gathered: [Record] = []
    private var printedHeader = false
    private var openedArray = false

    private struct Key: Hashable {
        var jobId: Int
        var stream: OutputStreamKind
    }

    init(format: OutputFormatOption, properties: [String]?, prefix: Prefix?, live: Bool) {
        self.format = format
        self.properties = properties
        self.prefix = prefix
        self.live = live
    }

    func write(_ chunk: OutputChunk) throws(OutputError) {
        if format == .raw && prefix == nil {
            try emit(chunk.data, to: chunk.stream.fd)
            complete[chunk.jobId] = chunk.end
            return
        }
        let key = Key(jobId: chunk.jobId, stream: chunk.stream)
        var bytes = chunk.data
        var from = chunk.start
        if let begun = pending.removeValue(forKey: key) {
            bytes = begun.bytes + bytes
            from = begun.from
        }
        var lineStart = 0
        while let newline = bytes[lineStart...].firstIndex(of: 10) {
            try line(chunk, bytes[lineStart..<newline])
            lineStart = newline + 1
        }
        if lineStart < bytes.count { pending[key] = (chunk, Array(bytes[lineStart...]), lineStart == 0 ? from : chunk.start) }
        // Written up to this chunk's end, but for a line of this job still open.
        let open = pending.filter { $0.key.jobId == chunk.jobId }.map(\.value.from).min()
        complete[chunk.jobId] = open ?? chunk.end
    }

    /// A whole line: prefixed (raw), or a record. Whole lines only, so that jobs writing at
    /// once never share a line.
    private func line(_ chunk: OutputChunk, _ bytes: ArraySlice<UInt8>) throws(OutputError) {
        guard format == .raw else {
            try record(chunk, Array(bytes))
            return
        }
        let label =
            switch prefix {
            case .origin: chunk.origin + ": "
            case .input: chunk.origin + "\t"
            default: chunk.location + ": "
            }
        try emit(Array(label.utf8) + bytes + [10], to: chunk.stream.fd)
    }

    /// One record: the contract's properties, then the line's own JSON keys, if it is an object.
    private struct Record {
        static let names = ["JobId", "JobName", "ComputerName", "Stream", "Time", "Text"]
        var fields: [JSON]
        var data: [(String, JSON)]?

        /// A property by name, case-insensitively, looking into the line's own keys too.
        func value(_ name: String) -> JSON? {
            let lower = name.lowercased()
            if let index = Self.names.firstIndex(where: { $0.lowercased() == lower }) { return fields[index] }
            return data?.first(where: { $0.0.lowercased() == lower })?.1
        }

        /// The record as a JSON object: lower camelCase keys, the line's object under `data`;
        /// with `properties`, those (the record's own by their camelCase key, the line's by theirs).
        func json(_ properties: [String]?) -> JSON {
            guard let properties else {
                return .object(zip(Self.names.map(JobRender.jsonKey), fields) + (data.map { [("data", JSON.object($0))] } ?? []))
            }
            return .object(properties.map { name in
                let own = Self.names.first { $0.lowercased() == name.lowercased() }
                return (own.map(JobRender.jsonKey) ?? name, value(name) ?? .null)
            })
        }
    }

    private func record(_ chunk: OutputChunk, _ line: [UInt8]) throws(OutputError) {
        let record = Record(
            fields: [
                .int(chunk.jobId), .string(chunk.jobName), .string(chunk.location), .string(chunk.stream.name),
                .string(JobRender.isoTime(chunk.time)), .string(String(decoding: line, as: UTF8.self)),
            ],
            data: JSON.object(parsing: line))
        switch format {
        case .jsonl:
            var bytes: [UInt8] = []
            record.json(properties).write(into: &bytes)
            try emit(bytes + [10], to: 1)
        case .json:
            try emit(Array((openedArray ? ",\n" : "[\n").utf8), to: 1)
            openedArray = true
            try emit(Array(("  " + record.json(properties).text(pretty: true, indent: "  ")).utf8), to: 1)
        case .table where !live && widths == nil:
            gathered.append(record)
            if gathered.count >= Self.tableSample { try writeGathered() }
        default:
            try writeLive(record)
        }
    }

    private var columns: [String] {
        properties ?? (format == .table ? ["JobName", "ComputerName", "Stream", "Text"] : Record.names)
    }

    /// A one-shot table is lined up on its first rows, as PowerShell's Format-Table does: the
    /// rest follow in those columns, so that no output is held whole.
    static let tableSample = 1_000
    private var widths: [Int]?

    private func writeGathered() throws(OutputError) {
        let rows = gathered.map { record in columns.map { JobRender.oneLine(record.value($0)?.plain ?? "") } }
        try emit(Array(JobRender.table(columns: columns, rows: rows).utf8), to: 1)
        widths = columns.indices.map { i in ([columns[i]] + rows.map { $0[i] }).map(\.count).max() ?? 0 }
        gathered.removeAll()
    }

    /// A table row or a list block, as it comes.
    private func writeLive(_ record: Record) throws(OutputError) {
        let values = columns.map { record.value($0)?.plain ?? "" }
        if format == .table, let widths {
            let cells = values.enumerated().map { i, value in
                i == values.count - 1 ? JobRender.oneLine(value) : JobRender.oneLine(value).padded(to: widths[i] + 2)
            }
            var row = cells.joined().trimmingTrailingSpaces()
            if let width = JobRender.terminalWidth, row.count > width { row = String(row.prefix(width - 1)) + "…" }
            try emit(Array((row + "\n").utf8), to: 1)
        } else if format == .table {
            if !printedHeader {
                try emit(Array((columns.joined(separator: "  ") + "\n" + columns.map { String(repeating: "-", count: $0.count) }.joined(separator: "  ") + "\n").utf8), to: 1)
                printedHeader = true
            }
            try emit(Array((values.joined(separator: "  ").trimmingTrailingSpaces() + "\n").utf8), to: 1)
        } else {
            let width = columns.map(\.count).max() ?? 0
            try emit(Array((zip(columns, values).map { "\($0.padded(to: width)) : \($1)" }.joined(separator: "\n") + "\n\n").utf8), to: 1)
        }
    }

    /// Writes the lines begun but not ended (the job may end them later, in another receive).
    func flush() throws(OutputError) {
        let open = pending.sorted { ($0.key.jobId, $0.key.stream.rawValue) < ($1.key.jobId, $1.key.stream.rawValue) }
        pending.removeAll()
        for (_, begun) in open {
            try line(begun.chunk, begun.bytes[...])
            complete[begun.chunk.jobId] = max(complete[begun.chunk.jobId] ?? 0, begun.chunk.end)
        }
        try writeBuffer()
    }

    /// Writes what is left: open lines, the gathered table, the end of the JSON array.
    func finish() throws(OutputError) {
        try flush()
        if !gathered.isEmpty { try writeGathered() }
        if format == .json { try emit(Array((openedArray ? "\n]\n" : "[]\n").utf8), to: 1) }
        try writeBuffer()
    }

    /// What has been written since the last call, as receipts, once it is all out (with
    /// `flushing`; else what is out already, after a write failed). Gathered table rows are
    /// not written until `finish`, and nothing of theirs counts before.
    func receipts(flushing: Bool = true) throws(OutputError) -> [Receipt] {
        guard gathered.isEmpty else { return [] }
        if flushing { try writeBuffer() }
        unreported = 0
        let fresh = written.filter { job, upTo in reported[job].map { upTo > $0 } ?? true }
        for (job, upTo) in fresh { reported[job] = upTo }
        return fresh.sorted { $0.key < $1.key }.map { Receipt(jobId: $0.key, upTo: $0.value) }
    }

    /// Bytes written since the last receipts: about how much a kill now would hand out again.
    private(set) var unreported = 0

    private func emit(_ more: [UInt8], to fd: Int32) throws(OutputError) {
        if fd != bufferFD {
            try writeBuffer()
            bufferFD = fd
        }
        buffer += more
        unreported += more.count
        if buffer.count >= 1 << 16 { try writeBuffer() }
    }

    private func writeBuffer() throws(OutputError) {
        if !buffer.isEmpty {
            defer { buffer.removeAll(keepingCapacity: true) }
            try writeOut(buffer, to: bufferFD)
        }
        written = complete
    }
}

extension OutputStreamKind {
    /// Where this stream goes when written: stdout or stderr.
    var fd: Int32 { self == .output ? 1 : 2 }
}
