#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FoundationEssentials
import CJobKitSystem
import JobModel

/// The on-disk layout of one job's output, which the supervisor (C) writes and the engine and
/// any client allowed to read it read: the record is `jobkit_index_record` of jobkit_abi.h,
/// the one definition of it.
///
/// A job's files are named by a prefix, `<jobs dir>/<id>`: `<prefix>.stdout` and
/// `<prefix>.stderr` (each stream's bytes, unchanged) and `<prefix>.index`: one record per
/// chunk, in the order the chunks were read, so that the two streams stay apart but their
/// relative order is kept, with `offset` into that stream's file. Data is written before its
/// record. A file exists only once something was written to it: a job that prints nothing
/// has none.
public enum OutputFormat {
    public static let recordSize = MemoryLayout<jobkit_index_record>.size

    public static func path(prefix: String, stream: OutputStreamKind) -> String {
        prefix + (stream == .output ? ".stdout" : ".stderr")
    }

    public static func indexPath(prefix: String) -> String { prefix + ".index" }

    /// Encodes a record as the supervisor does.
    public static func encode(_ record: OutputRecord) -> [UInt8] {
        var raw = jobkit_index_record()
        raw.time_ns = Int64((record.time.timeIntervalSince1970 * 1e9).rounded())
        raw.offset = record.offset
        raw.length = record.length
        raw.stream = record.stream.rawValue
        return withUnsafeBytes(of: &raw) { Array($0) }
    }

    /// Decodes the record at `offset` in `buffer`; nil for a record no writer would produce.
    public static func decode(_ buffer: UnsafeRawBufferPointer, at offset: Int) -> OutputRecord? {
        let raw = buffer.loadUnaligned(fromByteOffset: offset, as: jobkit_index_record.self)
        guard let stream = OutputStreamKind(rawValue: raw.stream) else { return nil }
        return OutputRecord(
            time: Date(timeIntervalSince1970: Double(raw.time_ns) / 1e9), stream: stream, offset: raw.offset,
            length: raw.length)
    }

    /// How many bytes of each stream the job's index records (what readers see of it).
    public static func streamLengths(prefix: String) -> (output: Int, error: Int) {
        let fd = open(indexPath(prefix: prefix), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return (0, 0) }
        defer { close(fd) }
        var output = 0, error = 0
        var buffer = [UInt8](repeating: 0, count: recordSize * 4_096)
        var carry = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + carry, $0.count - carry) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            let have = carry + n
            let whole = have - have % recordSize
            buffer.withUnsafeBytes { raw in
                for offset in stride(from: 0, to: whole, by: recordSize) {
                    guard let record = decode(raw, at: offset) else { continue }
                    if record.stream == .output { output += Int(record.length) } else { error += Int(record.length) }
                }
            }
            carry = have - whole
            if carry > 0 { buffer.replaceSubrange(0..<carry, with: buffer[whole..<have]) }
        }
        return (output, error)
    }

    /// How many complete records the job's index holds now.
    public static func recordCount(prefix: String) -> Int {
        var st = stat()
        guard stat(indexPath(prefix: prefix), &st) == 0 else { return 0 }
        return Int(st.st_size) / recordSize
    }
}
