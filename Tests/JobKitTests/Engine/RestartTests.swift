import Foundation
import Testing
@testable import JobKit
import JobModel
import JobTesting

/// A real engine in another process (`jobkit-test-engine`), driven line by line over its
/// stdin and stdout, so that a test can SIGKILL it. Its blocking pipe I/O runs on threads of
/// its own, never on the cooperative pool.
final class EngineProcess: @unchecked Sendable {
    // Unchecked: used by one test at a time, one call at a time.
    let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private var buffer = Data()

    init(home: String) async throws {
        process.executableURL = URL(fileURLWithPath: builtExecutable("jobkit-test-engine"))
        process.arguments = [home]
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        let first = try await readLine()
        #expect(first == "ready")
    }

    func send(_ line: String) async throws -> String {
        sendWithoutAnswer(line)
        return try await readLine()
    }

    func sendWithoutAnswer(_ line: String) {
        input.fileHandleForWriting.write(Data((line + "\n").utf8))
    }

    private func readLine() async throws -> String {
        try await onOwnThread { try self.readLineBlocking() }
    }

    private func readLineBlocking() throws -> String {
        while true {
            if let newline = buffer.firstIndex(of: 10) {
                let line = String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self)
                buffer.removeSubrange(buffer.startIndex...newline)
                return line
            }
            let more = output.fileHandleForReading.availableData
            guard !more.isEmpty else { throw JobError(.unavailable, "the test engine exited") }
            buffer.append(more)
        }
    }

    func kill9() async throws {
        kill(process.processIdentifier, SIGKILL)
        try await onOwnThread { self.process.waitUntilExit() }
    }
}

