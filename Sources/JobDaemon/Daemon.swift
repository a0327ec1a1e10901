import Foundation
import JobKit
import JobModel
import JobProtocol
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// `jobd`: one engine per home, served on a Unix socket in the home.
///
/// Runs as a `ServiceGroup` of the engine and the socket server: SIGTERM or SIGINT (or a
/// `shutdown` request) shuts it down gracefully, and running jobs keep running for the next
/// daemon.
public enum Daemon {
    public static let version = Release.version

    /// Opens the home (refusing one another daemon holds), binds the socket, and serves until
    /// shut down.
    public static func run(home: JobHome) async throws {
        try FileManager.default.createDirectory(
            atPath: home.path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        // The home is the user's alone: other users may not even look at the socket.
        _ = chmod(home.path, 0o700)
        if let reason = home.distrust() { throw JobError(.refused, reason) }
        guard home.socket.utf8.count < 108 else {
            throw JobError(.invalidArgument, "the home \(home.path) is too long for a Unix socket path; use a shorter --home")
        }
        let engine = try JobManager(home: home.path)
        var logger = Logger(label: "jobd")
        logger.logLevel = .warning
        let (shutdownStream, shutdownContinuation) = AsyncStream.makeStream(of: Void.self)
        let server = SocketServer(
            socketPath: home.socket,
            handlers: Handlers(
                engine: engine,
                status: Handlers.status(of: home, since: Date()),
                requestShutdown: { shutdownContinuation.yield() }
            )
        )
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [EngineService(engine: engine), server],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            ))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            tasks.addTask {
                for await _ in shutdownStream {
                    await group.triggerGracefulShutdown()
                    return
                }
            }
            try await tasks.next()
            shutdownContinuation.finish()
            tasks.cancelAll()
        }
    }
}

/// The engine's run loop as a service; on shutdown the engine lets go of its jobs (they run
/// on) and of the home.
struct EngineService: Service {
    let engine: JobManager

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await engine.run()
        }
        await engine.shutdown()
    }
}
