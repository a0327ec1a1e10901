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
                try await sendJobs([], send)
                return Outcome(notFound: notFound)
            }
        }
        try await sendJobs(try await engine.get(query), send)
        return Outcome(notFound: notFound)
    }
}
