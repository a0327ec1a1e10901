import Foundation
import JobModel
import JobTesting
import Testing

@testable import JobKit

extension JobManager {
    /// Runs `line` in these sessions and waits for the job; returns its children, finished.
    func inSessions(_ words: [String], _ line: String) async throws -> [JobInfo] {
        let parent = try invoke(.shell(line), inSessions: words)
        _ = try await finished(parent.id)
        return parent.childJobs.compactMap { job($0) }
    }

    /// One command in one session: the finished child.
    func inSession(_ word: String, _ line: String) async throws -> JobInfo {
        try #require(try await inSessions([word], line).first)
    }

    /// Receives all of one job's output, both streams.
    func both(_ id: Int) throws -> (out: [UInt8], err: [UInt8]) {
        let output = try receive([.id(id)])
        return (try output.data(.output), try output.data(.error))
    }
}

/// Opens a session for `body` and removes it afterwards, whatever happens: no shell outlives
/// the test.
func withSession<R: Sendable>(
    _ jobs: JobManager, _ options: SessionOptions = SessionOptions(), isolation: isolated (any Actor)? = #isolation,
    _ body: (SessionInfo) async throws -> R
) async throws -> R {
    let session = try await jobs.newSession(options)
    do {
        let result = try await body(session)
        _ = try? await jobs.removeSessions([String(session.id)], grace: .seconds(2))
        return result
    } catch {
        _ = try? await jobs.removeSessions([String(session.id)], grace: .seconds(2))
        throw error
    }
}

