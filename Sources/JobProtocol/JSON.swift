/// A JSON value, with an object's keys in the order given (the wire's and the contract's order).
///
/// Hand-made, not Codable: the wire is read and written by one codec (`Wire`) that the CLI's
/// every command, the daemon and the tests share, and Codable's first use costs `job`
/// milliseconds of runtime metadata lookups at start-up (measured). JSONSerialization would
/// pull all of Foundation, and its ICU data, into the CLI.
public enum JSON: Equatable, Sendable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSON])
    case object([(String, JSON)])

    public static func == (a: JSON, b: JSON) -> Bool { a.bytes() == b.bytes() }

    /// Compact JSON, as the wire carries it: no blank between tokens, keys in their order.
    public func bytes() -> [UInt8] {
        var out: [UInt8] = []
        write(into: &out)
        return out
    }

    public func write(into out: inout [UInt8]) {
        switch self {
        case .null: out += Self.nullBytes
        case .bool(let b): out += b ? Self.trueBytes : Self.falseBytes
        case .int(let i): out += String(i).utf8
        case .double(let d): out += d.isFinite ? Array(Self.number(d).utf8) : Self.nullBytes
        case .string(let s): Self.writeQuoted(s, into: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (index, item) in items.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                item.write(into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let fields):
            out.append(UInt8(ascii: "{"))
            for (index, (key, value)) in fields.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                Self.writeQuoted(key, into: &out)
                out.append(UInt8(ascii: ":"))
                value.write(into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// The text a person reads: compact, or indented by two spaces per level.
    public func text(pretty: Bool, indent: String = "") -> String {
        guard pretty else { return String(decoding: bytes(), as: UTF8.self) }
        let inner = indent + "  "
        switch self {
        case .array(let items) where !items.isEmpty:
            return "[\n" + items.map { inner + $0.text(pretty: true, indent: inner) }.joined(separator: ",\n") + "\n" + indent + "]"
        case .object(let fields) where !fields.isEmpty:
            return "{\n" + fields.map { inner + Self.quote($0.0) + ": " + $0.1.text(pretty: true, indent: inner) }
                .joined(separator: ",\n") + "\n" + indent + "}"
        default:
            return text(pretty: false)
        }
    }

    /// A whole-valued double as an integer (`5`, not `5.0`), else the shortest form that reads
    /// back the same.
    static func number(_ d: Double) -> String {
        if d == d.rounded(), abs(d) < 1e15 { return String(Int64(d)) }
        return String(d)
    }

    public static func quote(_ s: String) -> String {
        var out: [UInt8] = []
        writeQuoted(s, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    private static let nullBytes = Array("null".utf8)
    private static let trueBytes = Array("true".utf8)
    private static let falseBytes = Array("false".utf8)
    private static let hexDigits = Array("0123456789abcdef".utf8)

    static func writeQuoted(_ s: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        // Most text needs no escape: then it goes in at once, not byte by byte.
        if !s.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            out.append(contentsOf: s.utf8)
            out.append(UInt8(ascii: "\""))
            return
        }
        for byte in s.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case 0x0A: out += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case 0x0D: out += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case 0x09: out += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0x08: out += [UInt8(ascii: "\\"), UInt8(ascii: "b")]
            case 0x0C: out += [UInt8(ascii: "\\"), UInt8(ascii: "f")]
            case 0..<0x20:
                out += Array("\\u00".utf8)
                out += [hexDigits[Int(byte >> 4)], hexDigits[Int(byte & 0xF)]]
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// The value as a table or list cell shows it.
    public var plain: String {
        switch self {
        case .null: ""
        case .string(let s): s
        default: text(pretty: false)
        }
    }

    public subscript(key: String) -> JSON? {
        if case .object(let fields) = self { return fields.first { $0.0 == key }?.1 }
        return nil
    }

    public var int: Int? {
        switch self {
        case .int(let i): i
        case .double(let d): d == d.rounded() && abs(d) < 1e18 ? Int(d) : nil
        default: nil
        }
    }
    public var double: Double? {
        switch self {
        case .int(let i): Double(i)
        case .double(let d): d
        default: nil
        }
    }
    public var string: String? { if case .string(let s) = self { return s }; return nil }
    public var bool: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var isNull: Bool { if case .null = self { return true }; return false }
    /// An array's items; nil for anything else.
    public var array: [JSON]? { if case .array(let a) = self { return a }; return nil }
    /// An object's fields; nil for anything else.
    public var fields: [(String, JSON)]? { if case .object(let f) = self { return f }; return nil }
}
