import Foundation
import JobProtocol
import JobTesting
import Testing

@Suite("job receive, wait, stop, remove", .tags(.cli)) struct ReceiveWaitTests {
    @Test func receiveWritesStdoutAndStderrApartThenNothingMore() async throws {
        try await withCLI { cli in
            try await cli.run("start", "-c", "echo out; echo err >&2")
            try await cli.run("wait", "1")
            let first = try await cli.run("receive", "1")
            #expect(first.status == 0)
            #expect(first.stdout == "out\n")
            #expect(first.stderr == "err\n")
            let again = try await cli.run("receive", "1")
            #expect(again.status == 0)
            #expect(again.stdout.isEmpty && again.stderr.isEmpty)
        }
    }

    @Test func keepDoesNotConsumeAndHasMoreDataFollows() async throws {
        try await withCLI { cli in
            try await cli.run("start", "-c", "echo kept")
            try await cli.run("wait", "1")
            #expect(try await cli.run("receive", "1", "--keep").stdout == "kept\n")
            #expect(try await cli.json("get", "1").first?["hasMoreData"] as? Bool == true)
            #expect(try await cli.run("receive", "Job2").stdout == "kept\n")
            #expect(try await cli.json("get", "1").first?["hasMoreData"] as? Bool == false)
        }
    }

    @Test func aFailedJobsReasonGoesToStderrAndTheStatusIsOne() async throws {
        try await withCLI { cli in
            try await cli.run("start", "-c", "echo partial; exit 3")
            let wait = try await cli.run("wait", "1")
            #expect(wait.status == 1)
            let receive = try await cli.run("receive", "1")
            #expect(receive.status == 1)
            #expect(receive.stdout == "partial\n")
            #expect(receive.stderr == "job: Job2 failed: exited with status 3\n")
        }
    }

    @Test func receiveWaitStreamsUntilTheEndAndWaitKeepFollowsWithoutConsuming() async throws {
        try await withCLI { cli in
            try await cli.run("start", "-c", "for i in 1 2 3; do echo $i; sleep 0.1; done")
            let followed = try await cli.run("receive", "1", "--wait", "--keep")
            #expect(followed.status == 0, "\(followed.stderr)")
            #expect(followed.stdout == "1\n2\n3\n")
            #expect(try await cli.json("get", "1").first?["hasMoreData"] as? Bool == true, "a follow consumes nothing")
            let streamed = try await cli.run("receive", "1", "--wait", "--auto-remove")
            #expect(streamed.status == 0, "\(streamed.stderr)")
            #expect(streamed.stdout == "1\n2\n3\n")
            #expect(try await cli.run("get", "1").status == 1, "auto-remove removed it")
            try await cli.run("start", "-c", "true")
            let refused = try await cli.run("receive", "3", "--keep", "--wait", "--auto-remove")
            #expect(refused.status == 64)
        }
    }

    @Test func receiveAsRecordsWithJSONKeysAndPrefixes() async throws {
        try await withCLI { cli in
            try await cli.run("start", "-c", #"echo '{"DateTime":"Thursday"}'; echo plain"#)
            try await cli.run("wait", "1")
            let table = try await cli.run("receive", "1", "--keep", "-o", "table", "--property", "ComputerName,DateTime")
            #expect(table.stdout.contains("localhost     Thursday") || table.stdout.contains("localhost  Thursday"), "\(table.stdout)")
            let json = try await cli.run("receive", "1", "--keep", "-o", "json")
            let records = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]])
            #expect(records.map { $0["text"] as? String } == [#"{"DateTime":"Thursday"}"#, "plain"])
            #expect((records.first?["data"] as? [String: Any])?["DateTime"] as? String == "Thursday")
            #expect(records.first?["stream"] as? String == "output")
            #expect(Set(records.first?.keys.map { $0 } ?? []) == ["jobId", "jobName", "computerName", "stream", "time", "text", "data"])
            let lines = try await cli.run("receive", "1", "--keep", "-o", "jsonl", "--property", "JobId,DateTime")
            #expect(lines.stdout == "{\"jobId\":2,\"DateTime\":\"Thursday\"}\n{\"jobId\":2,\"DateTime\":null}\n")
            // A local job's lines are told apart by its parent's Name.
            let prefixed = try await cli.run("receive", "1", "--prefix")
            #expect(prefixed.stdout == "Job1: {\"DateTime\":\"Thursday\"}\nJob1: plain\n")
        }
    }

    /// A table of many records is lined up on its first thousand, and the rest follow in
    /// the same columns (it is not held whole to be measured).
    @Test func aLongTableKeepsItsColumns() async throws {
        try await withCLI { cli in
            try await cli.run("start", "-c", "seq 1 1500")
            try await cli.run("wait", "1")
            let lines = try await cli.run("receive", "1", "-o", "table").stdout.split(separator: "\n")
            #expect(lines.count == 1502)
            let column = lines[0].range(of: "Text")?.lowerBound.utf16Offset(in: lines[0])
            for line in [lines[2], lines[1001], lines[1501]] {
                let text = line.lastIndex(of: " ").map { line.distance(from: line.startIndex, to: $0) + 1 }
                #expect(text == column, "\(line)")
            }
        }
    }

    /// A line's own keys keep the order the job wrote them in, nested ones too.
    @Test func aJSONLinesKeysKeepTheirOrder() async throws {
        try await withCLI { cli in
            try await cli.run("start", "-c", #"echo '{"zeta":1,"alpha":{"b":2,"a":3},"mid":null}'"#)
            try await cli.run("wait", "1")
            let json = try await cli.run("receive", "1", "-o", "json")
            let text = json.stdout
            let order = ["\"zeta\"", "\"alpha\"", "\"b\"", "\"a\"", "\"mid\""].map { text.range(of: $0)?.lowerBound }
            #expect(order.allSatisfy { $0 != nil }, "\(text)")
            #expect(order.compactMap { $0 } == order.compactMap { $0 }.sorted(), "in the job's order: \(text)")
        }
    }

    @Test func waitTimeoutPrintsNothingAndExits124() async throws {
        try await withCLI { cli in
            try await cli.run("start", "--", "sleep", "1000")
            let start = Date()
            let result = try await cli.run("wait", "1", "--timeout", "0.5")
            #expect(result.status == 124)
            #expect(result.stdout.isEmpty)
            #expect(Date().timeIntervalSince(start) >= 0.5)
            #expect(try await cli.json("get", "1").first?["state"] as? String == "Running")
            let stopped = try await cli.run("stop", "1", "--passthru", "-o", "json")
            #expect(stopped.status == 0)
            #expect(stopped.stdout.contains("\"Stopped\""))
        }
    }

    @Test func waitAnyPrintsTheFirstDone() async throws {
        try await withCLI { cli in
            try await cli.run("start", "--", "sleep", "1000")
            try await cli.run("start", "-c", "true")
            let result = try await cli.run("wait", "1", "3", "--any", "-o", "json")
            #expect(result.status == 0)
            let jobs = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]])
            #expect(jobs.map { $0["id"] as? Int } == [3])
            try await cli.run("stop", "1", "--grace", "0")
        }
    }

    @Test func removeRefusesRunningJobsAndChildren() async throws {
        try await withCLI { cli in
            try await cli.run("start", "--", "sleep", "1000")
            let refused = try await cli.run("remove", "1")
            #expect(refused.status == 1)
            #expect(refused.stderr == "job: job 1 is Running; stop it first or use --force\n")
            let child = try await cli.run("remove", "2")
            #expect(child.status == 1)
            #expect(child.stderr == "job: job 2 is a child of job 1; remove job 1\n")
            let forced = try await cli.run("remove", "1", "--force")
            #expect(forced.status == 0)
            #expect(forced.stdout.isEmpty)
            #expect(try await cli.json("get").isEmpty)
        }
    }
}