@Suite("Sessions", .tags(.medium)) struct SessionTests {
    @Test func aSessionKeepsItsShellsStateFromCommandToCommand() async throws {
        try await withTemporaryEngine { jobs, _ in
            try await withSession(jobs) { session in
                #expect(session.id == 1 && session.name == "Session1" && session.state == .opened)
                #expect(session.computerName == "localhost" && session.availability == .available)
                let setUp = try await jobs.inSession("1", "cd /tmp; X=1; f() { echo f; }; alias hi='echo hi'; umask 077; set -u")
                #expect(setUp.state == .completed)
                let used = try await jobs.inSession("Session1", "pwd; echo $X; f; umask; hi")
                #expect(used.state == .completed)
                #expect(try await jobs.text(used.id) == "/tmp\n1\nf\n0077\nhi\n")
                // set -u stays on: an unset variable ends that command (status 2), not the shell.
                let unset = try await jobs.inSession("1", "echo $NOT_SET_ANYWHERE")
                #expect(unset.state == .failed && unset.exitCode == 2)
                #expect(try await jobs.inSession("1", "echo still $X").state == .completed)
            }
        }
    }

    @Test func eachCommandsStreamsAndStatusAreItsOwnExactly() async throws {
        try await withTemporaryEngine { jobs, _ in
            try await withSession(jobs) { _ in
                let mixed = try await jobs.inSession("1", "printf 'no newline'; printf 'err\\n' >&2; exit_with() { return $1; }; exit_with 7")
                #expect(mixed.state == .failed && mixed.exitCode == 7 && mixed.reason == "exited with status 7")
                let (out, err) = try await jobs.both(mixed.id)
                #expect(String(decoding: out, as: UTF8.self) == "no newline")
                #expect(String(decoding: err, as: UTF8.self) == "err\n")
                // What a framing in the stream would look like is only output here.
                let framing = try await jobs.inSession("1", "echo '_jobkit_report 1 0'; printf '0\\n'; echo '__END__ 0'")
                #expect(try await jobs.text(framing.id) == "_jobkit_report 1 0\n0\n__END__ 0\n")
                let binary = try await jobs.inSession("1", "head -c 65536 /dev/urandom | tee /tmp/jobkit-session-binary-$$ | cat; echo $$ >&2")
                let (bytes, pidText) = try await jobs.both(binary.id)
                let copy = "/tmp/jobkit-session-binary-" + String(decoding: pidText, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                defer { unlink(copy) }
                #expect(Data(bytes) == FileManager.default.contents(atPath: copy))
                let reads = try await jobs.inSession("1", "if read line; then echo got; else echo eof; fi")
                #expect(try await jobs.text(reads.id) == "eof\n")
                let syntax = try await jobs.inSession("1", "if then fi")
                #expect(syntax.state == .failed && syntax.exitCode == 2)
                #expect(try await jobs.text(syntax.id, .error).contains("Syntax error"))
                #expect(try await jobs.inSession("1", "true").state == .completed)
            }
        }
    }

    @Test func whatACommandLeftWritingInTheBackgroundIsThatCommandsOutput() async throws {
        try await withTemporaryEngine { jobs, home in
            try await withSession(jobs) { _ in
                let go = home.path + "/go"
                let parent = try await jobs.invoke(.shell("(\(waitForFile(go)); echo late) & echo early"), inSessions: ["1"])
                let next = try await jobs.invoke(.shell("echo next"), inSessions: ["1"])
                // The first holds its output through its background writer: the next waits.
                try await Task.sleep(for: .milliseconds(300))
                #expect(try #require(await jobs.job(next.childJobs[0])).state == .notStarted)
                touch(go)
                _ = try await jobs.finished(next.id)
                #expect(try await jobs.text(parent.childJobs[0]) == "early\nlate\n")
                #expect(try await jobs.text(next.childJobs[0]) == "next\n")
            }
        }
    }

    @Test func commandsRunOneAtATimeInTheOrderGiven() async throws {
        try await withTemporaryEngine { jobs, home in
            try await withSession(jobs) { _ in
                let log = home.path + "/log"
                var ids: [Int] = []
                for i in 1...3 {
                    ids.append(try await jobs.invoke(.shell("echo begin \(i) >> '\(log)'; sleep 0.2; echo end \(i) >> '\(log)'"), inSessions: ["1"]).id)
                }
                for id in ids { _ = try await jobs.finished(id) }
                let lines = try String(contentsOfFile: log, encoding: .utf8)
                #expect(lines == "begin 1\nend 1\nbegin 2\nend 2\nbegin 3\nend 3\n")
            }
        }
    }

    @Test func aStopEndsTheCommandsProcessesAndLeavesTheSessionAsItWas() async throws {
        try await withTemporaryEngine { jobs, home in
            try await withSession(jobs) { _ in
                _ = try await jobs.inSession("1", "cd /tmp; Y=kept; sleep 990 >/dev/null 2>&1 & echo $! > '\(home.path)/earlier'")
                // Each stopped once all of its processes run (or, a loop of the shell's own, once it printed).
                let commands: [(line: String, sleeps: [String])] = [
                    ("sleep 1100", ["1100"]), ("sh -c 'sleep 1101 & sleep 1102 & wait' & sleep 1103", ["1101", "1102", "1103"]),
                    ("echo looping; while :; do :; done", []),
                ]
                for (line, sleeps) in commands {
                    let parent = try await jobs.invoke(.shell(line), inSessions: ["1"])
                    let child = parent.childJobs[0]
                    #expect(try await eventually {
                        guard await jobs.job(child)?.state == .running else { return false }
                        if sleeps.isEmpty { return try await jobs.text(child, keep: true) == "looping\n" }
                        return sleeps.allSatisfy { processStates(["sleep", $0]).count == 1 }
                    }, "\(line) runs")
                    #expect(await jobs.sessions().first?.availability == .busy)
                    let stopped = try await jobs.stop([.id(parent.id)], grace: .seconds(3))
                    #expect(stopped.first?.state == .stopped)
                    #expect(await jobs.job(child)?.state == .stopped)
                }
                let after = try await jobs.inSession("1", "pwd; echo $Y; pgrep -f '^sleep 110[0-3]' || echo none")
                #expect(try await jobs.text(after.id) == "/tmp\nkept\nnone\n")
                // An earlier command's background work is not a later command's to stop.
                let earlier = try #require(Int32(try String(contentsOfFile: home.path + "/earlier", encoding: .utf8)
                    .trimmingCharacters(in: .whitespacesAndNewlines)))
                #expect(kill(earlier, 0) == 0)
                kill(earlier, SIGKILL)
                #expect(await jobs.sessions().first?.availability == .available)
            }
        }
    }

    @Test func aCommandThatEndsTheShellBreaksTheSession() async throws {
        try await withTemporaryEngine { jobs, _ in
            try await withSession(jobs) { _ in
                let queued = try await jobs.invoke(.shell("sleep 0.3; exit 3"), inSessions: ["1"])
                let waiting = try await jobs.invoke(.shell("echo never"), inSessions: ["1"])
                let ended = try #require(await jobs.job(try await jobs.finished(queued.id).childJobs[0]))
                #expect(ended.state == .failed && ended.exitCode == 3)
                try await eventually { await jobs.sessions().first?.state == .broken }
                let session = try #require(await jobs.sessions().first)
                #expect(session.reason == "its shell exited with status 3")
                let never = try #require(await jobs.job(try await jobs.finished(waiting.id).childJobs[0]))
                #expect(never.state == .failed && never.reason?.contains("is broken") == true)
                await #expect(throws: JobError.self) { try await jobs.invoke(.shell("true"), inSessions: ["1"]) }
            }
        }
    }

    @Test func aSessionOutlivesItsEngine() async throws {
        let home = try TemporaryHome("session-reopen")
        let go = home.path + "/go"
        let parentId = try await JobManager.withManager(home: home.path) { jobs in
            _ = try await jobs.newSession()
            _ = try await jobs.inSession("1", "Z=survived")
            return try await jobs.invoke(.shell("\(waitForFile(go)); echo done $Z"), inSessions: ["1"]).id
        }
        try await JobManager.withManager(home: home.path) { jobs in
            defer { touch(go) }
            #expect(await jobs.sessions().first?.state == .opened)
            touch(go)
            let child = try #require(await jobs.job(try await jobs.finished(parentId).childJobs[0]))
            #expect(child.state == .completed)
            #expect(try await jobs.text(child.id) == "done survived\n")
            #expect(try await jobs.text(try await jobs.inSession("1", "echo $Z").id) == "survived\n")
            _ = try await jobs.removeSessions(["1"])
            #expect(await jobs.sessions().isEmpty)
        }
    }

    @Test func badSessionsAndShellsAreOneLineErrors() async throws {
        try await withTemporaryEngine { jobs, _ in
            await #expect(throws: JobError(.notFound, "no session named 'db'")) { try await jobs.invoke(.shell("true"), inSessions: ["db"]) }
            await #expect(throws: JobError(.notFound, "no session with id 4")) { try await jobs.invoke(.shell("true"), inSessions: ["4"]) }
            await #expect(throws: JobError.self) { try await jobs.newSession(SessionOptions(shell: "/no/such/shell")) }
            await #expect(throws: JobError.self) { try await jobs.newSession(SessionOptions(name: "7")) }
            if FileManager.default.isExecutableFile(atPath: "/usr/bin/fish") {
                await #expect(throws: JobError(.invalidArgument, "/usr/bin/fish is not a POSIX shell; a session needs one (sh, bash, zsh, ksh, dash)")) {
                    try await jobs.newSession(SessionOptions(shell: "/usr/bin/fish"))
                }
            }
            #expect(await jobs.sessions().isEmpty)
        }
    }
}

