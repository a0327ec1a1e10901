import Foundation
import JobKit
import JobModel
import JobProtocol

/// `job remove`, by selector, state or command.
extension Handlers {
    func remove(_ p: RemoveParameters) async throws -> Outcome {
        if let state = p.state {
            try await engine.remove(state: state)
            return .ok
        }
        if let command = p.command {
            try await engine.remove(commandMatching: command)
            return .ok
        }
        let (selectors, notFound) = await resolve(p.selectors)
        // One at a time: a job refused does not keep the others from going.
        var refused: JobError?
        for selector in selectors {
            do {
                try await engine.remove([selector], force: p.force)
            } catch {
                refused = refused ?? error
            }
        }
        return Outcome(notFound: notFound, error: refused)
    }
}
