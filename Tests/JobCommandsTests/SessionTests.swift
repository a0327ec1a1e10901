import Foundation
import JobTesting
import Testing

@Suite("Sessions", .tags(.cli)) struct SessionCLITests {
    @Test func aSessionKeepsDirectoryVariablesFunctionsUmaskAndOptions() async throws {
        try await withCLI { cli in
            let opened = try await cli.json("session", "new", "--name", "db")
            #expect(opened.count == 1)
            let session = try #require(opened.first)
            #expect(session["id"] as? Int == 1 && session["name"] as? String == "db")
            #expect(session["computerName"] as? String == "localhost" && session["state"] as? String == "Opened")
            #expect(session["availability"] as? String == "Available" && session["reason"] is NSNull)
            let setUp = try await cli.run("invoke", "--session", "db", "-c", "cd /tmp; X=1; f() { echo f; }; umask 077; set -u")
            #expect(setUp.status == 0 && setUp.stdout.isEmpty, "\(setUp.stderr)")
            let used = try await cli.run("invoke", "--session", "1", "-c", "pwd; echo $X; f; umask")
            #expect(used.status == 0 && used.stdout == "/tmp\n1\nf\n0077\n", "\(used.stdout)\(used.stderr)")
            let table = try await cli.run("session", "get")
            #expect(table.stdout.split(separator: "\n").first?.split(separator: " ", omittingEmptySubsequences: true)
                == ["Id", "Name", "ComputerName", "State", "Availability"])
            #expect(try await cli.run("session", "remove", "db").status == 0)
            #expect(try await cli.json("session", "get").isEmpty)
        }
    }

    @Test func threeCommandsGivenAtOnceRunOneAtATimeInOrder() async throws {
        try await withCLI { cli in
            let marks = Marks(directory: cli.home.path)
            try await cli.run("session", "new")
            for n in 1...3 { try await cli.run("invoke", "--session", "Session1", "--as-job", "--name", "c\(n)", "-c", marks.command("\(n)")) }
            #expect(try await marks.waitUntilBegun(1))
            #expect(try await cli.state("c2") == "NotStarted")
            #expect(try await cli.json("session", "get").first?["availability"] as? String == "Busy")
            for n in 1...3 {
                marks.go("\(n)")
                if n < 3 { #expect(try await marks.waitUntilBegun(n + 1)) }
            }
            let done = try await cli.run("wait", "--timeout", "60")
            #expect(done.status == 0, "\(done.stderr)")
            #expect(marks.begun == ["1", "2", "3"] && marks.mostAtOnce == 1, "\(marks.lines)")
        }
    }

    @Test func aSessionOutlivesASIGKILLedDaemon() async throws {
        try await withCLI { cli in
            let marks = Marks(directory: cli.home.path)
            try await cli.run("session", "new", "--name", "s")
            try await cli.run("invoke", "--session", "s", "-c", "cd /tmp; export KEPT=yes")
            try await cli.run("invoke", "--session", "s", "--as-job", "--name", "during", "-c", marks.command("x") + "; echo finished in $PWD")
            #expect(try await marks.waitUntilBegun(1))
            try await cli.killDaemon()
            marks.go("x")
            #expect(try await eventually { marks.lines.contains("ex") })
            let waited = try await cli.run("wait", "during", "--timeout", "60")
            #expect(waited.status == 0, "\(waited.stderr)")
            #expect(try await cli.run("receive", "during").stdout == "finished in /tmp\n")
            #expect(try await cli.json("session", "get").first?["state"] as? String == "Opened")
            let next = try await cli.run("invoke", "--session", "s", "-c", "echo $KEPT; sh -c 'echo $KEPT'")
            #expect(next.stdout == "yes\nyes\n", "\(next.stderr)")
        }
    }

    @Test func exitBreaksTheSessionAndABrokenSessionRefusesCommandsWithItsReason() async throws {
        try await withCLI { cli in
            try await cli.run("session", "new", "--name", "db")
            let ended = try await cli.run("invoke", "--session", "db", "-c", "echo bye; exit 3")
            #expect(ended.status == 1 && ended.stdout == "bye\n")
            try #require(try await eventually { try await cli.json("session", "get", "db").first?["state"] as? String == "Broken" })
            let session = try #require(try await cli.json("session", "get", "db").first)
            #expect(session["reason"] as? String == "its shell exited with status 3")
            let refused = try await cli.run("invoke", "--session", "db", "-c", "true")
            #expect(refused.status == 1)
            #expect(refused.stderr == "job: session 'db' is broken: its shell exited with status 3; open a new one with 'job session new'\n")
            let unknown = try await cli.run("invoke", "--session", "nosuch", "-c", "true")
            #expect(unknown.status == 1 && unknown.stderr == "job: no session named 'nosuch'\n", "\(unknown.stderr)")
            let getUnknown = try await cli.run("session", "get", "nosuch")
            #expect(getUnknown.status == 1 && getUnknown.stderr == "job: no session named 'nosuch'\n", "\(getUnknown.stderr)")
            let both = try await cli.run("invoke", "--session", "db", "--computer", "localhost", "-c", "true")
            #expect(both.status == 64)
            let badShell = try await cli.run("session", "new", "--shell", "/no/such/sh")
            #expect(badShell.status == 64 && badShell.stderr.hasPrefix("job: cannot run /no/such/sh"), "\(badShell.stderr)")
            #expect(try await cli.run("session", "remove", "db").status == 0)
        }
    }

    @Test func stoppingACommandLeavesTheSessionUsable() async throws {
        try await withCLI { cli in
            try await cli.run("session", "new")
            try await cli.run("invoke", "--session", "1", "-c", "Y=still")
            try await cli.run("invoke", "--session", "1", "--as-job", "--name", "long", "-c", "sh -c 'sleep 1017 & sleep 1017 & wait'")
            #expect(try await eventually { try await cli.state("long") == "Running" })
            #expect(try await eventually { (try await runProcessDetached("/usr/bin/pgrep", ["-c", "-f", "^sleep 1017"])).stdout == "2\n" })
            let stopped = try await cli.run("stop", "long", "--passthru", "-o", "json")
            #expect(stopped.status == 0 && stopped.stdout.contains("\"Stopped\""), "\(stopped.stderr)")
            let after = try await cli.run("invoke", "--session", "1", "-c", "echo $Y")
            #expect(after.stdout == "still\n")
            #expect((try await runProcessDetached("/usr/bin/pgrep", ["-c", "-f", "^sleep 1017"])).stdout == "0\n")
            #expect(try await cli.json("session", "get").first?["state"] as? String == "Opened")
        }
    }
}

