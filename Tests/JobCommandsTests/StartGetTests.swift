import Foundation
import JobTesting
import Testing

@Suite("job start and job get", .tags(.cli)) struct StartGetTests {
    @Test func startPrintsTheRunningParentInTheSeedsColumns() async throws {
        try await withCLI { cli in
            let result = try await cli.run("start", "--", "sleep", "2")
            #expect(result.status == 0, "\(result.stderr)")
            let lines = result.stdout.split(separator: "\n").map(String.init)
            #expect(lines.count == 3)
            #expect(lines[0].split(separator: " ", omittingEmptySubsequences: true) == ["Id", "Name", "State", "HasMoreData", "Location", "Command"])
            #expect(lines[1].split(separator: " ", omittingEmptySubsequences: true) == ["--", "----", "-----", "-----------", "--------", "-------"])
            #expect(lines[2].split(separator: " ", omittingEmptySubsequences: true) == ["1", "Job1", "Running", "True", "localhost", "sleep", "2"])
            _ = try await cli.run("stop", "1")
        }
    }

    @Test func twoStartsGiveParentsOneAndThree() async throws {
        try await withCLI { cli in
            _ = try await cli.run("start", "-c", "true")
            _ = try await cli.run("start", "--name", "second", "-c", "true")
            let jobs = try await cli.json("get")
            #expect(jobs.map { $0["id"] as? Int } == [1, 3])
            #expect(jobs.map { $0["name"] as? String } == ["Job1", "second"])
            #expect(jobs.map { $0["childJobs"] as? [Int] } == [[2], [4]])
            let all = try await cli.json("get", "--include-children")
            #expect(all.map { $0["id"] as? Int } == [1, 2, 3, 4])
            #expect(all[1]["parentId"] as? Int == 1)
        }
    }

    @Test func jsonHasEveryKeyOfTheContract() async throws {
        try await withCLI { cli in
            _ = try await cli.run("start", "-c", "exit 3")
            _ = try await cli.run("wait", "1")
            let job = try #require(try await cli.json("get").first)
            #expect(Set(job.keys) == [
                "id", "name", "instanceId", "type", "state", "hasMoreData", "location", "command", "childJobs", "parentId",
                "beginTime", "endTime", "exitCode", "reason", "queue", "dependsOn", "attempt", "input", "durationSeconds",
                "cpuSeconds", "maxRssBytes",
            ])
            #expect(job["state"] as? String == "Failed")
            #expect(job["queue"] as? String == "default" && job["attempt"] as? Int == 1 && job["input"] is NSNull)
            #expect((job["durationSeconds"] as? Double).map { $0 >= 0 } == true)
            #expect(job["exitCode"] as? Int == 3)
            #expect(job["reason"] as? String == "exited with status 3")
            #expect(job["parentId"] is NSNull)
            #expect(job["type"] as? String == "BackgroundJob")
            #expect((job["endTime"] as? String)?.contains("T") == true)
        }
    }

    @Test func listShowsPropertyValueBlocksWithChildJobsInBraces() async throws {
        try await withCLI { cli in
            _ = try await cli.run("start", "-c", "true")
            let result = try await cli.run("get", "-o", "list", "--property", "name,childjobs")
            #expect(result.stdout == "Name      : Job1\nChildJobs : {Job2}\n")
        }
    }

    @Test func theJobRunsInTheCallersDirectoryWithTheCallersEnvironment() async throws {
        try await withCLI { cli in
            var environment = ProcessInfo.processInfo.environment
            environment["GREETING"] = "bonjour"
            let start = try await cli.run(["start", "--env", "EXTRA=1", "-c", "pwd; echo $GREETING $EXTRA"], environment: environment, in: cli.home.path)
            #expect(start.status == 0, "\(start.stderr)")
            _ = try await cli.run("wait", "1")
            #expect(try await cli.run("receive", "1").stdout == "\(cli.home.path)\nbonjour 1\n")
        }
    }

    @Test func unknownJobsAreErrorsAndUnmatchedWildcardsAreSilent() async throws {
        try await withCLI { cli in
            _ = try await cli.run("start", "-c", "true")
            let missing = try await cli.run("get", "42")
            #expect(missing.status == 1)
            #expect(missing.stderr == "job: no job with id 42\n")
            let named = try await cli.run("get", "build")
            #expect(named.status == 1)
            #expect(named.stderr == "job: no job named 'build'\n")
            let wildcard = try await cli.run("get", "build*")
            #expect(wildcard.status == 0)
            #expect(wildcard.stdout.isEmpty && wildcard.stderr.isEmpty)
            let mixed = try await cli.run("get", "1", "42")
            #expect(mixed.status == 1)
            #expect(mixed.stdout.contains("Job1"), "the other matches are still shown")
        }
    }

    @Test func badInputIsAUsageErrorThatStartsNothing() async throws {
        try await withCLI { cli in
            let noCommand = try await cli.run("start")
            #expect(noCommand.status == 64)
            let missingDirectory = try await cli.run("start", "--cwd", "/nonexistent/dir", "-c", "true")
            #expect(missingDirectory.status == 1, "a refusal, as CLI.md says, not a usage error")
            #expect(missingDirectory.stderr == "job: no such directory: /nonexistent/dir\n")
            let badState = try await cli.run("get", "--state", "Sleeping")
            #expect(badState.status == 64)
            let badFlag = try await cli.run("get", "--frobnicate")
            #expect(badFlag.status == 64)
            #expect(try await cli.json("get").isEmpty, "nothing was started")
        }
    }

    @Test func getFiltersByStateAndHasMoreData() async throws {
        try await withCLI { cli in
            _ = try await cli.run("start", "-c", "true")
            _ = try await cli.run("start", "-c", "exit 1")
            _ = try await cli.run("wait")
            #expect(try await cli.json("get", "--state", "failed").map { $0["id"] as? Int } == [3])
            #expect(try await cli.json("get", "--has-more-data", "false").map { $0["id"] as? Int } == [1, 3])
            #expect(try await cli.json("get", "--child-state", "Failed").map { $0["id"] as? Int } == [1, 3, 4])
            #expect(try await cli.json("get", "--before", "2000-01-01T00:00:00Z").isEmpty)
            #expect(try await cli.json("get", "--after", "2000-01-01T00:00:00Z").count == 2)
        }
    }
}

