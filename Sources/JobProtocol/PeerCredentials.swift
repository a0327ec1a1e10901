/// Who is at the other end of a Unix socket, as the kernel says (`SO_PEERCRED`): both sides
/// ask it of each other before anything is sent or kept. `struct ucred`, which Swift's Glibc
/// module does not export.
public struct PeerCredentials: Sendable {
    public var pid: Int32 = 0
    public var uid: UInt32 = 0
    public var gid: UInt32 = 0

    public init() {}
}