@Suite("jobd", .tags(.cli)) struct DaemonTests {
    @Test func statusStopAndJobsThatOutliveTheDaemon() async throws {
        try await withCLI { cli in
            let none = try await cli.run("daemon", "status")
            #expect(none.status == 1)
            #expect(none.stderr.contains("no daemon is running"))
            try await cli.run("start", "-c", "sleep 1; echo survived")
            let status = try await cli.run("daemon", "status", "-o", "json")
            let object = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])
            #expect(Set(object.keys) == ["pid", "home", "socket", "version", "uptimeSeconds", "jobs"])
            #expect(object["jobs"] as? Int == 2)
            #expect(try await cli.run("daemon", "stop").status == 0)
            #expect(try await cli.run("daemon", "status").status == 1)
            // The next command brings the daemon back, and the job ran on without it.
            let done = try await cli.run("wait", "1", "--timeout", "30")
            #expect(done.status == 0, "\(done.stderr)")
            #expect(try await cli.run("receive", "1").stdout == "survived\n")
        }
    }

    @Test func twentyFirstCommandsAtOnceStartOneDaemonAndGetDistinctIds() async throws {
        try await withCLI { cli in
            let results = try await withThrowingTaskGroup(of: Run.self) { group in
                for _ in 0..<20 { group.addTask { try await cli.run("start", "-c", "true", "-o", "json") } }
                return try await group.reduce(into: [Run]()) { $0.append($1) }
            }
            #expect(results.allSatisfy { $0.status == 0 }, "\(results.map(\.stderr))")
            let ids = results.compactMap { run in
                ((try? JSONSerialization.jsonObject(with: Data(run.stdout.utf8))) as? [[String: Any]])?.first?["id"] as? Int
            }
            #expect(Set(ids).count == 20)
            // One was started: no other daemon ever came to lose the race for the home.
            let daemons = try await runProcessDetached("/usr/bin/pgrep", ["-fc", "jobd --home \(cli.home.path)$"])
            #expect(daemons.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "1")
            let log = (try? String(contentsOfFile: cli.home.path + "/jobd.log", encoding: .utf8)) ?? ""
            #expect(!log.contains("another engine"), "a second daemon was started: \(log)")
        }
    }

    @Test func jobsOutliveADaemonKilledWithSIGKILL() async throws {
        try await withCLI { cli in
            for i in 1...10 {
                try await cli.run("start", "-c", "sleep 0.\(i % 5 + 3); seq 1 \(i * 1000); exit \(i % 3)")
            }
            let status = try await cli.run("daemon", "status", "-o", "json")
            let pid = try #require((try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])?["pid"] as? Int)
            kill(pid_t(pid), SIGKILL)
            let done = try await cli.run("wait", "--timeout", "60", "-o", "json")
            let jobs = try #require(try JSONSerialization.jsonObject(with: Data(done.stdout.utf8)) as? [[String: Any]])
            #expect(jobs.count == 10)
            for (index, job) in jobs.enumerated() {
                let i = index + 1
                #expect(job["exitCode"] as? Int == i % 3)
                #expect(job["state"] as? String == (i % 3 == 0 ? "Completed" : "Failed"))
                let output = try await cli.run("receive", String(job["id"] as? Int ?? 0))
                #expect(output.stdout == (1...(i * 1000)).map { "\($0)\n" }.joined())
            }
        }
    }

    @Test func anotherUserCannotReachTheDaemon() async throws {
        try await withCLI { cli in
            try await cli.run("start", "-c", "true")
            let other = try await runProcessDetached("/usr/bin/setpriv", ["--reuid=nobody", "--regid=nogroup", "--clear-groups", cli.job, "--home", cli.home.path, "get"])
            // Refused before it connects: the home is not theirs.
            #expect(other.status == 1, "\(other.stdout) \(other.stderr)")
            #expect(other.stderr.hasPrefix("job: the home \(cli.home.path) belongs to user 0"), "\(other.stderr)")
        }
    }

    /// Python that speaks to the daemon's socket (argv[1]) with the tests' wire client
    /// (`Tests/JobProtocolTests/wire_client.py`, the one the golden frames check).
    static let rawClient = """
        import sys, json, struct, time
        sys.path.insert(0, '\(URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().path)/JobProtocolTests')
        from wire_client import ask, frame, request
        def done(frames): return frames[-1][1]

        """

    @Test func malformedTruncatedAndOversizedRequestsGetAnErrorAndTheDaemonGoesOn() async throws {
        try await withCLI { cli in
            try await cli.run("start", "-c", "true")
            let socket = cli.home.path + "/jobd.sock"
            let script = Self.rawClient + """
                path = sys.argv[1]
                print(json.dumps(done(ask(path, struct.pack('>I', 5) + b'{oops'))))
                print(json.dumps(done(ask(path, struct.pack('>I', 100) + b'{"v":1'))))
                print(json.dumps(done(ask(path, struct.pack('>I', 1 << 30)))))
                print(json.dumps(done(ask(path, frame(request('frobnicate', {'x': 1}))))))
                print(json.dumps(done(ask(path, frame(request('get', {}, version=2))))))
                print(json.dumps(done(ask(path, frame(request('wait', {'timeoutSeconds': 1e16}))))))
                print(json.dumps(done(ask(path, frame(request('stop', {'selectors': [{'id': 1}], 'graceSeconds': 1e16}))))))
                kind, status = ask(path, frame(request('status')))[0]
                print(kind, status['jobs'], status['version'])
                """
            let result = try await runProcessDetached("/usr/bin/env", ["python3", "-c", script, socket])
            let lines = result.stdout.split(separator: "\n")
            #expect(lines.count == 8, "\(result.stderr)")
            #expect(lines.prefix(3).allSatisfy { $0.contains("invalidArgument") })
            #expect(lines.dropFirst(3).first?.contains("\"unknownVerb\"") == true, "\(lines)")
            #expect(lines.dropFirst(4).first?.contains("\"unsupportedVersion\"") == true, "\(lines)")
            #expect(lines.dropFirst(5).prefix(2).allSatisfy { $0.contains("\"invalidArgument\"") && $0.contains("must be from 0 to") }, "\(lines)")
            #expect(lines.last == "status 2 \(Release.version)", "the daemon's own frames read by the Python client, after 1e16 twice")
            #expect(try await cli.json("get").count == 1, "the daemon still serves")
        }
    }

    /// One budget for request bytes being read: forty connections that each announce 15 MiB
    /// and send all but a byte no longer take the daemon's memory (a hundred took 1.7 GiB
    /// before); a request over the limit gets its answer, not a broken pipe.
    @Test func requestBytesHaveOneBudgetAndAnOversizedRequestIsAnswered() async throws {
        try await withCLI { cli in
            try await cli.run("start", "-c", "true")
            let status = try await cli.run("daemon", "status", "-o", "json")
            let pid = try #require((try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])?["pid"] as? Int)
            let script = Self.rawClient + """
                import socket
                path, pid = sys.argv[1], sys.argv[2]
                big = (15 << 20)
                held = []
                for i in range(40):
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.connect(path); s.settimeout(30)
                    s.sendall(struct.pack('>I', big) + b'x' * (big - 1))
                    held.append(s)
                rss = [l for l in open('/proc/%s/status' % pid) if l.startswith('VmRSS')][0].split()[1]
                print('rss', int(rss) // 1024)
                for s in held: s.close()
                over = (17 << 20)
                print(json.dumps(done(ask(path, struct.pack('>I', over) + b'y' * over))))
                """
            let result = try await runProcessDetached("/usr/bin/env", ["python3", "-c", script, cli.home.path + "/jobd.sock", String(pid)])
            let lines = result.stdout.split(separator: "\n")
            #expect(lines.count == 2, "\(result.stdout) \(result.stderr)")
            let rss = Int(lines.first?.split(separator: " ").last ?? "") ?? .max
            #expect(rss < 300, "jobd held \(rss) MB with 600 MB of requests in flight")
            #expect(lines.last?.contains("the limit is") == true, "\(lines)")
            #expect(try await cli.json("get").count == 1, "the daemon still serves")
        }
    }

    /// A client that sends half a request and holds the connection open gets an error once
    /// the daemon's 10 s are up, and holds up no one meanwhile.
    @Test func halfARequestHeldOpenGetsAnErrorAfterTenSeconds() async throws {
        try await withCLI { cli in
            try await cli.run("start", "-c", "true")
            let sent = cli.home.path + "/sent"
            let script = Self.rawClient + """
                start = time.time()
                answer = done(ask(sys.argv[1], struct.pack('>I', 100) + b'{"v":1', close_write=False, on_sent=sys.argv[2]))
                print(round(time.time() - start), json.dumps(answer))
                """
            async let held = runProcessDetached("/usr/bin/env", ["python3", "-c", script, cli.home.path + "/jobd.sock", sent])
            #expect(try await eventually { FileManager.default.fileExists(atPath: sent) }, "the half request went out")
            #expect(try await cli.json("get").count == 1, "others are served meanwhile")
            let answer = try await held.stdout
            #expect(answer.contains("no whole request came within 10 s"), "\(answer)")
            let seconds = Int(answer.split(separator: " ").first ?? "") ?? 0
            #expect(seconds >= 9 && seconds <= 20, "\(answer)")
        }
    }
}

