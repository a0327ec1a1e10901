import FoundationEssentials

#if canImport(Glibc)
import Glibc
#endif

extension UUID {
    /// A UUID from its text (`6f1c2d3e-4a5b-…`, either case), read by hand: Foundation's
    /// parser goes through sscanf, which was a tenth of the cost of reading a page of history
    /// (in the daemon, from the database; in the client, from the wire).
    public static func parse(_ text: String) -> UUID? {
        var text = text
        return text.withUTF8 { chars -> UUID? in
            guard chars.count == 36 else { return nil }
            var uuid: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            let ok = withUnsafeMutableBytes(of: &uuid) { bytes -> Bool in
                var index = 0
                var count = 0
                while index < 36 {
                    if index == 8 || index == 13 || index == 18 || index == 23 {
                        guard chars[index] == UInt8(ascii: "-") else { return false }
                        index += 1
                        continue
                    }
                    guard let high = hexValue(chars[index]), let low = hexValue(chars[index + 1]) else { return false }
                    bytes[count] = high << 4 | low
                    count += 1
                    index += 2
                }
                return true
            }
            return ok ? UUID(uuid: uuid) : nil
        }
    }

    private static func hexValue(_ char: UInt8) -> UInt8? {
        switch char {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): char - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): char - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): char - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
