#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FoundationEssentials
import JobModel

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