@Suite("job wait on a terminal", .tags(.cli)) struct WaitProgressTests {
    @Test func showsProgressOnlyWhenStderrIsATerminal() async throws {
        try await withCLI { cli in
            let go = cli.home.path + "/go"
            try await cli.run("start", "-c", "while [ ! -e \(go) ]; do sleep 0.05; done")
            try await cli.run("start", "-c", "while [ ! -e \(go) ]; do sleep 0.05; done; sleep 0.3")
            // `script` gives the command a terminal; the jobs end only once the wait shows them.
            let tty = try await onTerminal(cli, "wait", touching: go, once: "/2 finished")
            #expect(tty.stdout.contains("/2 finished"), "\(tty.stdout)")
            #expect(tty.stdout.contains("Completed"))
            let piped = try await cli.run("wait")
            #expect(!piped.stderr.contains("finished"))
        }
    }

    @Test func theElapsedTimeGoesOnBetweenEvents() async throws {
        try await withCLI { cli in
            let go = cli.home.path + "/go"
            try await cli.run("start", "-c", "while [ ! -e \(go) ]; do sleep 0.05; done")
            // The job ends only once the wait has shown a second go by.
            let tty = try await onTerminal(cli, "wait", touching: go, once: "0/1 finished, 1 s")
            #expect(tty.stdout.contains("0/1 finished, 0 s"), "\(tty.stdout)")
            #expect(tty.stdout.contains("0/1 finished, 1 s"), "redrawn with no event in between: \(tty.stdout)")
            #expect(tty.stdout.contains("Completed"))
        }
    }
}

