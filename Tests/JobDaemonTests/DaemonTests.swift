import Foundation
import JobClient
import JobDaemon
import JobModel
import JobProtocol
import JobTesting
import Testing

/// The daemon as a library: served in this process on a temporary home, spoken to through
/// the real client and socket.
@Suite("jobd in process") struct DaemonTests {
    @Test func servesItsHomeAndShutsDownWhenAsked() async throws {
        let home = try TemporaryHome("daemon")
        let jobHome = JobHome(explicit: home.path)
        let client = DaemonClient(home: jobHome)
        // The client's calls block on a socket: on threads of their own, never the pool's.
        let call: @Sendable (Request) async throws -> ([Response], Outcome) = { request in
            try await onOwnThread {
                var frames: [Response] = []
                let outcome = try client.call(request, autoStart: false) { frames.append($0) }
                return (frames, outcome)
            }
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await Daemon.run(home: jobHome) }
            // A check that fails returns early: the daemon, still serving, is cancelled then,
            // or the group (and the whole test run) would wait for it for ever.
            defer { group.cancelAll() }
            #expect(try await eventually { client.isRunning() }, "the daemon answers on \(jobHome.socket)")

            let start = StartParameters(command: .argv(["sh", "-c", "echo hi"]), workingDirectory: "/", environment: [:])
            let (started, _) = try await call(Request(.start(start)))
            guard case .job(let job)? = started.first else {
                Issue.record("start answered \(started)")
                return
            }
            #expect(job.id == 1 && job.childJobs == [2])
            let (waited, waitOutcome) = try await call(Request(.wait(WaitParameters(selectors: [.id(1)], timeoutSeconds: 60))))
            #expect(waitOutcome == .ok)
            #expect(waited.count == 1)
            if case .jobs(let jobs)? = waited.first {
                #expect(jobs.map(\.state) == [.completed])
            } else {
                Issue.record("wait answered \(waited)")
            }

            let (_, unknown) = try await call(Request(.get(JobQuery(selectors: [.id(42), .name("nightly")]))))
            #expect(unknown.notFound.map(\.code) == [.notFound, .notFound])

            let (status, _) = try await call(Request(.status))
            if case .status(let s)? = status.first {
                #expect(s.jobs == 2 && s.version == Release.version && s.home == jobHome.path)
            } else {
                Issue.record("status answered \(status)")
            }
            let (_, stopped) = try await call(Request(.shutdown))
            #expect(stopped == .ok)
            try await group.next()
            #expect(!client.isRunning(), "gone once shut down")
        }
    }
}
