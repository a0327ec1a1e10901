import Foundation


extension UUID {
    /// A version 4 UUID from the system's generator (getrandom), without the open, read and
    /// close of /dev/urandom that `UUID()` costs here on every call.
    static func random() -> UUID {
        // Two draws of 64 bits: one system call each (drawing byte by byte cost sixteen).
        var generator = SystemRandomNumberGenerator()
        let words: (UInt64, UInt64) = (generator.next(), generator.next())
        var uuid = unsafeBitCast(words, to: uuid_t.self)
        uuid.6 = (uuid.6 & 0x0F) | 0x40
        uuid.8 = (uuid.8 & 0x3F) | 0x80
        return UUID(uuid: uuid)
    }
}
