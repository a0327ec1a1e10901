import Foundation
import JobKit
import JobModel
import JobProtocol
import Synchronization

/// The daemon's answer to one request, without a socket: what `SocketServer` does once a
/// request has been read, for a program that drives the handling itself (the fuzz target,
/// `Fuzz/jobd-fuzz`). Shutting down is not for it: `shutdown` is answered and does nothing.
public struct RequestDispatcher: Sendable {
    let handlers: Handlers

    public init(engine: JobManager, home: JobHome) {
        handlers = Handlers(engine: engine, status: Handlers.status(of: home, since: Date()), requestShutdown: {})
    }

    /// Every frame of the answer, the `done` frame last.
    public func answer(_ verb: Verb) async -> [Response] {
        let frames = Mutex<[Response]>([])
        await handlers.handle(verb) { response in frames.withLock { $0.append(response) } }
        return frames.withLock { $0 }
    }
}

extension Handlers {
    /// What `job daemon status` says of a daemon serving `home` since `started`.
    static func status(of home: JobHome, since started: Date) -> @Sendable (Int) -> DaemonStatus {
        { jobs in
            DaemonStatus(
                pid: Int(getpid()), home: home.path, socket: home.socket, version: Release.version,
                uptimeSeconds: Date().timeIntervalSince(started), jobs: jobs)
        }
    }
}
