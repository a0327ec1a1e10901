import CJobKitSystem
import Foundation
import JobModel

#if canImport(Glibc)
import Glibc
#endif

/// Jobs whose body is a Swift closure, run in this process by `run()`.
extension JobManager {
    /// Starts a thread job: `body` runs in this process, as a task of `run()`. It has no
    /// children; its Type is `ThreadJob`. Output written through the context is stored like a
    /// process's. A thrown error makes it `Failed` with the error as Reason; `stop` cancels it
    /// (`Stopped`). It cannot outlive this process: an engine opened later shows it `Failed`,
    /// Reason `the process that ran it exited`.
    public func start(name: String? = nil, command: String = "Swift closure", _ body: @escaping JobBody)
        throws(JobError) -> JobInfo
    {
        try checkOpen()
        let record = JobRecord(
            id: 0, instanceId: .random(), name: name ?? "", type: .threadJob, state: .running, location: "localhost",
            command: command, beginTime: Date())
        let inserted = try withUnsaved { pending throws(JobError) in try store.insert([record], alsoSaving: pending) }
        table.add(inserted)
        let job = inserted[0]
        let writer = OutputWriter(prefix: outputPrefix(job.id))
        let (stop, stopContinuation) = AsyncStream.makeStream(of: Void.self)
        threadStops[job.id] = stopContinuation
        workContinuation.yield(
            .thread(ThreadWork(id: job.id, context: JobContext(id: job.id, name: job.name, writer: writer), body: body, stop: stop)))
        return try startedJob(job.id)
    }

    func runThreadJob(_ work: ThreadWork) async {
        let context = work.context
        let body = work.body
        let stop = work.stop
        var outcome: LeafOutcome = .cancelled
        await withTaskGroup(of: LeafOutcome?.self) { group in
            group.addTask {
                do {
                    try await body(context)
                    return .returned
                } catch is CancellationError {
                    return .cancelled
                } catch {
                    return .failed(Self.oneLine(error))
                }
            }
            group.addTask {
                for await _ in stop {}
                return nil
            }
            for await result in group {
                if let result {
                    outcome = result
                    group.cancelAll()
                    break
                }
                group.cancelAll()
            }
        }
        if outcome == .cancelled, table[work.id]?.stopRequested != true {
            outcome = .failed("the engine shut down while it ran")
        }
        threadStops.removeValue(forKey: work.id)?.finish()
        let recorded = context.writer.close()
        try? persist(table.leafEnded(work.id, outcome: outcome, at: Date(), recorded: recorded))
    }

    static func oneLine(_ error: any Error) -> String {
        let text = (error as? JobError)?.message ?? String(describing: error)
        return text.split(whereSeparator: \.isNewline).joined(separator: " ")
    }
}
