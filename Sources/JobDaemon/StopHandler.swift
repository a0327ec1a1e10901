import Foundation
import JobKit
import JobModel
import JobProtocol

/// `job stop`.
extension Handlers {
    func stop(_ p: StopParameters, send: Send) async throws -> Outcome {
        let (selectors, notFound) = await resolve(p.selectors)
        guard !selectors.isEmpty else { return Outcome(notFound: notFound) }
        let grace = Duration.milliseconds(Int64((p.graceSeconds * 1000).rounded()))
        try await sendJobs(try await engine.stop(selectors, grace: grace), send)
        return Outcome(notFound: notFound)
    }
}