@Suite("Remote sessions' scripts", .tags(.small)) struct RemoteSessionScriptTests {
    /// They travel in single quotes through any login shell: fish reads `\\` and `\'` there
    /// as escapes, every other shell does not.
    @Test func theScriptsReadTheSameInEveryLoginShell() {
        for script in [RemoteSession.sessionScript, RemoteSession.bootstrap(directory: "/tmp/job-session.x")] {
            #expect(!script.contains("\\\\"))
            #expect(!script.contains("\\'"))
        }
    }

    /// A remote session's script run here as on a host, in a process group of its own, its
    /// channel's stdin a FIFO held open (its hello written).
    struct HarnessSession {
        let directory: String
        /// Where the directory's files are: in memory.
        let memory: String
        let stdin: Int32
        let shell: String

        /// The remove line: the session's script removes its files and ends its group.
        func remove() -> Bool { write(stdin, "\n", 1) == 1 }

        /// Whatever happened, the session ends and its files go, the copy in memory too: it is
        /// outside the test's home, and the script may be killed with the home's processes
        /// before it removed it.
        func end() {
            _ = remove()
            close(stdin)
            try? FileManager.default.removeItem(atPath: memory)
        }
    }

    static func openSession(in home: TemporaryHome) async throws -> HarnessSession {
        let name = (RemoteSession.directory() as NSString).lastPathComponent
        let directory = home.path + "/" + name
        let sessionIn = home.path + "/session.in"
        #expect(mkfifo(sessionIn, 0o600) == 0)
        // Close-on-exec, as every descriptor held here: a copy in the session's processes
        // would keep its channel from ending.
        let stdin = open(sessionIn, O_RDWR | O_CLOEXEC)
        _ = try Spawned(
            ["/usr/bin/setsid", "/bin/sh", "-c", "exec /bin/sh -c \"$1\" sh \"$2\" \"$3\" \"$4\" \"$5\" <>\"$0\"", sessionIn,
             RemoteSession.sessionScript, directory, "/bin/sh", RemoteSession.bootstrap(directory: directory), RemoteCommand.posixProbe],
            stdout: home.path + "/session.out", stderr: home.path + "/session.err")
        #expect(write(stdin, "\n", 1) == 1, "the session's hello")
        var shell = ""
        #expect(try await eventually {
            shell = ((try? String(contentsOfFile: home.path + "/session.out", encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            return !shell.isEmpty
        }, "the session's shell says its pid")
        return HarnessSession(directory: directory, memory: "/dev/shm/" + name, stdin: stdin, shell: shell)
    }

    /// The files every command rewrites are in memory (/dev/shm, where a host has it), and
    /// go, with the name that leads there, when the session ends.
    @Test func aSessionsDirectoryIsInMemoryAndGoesWithIt() async throws {
        let home = try TemporaryHome("session-shm")
        let session = try await Self.openSession(in: home)
        defer { session.end() }
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: session.directory)) == session.memory)
        var status = stat()
        #expect(stat(session.memory + "/in", &status) == 0 && (status.st_mode & S_IFMT) == S_IFIFO)
        #expect(session.remove())
        #expect(try await eventually {
            access(session.memory, F_OK) != 0 && access(session.directory, F_OK) != 0 && lstat(session.directory, &status) != 0
        })
    }

    /// The session's channel carries its commands: each one's stdout and stderr come back on
    /// the channel's two streams between markers made of the nonce its line gave, its status
    /// after stdout's end marker; a stop line reaches only the command it names, and none of
    /// what an earlier command left running. (Run here with a FIFO for the channel's stdin and
    /// files for its streams, the session in a process group of its own.)
    @Test func commandsComeBackBetweenTheirMarkersAndAStopReachesOnlyItsCommand() async throws {
        let home = try TemporaryHome("session-channel")
        let session = try await Self.openSession(in: home)
        defer { session.end() }
        func send(_ line: String) { #expect(write(session.stdin, line + "\n", line.utf8.count + 1) == line.utf8.count + 1) }
        func streams() -> (out: String, err: String) {
            ((try? String(contentsOfFile: home.path + "/session.out", encoding: .utf8)) ?? "",
             (try? String(contentsOfFile: home.path + "/session.err", encoding: .utf8)) ?? "")
        }
        let earlier = String(Int.random(in: 7_000_000...7_999_999))
        let n1 = String(repeating: "1a", count: 16), n2 = String(repeating: "2b", count: 16)
        send("r 1 \(n1) " + RemoteSession.escaped("sleep \(earlier) >/dev/null 2>&1 & printf 'no newline \(n2)'; echo oops >&2; (exit 4)"))
        #expect(try await eventually { streams().err.hasSuffix("\(n1)-\n") }, "\(streams())")
        #expect(streams().out == session.shell + "\n\(n1)+no newline \(n2)\(n1)-4\n")
        #expect(streams().err == "\(n1)+oops\n\(n1)-\n")
        #expect(processStates(["sleep", earlier]) == ["S"], "the command's background work goes on")
        let later = String(Int.random(in: 8_000_000...8_999_999))
        send("r 2 \(n2) " + RemoteSession.escaped("echo begun; sleep \(later)"))
        #expect(try await eventually { processStates(["sleep", later]).count == 1 && streams().out.hasSuffix("\(n2)+begun\n") })
        send("s 1")
        send("s 2")
        #expect(try await eventually { streams().out.hasSuffix("\(n2)-130\n") }, "\(streams())")
        #expect(processStates(["sleep", later]).isEmpty)
        #expect(processStates(["sleep", earlier]) == ["S"], "a stop of command 2 is not one of command 1's leftovers")
        #expect(session.remove())
        #expect(try await eventually { processStates(["sleep", earlier]).isEmpty }, "the session's end ends its group")
        #expect(try await eventually { access(session.directory, F_OK) != 0 }, "the session's files are gone")
    }

    @Test func aCommandTravelsAsOctalEscapes() {
        #expect(RemoteSession.escaped("a'%\\\n é") == "\\141\\047\\045\\134\\012\\040\\303\\251")
        #expect(RemoteSession.escaped("") == "")
        #expect(!RemoteSession.escaped("\\\\'").contains("\\\\"))
    }
}