/// Runs `job ARGS` on a terminal (`script`) and, once what it shows contains `text`, creates
/// `go` (the go-ahead its jobs wait for); gives up waiting after 60 s. Returns what it showed.
private func onTerminal(_ cli: CLI, _ args: String, touching go: String, once text: String) async throws -> ProcessResult {
    let screen = cli.home.path + "/screen"
    let watch = "n=0; while ! grep -qF '\(text)' \(screen) 2>/dev/null && [ $n -lt 1200 ]; do n=$((n+1)); sleep 0.05; done; touch \(go)"
    let run = "/usr/bin/script -qc '\(cli.job) --home \(cli.home.path) \(args)' /dev/null > \(screen)"
    return try await runProcessDetached("/bin/sh", ["-c", "(\(watch)) & \(run); status=$?; wait; cat \(screen); exit $status"])
}

@Suite("jobd serves its user only", .tags(.cli)) struct PeerCredentialTests {
    @Test func anotherUserIsRefusedEvenWhenTheSocketIsOpenToAll() async throws {
        try await withCLI { cli in
            try await cli.run("start", "-c", "true")
            // Loosen what the daemon set up, so that only its SO_PEERCRED check stands.
            _ = chmod(cli.home.path, 0o711)
            _ = chmod((cli.home.path as NSString).deletingLastPathComponent, 0o711)
            _ = chmod(cli.home.path + "/jobd.sock", 0o666)
            // Their `job` refuses the home; a client of their own, which checks nothing, is
            // refused by the daemon.
            let other = try await runProcessDetached(
                "/usr/bin/setpriv", ["--reuid=nobody", "--regid=nogroup", "--clear-groups", cli.job, "--home", cli.home.path, "get"])
            #expect(other.status == 1, "\(other.stdout) \(other.stderr)")
            #expect(other.stdout.isEmpty)
            let script = DaemonTests.rawClient + """
                print(json.dumps(done(ask(sys.argv[1], frame(request('get'))))))
                """
            let raw = try await runProcessDetached(
                "/usr/bin/setpriv",
                ["--reuid=nobody", "--regid=nogroup", "--clear-groups", "/usr/bin/env", "python3", "-c", script, cli.home.path + "/jobd.sock"])
            #expect(raw.stdout.contains("serves user"), "\(raw.stdout) \(raw.stderr)")
            #expect(raw.stdout.contains("\"refused\""))
        }
    }

    @Test func receiveExitsOneForAStoppedJob() async throws {
        try await withCLI { cli in
            try await cli.run("start", "-c", "echo before; sleep 1000")
            // (A `for … where` loop here went on asking 500 times after the output came: past
            // the job's 30 s on a loaded machine, and it then ended Completed.)
            #expect(try await eventually { try await !cli.run("receive", "1", "--keep").stdout.isEmpty })
            try await cli.run("stop", "1", "--grace", "0")
            let result = try await cli.run("receive", "1")
            #expect(result.stdout == "before\n")
            #expect(result.status == 1)
        }
    }
}
