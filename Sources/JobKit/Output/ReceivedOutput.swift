import CJobKitSystem
import Foundation
import JobModel
import JobOutput

#if canImport(Glibc)
import Glibc
#endif


/// What one receive hands out: slices of output files, and the reasons of failed jobs.
public struct ReceivedOutput: Sendable, Equatable {
    public var slices: [OutputSlice] = []
    public var failures: [JobFailure] = []

    public init(slices: [OutputSlice] = [], failures: [JobFailure] = []) {
        self.slices = slices
        self.failures = failures
    }

    /// Reads every chunk. This holds all the output in memory: for small outputs and tests;
    /// stream large ones with `OutputSliceReader` or `copy(output:error:)`.
    public func chunks(coalesce: Bool = true) throws(JobError) -> [OutputChunk] {
        var result: [OutputChunk] = []
        for slice in slices {
            let reader = try OutputSliceReader(slice: slice, coalesce: coalesce)
            while let chunk = try reader.nextChunk() { result.append(chunk) }
        }
        return result
    }

    /// The bytes of one stream (all jobs, in order), read into memory.
    public func data(_ stream: OutputStreamKind = .output) throws(JobError) -> [UInt8] {
        try chunks().filter { $0.stream == stream }.flatMap(\.data)
    }

    /// Copies the output stream to `output` and the error stream to `error`, in order, one
    /// chunk at a time.
    public func copy(output: Int32, error: Int32) throws(JobError) {
        for slice in slices {
            let reader = try OutputSliceReader(slice: slice)
            while let chunk = try reader.nextChunk() {
                let fd = chunk.stream == .output ? output : error
                var done = 0
                while done < chunk.data.count {
                    let n = chunk.data.withUnsafeBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
                    if n < 0 && errno == EINTR { continue }
                    guard n > 0 else { throw JobError(.storage, "cannot write output: \(errnoMessage())") }
                    done += n
                }
            }
        }
    }
}