@Suite("job invoke on localhost", .tags(.cli)) struct InvokeTests {
    @Test func asJobMakesAParentWithAChildPerComputer() async throws {
        try await withCLI { cli in
            let started = try await cli.run("invoke", "--computer", "localhost,localhost", "--as-job", "-c", "echo hi")
            #expect(started.status == 0, "\(started.stderr)")
            let jobs = try await cli.json("wait", "1")
            #expect(jobs.first?["type"] as? String == "RemoteJob")
            #expect(jobs.first?["location"] as? String == "localhost,localhost")
            #expect(jobs.first?["childJobs"] as? [Int] == [2, 3])
            let list = try await cli.run("get", "1", "-o", "list", "--property", "Name,ChildJobs")
            #expect(list.stdout == "Name      : Job1\nChildJobs : {Job2, Job3}\n")
            let children = try await cli.json("get", "Job2", "Job3")
            #expect(children.map { $0["location"] as? String } == ["localhost", "localhost"])
        }
    }

    @Test func withoutAsJobItStreamsWithPrefixesAndRemovesTheJob() async throws {
        try await withCLI { cli in
            let ok = try await cli.run("invoke", "--computer", "localhost,localhost", "-c", "echo hi")
            #expect(ok.status == 0)
            #expect(ok.stdout == "localhost: hi\nlocalhost: hi\n")
            let single = try await cli.run("invoke", "--computer", "localhost", "-c", "echo one; exit 2")
            #expect(single.status == 1)
            #expect(single.stdout == "one\n")
            #expect(try await cli.json("get").isEmpty, "the jobs were removed")
        }
    }
    /// `invoke` is parsed by hand when its options are written `--name VALUE`, and by
    /// ArgumentParser otherwise (`--name=VALUE`): both must send the same request and show
    /// the same answer.
    @Test func theHandParsedFormAgreesWithArgumentParser() async throws {
        try await withCLI { cli in
            // `gone`: a port nothing listens on, refused at once; the file named relatively.
            try "Host gone\n  HostName 127.0.0.1\n  Port 1\n".write(
                toFile: cli.home.path + "/ssh_config", atomically: true, encoding: .utf8)
            let line = "echo out; echo err >&2; exit 3"
            func invoke(_ handParsed: Bool, _ options: [(String, String?)], _ rest: [String]) async throws -> Run {
                let words = options.flatMap { name, value -> [String] in
                    guard let value else { return [name] }
                    return handParsed ? [name, value] : ["\(name)=\(value)"]
                }
                return try await cli.run(["invoke"] + words + rest, in: cli.home.path)
            }
            for handParsed in [true, false] {
                let name = handParsed ? "fast" : "parsed"
                let started = try await invoke(handParsed, [
                    ("--computer", "localhost,gone,localhost"), ("--as-job", nil), ("--name", name), ("--throttle", "1"),
                    ("--ssh-config", "ssh_config"), ("-o", "list"), ("--property", "Name,State,Location,Command"),
                ], ["-c", line])
                #expect(started.status == 0, "\(started.stderr)")
                #expect(started.stdout == "Name     : \(name)\nState    : Running\nLocation : localhost,gone,localhost\nCommand  : \(line)\n")
                #expect(try await cli.run("wait", name).status == 1)
                let states = try await cli.json("get", name, "--include-children")
                #expect(states.map { $0["state"] as? String } == ["Failed", "Failed", "Failed", "Failed"])
                let received = try await cli.run("receive", name)
                #expect(received.stdout == "out\nout\n")
                #expect(received.stderr.contains("gone: ssh: connect to host 127.0.0.1 port 1"), "\(received.stderr)")

                let waited = try await invoke(
                    handParsed, [("--computer", "localhost,gone"), ("--ssh-config", "ssh_config"), ("--hide-computer-name", nil)],
                    ["--", "sh", "-c", line])
                #expect(waited.status == 1)
                #expect(waited.stdout == "out\n")
                // The children stream side by side: the refused one may be reported first.
                #expect(waited.stderr.split(separator: "\n").contains("err"), "\(waited.stderr)")
                #expect(waited.stderr.contains("job: gone: ssh: connect to host 127.0.0.1 port 1"), "\(waited.stderr)")
            }
            #expect(try await cli.json("get").map { $0["name"] as? String } == ["fast", "parsed"], "waited invokes remove their job")
        }
    }
}

