import FoundationEssentials
import JobProtocol

#if canImport(Glibc)
import Glibc
#endif

extension JSON {
    /// Parses a line that holds one JSON object, keys in their order; nil for anything else.
    static func object(parsing bytes: [UInt8]) -> [(String, JSON)]? {
        guard bytes.first == UInt8(ascii: "{") else { return nil }
        return JSONParser.parse(bytes)?.fields
    }
}

extension String {
    /// Pads with spaces to `width` characters (never cuts).
    func padded(to width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }

    /// Without leading and trailing white space.
    var trimmed: String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
            let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })
        else { return "" }
        return String(scalars[first...last])
    }
}

/// Writes all of `bytes` to a descriptor (stdout 1, stderr 2).
func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return }
        done += n
    }
}

/// A number with `places` (0 or 1) decimals, as progress and uptime show it.
func decimal(_ value: Double, places: Int) -> String {
    guard places > 0 else { return String(Int(value.rounded())) }
    let tenths = Int((value * 10).rounded())
    return "\(tenths / 10).\(abs(tenths % 10))"
}
