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
                // On the connection's event loop: the peer's user and the request's deadline
                // are had here, where they cost no trip from the handler's thread and back.
                let deadline = RequestDeadline()
                // Weak, and cancelled once the request is in: a burst of requests must not keep
                // thousands of closed channels alive for 10 s.
                let timer = channel.eventLoop.scheduleTask(in: Self.requestTimeout) { [weak channel] in
                    guard deadline.expire() else { return }
                    channel?.close(mode: .input, promise: nil)
                }
                return Self.peer(channel).flatMapThrowing { peer in
                    Connection(
                        channel: try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel),
                        uid: peer?.uid, pid: peer?.pid, deadline: deadline, timer: timer)
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

    /// A request must come whole within this, or the connection is answered with an error: a
    /// client that sends half a request and holds the connection must not hold a handler.
    static let requestTimeout = TimeAmount.seconds(10)

    /// An accepted connection, with what was learnt of it on its event loop.
    struct Connection: Sendable {
        let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        let uid: uid_t?
        /// The client's process, for what the daemon opens of it (`job start --stdin`).
        let pid: pid_t?
        let deadline: RequestDeadline
        let timer: Scheduled<Void>

        /// Once the request has been read (or its reading failed): whether it came in time.
        /// The timer is no longer needed either way.
        func requestCameInTime() -> Bool {
            timer.cancel()
            return deadline.arrived()
        }

        /// Whether the time ran out (and the input was ended), deciding nothing.
        var deadlinePassed: Bool { deadline.hasExpired }
    }

    /// Whether a connection's request came before its deadline, decided once by whichever is
    /// first: the request read whole, or the timer, which then ends the connection's input.
    final class RequestDeadline: Sendable {
        /// 0: undecided; 1: the request came; 2: the time ran out.
        private let state = Atomic<Int>(0)

        /// True when the request came in time.
        func arrived() -> Bool {
            state.compareExchange(expected: 0, desired: 1, ordering: .acquiringAndReleasing).original != 2
        }

        var hasExpired: Bool { state.load(ordering: .acquiring) == 2 }

        /// True when the time ran out first.
        func expire() -> Bool {
            state.compareExchange(expected: 0, desired: 2, ordering: .acquiringAndReleasing).exchanged
        }
    }

    private func serve(_ connection: Connection) async {
        load.begin()
        let answered = Atomic<Int>(0)
        defer { load.end(answered: answered.load(ordering: .relaxed)) }
        try? await connection.channel.executeThenClose { inbound, outbound in
            let write: @Sendable ([UInt8]) async throws -> Void = { bytes in
                answered.add(bytes.count, ordering: .relaxed)
                try await outbound.write(ByteBuffer(bytes: bytes))
            }
            try await answer(inbound, of: connection, write: write)
            // A write returns once the bytes are queued, not sent, and closing the channel
            // drops what is still queued: the end of a large answer would be lost. Closing the
            // output first sends everything queued, then shuts the socket for writing.
            try await connection.channel.channel.close(mode: .output).get()
        }
    }

    /// Reads the request and writes the answer.
    private func answer(
        _ inbound: NIOAsyncChannelInboundStream<ByteBuffer>, of connection: Connection,
        write: @escaping @Sendable ([UInt8]) async throws -> Void
    ) async throws {
        let send: Handlers.Send = { response in try await write(Framing.encode(response)) }
        var input = inbound.makeAsyncIterator()
        let late = JobError(.invalidArgument, "no whole request came within \(Self.requestTimeout.nanoseconds / 1_000_000_000) s")
        // Whoever it is, before a byte of theirs is kept.
        guard connection.uid == getuid() else {
            try await refuse(JobError(.refused, "this daemon serves user \(getuid()) only"), connection, &input, send)
            return
        }
        var frames = FrameReader(budget: budget)
        let request: Request
        switch await frames.nextRequest(&input) {
        case .success(let value?):
            guard connection.requestCameInTime() else {
                try await send(.done(.failed(late)))
                return
            }
            request = value
        case .success(nil):
            try await refuse(connection.deadlinePassed ? late : FrameReader.truncated, connection, &input, send)
            return
        case .failure(let error):
            try await refuse(connection.deadlinePassed ? late : error, connection, &input, send)
            return
        }
        guard request.verb.takesReceipts else {
            await handle(request.verb, client: connection.pid, write: write, send: send)
            return
        }
        // The reader says what it has written while (and after) the answer goes out: the
        // receipts are read here as the handler writes, until the client closes.
        let receipts = ReceiptLedger()
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { await handle(request.verb, client: connection.pid, write: write, send: send, receipts: receipts) }
            defer { receipts.close() }
            while case .success(let next?) = await frames.nextRequest(&input) {
                guard case .received(let list) = next.verb else { break }
                try? await handlers.engine.markReceived(list)
                receipts.add(list)
            }
            // Whatever else comes is not read: closing drops it.
        }
    }

    /// The answer to one request: one that streams frame by frame, the others in one write
    /// with their `done` frame (one trip to the event loop and one read for the client, not
    /// one per frame).
    private func handle(
        _ verb: Verb, client: pid_t?, write: @escaping @Sendable ([UInt8]) async throws -> Void, send: @escaping Handlers.Send,
        receipts: ReceiptLedger? = nil
    ) async {
        guard !verb.streams else {
            await handlers.handle(verb, receipts: receipts, client: client, send: send)
            return
        }
        // A long answer (a listing of 100,000 jobs) still goes out as it is made, a MiB at a time.
        let pending = Mutex<[UInt8]>([])
        await handlers.handle(verb, receipts: receipts, client: client) { response in
            let frame = Framing.encode(response)
            guard case .done = response else {
                let full: [UInt8]? = pending.withLock { bytes in
                    bytes += frame
                    guard bytes.count >= 1 << 20 else { return nil }
                    defer { bytes = [] }
                    return bytes
                }
                if let full { try await write(full) }
                return
            }
            try await write(pending.withLock { $0 } + frame)
        }
    }

    /// Answers with the error, then reads what the client still sends and drops it, until it
    /// closes or the request's time is up (the timer ends the input): closing on unread data
    /// would reset the client's side and lose the answer, and keeping it would let anyone fill
    /// the daemon's memory.
    private func refuse(
        _ error: JobError, _ connection: Connection, _ input: inout NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator,
        _ send: Handlers.Send
    ) async throws {
        try await send(.done(.failed(error)))
        while (try? await input.next()) != nil {}
        _ = connection.requestCameInTime()
    }

    /// Bytes of requests being read, of all connections together: a request that would take
    /// more is refused, not buffered.
    private let budget = RequestBudget(bytes: 4 * Framing.maximumSize)

    /// The user at the other end of the socket, as the kernel says (SO_PEERCRED). Called on
    /// the channel's event loop, where the answer is there at once.
    private static func peer(_ channel: any Channel) -> EventLoopFuture<PeerCredentials?> {
        guard let provider = channel as? any SocketOptionProvider else { return channel.eventLoop.makeSucceededFuture(nil) }
        let credentials: EventLoopFuture<PeerCredentials> = provider.unsafeGetSocketOption(
            level: .socket, name: NIOBSDSocket.Option(rawValue: SO_PEERCRED))
        return credentials.map { Optional($0) }.recover { _ in nil }
    }
}