@Suite("help and output", .tags(.cli)) struct HelpTests {
    @Test(arguments: [
        "start", "invoke", "foreach", "get", "receive", "wait", "stop", "remove", "suspend", "resume", "restart", "queue",
        "daemon",
    ])
    func everyCommandsHelpEndsWithAnExample(command: String) async throws {
        let result = try await CLI.execute(builtExecutable("job"), [command, "--help"])
        #expect(result.status == 0)
        let tail = result.stdout.split(separator: "\n").suffix(2)
        #expect(tail.first == "EXAMPLE:", "\(result.stdout)")
        #expect(tail.last?.hasPrefix("  job ") == true)
    }

    @Test func completionScriptsAreGenerated() async throws {
        for shell in ["bash", "zsh", "fish"] {
            let result = try await CLI.execute(builtExecutable("job"), ["--generate-completion-script", shell])
            #expect(result.status == 0)
            #expect(result.stdout.contains("receive"))
        }
    }

    @Test func noColourWhenNotATerminal() async throws {
        try await withCLI { cli in
            try await cli.run("start", "-c", "true")
            try await cli.run("wait", "1")
            #expect(!(try await cli.run("get").stdout.contains("\u{1B}[")))
        }
    }
}

@Suite("Large answers", .tags(.cli)) struct LargeAnswerTests {
    @Test func aLargeListComesWhole() async throws {
        try await withCLI { cli in
            // Ten commands of 100 KB: an answer of over a megabyte, several socket buffers full.
            let padding = String(repeating: "x", count: 100_000)
            for i in 0..<10 {
                #expect(try await cli.run("start", "-c", "true # \(i) \(padding)").status == 0)
            }
            let jobs = try await cli.json("get")
            #expect(jobs.count == 10)
            #expect(jobs.allSatisfy { ($0["command"] as? String)?.count ?? 0 > 100_000 })
            let table = try await cli.run("get")
            #expect(table.status == 0, "\(table.stderr)")
            #expect(table.stdout.split(separator: "\n").count == 12)
        }
    }

    /// A list of jobs goes in frames of bounded size: more than a frame's 16 MiB of jobs (150
    /// names of 120 KiB; 55,000 plain jobs did it too) no longer breaks `get` or `wait`.
    @Test func aListLargerThanAFrameStillComes() async throws {
        try await withCLI { cli in
            let count = 150
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<4 {
                    group.addTask {
                        for i in stride(from: worker, to: count, by: 4) {
                            let name = String(i) + String(repeating: "n", count: 120_000)
                            let started = try await cli.run("start", "--name", name, "--", "true", "-o", "json", "--property", "Id")
                            #expect(started.status == 0, "\(started.stderr)")
                        }
                    }
                }
                try await group.waitForAll()
            }
            let waited = try await cli.run("wait", "-o", "json", "--property", "Id")
            #expect(waited.status == 0, "\(waited.stderr.prefix(300))")
            let listed = try await cli.run("get", "--include-children", "-o", "json", "--property", "Id,Name")
            #expect(listed.status == 0, "\(listed.stderr.prefix(300))")
            let jobs = (try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]]) ?? []
            #expect(jobs.count == 2 * count, "every parent and child")
            #expect(listed.stdout.utf8.count > 16 << 20, "more than one frame's worth")
        }
    }

    /// With --merge-error the two streams are one, in the exact order written: five
    /// interleaved pairs, twenty times (without it they came back o1…o5 e1…e5 3 runs in 5).
    @Test func mergeErrorKeepsTheExactOrder() async throws {
        try await withCLI { cli in
            let line = "for i in 1 2 3 4 5; do echo o$i; echo e$i >&2; done"
            for _ in 0..<20 { try await cli.run("start", "--merge-error", "-c", line) }
            #expect(try await cli.run("wait").status == 0)
            let wanted = (1...5).map { "o\($0)\ne\($0)\n" }.joined()
            for id in stride(from: 1, through: 39, by: 2) {
                let output = try await cli.run("receive", String(id))
                #expect(output.stdout == wanted, "job \(id): \(output.stdout)")
                #expect(output.stderr.isEmpty, "job \(id)")
            }
        }
    }
}