@Suite("Jobs outlive the engine", .tags(.large)) struct RestartTests {
    @Test func aJobStartedJustBeforeShutdownStillRunsAndIsFoundLater() async throws {
        let home = try TemporaryHome("shutdown")
        let go = home.path + "/go"
        // No run loop: the process can only be started by the shutdown.
        let engine = try JobManager(home: home.path)
        let id = try await engine.start(.shell("\(waitForFile(go)); echo ran")).id
        await engine.shutdown()
        touch(go)
        try await JobManager.withManager(home: home.path) { jobs in
            let done = try await jobs.wait([.id(id)], timeout: .seconds(60))
            #expect(done?.first?.state == .completed, "\(String(describing: done))")
            #expect(String(decoding: try await jobs.receive([.id(id)]).data(), as: UTF8.self) == "ran\n")
        }
    }

    struct Expected {
        let line: String
        let state: JobState
        let exitCode: Int?
        let output: String
        let error: String
    }

    static let numbers = (1...20000).map { "\($0)\n" }.joined()

    /// Some end while the engine is down (once `down` exists, which the test makes after the
    /// kill), some after the next engine is open (once `back` exists), some fail; outputs are
    /// large enough to span many records. Gated on files, not on time: on a loaded machine a
    /// sleep says nothing of where the other side has got to.
    static func cases(down: String, back: String) -> [Expected] {
        let (down, back) = (waitForFile(down), waitForFile(back))
        return [
            Expected(line: "\(down); echo quick", state: .completed, exitCode: 0, output: "quick\n", error: ""),
            Expected(line: "\(down); echo bad >&2; exit 3", state: .failed, exitCode: 3, output: "", error: "bad\n"),
            Expected(line: "seq 1 10000; \(down); seq 10001 20000", state: .completed, exitCode: 0, output: numbers, error: ""),
            Expected(line: "\(down); kill -KILL $$", state: .failed, exitCode: 137, output: "", error: ""),
            Expected(line: "echo early; \(back); echo late", state: .completed, exitCode: 0, output: "early\nlate\n", error: ""),
            Expected(line: "\(back); seq 1 20000 >&2; exit 7", state: .failed, exitCode: 7, output: "", error: numbers),
            Expected(line: "\(back); echo after", state: .completed, exitCode: 0, output: "after\n", error: ""),
            Expected(line: "for i in 1 2 3; do echo $i; done; \(back); for i in 4 5 6; do echo $i; done", state: .completed, exitCode: 0, output: "1\n2\n3\n4\n5\n6\n", error: ""),
            Expected(line: "true", state: .completed, exitCode: 0, output: "", error: ""),
            Expected(line: "frobnicate-not-here", state: .failed, exitCode: 127, output: "", error: "/bin/sh: 1: frobnicate-not-here: not found\n"),
        ]
    }

    @Test func aKilledEngineLosesNothing() async throws {
        let home = try TemporaryHome("restart")
        let (down, back) = (home.path + "/down", home.path + "/back")
        let cases = Self.cases(down: down, back: back)
        let engine = try await EngineProcess(home: home.path)
        var ids: [Int] = []
        for expected in cases {
            let answer = try await engine.send("start " + expected.line)
            ids.append(try #require(Int(answer.dropFirst("started ".count))))
        }
        // Receive part of one job's output before the kill: it must not come back.
        let early = ids[4]
        var received = ""
        for _ in 0..<3000 where received.isEmpty {
            let answer = try await engine.send("receive \(early)")
            received = String(decoding: hexBytes(String(answer.dropFirst("received ".count))), as: UTF8.self)
            if received.isEmpty { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(received == "early\n")
        try await engine.kill9()
        // Jobs go on, and some end, while no engine is there.
        touch(down)

        try await JobManager.withManager(home: home.path) { jobs in
            let running = try await jobs.get().filter { $0.state == .running }
            #expect(running.count >= 3, "the long jobs should still be running: \(running.map(\.id))")
            #expect(Set(ids[4...7]).isSubset(of: running.map(\.id)), "those waiting for the engine to be back run")
            touch(back)
            let done = try #require(try await jobs.wait(ids.map { .id($0) }, timeout: .seconds(60)))
            #expect(done.count == cases.count)
            for (job, expected) in zip(done, cases) {
                #expect(job.state == expected.state, "\(expected.line)")
                #expect(job.exitCode == expected.exitCode, "\(expected.line)")
                let output = try await jobs.receive([.id(job.id)])
                let wantedOutput = job.id == early ? "late\n" : expected.output
                #expect(String(decoding: try output.data(.output), as: UTF8.self) == wantedOutput, "\(expected.line)")
                #expect(String(decoding: try output.data(.error), as: UTF8.self) == expected.error, "\(expected.line)")
            }
        }
    }

    @Test func aStopInterruptedByTheEngineDyingStillEnds() async throws {
        let home = try TemporaryHome("restart-stop")
        let termed = home.path + "/termed"
        let engine = try await EngineProcess(home: home.path)
        // The shell notes the SIGTERM and goes on; its sleep ignores it.
        let answer = try await engine.send(
            "start trap 'touch \(termed)' TERM; (trap '' TERM; exec sleep 300) & echo ready; wait; wait; wait")
        let id = try #require(Int(answer.dropFirst("started ".count)))
        var ready = false
        for _ in 0..<3000 where !ready {
            ready = try await engine.send("receive \(id)") != "received "
            if !ready { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(ready, "the job never got past its trap")
        // The job ignores SIGTERM, so the stop sits in its grace period when the engine dies:
        // the note says the SIGTERM came, which the engine sends once the stop is committed.
        engine.sendWithoutAnswer("stop \(id) 300")
        #expect(try await eventually { FileManager.default.fileExists(atPath: termed) }, "the stop's SIGTERM came")
        try await engine.kill9()
        try await JobManager.withManager(home: home.path) { jobs in
            let pgid = try await jobPid(jobs, child: id + 1)
            let done = try #require(try await jobs.wait([.id(id)], timeout: .seconds(30)))
            #expect(done.first?.state == .stopped)
            #expect(done.first?.exitCode == 128 + Int(SIGKILL))
            #expect(await processGroupIsAlive(pgid) == false)
        }
    }

    /// `start` asks for its child's supervisor before committing the job (the two overlap); an
    /// engine killed in between leaves a running job no database knows. The next engine must
    /// stop it and never hand its ids out again.
    @Test func aJobStartedButNeverCommittedIsStoppedAndItsIdsSkipped() async throws {
        let home = try TemporaryHome("orphan")
        try await JobManager.withManager(home: home.path) { jobs in
            let first = try await jobs.start(.argv(["true"]))
            #expect(first.id == 1)
            _ = try await jobs.wait([.id(1)])
        }
        // What the killed engine left: job 4 (the child of a parent 3) asked for and running.
        let supervisor = try Supervisor(executable: Supervisor.locate(explicit: nil), jobsDirectory: home.path + "/jobs")
        let orphan = try supervisor.spawn(4, Supervisor.Job(argv: ["sleep", "60"], workingDirectory: "/", environment: [:]))
        if let pidfd = orphan.pidfd { close(pidfd) }
        var group: pid_t?
        for _ in 0..<500 where group == nil {
            group = supervisor.pids(4)?.job
            if group == nil { try await Task.sleep(for: .milliseconds(10)) }
        }
        let pgid = try #require(group)
        #expect(kill(-pgid, 0) == 0, "running")
        supervisor.shutdown()

        try await JobManager.withManager(home: home.path) { jobs in
            #expect(await processGroupIsAlive(pgid) == false, "the job nobody knows was stopped")
            #expect(await jobs.all().map(\.id) == [1, 2], "and is not shown")
            let next = try await jobs.start(.argv(["true"]))
            #expect(next.id == 5, "ids 3 and 4 are used up")
            #expect(next.childJobs == [6])
            _ = try await jobs.wait([.id(5)])
        }
        try await JobManager.withManager(home: home.path) { jobs in
            let after = try await jobs.start(.argv(["true"]))
            #expect(after.id == 7, "and stay used up")
        }
    }
}

func hexBytes(_ hex: String) -> [UInt8] {
    var bytes: [UInt8] = []
    var index = hex.startIndex
    while index < hex.endIndex, let next = hex.index(index, offsetBy: 2, limitedBy: hex.endIndex) {
        if let byte = UInt8(hex[index..<next], radix: 16) { bytes.append(byte) }
        index = next
    }
    return bytes
}
