import FoundationEssentials
import JobModel

/// How messages travel on the socket: a 4-byte big-endian length, then that many bytes of
/// JSON. Both sides refuse frames over `maximumSize`: a bad client must not make the daemon
/// allocate what it likes.
public enum Framing {
    public static let maximumSize = 16 << 20

    public static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let json = try encoder.encode(value)
        var frame = [UInt8](repeating: 0, count: 4)
        let length = UInt32(json.count).bigEndian
        withUnsafeBytes(of: length) { frame.replaceSubrange(0..<4, with: $0) }
        frame.append(contentsOf: json)
        return frame
    }

    public static func decode<T: Decodable>(_ type: T.Type, from body: some Collection<UInt8>) throws -> T {
        try decoder.decode(type, from: Data(body))
    }

    /// The body length announced by a frame header. Not generic: on the client's start-up
    /// path, a generic call across modules costs the runtime a metadata lookup.
    public static func length(ofHeader header: [UInt8]) -> Int {
        var length = 0
        for byte in header.prefix(4) { length = length << 8 | Int(byte) }
        return length
    }

    private static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var c = encoder.singleValueContainer()
            try c.encode(date.timeIntervalSince1970)
        }
        return encoder
    }

    private static var decoder: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            Date(timeIntervalSince1970: try decoder.singleValueContainer().decode(Double.self))
        }
        return decoder
    }
}
