#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FoundationEssentials

/// The on-disk layout of one job's output, shared by the supervisor (which writes it, in C),
/// the engine, and any client allowed to read it directly.
///
/// A job's files are named by a prefix, `<jobs dir>/<id>`: `<prefix>.stdout` and
/// `<prefix>.stderr` (each stream's bytes, unchanged) and `<prefix>.index`: one 24-byte record
/// per chunk, in the order the chunks were read, so that the two streams stay apart but
/// their relative order is kept. A record is
/// `{ int64 time_ns; uint64 offset; uint32 length; uint8 stream; uint8 reserved[3] }`,
/// little-endian, with `offset` into that stream's file. Data is written before its record.
/// A file exists only once something was written to it: a job that prints nothing has none.
public enum OutputFormat {
    public static let recordSize = 24

    public static func path(prefix: String, stream: OutputStreamKind) -> String {
        prefix + (stream == .output ? ".stdout" : ".stderr")
    }

    public static func indexPath(prefix: String) -> String { prefix + ".index" }

    /// Encodes a record as the supervisor does.
    public static func encode(_ record: OutputRecord) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: recordSize)
        let ns = Int64((record.time.timeIntervalSince1970 * 1e9).rounded())
        withUnsafeBytes(of: ns.littleEndian) { bytes.replaceSubrange(0..<8, with: $0) }
        withUnsafeBytes(of: record.offset.littleEndian) { bytes.replaceSubrange(8..<16, with: $0) }
        withUnsafeBytes(of: record.length.littleEndian) { bytes.replaceSubrange(16..<20, with: $0) }
        bytes[20] = record.stream.rawValue
        return bytes
    }

    /// Decodes the record at `offset` in `buffer`; nil for a record no writer would produce.
    public static func decode(_ buffer: UnsafeRawBufferPointer, at offset: Int) -> OutputRecord? {
        let ns = Int64(littleEndian: buffer.loadUnaligned(fromByteOffset: offset, as: Int64.self))
        let dataOffset = UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self))
        let length = UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: offset + 16, as: UInt32.self))
        guard let stream = OutputStreamKind(rawValue: buffer[offset + 20]) else { return nil }
        return OutputRecord(
            time: Date(timeIntervalSince1970: Double(ns) / 1e9), stream: stream, offset: dataOffset, length: length)
    }

    /// How many complete records the job's index holds now.
    public static func recordCount(prefix: String) -> Int {
        var st = stat()
        guard stat(indexPath(prefix: prefix), &st) == 0 else { return 0 }
        return Int(st.st_size) / recordSize
    }
}

/// One chunk of a stream, as read by the supervisor at one time.
public struct OutputRecord: Sendable, Equatable {
    public var time: Date
    public var stream: OutputStreamKind
    /// Where the chunk starts in its stream's file.
    public var offset: UInt64
    public var length: UInt32

    public init(time: Date, stream: OutputStreamKind, offset: UInt64, length: UInt32) {
        self.time = time
        self.stream = stream
        self.offset = offset
        self.length = length
    }
}

/// A range of one job's output records: what a receive hands out. It names files, not bytes,
/// so that handing out 10 GB costs nothing until someone reads it.
public struct OutputSlice: Sendable, Equatable {
    public var jobId: Int
    public var jobName: String
    /// The job's computer, for `--prefix` and `ComputerName`.
    public var location: String
    /// Where the job's files are: `<prefix>.stdout`, `<prefix>.stderr`, `<prefix>.index`.
    public var prefix: String
    /// The first record in the range.
    public var start: Int
    /// One past the last record in the range.
    public var end: Int

    public init(jobId: Int, jobName: String, location: String, prefix: String, start: Int, end: Int) {
        self.jobId = jobId
        self.jobName = jobName
        self.location = location
        self.prefix = prefix
        self.start = start
        self.end = end
    }

    public var isEmpty: Bool { start >= end }
}

/// A failed job met by a receive: its Reason goes to the error stream, every time.
public struct JobFailure: Sendable, Equatable {
    public var jobId: Int
    public var jobName: String
    public var location: String
    public var reason: String

    public init(jobId: Int, jobName: String, location: String, reason: String) {
        self.jobId = jobId
        self.jobName = jobName
        self.location = location
        self.reason = reason
    }
}

