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

    func handle(_ verb: Verb, send: Send) async {
        if verb == .shutdown {
            // Answer first: shutting down ends this connection too.
            try? await send(.done(.ok))
            requestShutdown()
            return
        }
        do {
            let outcome = try await answer(verb, send: send)
            try await send(.done(outcome))
        } catch let error as JobError {
            try? await send(.done(.failed(error)))
        } catch {
            try? await send(.done(.failed(JobError(.unavailable, "the daemon failed: \(error)"))))
        }
    }

    private func answer(_ verb: Verb, send: Send) async throws -> Outcome {
        switch verb {
        case .start(let parameters): return try await start(parameters, send: send)
        case .invoke(let parameters): return try await invoke(parameters, send: send)
        case .get(let query): return try await get(query, send: send)
        case .receive(let parameters): return try await receive(parameters, send: send)
        case .receiveWait(let parameters): return try await receiveWait(parameters, send: send)
        case .wait(let parameters): return try await wait(parameters, send: send)
        case .stop(let parameters): return try await stop(parameters, send: send)
        case .remove(let parameters): return try await remove(parameters)
        case .status:
            try await send(.status(status(await engine.all().count)))
            return .ok
        case .shutdown:
            return .ok
        }
    }

    /// The ids the words name, and the errors for those that name nothing.
    private func resolve(_ selectors: [JobSelector]) async -> ([JobSelector], [JobError]) {
        let (jobs, errors) = await engine.resolve(selectors)
        return (jobs.map { .id($0.id) }, errors)
    }

    private func start(_ p: StartParameters, send: Send) async throws -> Outcome {
        try await send(.job(try await engine.start(try spec(p), name: p.name)))
        return .ok
    }

    private func invoke(_ p: InvokeParameters, send: Send) async throws -> Outcome {
        let options = InvokeOptions(throttle: p.throttle, sshConfigFile: p.sshConfig)
        try await send(.job(try await engine.invoke(try spec(p.start), on: p.computers, name: p.start.name, options: options)))
        return .ok
    }

    private func spec(_ p: StartParameters) throws -> ProcessSpec {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: p.workingDirectory, isDirectory: &isDirectory), isDirectory.boolValue
        else {
            throw JobError(.invalidArgument, "no such directory: \(p.workingDirectory)")
        }
        let command: ProcessSpec.Command =
            switch p.command {
            case .shell(let line): .shell(line)
            case .argv(let argv): .argv(argv)
            }
        return ProcessSpec(command, workingDirectory: p.workingDirectory, environment: p.environment)
    }

    private func get(_ query: JobQuery, send: Send) async throws -> Outcome {
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

    private func receive(_ p: ReceiveParameters, send: Send) async throws -> Outcome {
        let (selectors, notFound) = await resolve(p.selectors)
        guard !selectors.isEmpty else { return Outcome(notFound: notFound) }
        let output = try await engine.receive(selectors, keep: p.keep, recurse: p.recurse, locations: p.locations)
        try await send(.slices(output.slices))
        for failure in output.failures {
            try await send(.failure(failure))
        }
        // The jobs as they are, for the exit status (a Stopped job makes it 1, like a Failed one).
        try await send(.jobs(try await engine.get(JobQuery(selectors: selectors))))
        return Outcome(notFound: notFound)
    }

    private func receiveWait(_ p: ReceiveParameters, send: Send) async throws -> Outcome {
        let (selectors, notFound) = await resolve(p.selectors)
        guard !selectors.isEmpty else { return Outcome(notFound: notFound) }
        for try await event in engine.receiveStream(selectors, recurse: p.recurse, locations: p.locations, autoRemove: p.autoRemove) {
            switch event {
            case .output(let chunk):
                try await send(.output(chunk))
            case .failed(let failure):
                try await send(.failure(failure))
            case .finished(let jobs):
                try await send(.jobs(jobs))
            }
        }
        return Outcome(notFound: notFound)
    }

    private func wait(_ p: WaitParameters, send: Send) async throws -> Outcome {
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
        try await send(.jobs(jobs))
        return Outcome(notFound: notFound)
    }

    /// Runs `wait` while sending a `progress` frame (finished of total) now and on every change
    /// of the jobs waited for.
    private func withProgress(
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
                    try await send(.progress(finished: states.values.filter(done).count, total: ids.count))
                    for await event in changes {
                        states[event.job.id] = event.job
                        try await send(.progress(finished: states.values.filter(done).count, total: ids.count))
                    }
                    return nil
                }
                let result = try await group.next() ?? nil
                group.cancelAll()
                return result
            }
        }
    }

    private func stop(_ p: StopParameters, send: Send) async throws -> Outcome {
        let (selectors, notFound) = await resolve(p.selectors)
        guard !selectors.isEmpty else { return Outcome(notFound: notFound) }
        let grace = Duration.milliseconds(Int64((p.graceSeconds * 1000).rounded()))
        try await send(.jobs(try await engine.stop(selectors, grace: grace)))
        return Outcome(notFound: notFound)
    }

    private func remove(_ p: RemoveParameters) async throws -> Outcome {
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
