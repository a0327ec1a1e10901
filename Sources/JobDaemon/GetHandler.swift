import Foundation
import JobKit
import JobModel
import JobProtocol

/// `job get`.
extension Handlers {
    func get(_ query: JobQuery, send: Send) async throws -> Outcome {
        var query = query
        var notFound: [JobError] = []
        if !query.selectors.isEmpty {
            (query.selectors, notFound) = await resolve(query.selectors)
            if query.selectors.isEmpty {
                try await send(.jobs([]))
                return Outcome(notFound: notFound)
            }
        }
        try await send(.jobs(try await engine.get(query)))
        return Outcome(notFound: notFound)
    }
}
