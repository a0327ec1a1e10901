/// How messages travel on the socket: a 4-byte big-endian length, then that many bytes of
/// JSON (see `Wire`). Both sides refuse frames over `maximumSize`: a bad client must not make
/// the daemon allocate what it likes.
public enum Framing {
    public static let maximumSize = 16 << 20

    /// `body` with its length before it.
    public static func frame(_ body: [UInt8]) -> [UInt8] {
        let length = UInt32(body.count)
        var frame: [UInt8] = [UInt8(length >> 24), UInt8((length >> 16) & 0xFF), UInt8((length >> 8) & 0xFF), UInt8(length & 0xFF)]
        frame.reserveCapacity(4 + body.count)
        frame += body
        return frame
    }

    public static func encode(_ request: Request) -> [UInt8] { frame(Wire.encode(request)) }
    public static func encode(_ response: Response) -> [UInt8] { frame(Wire.encode(response)) }

    /// The body length announced by a frame header.
    public static func length(ofHeader header: [UInt8]) -> Int {
        var length = 0
        for byte in header.prefix(4) { length = length << 8 | Int(byte) }
        return length
    }
}