@Suite("Remote sessions", .tags(.cli)) struct RemoteSessionCLITests {
    /// The session shell's pid on the host, as the shell itself says it (a command runs in
    /// the shell, not in a child of it).
    func shellPid(_ cli: CLI, session: Int) async throws -> pid_t {
        let said = try await cli.run("invoke", "--session", String(session), "-c", "echo $$")
        return try #require(pid_t(said.stdout.trimmingCharacters(in: .whitespacesAndNewlines)), "\(said.stderr)")
    }

    func isGone(_ pid: pid_t) async throws -> Bool {
        try await eventually { kill(pid, 0) != 0 || (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8))?.contains(") Z") == true }
    }

    @Test func aRemoteSessionKeepsItsStateWhateverTheLoginShell() async throws {
        try await withSSHHosts(["rs1", "rsfish:fish"]) { hosts in
            try await withCLI { cli in
                let opened = try await cli.json("session", "new", "--computer", "rs1,rsfish", "--ssh-config", hosts.configFile)
                #expect(opened.map { $0["computerName"] as? String } == ["rs1", "rsfish"])
                for session in ["1", "2"] {
                    let setUp = try await cli.run("invoke", "--session", session, "-c", "cd /tmp; X=1; f() { echo f; }; umask 077; set -u")
                    #expect(setUp.status == 0, "\(setUp.stderr)")
                    let used = try await cli.run("invoke", "--session", session, "-c", "pwd; echo $X; f; umask")
                    #expect(used.stdout == "/tmp\n1\nf\n0077\n", "\(session): \(used.stdout)\(used.stderr)")
                    let exact = try await cli.run("invoke", "--session", session, "-c", "printf 'no newline'; printf 'a\\\\b \"q\" $HOME\\n' >&2; (exit 6)")
                    #expect(exact.status == 1 && exact.stdout == "no newline")
                    #expect(exact.stderr.hasPrefix("a\\b \"q\" $HOME\n"), "\(exact.stderr)")
                    #expect(exact.stderr.contains("exited with status 6"))
                    let reads = try await cli.run("invoke", "--session", session, "-c", "if read x; then echo got; else echo eof; fi")
                    #expect(reads.stdout == "eof\n")
                    // What the shell and the channel's markers look like: a marker's form, with no nonce.
                    let framing = try await cli.run(
                        "invoke", "--session", session, "-c", "echo '_jobkit_report 1 0'; printf '%032d+%032d-0\\n' 0 0; echo 0; printf 'd 1 0\\n' >&2")
                    #expect(framing.stdout == "_jobkit_report 1 0\n" + String(repeating: "0", count: 32) + "+" + String(repeating: "0", count: 32) + "-0\n0\n", "\(framing)")
                    #expect(framing.stderr == "d 1 0\n", "\(framing)")
                }
                let binary = try await cli.run(
                    "invoke", "--session", "1", "--as-job", "--name", "bin", "-c", "head -c 100000 /dev/urandom | tee /tmp/jobkit-rs-$$; echo $$ >&2")
                #expect(binary.status == 0)
                #expect(try await cli.run("wait", "bin", "--timeout", "60").status == 0)
                let out = try await cli.run("receive", "bin", "--keep")
                let copy = "/tmp/jobkit-rs-" + out.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
                defer { unlink(copy) }
                let fetched = try await runProcessDetached(
                    "/bin/sh", ["-c", "exec \"$0\" --home \"$1\" receive bin 2>/dev/null >\"$2\"", cli.job, cli.home.path, copy + ".got"])
                defer { unlink(copy + ".got") }
                #expect(fetched.status == 0)
                #expect(FileManager.default.contents(atPath: copy + ".got") == FileManager.default.contents(atPath: copy))
            }
        }
    }

    @Test func stoppingARemoteCommandLeavesTheSessionItsStateAndNoProcessOfTheCommand() async throws {
        try await withSSHHosts(["rs2"]) { hosts in
            try await withCLI { cli in
                try await cli.run("session", "new", "--computer", "rs2", "--ssh-config", hosts.configFile)
                try await cli.run("invoke", "--session", "1", "-c", "Y=kept; sleep 2731 >/dev/null 2>&1 &")
                for (name, line) in [("tree", "sh -c 'sleep 2732 & sleep 2732 & wait'"), ("loop", "while :; do :; done")] {
                    try await cli.run("invoke", "--session", "1", "--as-job", "--name", name, "-c", line)
                    #expect(try await eventually { try await cli.state(name) == "Running" })
                    if name == "tree" {
                        #expect(try await eventually { (try await runProcessDetached("/usr/bin/pgrep", ["-c", "-f", "^sleep 2732"])).stdout == "2\n" })
                    }
                    let stopped = try await cli.run("stop", name, "--grace", "20")
                    #expect(stopped.status == 0)
                    #expect(try await cli.state(name) == "Stopped")
                }
                #expect((try await runProcessDetached("/usr/bin/pgrep", ["-c", "-f", "^sleep 2732"])).stdout == "0\n")
                let after = try await cli.run("invoke", "--session", "1", "-c", "echo $Y")
                #expect(after.stdout == "kept\n", "\(after.stderr)")
                // An earlier command's background work is the session's, not the stopped one's.
                #expect((try await runProcessDetached("/usr/bin/pgrep", ["-c", "-f", "^sleep 2731"])).stdout == "1\n")
                let shell = try await shellPid(cli, session: 1)
                #expect(try await cli.run("session", "remove", "1").status == 0)
                #expect(try await isGone(shell))
                #expect(try await eventually { (try await runProcessDetached("/usr/bin/pgrep", ["-c", "-f", "^sleep 2731"])).stdout == "0\n" })
            }
        }
    }

    @Test func aRemoteSessionWhoseMasterIsKilledIsBrokenAndLeavesNothingOnItsHost() async throws {
        try await withSSHHosts(["rs3"]) { hosts in
            try await withCLI { cli in
                try await cli.run("session", "new", "--computer", "rs3", "--ssh-config", hosts.configFile)
                try await cli.run("invoke", "--session", "1", "-c", "sleep 2741 >/dev/null 2>&1 &")
                let shell = try await shellPid(cli, session: 1)
                try await cli.run("invoke", "--session", "1", "--as-job", "--name", "running", "-c", "sleep 2742")
                #expect(try await eventually { (try await runProcessDetached("/usr/bin/pgrep", ["-c", "-f", "^sleep 274[12]"])).stdout == "2\n" })
                // The master alone ("ssh: SOCKET [mux]"), not the supervisors that name its socket.
                #expect(try await runProcessDetached("/usr/bin/pkill", ["-KILL", "-f", "^ssh: \(cli.home.path)/ssh/.*mux"]).status == 0)
                #expect(try await eventually { try await cli.json("session", "get").first?["state"] as? String == "Broken" })
                let session = try #require(try await cli.json("session", "get").first)
                #expect(session["reason"] as? String == "rs3: the connection was lost", "\(session)")
                #expect(try await eventually { try await cli.state("running") == "Failed" })
                #expect(try await isGone(shell))
                #expect(try await eventually { (try await runProcessDetached("/usr/bin/pgrep", ["-c", "-f", "^sleep 274[12]"])).stdout == "0\n" })
                let refused = try await cli.run("invoke", "--session", "1", "-c", "true")
                #expect(refused.status == 1 && refused.stderr.contains("is broken: rs3: the connection was lost"))
            }
        }
    }

    /// The supervisor of a remote session's command killed: its command on the host is ended
    /// (the engine asks the session's script), and the session goes on with the next one.
    @Test func aRemoteCommandWhoseSupervisorIsKilledIsEndedOnItsHost() async throws {
        try await withSSHHosts(["rs6"]) { hosts in
            try await withCLI { cli in
                try await cli.run("session", "new", "--computer", "rs6", "--ssh-config", hosts.configFile)
                try await cli.run("invoke", "--session", "1", "--as-job", "--name", "held", "-c", "echo begun; sleep 2761")
                #expect(try await eventually { (try await runProcessDetached("/usr/bin/pgrep", ["-c", "-f", "^sleep 2761"])).stdout == "1\n" })
                let id = try #require(try await cli.json("get", "held").first?["childJobs"] as? [Int]).first ?? 0
                // Its supervisor holds the child's output file once output came.
                let output = cli.home.path + "/jobs/\(id).stdout"
                var holder: pid_t?
                #expect(try await eventually {
                    holder = holderOf(output)
                    return holder != nil
                }, "the supervisor of \(output)")
                kill(try #require(holder), SIGKILL)
                #expect(try await eventually { try await cli.state("held") == "Failed" })
                // Required: else the next command would wait behind it for good.
                try #require(try await eventually { (try await runProcessDetached("/usr/bin/pgrep", ["-c", "-f", "^sleep 2761"])).stdout == "0\n" })
                let next = try await cli.run("invoke", "--session", "1", "-c", "echo next")
                #expect(next.stdout == "next\n", "\(next.stderr)")
            }
        }
    }

    /// The process that has `path` open (for writing or not), if one has.
    func holderOf(_ path: String) -> pid_t? {
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = pid_t(entry), let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(entry)/fd") else { continue }
            for fd in fds where (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(entry)/fd/\(fd)")) == path {
                return pid
            }
        }
        return nil
    }

    @Test func aRemoteSessionRunsCommandsOneAtATimeInOrderAndOutlivesASIGKILLedDaemon() async throws {
        // The marks are written by the host's user: in a directory it may write to.
        let directory = "/tmp/jobkit-marks-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o777])
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let marks = Marks(directory: directory)
        try await withSSHHosts(["rs5"]) { hosts in
            try await withCLI { cli in
                try await cli.run("session", "new", "--computer", "rs5", "--ssh-config", hosts.configFile)
                try await cli.run("invoke", "--session", "1", "-c", "cd /tmp; K=kept")
                for n in 1...3 { try await cli.run("invoke", "--session", "1", "--as-job", "--name", "c\(n)", "-c", marks.command("\(n)")) }
                #expect(try await marks.waitUntilBegun(1))
                #expect(try await cli.state("c2") == "NotStarted")
                try await cli.killDaemon()
                // The first ends while no daemon is there; the next daemon (started by the next
                // command) reads its end and starts the second, and only the second.
                marks.go("1")
                #expect(try await eventually { marks.lines.contains("e1") })
                #expect(try await cli.run("get").status == 0)
                #expect(try await marks.waitUntilBegun(2), "\(marks.lines)")
                #expect(try await cli.state("c3") == "NotStarted")
                marks.go("2")
                #expect(try await marks.waitUntilBegun(3), "\(marks.lines)")
                marks.go("3")
                let done = try await cli.run("wait", "--timeout", "60")
                #expect(done.status == 0, "\(done.stderr)")
                #expect(marks.begun == ["1", "2", "3"] && marks.mostAtOnce == 1, "\(marks.lines)")
                let after = try await cli.run("invoke", "--session", "1", "-c", "echo $K $PWD")
                #expect(after.stdout == "kept /tmp\n", "\(after.stderr)")
            }
        }
    }

    @Test func exitEndsARemoteSessionWithItsStatus() async throws {
        try await withSSHHosts(["rs4"]) { hosts in
            try await withCLI { cli in
                try await cli.run("session", "new", "--computer", "rs4", "--ssh-config", hosts.configFile)
                let shell = try await shellPid(cli, session: 1)
                let ended = try await cli.run("invoke", "--session", "1", "-c", "echo bye; exit 3")
                #expect(ended.status == 1 && ended.stdout == "bye\n" && ended.stderr.contains("exited with status 3"), "\(ended)")
                #expect(try await eventually { try await cli.json("session", "get").first?["reason"] as? String == "its shell exited with status 3" })
                #expect(try await isGone(shell))
                if FileManager.default.isExecutableFile(atPath: "/usr/bin/fish") {
                    let fish = try await cli.run("session", "new", "--computer", "rs4", "--shell", "/usr/bin/fish", "--ssh-config", hosts.configFile)
                    #expect(fish.status != 0 && fish.stderr.contains("/usr/bin/fish on rs4 is not a POSIX shell"), "\(fish.stderr)")
                }
                let unreachable = try await cli.run("session", "new", "--computer", "nosuchhost.invalid", "--ssh-config", hosts.configFile)
                #expect(unreachable.status != 0 && unreachable.stderr.hasPrefix("job: the session could not be opened: nosuchhost.invalid: "), "\(unreachable.stderr)")
            }
        }
    }
}
