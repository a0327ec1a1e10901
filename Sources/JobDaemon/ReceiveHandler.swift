import Foundation
import JobKit
import JobModel
import JobProtocol

/// `job receive`, with and without `--wait`.
extension Handlers {
    func receive(_ p: ReceiveParameters, send: Send) async throws -> Outcome {
        let (selectors, notFound) = await resolve(p.selectors)
        guard !selectors.isEmpty else { return Outcome(notFound: notFound) }
        let output = try await engine.receive(selectors, keep: p.keep, recurse: p.recurse, locations: p.locations)
        try await send(.slices(output.slices))
        for failure in output.failures {
            try await send(.failure(failure))
        }
        // The jobs as they are, for the exit status (a Stopped job makes it 1, like a Failed one).
        try await sendJobs(try await engine.get(JobQuery(selectors: selectors)), send)
        return Outcome(notFound: notFound)
    }

    func receiveWait(_ p: ReceiveParameters, send: Send) async throws -> Outcome {
        let (selectors, notFound) = await resolve(p.selectors)
        guard !selectors.isEmpty else { return Outcome(notFound: notFound) }
        for try await event in engine.receiveStream(selectors, recurse: p.recurse, locations: p.locations, autoRemove: p.autoRemove) {
            switch event {
            case .output(let chunk):
                try await send(.output(chunk))
            case .failed(let failure):
                try await send(.failure(failure))
            case .finished(let jobs):
                try await sendJobs(jobs, send)
            }
        }
        return Outcome(notFound: notFound)
    }
}