/// Bytes of one stream of one job, with when they were read.
public struct OutputChunk: Sendable, Equatable {
    public var jobId: Int
    public var jobName: String
    public var location: String
    public var stream: OutputStreamKind
    public var time: Date
    public var data: [UInt8]

    public init(jobId: Int, jobName: String, location: String, stream: OutputStreamKind, time: Date, data: [UInt8]) {
        self.jobId = jobId
        self.jobName = jobName
        self.location = location
        self.stream = stream
        self.time = time
        self.data = data
    }
}

/// Reads a slice chunk by chunk, holding at most one chunk (plus a batch of index records) in
/// memory, whatever the size of the output.
public final class OutputSliceReader {
    public let slice: OutputSlice
    private let indexFD: Int32
    private let streamFDs: [Int32]
    private var next: Int
    private var batch: [OutputRecord] = []
    private var batchPosition = 0
    private let maxChunk: Int
    private let coalesce: Bool

    /// - Parameters:
    ///   - maxChunk: the most bytes one chunk may hold.
    ///   - coalesce: join records of the same stream that follow each other into one chunk
    ///     (for raw copying); off, every record is one chunk with its own time.
    public init(slice: OutputSlice, maxChunk: Int = 1 << 20, coalesce: Bool = true) throws(JobError) {
        self.slice = slice
        self.next = slice.start
        self.maxChunk = maxChunk
        self.coalesce = coalesce
        let index = open(OutputFormat.indexPath(prefix: slice.prefix), O_RDONLY | O_CLOEXEC)
        guard index >= 0 || slice.isEmpty else {
            throw JobError(.storage, "cannot read the output of job \(slice.jobId): \(String(cString: strerror(errno)))")
        }
        indexFD = index
        streamFDs = [OutputStreamKind.output, .error].map {
            open(OutputFormat.path(prefix: slice.prefix, stream: $0), O_RDONLY | O_CLOEXEC)
        }
    }

    deinit {
        if indexFD >= 0 { close(indexFD) }
        for fd in streamFDs where fd >= 0 { close(fd) }
    }

    private func nextRecord() throws(JobError) -> OutputRecord? {
        if batchPosition < batch.count {
            defer { batchPosition += 1 }
            return batch[batchPosition]
        }
        guard next < slice.end else { return nil }
        let count = min(slice.end - next, 4096)
        var buffer = [UInt8](repeating: 0, count: count * OutputFormat.recordSize)
        let got = buffer.withUnsafeMutableBytes {
            pread(indexFD, $0.baseAddress, $0.count, off_t(next * OutputFormat.recordSize))
        }
        guard got >= OutputFormat.recordSize else {
            throw JobError(.storage, "the output index of job \(slice.jobId) is shorter than recorded")
        }
        let records = got / OutputFormat.recordSize
        batch = buffer.withUnsafeBytes { raw in
            (0..<records).compactMap { OutputFormat.decode(raw, at: $0 * OutputFormat.recordSize) }
        }
        next += records
        batchPosition = 1
        return batch.first
    }

    private func peekRecord() throws(JobError) -> OutputRecord? {
        guard let record = try nextRecord() else { return nil }
        batchPosition -= 1
        return record
    }

    /// The next chunk, or nil at the end of the slice.
    public func nextChunk() throws(JobError) -> OutputChunk? {
        guard let first = try nextRecord() else { return nil }
        var length = Int(first.length)
        if coalesce {
            while length < maxChunk, let following = try peekRecord(), following.stream == first.stream,
                following.offset == first.offset + UInt64(length), length + Int(following.length) <= maxChunk
            {
                length += Int(following.length)
                _ = try nextRecord()
            }
        }
        var data = [UInt8](repeating: 0, count: length)
        let fd = streamFDs[first.stream == .output ? 0 : 1]
        var done = 0
        while done < length {
            let n = data.withUnsafeMutableBytes {
                pread(fd, $0.baseAddress! + done, length - done, off_t(first.offset) + off_t(done))
            }
            guard n > 0 else {
                throw JobError(.storage, "the \(first.stream.name) of job \(slice.jobId) is shorter than its index says")
            }
            done += n
        }
        return OutputChunk(
            jobId: slice.jobId, jobName: slice.jobName, location: slice.location, stream: first.stream,
            time: first.time, data: data)
    }
}
