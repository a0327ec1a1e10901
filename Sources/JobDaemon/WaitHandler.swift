import Foundation
import JobKit
import JobModel
import JobProtocol

/// `job wait`, with progress frames for a terminal.
extension Handlers {
    func wait(_ p: WaitParameters, send: Send) async throws -> Outcome {
        var selectors: [JobSelector] = []
        var notFound: [JobError] = []
        if !p.selectors.isEmpty {
            (selectors, notFound) = await resolve(p.selectors)
            guard !selectors.isEmpty else { return Outcome(notFound: notFound) }
        }
        let timeout = p.timeoutSeconds.map { Duration.milliseconds(Int64(($0 * 1000).rounded())) }
        let waited: [JobInfo]?
        if p.progress {
            let chosen = selectors
            waited = try await withProgress(chosen, force: p.force, send: send) {
                try await engine.wait(chosen, any: p.any, timeout: timeout, force: p.force)
            }
        } else {
            waited = try await engine.wait(selectors, any: p.any, timeout: timeout, force: p.force)
        }
        guard let jobs = waited else { return Outcome(notFound: notFound, timedOut: true) }
        try await sendJobs(jobs, send)
        return Outcome(notFound: notFound)
    }

    /// Runs `wait` while sending a `progress` frame (finished of total) now and on every change
    /// of the jobs waited for.
    func withProgress(
        _ selectors: [JobSelector], force: Bool, send: Send, _ wait: @escaping @Sendable () async throws -> [JobInfo]?
    ) async throws -> [JobInfo]? {
        let jobs = selectors.isEmpty ? try await engine.get() : (await engine.resolve(selectors)).jobs
        let ids = Set(jobs.map(\.id))
        let changes = engine.changes(of: ids)
        let done: @Sendable (JobInfo) -> Bool = { force ? $0.state.isFinished : $0.state.isPersistent }
        // The group below ends before this function returns, so `send` does not outlive it.
        return try await withoutActuallyEscaping(send) { send in
            try await withThrowingTaskGroup(of: [JobInfo]?.self) { group in
                group.addTask { try await wait() }
                group.addTask {
                    var states = Dictionary(uniqueKeysWithValues: jobs.map { ($0.id, $0) })
                    func progress() -> Response {
                        let failed = states.values.filter { $0.state == .failed }.sorted { $0.id < $1.id }.map(\.name)
                        return .progress(finished: states.values.filter(done).count, total: ids.count, failed: failed)
                    }
                    try await send(progress())
                    for await event in changes {
                        states[event.job.id] = event.job
                        try await send(progress())
                    }
                    return nil
                }
                let result = try await group.next() ?? nil
                group.cancelAll()
                return result
            }
        }
    }
}
