import Foundation
import JobKit
import JobModel
import JobProtocol

/// `job invoke`: a parent with a child per computer.
extension Handlers {
    func invoke(_ p: InvokeParameters, send: Send) async throws -> Outcome {
        guard !p.start.stdin else { throw JobError(.invalidArgument, "stdin is handed on by 'start' only, not 'invoke'") }
        if let sessions = p.sessions { return try await invokeInSessions(p, sessions: sessions, send: send) }
        let options = InvokeOptions(throttle: p.throttle, sshConfigFile: p.sshConfig, detached: p.detached)
        let job = try await engine.invoke(
            try spec(p.start), on: p.computers, name: p.start.name, options: options, scheduling: scheduling(p.start))
        try await send(.job(job))
        return .ok
    }
}
