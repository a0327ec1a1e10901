#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FoundationEssentials
import JobModel

/// Reads a slice chunk by chunk, holding at most one chunk (plus a batch of index records) in
/// memory, whatever the size of the output.
public final class OutputSliceReader {
    public let slice: OutputSlice
    private let indexFD: Int32
    private let streamFDs: [Int32]
    private var next: Int
    private var batch: [OutputRecord] = []
    private var batchPosition = 0
    /// The index of the next record a chunk would start with.
    public private(set) var position: Int
    private let maxChunk: Int
    private let coalesce: Bool

    /// - Parameters:
    ///   - maxChunk: the most bytes one chunk may hold.
    ///   - coalesce: join records of the same stream that follow each other into one chunk
    ///     (for raw copying); off, every record is one chunk with its own time.
    public init(slice: OutputSlice, maxChunk: Int = 1 << 20, coalesce: Bool = true) throws(JobError) {
        self.slice = slice
        self.next = slice.start
        self.position = slice.start
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
            position += 1
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
        // A record that does not decode is skipped, and counted as read.
        position = next + 1 + (records - batch.count)
        next += records
        batchPosition = 1
        return batch.first
    }

    private func peekRecord() throws(JobError) -> OutputRecord? {
        guard let record = try nextRecord() else { return nil }
        batchPosition -= 1
        position -= 1
        return record
    }

    /// The next chunk, or nil at the end of the slice.
    public func nextChunk() throws(JobError) -> OutputChunk? {
        let start = position
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
            jobId: slice.jobId, jobName: slice.jobName, location: slice.location, origin: slice.origin, stream: first.stream,
            time: first.time, data: data, start: start, end: position)
    }

}
