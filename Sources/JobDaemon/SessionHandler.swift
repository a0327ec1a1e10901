import Foundation
import JobKit
import JobModel
import JobProtocol

/// `job session new|get|remove`, and `job invoke --session`.
extension Handlers {
    /// Opens a session per computer; should one fail, those opened for this request are
    /// closed again and nothing is left.
    func sessionNew(_ p: SessionNewParameters, send: Send) async throws -> Outcome {
        guard !p.computers.isEmpty else { throw JobError(.invalidArgument, "name at least one computer") }
        var opened: [SessionInfo] = []
        for computer in p.computers {
            let options = SessionOptions(
                name: p.name, shell: p.shell ?? "/bin/sh", computer: computer, workingDirectory: p.workingDirectory,
                environment: p.environment, sshConfigFile: p.sshConfig)
            do {
                opened.append(try await engine.newSession(options))
            } catch {
                if !opened.isEmpty { _ = try? await engine.removeSessions(opened.map { String($0.id) }) }
                throw error
            }
        }
        try await send(.sessions(opened))
        return .ok
    }

    /// The sessions named (every one when none is); words that name none are reported.
    func sessionGet(_ names: [String], send: Send) async throws -> Outcome {
        guard !names.isEmpty else {
            try await send(.sessions(await engine.sessions()))
            return .ok
        }
        let (found, errors) = await engine.resolveSessions(names)
        try await send(.sessions(found))
        return Outcome(notFound: errors)
    }

    func sessionRemove(_ p: SessionRemoveParameters, send: Send) async throws -> Outcome {
        let (found, errors) = await engine.resolveSessions(p.names)
        let closed = try await engine.removeSessions(found.map { String($0.id) }, grace: .seconds(p.graceSeconds))
        try await send(.sessions(closed))
        return Outcome(notFound: errors)
    }

    /// `invoke --session`: a child per session.
    func invokeInSessions(_ p: InvokeParameters, sessions: [String], send: Send) async throws -> Outcome {
        guard p.computers.isEmpty else { throw JobError(.invalidArgument, "give --computer or --session, not both") }
        let job = try await engine.invoke(
            try spec(p.start), inSessions: sessions, name: p.start.name, scheduling: scheduling(p.start))
        try await send(.job(job))
        return .ok
    }
}