@Suite("Tables and standard input", .tags(.cli)) struct TableAndStdinTests {
    /// A Command of several lines keeps its row; on a terminal 40 columns wide the table is
    /// cut to fit, with `…`; piped, nothing is cut.
    @Test func tablesKeepOneRowPerJobAndFitTheTerminal() async throws {
        try await withCLI { cli in
            let long = "echo " + String(repeating: "abcdefghij", count: 10)
            try await cli.run("start", "-c", "echo one\necho two")
            try await cli.run("start", "-c", long)
            let piped = try await cli.run("get")
            let lines = piped.stdout.split(separator: "\n")
            #expect(lines.count == 4, "\(piped.stdout)")
            #expect(lines[2].hasSuffix("echo one\\necho two"))
            #expect(lines[3].hasSuffix(long), "piped output is not cut")
            // The same at a terminal of 40 columns (a pseudo-terminal the test makes).
            let script = """
                import os, pty, sys
                pid, fd = pty.fork()
                if pid == 0:
                    os.execv(sys.argv[1], sys.argv[1:])
                out = b""
                while True:
                    try:
                        chunk = os.read(fd, 65536)
                    except OSError:
                        break
                    if not chunk:
                        break
                    out += chunk
                os.waitpid(pid, 0)
                sys.stdout.write(out.decode())
                """
            // The terminal's size is set by the child itself (stty), before job runs.
            let atTerminal = try await CLI.execute(
                "/usr/bin/python3",
                ["-c", script, "/bin/sh", "-c", "stty cols 40 rows 24; NO_COLOR=1 exec \"$0\" --home \"$1\" get", cli.job, cli.home.path])
            let rows = atTerminal.stdout.replacingOccurrences(of: "\r", with: "").split(separator: "\n")
            #expect(rows.count == 4, "\(atTerminal.stdout)")
            #expect(rows.allSatisfy { $0.count <= 40 }, "\(atTerminal.stdout)")
            #expect(rows.last?.hasSuffix("…") == true, "\(atTerminal.stdout)")
        }
    }

    /// `--stdin` hands the job the caller's standard input, a pipe (still being written after
    /// `start` returned) or a file; without it the job reads /dev/null.
    @Test func stdinIsHandedToTheJobOnlyWhenAskedFor() async throws {
        try await withCLI { cli in
            let go = cli.home.path + "/go"
            let producer = try Spawned(
                ["/bin/sh", "-c", "{ echo first; while [ ! -e \"$2\" ]; do sleep 0.02; done; echo second; } | \"$0\" --home \"$1\" start --stdin -- cat",
                 cli.job, cli.home.path, go], stdout: cli.home.path + "/start.out")
            #expect(try await eventually(within: .seconds(30)) {
                try await cli.run("receive", "1", "--keep").stdout == "first\n"
            })
            #expect(try await cli.json("get", "1").first?["state"] as? String == "Running", "it waits for more")
            #expect(FileManager.default.createFile(atPath: go, contents: nil), "the go-file")
            #expect(try await producer.wait().status == 0)
            #expect(try await cli.run("wait", "1").status == 0)
            #expect(try await cli.run("receive", "1").stdout == "first\nsecond\n")

            try "1\n2\n3\n".write(toFile: cli.home.path + "/three", atomically: true, encoding: .utf8)
            #expect(try await CLI.execute("/bin/sh", ["-c", "exec \"$0\" --home \"$1\" start --stdin -c 'wc -l' < \"$1\"/three", cli.job, cli.home.path]).status == 0)
            #expect(try await CLI.execute("/bin/sh", ["-c", "echo ignored | exec \"$0\" --home \"$1\" start -- cat", cli.job, cli.home.path]).status == 0)
            #expect(try await cli.run("wait").status == 0)
            #expect(try await cli.run("receive", "3").stdout.trimmingCharacters(in: .whitespaces) == "3\n")
            #expect(try await cli.run("receive", "5").stdout.isEmpty, "without --stdin: /dev/null")
        }
    }
}
