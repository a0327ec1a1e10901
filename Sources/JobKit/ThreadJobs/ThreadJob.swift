import Foundation
import JobModel
import JobOutput
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// What a thread job's closure gets: its identity and the two streams it writes to.
///
/// Output is stored exactly as a process job's is (files and an index, on disk), so
/// `receive` and `wait` treat both kinds alike. Stopping the job cancels the closure's task:
/// check `Task.isCancelled` or call `try Task.checkCancellation()` in long loops.
public struct JobContext: Sendable {
    /// The job's id.
    public let id: Int
    /// The job's name.
    public let name: String
    let writer: OutputWriter

    /// Writes one line (a newline is added) to the job's output stream.
    public func write(_ line: String) throws(JobError) {
        try writer.append(Array((line + "\n").utf8), to: .output)
    }

    /// Writes one line (a newline is added) to the job's error stream.
    public func writeError(_ line: String) throws(JobError) {
        try writer.append(Array((line + "\n").utf8), to: .error)
    }

    /// Writes bytes, unchanged, to one of the job's streams.
    public func write(bytes: [UInt8], to stream: OutputStreamKind) throws(JobError) {
        try writer.append(bytes, to: stream)
    }
}

/// Appends to a job's output files in the supervisor's format, from any task. Like the
/// supervisor, it creates each file only when there is something to put in it.
final class OutputWriter: Sendable {
    private struct Files {
        var streams: [Int32] = [-1, -1]
        var offsets: [UInt64] = [0, 0]
        var index: Int32 = -1
        var closed = false
    }

    private let files = Mutex(Files())
    let prefix: String

    init(prefix: String) {
        self.prefix = prefix
    }

    private func open(_ path: String, flags: Int32 = 0) throws(JobError) -> Int32 {
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | flags, 0o600)
        guard fd >= 0 else { throw JobError(.storage, "cannot create \(path): \(errnoMessage())") }
        return fd
    }

    func append(_ bytes: [UInt8], to stream: OutputStreamKind) throws(JobError) {
        // One record holds at most 4 GiB; a megabyte per record keeps receives incremental.
        var start = 0
        while start < bytes.count {
            let end = min(start + (1 << 20), bytes.count)
            try appendChunk(bytes[start..<end], to: stream)
            start = end
        }
    }

    private func appendChunk(_ bytes: ArraySlice<UInt8>, to stream: OutputStreamKind) throws(JobError) {
        let result: Result<Void, JobError> = files.withLock { f in
            guard !f.closed else { return .failure(JobError(.refused, "the job has ended; its output is closed")) }
            let slot = stream == .output ? 0 : 1
            do throws(JobError) {
                if f.streams[slot] < 0 { f.streams[slot] = try open(OutputFormat.path(prefix: prefix, stream: stream)) }
                if f.index < 0 { f.index = try open(OutputFormat.indexPath(prefix: prefix), flags: O_APPEND) }
            } catch {
                return .failure(error)
            }
            let written = bytes.withUnsafeBytes { pwrite(f.streams[slot], $0.baseAddress, $0.count, off_t(f.offsets[slot])) }
            guard written == bytes.count else {
                return .failure(JobError(.storage, "cannot write the job's output: \(errnoMessage())"))
            }
            let record = OutputFormat.encode(
                OutputRecord(time: Date(), stream: stream, offset: f.offsets[slot], length: UInt32(bytes.count)))
            guard record.withUnsafeBytes({ write(f.index, $0.baseAddress, $0.count) }) == record.count else {
                return .failure(JobError(.storage, "cannot write the job's output index: \(errnoMessage())"))
            }
            f.offsets[slot] += UInt64(bytes.count)
            return .success(())
        }
        try result.get()
    }

    /// Closes the files; later writes fail. Returns how many records were written.
    func close() -> Int {
        files.withLock { f in
            if !f.closed {
                for fd in f.streams + [f.index] where fd >= 0 { Glibc.close(fd) }
                f.closed = true
            }
            return OutputFormat.recordCount(prefix: prefix)
        }
    }

    deinit { _ = close() }
}

/// The body of a thread job.
public typealias JobBody = @Sendable (JobContext) async throws -> Void
