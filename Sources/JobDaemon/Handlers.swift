import Foundation
import JobKit
import JobModel
import JobProtocol

/// The daemon's side of each verb: parse, call the engine, encode. Words that match no job are
/// reported at the end of the answer, and the rest is acted on.
struct Handlers: Sendable {
    typealias Send = @Sendable (Response) async throws -> Void

    let engine: JobManager
    let status: @Sendable (Int) -> DaemonStatus
    let requestShutdown: @Sendable () -> Void

    /// Answers one request. `receipts` is what the reader of a receive says it wrote (on the
    /// receive's own connection); `client` is the process that asked, when known.
    func handle(_ verb: Verb, receipts: ReceiptLedger? = nil, client: pid_t? = nil, send: Send) async {
        do {
            let outcome = try await answer(verb, receipts: receipts, client: client, send: send)
            try await send(.done(outcome))
            // After the answer: shutting down ends this connection too.
            if verb == .shutdown { requestShutdown() }
        } catch let error as JobError {
            try? await send(.done(.failed(error)))
        } catch {
            try? await send(.done(.failed(JobError(.unavailable, "the daemon failed: \(error)"))))
        }
    }

    private func answer(_ verb: Verb, receipts: ReceiptLedger?, client: pid_t?, send: Send) async throws -> Outcome {
        switch verb {
        case .start(let parameters): return try await start(parameters, client: client, send: send)
        case .invoke(let parameters): return try await invoke(parameters, send: send)
        case .get(let query): return try await get(query, send: send)
        case .receive(let parameters): return try await receive(parameters, send: send)
        case .receiveWait(let parameters): return try await receiveWait(parameters, receipts: receipts, send: send)
        case .wait(let parameters): return try await wait(parameters, send: send)
        case .stop(let parameters): return try await stop(parameters, send: send)
        case .remove(let parameters): return try await remove(parameters)
        case .received(let list):
            try await engine.markReceived(list)
            return .ok
        case .suspend(let selectors): return try await each(selectors, send: send) { try await engine.suspend($0) }
        case .resume(let selectors): return try await each(selectors, send: send) { try await engine.resume($0) }
        case .restart(let selectors): return try await each(selectors, send: send) { try await engine.restart($0) }
        case .foreach(let parameters): return try await foreach(parameters, client: client, send: send)
        case .queueGet(let names):
            try await send(.queues(try await engine.queues(names)))
            return .ok
        case .queueSet(let p):
            try await send(.queues([try await engine.setQueue(p.name, limit: p.limit)]))
            return .ok
        case .queueRemove(let names):
            for name in names { try await engine.removeQueue(name) }
            return .ok
        case .sessionNew(let parameters): return try await sessionNew(parameters, send: send)
        case .sessionGet(let names): return try await sessionGet(names, send: send)
        case .sessionRemove(let parameters): return try await sessionRemove(parameters, send: send)
        case .status:
            try await send(.status(status(try await engine.count())))
            return .ok
        case .shutdown:
            return .ok
        }
    }

    /// About how many bytes of jobs one `jobs` frame carries: a list of any length goes in
    /// frames far below the 16 MiB a frame may have (one job alone is always below it: a
    /// request, and so a name or a command, is at most that).
    static let jobsFrameBudget = 1 << 20

    /// Sends a list of jobs in as many `jobs` frames as its size needs (at least one, empty
    /// for no job); the client joins them.
    func sendJobs(_ jobs: [JobInfo], _ send: Send) async throws {
        var batch: [JobInfo] = []
        var size = 0
        for job in jobs {
            let estimate = 256 + job.name.utf8.count + job.command.utf8.count + job.location.utf8.count
                + (job.reason?.utf8.count ?? 0) + 12 * job.childJobs.count
            if !batch.isEmpty, size + estimate > Self.jobsFrameBudget {
                try await send(.jobs(batch))
                batch.removeAll(keepingCapacity: true)
                size = 0
            }
            batch.append(job)
            size += estimate
        }
        try await send(.jobs(batch))
    }

    /// Acts on the jobs the words name and sends them; the words that name nothing are
    /// reported at the end.
    func each(_ selectors: [JobSelector], send: Send, _ act: ([JobSelector]) async throws -> [JobInfo]) async throws -> Outcome {
        let (found, notFound) = await resolve(selectors)
        guard !found.isEmpty else { return Outcome(notFound: notFound) }
        try await sendJobs(try await act(found), send)
        return Outcome(notFound: notFound)
    }

    /// The ids the words name, and the errors for those that name nothing.
    func resolve(_ selectors: [JobSelector]) async -> ([JobSelector], [JobError]) {
        let (jobs, errors) = await engine.resolve(selectors)
        return (jobs.map { .id($0.id) }, errors)
    }
}
