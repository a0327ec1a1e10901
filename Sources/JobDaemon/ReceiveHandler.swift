import Foundation
import JobKit
import JobModel
import JobProtocol

/// `job receive`, with and without `--wait`. Nothing handed out here counts as received: the
/// reader says what it has written (`received` frames on the same connection), and only
/// that moves the jobs' cursors, so output that a reader could not write, or that was in
/// flight when it died, is handed out again.
extension Handlers {
    func receive(_ p: ReceiveParameters, send: Send) async throws -> Outcome {
        let (selectors, notFound) = await resolve(p.selectors)
        guard !selectors.isEmpty else { return Outcome(notFound: notFound) }
        let output = try await engine.receive(selectors, keep: true, recurse: p.recurse, locations: p.locations)
        try await send(.slices(output.slices))
        for failure in output.failures {
            try await send(.failure(failure))
        }
        // The jobs as they are, for the exit status (a Stopped job makes it 1, like a Failed one).
        try await sendJobs(try await engine.get(JobQuery(selectors: selectors)), send)
        return Outcome(notFound: notFound)
    }

    func receiveWait(_ p: ReceiveParameters, receipts: ReceiptLedger?, send: Send) async throws -> Outcome {
        let (selectors, notFound) = await resolve(p.selectors)
        guard !selectors.isEmpty else { return Outcome(notFound: notFound) }
        var sent: [Int: Int] = [:]
        let events: any AsyncSequence<ReceiveEvent, any Error> =
            p.whole
            ? engine.wholeOutput(selectors.compactMap { if case .id(let id) = $0 { id } else { nil } }, ordered: p.ordered)
            : engine.receiveStream(selectors, keep: true, recurse: p.recurse, locations: p.locations)
        for try await event in events {
            switch event {
            case .output(let chunk):
                try await send(.output(chunk))
                sent[chunk.jobId] = chunk.end
            case .whole(let slice):
                try await send(.slices([slice]))
                sent[slice.jobId] = slice.end
            case .failed(let failure):
                try await send(.failure(failure))
            case .finished(let jobs):
                // The jobs after all their output: the reader writes what it holds (a last
                // line without its newline, say) and says so. They are removed only once it
                // has written all of it: a reader that died leaves the jobs, and what it did
                // not write, for the next.
                try await sendJobs(jobs, send)
                if p.autoRemove, !p.keep, let receipts, await receipts.waitFor(sent) {
                    try await engine.remove(jobs.map { .id($0.id) }, force: true)
                }
            }
        }
        return Outcome(notFound: notFound)
    }
}
