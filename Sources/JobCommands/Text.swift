import FoundationEssentials
import JobProtocol

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

/// A number with `places` (0 or 1) decimals, as progress and uptime show it.
func decimal(_ value: Double, places: Int) -> String {
    guard places > 0 else { return String(Int(value.rounded())) }
    let tenths = Int((value * 10).rounded())
    return "\(tenths / 10).\(abs(tenths % 10))"
}
