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
        // Page by page from the history, so that no listing is held whole (one page at least,
        // for the client's one `jobs` frame of an empty list).
        var after = 0
        var sent = false
        while true {
            let page = try await engine.getPage(query, after: after)
            if !page.jobs.isEmpty || !sent { try await sendJobs(page.jobs, send) }
            sent = true
            guard let next = page.next else { break }
            after = next
        }
        return Outcome(notFound: notFound)
    }
}
