import CJobKitSystem
import Foundation
import JobKit
import JobModel
import JobProtocol
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Accepts connections on the home's socket; each carries one request and its answer.
/// Connections are served concurrently, each in a child task of the accept loop.
struct SocketServer: Service {
    let socketPath: String
    let handlers: Handlers
    private let load = Load()

    init(socketPath: String, handlers: Handlers) {
        self.socketPath = socketPath
        self.handlers = handlers
    }

    /// Connections being served, and what was served since memory was last given back. A
    /// burst of requests, or one large answer, leaves freed heap that glibc keeps (18 MB after
    /// 10,000 starts and a `wait` on all of them, measured): once the daemon is idle after
    /// such work, it gives that back.
    private final class Load: Sendable {
        private let state = Mutex((active: 0, requests: 0, bytes: 0))

        func begin() {
            state.withLock { $0.active += 1 }
        }

        func end(answered bytes: Int) {
            let trim = state.withLock { s -> Bool in
                s.active -= 1
                s.requests += 1
                s.bytes += bytes
                guard s.active == 0, s.requests >= 256 || s.bytes >= 1 << 20 else { return false }
                s = (0, 0, 0)
                return true
            }
            if trim { jobkit_release_free_memory() }
        }
    }

    func run() async throws {
        // A socket file left by a daemon that crashed: we hold the home's lock, so it is stale.
        unlink(socketPath)
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            // A client may close its side once its request is sent; the answer must still go out.
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .bind(unixDomainSocketPath: socketPath) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        _ = chmod(socketPath, 0o600)
        let ours = Self.inode(socketPath)
        do {
            try await cancelWhenGracefulShutdown {
                try await withThrowingDiscardingTaskGroup { group in
                    try await server.executeThenClose { connections in
                        for try await connection in connections {
                            group.addTask { await serve(connection) }
                        }
                    }
                }
            }
        } catch is CancellationError {
            // Shutting down: stop accepting; answers under way were cancelled with us.
        }
        // Only our own: a home removed and made again under a running daemon has another
        // daemon's socket at this path now.
        if let ours, Self.inode(socketPath) == ours { unlink(socketPath) }
    }

    private static func inode(_ path: String) -> UInt? {
        var info = stat()
        return stat(path, &info) == 0 ? UInt(info.st_ino) : nil
    }

    private func serve(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>) async {
        load.begin()
        let answered = Atomic<Int>(0)
        defer { load.end(answered: answered.load(ordering: .relaxed)) }
        let uid = await peerUID(connection.channel)
        try? await connection.executeThenClose { inbound, outbound in
            let write: @Sendable ([UInt8]) async throws -> Void = { bytes in
                answered.add(bytes.count, ordering: .relaxed)
                try await outbound.write(ByteBuffer(bytes: bytes))
            }
            try await answer(inbound, uid: uid, write: write)
            // A write returns once the bytes are queued, not sent, and closing the channel
            // drops what is still queued: the end of a large answer would be lost. Closing the
            // output first sends everything queued, then shuts the socket for writing.
            try await connection.channel.close(mode: .output).get()
        }
    }

    /// Reads the request and writes the answer.
    private func answer(
        _ inbound: NIOAsyncChannelInboundStream<ByteBuffer>, uid: uid_t?,
        write: @escaping @Sendable ([UInt8]) async throws -> Void
    ) async throws {
        let send: Handlers.Send = { response in try await write(try Framing.encode(response)) }
        // Read before refusing: closing on unread data would reset the client's side and
        // lose the answer.
        let read = await readRequest(inbound, within: .seconds(10))
        guard uid == getuid() else {
            try await send(.done(.failed(JobError(.refused, "this daemon serves user \(getuid()) only"))))
            return
        }
        let request: Request
        switch read {
        case .success(let value): request = value
        case .failure(let error):
            try await send(.done(.failed(error)))
            return
        }
        guard request.version == ProtocolVersion.current else {
            try await send(
                .done(.failed(JobError(.invalidArgument, "protocol version \(request.version) is not \(ProtocolVersion.current): use a job and a jobd of the same release"))))
            return
        }
        guard !request.verb.streams else {
            await handlers.handle(request.verb, send: send)
            return
        }
        // An answer that does not stream goes out in one write with its `done` frame: one
        // trip to the event loop and one read for the client, not one per frame.
        let pending = Mutex<[UInt8]>([])
        await handlers.handle(request.verb) { response in
            let frame = try Framing.encode(response)
            guard case .done = response else {
                pending.withLock { $0 += frame }
                return
            }
            try await write(pending.withLock { $0 } + frame)
        }
    }

    /// Reads the request, giving up after `deadline`: a client that sends half a request and
    /// holds the connection must not hold a handler for ever.
    private func readRequest(_ inbound: NIOAsyncChannelInboundStream<ByteBuffer>, within deadline: Duration) async
        -> Result<Request, JobError>
    {
        await withTaskGroup(of: Result<Request, JobError>?.self) { group in
            group.addTask { await readRequest(inbound) }
            group.addTask {
                try? await Task.sleep(for: deadline)
                return Task.isCancelled ? nil : .failure(JobError(.invalidArgument, "no whole request came within \(deadline)"))
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first ?? .failure(JobError(.unavailable, "the daemon is shutting down"))
        }
    }

    private func readRequest(_ inbound: NIOAsyncChannelInboundStream<ByteBuffer>) async -> Result<Request, JobError> {
        var buffer = ByteBuffer()
        do {
            for try await chunk in inbound {
                var chunk = chunk
                buffer.writeBuffer(&chunk)
                guard buffer.readableBytes >= 4, let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self)
                else { continue }
                guard Int(length) <= Framing.maximumSize else {
                    return .failure(JobError(.invalidArgument, "request of \(length) bytes refused: the limit is \(Framing.maximumSize)"))
                }
                guard buffer.readableBytes >= 4 + Int(length) else { continue }
                let body = buffer.getBytes(at: buffer.readerIndex + 4, length: Int(length)) ?? []
                do {
                    return .success(try Framing.decode(Request.self, from: body))
                } catch {
                    return .failure(JobError(.invalidArgument, "malformed request: \(Self.oneLine(error))"))
                }
            }
        } catch {
            return .failure(JobError(.invalidArgument, "the request could not be read: \(error)"))
        }
        return .failure(JobError(.invalidArgument, "truncated request: the connection ended before a whole frame came"))
    }

    /// `struct ucred`, which Swift's Glibc module does not export.
    private struct PeerCredentials: Sendable {
        var pid: Int32 = 0
        var uid: UInt32 = 0
        var gid: UInt32 = 0
    }

    /// The user at the other end of the socket, as the kernel says (SO_PEERCRED).
    private func peerUID(_ channel: any Channel) async -> uid_t? {
        guard let provider = channel as? any SocketOptionProvider else { return nil }
        let credentials: PeerCredentials? = try? await provider.unsafeGetSocketOption(
            level: .socket, name: NIOBSDSocket.Option(rawValue: SO_PEERCRED)
        ).get()
        return credentials?.uid
    }

    static func oneLine(_ error: any Error) -> String {
        String(describing: error).split(whereSeparator: \.isNewline).joined(separator: " ")
    }
}