/// Reads request frames off a connection, one after another, each taking from the shared
/// budget while it is being read.
struct FrameReader {
    let budget: RequestBudget
    private var splitter = FrameSplitter()

    init(budget: RequestBudget) { self.budget = budget }

    static let truncated = JobError(.invalidArgument, "truncated request: the connection ended before a whole frame came")

    /// The next request; nil when the connection ended between frames (or before the first).
    mutating func nextRequest(_ input: inout NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator) async -> Result<Request?, JobError> {
        var reserved = 0
        defer { budget.release(reserved) }
        do {
            while true {
                switch splitter.next() {
                case .frame(let body):
                    return Result { () throws(JobError) in try Wire.decodeRequest(body) }
                case .tooLarge(let length):
                    return .failure(JobError(.invalidArgument, "request of \(length) bytes refused: the limit is \(Framing.maximumSize)"))
                case .needMore(let announced):
                    if let announced, reserved == 0 {
                        guard budget.reserve(announced) else {
                            return .failure(
                                JobError(.unavailable, "the daemon is reading too many large requests at once; try again in a moment"))
                        }
                        reserved = announced
                    }
                }
                guard let chunk = try await input.next() else {
                    return splitter.pending == 0 ? .success(nil) : .failure(Self.truncated)
                }
                splitter.append(chunk.readableBytesView)
            }
        } catch {
            return .failure(JobError(.invalidArgument, "the request could not be read: \(error)"))
        }
    }
}

/// What the reader of one receive has said it wrote, for the handler that waits for it
/// before removing the jobs (`--auto-remove`): a job whose output was not all written stays.
final class ReceiptLedger: Sendable {
    private let state = Mutex<(upTo: [Int: Int], closed: Bool, waiters: [CheckedContinuation<Void, Never>])>(([:], false, []))

    func add(_ receipts: [Receipt]) {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            for receipt in receipts { s.upTo[receipt.jobId] = max(s.upTo[receipt.jobId] ?? 0, receipt.upTo) }
            defer { s.waiters = [] }
            return s.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// No more receipts will come: the client closed.
    func close() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.closed = true
            defer { s.waiters = [] }
            return s.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Waits until the reader has said it wrote each job's output up to `sent`; false if it
    /// closed before.
    func waitFor(_ sent: [Int: Int]) async -> Bool {
        while true {
            if let decided = state.withLock({ Self.decision($0, sent) }) { return decided }
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    if Self.decision(s, sent) != nil { return true }
                    s.waiters.append(continuation)
                    return false
                }
                if now { continuation.resume() }
            }
        }
    }

    private static func decision(_ s: (upTo: [Int: Int], closed: Bool, waiters: [CheckedContinuation<Void, Never>]), _ sent: [Int: Int]) -> Bool? {
        if sent.allSatisfy({ s.upTo[$0.key] ?? 0 >= $0.value }) { return true }
        return s.closed ? false : nil
    }
}

/// A budget of bytes shared by every connection.
final class RequestBudget: Sendable {
    private let left: Atomic<Int>

    init(bytes: Int) { left = Atomic(bytes) }

    /// Takes `bytes` of the budget if that many are left.
    func reserve(_ bytes: Int) -> Bool {
        var current = left.load(ordering: .relaxed)
        while current >= bytes {
            let (exchanged, original) = left.compareExchange(
                expected: current, desired: current - bytes, ordering: .acquiringAndReleasing)
            if exchanged { return true }
            current = original
        }
        return false
    }

    func release(_ bytes: Int) {
        if bytes > 0 { left.add(bytes, ordering: .relaxed) }
    }
}
