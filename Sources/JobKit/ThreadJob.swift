import Foundation
import JobModel
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

/// Appends to a job's output files in the supervisor's format, from any task.
final class OutputWriter: Sendable {
    private struct Files {
        var fds: [Int32]
        var offsets: [UInt64] = [0, 0]
        var index: Int32
    }

    private let files: Mutex<Files?>
    let directory: String

    init(directory: String) throws(JobError) {
        self.directory = directory
        let open = { (name: String) in Glibc.open(directory + "/" + name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600) }
        let fds = [open("stdout"), open("stderr")]
        let index = open(OutputFormat.indexFile)
        guard fds.allSatisfy({ $0 >= 0 }), index >= 0 else {
            let message = errnoMessage()
            for fd in fds + [index] where fd >= 0 { Glibc.close(fd) }
            throw JobError(.storage, "cannot create the output files in \(directory): \(message)")
        }
        files = Mutex(Files(fds: fds, index: index))
    }

    func append(_ bytes: [UInt8], to stream: OutputStreamKind) throws(JobError) {
        guard !bytes.isEmpty else { return }
        let result: Result<Void, JobError> = files.withLock { files in
            guard var f = files else { return .failure(JobError(.refused, "the job has ended; its output is closed")) }
            let slot = stream == .output ? 0 : 1
            let written = bytes.withUnsafeBytes { pwrite(f.fds[slot], $0.baseAddress, $0.count, off_t(f.offsets[slot])) }
            guard written == bytes.count else {
                return .failure(JobError(.storage, "cannot write the job's output: \(errnoMessage())"))
            }
            let record = OutputFormat.encode(
                OutputRecord(time: Date(), stream: stream, offset: f.offsets[slot], length: UInt32(bytes.count)))
            guard record.withUnsafeBytes({ write(f.index, $0.baseAddress, $0.count) }) == record.count else {
                return .failure(JobError(.storage, "cannot write the job's output index: \(errnoMessage())"))
            }
            f.offsets[slot] += UInt64(bytes.count)
            files = f
            return .success(())
        }
        try result.get()
    }

    /// Closes the files; later writes fail. Returns how many records were written.
    func close() -> Int {
        files.withLock { files in
            guard let f = files else { return 0 }
            for fd in f.fds + [f.index] { Glibc.close(fd) }
            files = nil
            return OutputFormat.recordCount(directory: directory)
        }
    }

    deinit { _ = close() }
}

/// The body of a thread job.
public typealias JobBody = @Sendable (JobContext) async throws -> Void
