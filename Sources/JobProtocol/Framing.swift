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

/// Cuts a byte stream into frames as bytes arrive: the daemon's reading of requests, kept free
/// of any socket so that it can be driven byte by byte (the fuzz target does).
public struct FrameSplitter: Sendable {
    private var buffer: [UInt8] = []
    private var start = 0

    public init() {}

    public enum Step: Sendable, Equatable {
        /// More bytes are needed; `announced` is the length of the frame begun, if its header is in.
        case needMore(announced: Int?)
        case frame([UInt8])
        /// The header announces more than `Framing.maximumSize`: nothing of it is kept.
        case tooLarge(Int)
    }

    public mutating func append(_ bytes: some Collection<UInt8>) {
        buffer.append(contentsOf: bytes)
    }

    /// Bytes held that are not yet part of a frame returned.
    public var pending: Int { buffer.count - start }

    /// The next whole frame's body, if it is all in.
    public mutating func next() -> Step {
        guard pending >= 4 else { return .needMore(announced: nil) }
        let length = Framing.length(ofHeader: Array(buffer[start..<start + 4]))
        guard length <= Framing.maximumSize else { return .tooLarge(length) }
        guard pending >= 4 + length else { return .needMore(announced: length) }
        let body = Array(buffer[(start + 4)..<(start + 4 + length)])
        start += 4 + length
        // What was read goes once it is most of the buffer: no copy per frame of what follows.
        if start > buffer.count / 2 {
            buffer.removeFirst(start)
            start = 0
        }
        return .frame(body)
    }
}
