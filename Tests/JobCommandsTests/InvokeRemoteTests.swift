import Foundation
import JobTesting
import Testing

extension Tag {
    @Tag static var ssh: Self
}

/// `job invoke` on real sshd hosts on 127.0.0.1 (`scripts/ssh-hosts`).
@Suite(.tags(.cli, .ssh))
struct InvokeRemoteTests {
    @Test func theSeedExampleWorksAsWritten() async throws {
        try await withSSHHosts(["server02"]) { hosts in
            try hosts.addAlias("server01", port: 1)
            try await withCLI { cli in
                try await cli.run("start", "--", "true")
                let started = try await cli.run([
                    "invoke", "--computer", "localhost,server01,server02", "--as-job", "--ssh-config", hosts.configFile,
                    "-c", "date",
                ])
                #expect(started.status == 0, "\(started.stderr)")
                #expect(started.stdout.contains("localhost,server01,server02"))
                #expect(try await cli.run("wait", "3").status == 1, "a job that ended Failed")

                let parent = try #require(try await cli.json("get", "3").first)
                #expect(parent["state"] as? String == "Failed")
                #expect(parent["location"] as? String == "localhost,server01,server02")
                #expect(parent["type"] as? String == "RemoteJob")
                let list = try await cli.run("get", "3", "-o", "list", "--property", "ChildJobs")
                #expect(list.stdout == "ChildJobs : {Job4, Job5, Job6}\n")

                let children = try await cli.json("get", "4", "5", "6")
                #expect(children.map { $0["state"] as? String } == ["Completed", "Failed", "Completed"])
                #expect(children.map { $0["location"] as? String } == ["localhost", "server01", "server02"])
                #expect(children[1]["hasMoreData"] as? Bool == false)
                let reason = try #require(children[1]["reason"] as? String)
                #expect(reason.hasPrefix("server01: ssh: connect to host 127.0.0.1 port 1"), "\(reason)")
                #expect(reason.contains("Connection refused"))

                let table = try await cli.run("receive", "Job6", "--keep", "-o", "table", "--property", "ComputerName,Text")
                #expect(table.status == 0, "\(table.stderr)")
                let lines = table.stdout.split(separator: "\n")
                #expect(lines.count == 3, "\(table.stdout)")
                #expect(lines.first?.split(separator: " ", omittingEmptySubsequences: true) == ["ComputerName", "Text"])
                #expect(lines.last?.hasPrefix("server02") == true)
                #expect(lines.last?.contains(String(Calendar.current.component(.year, from: Date()))) == true)
            }
        }
    }

    @Test func throttleKeepsAtMostThatManyHostsBusy() async throws {
        let names = ["t1", "t2", "t3", "t4", "t5"]
        try await withSSHHosts(names) { hosts in
            // Where the hosts note when their command began and ended: a directory they can write.
            let notes = hosts.directory + "/notes"
            try FileManager.default.createDirectory(atPath: notes, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o777])
            try await withCLI { cli in
                // Each command holds its slot until the go-file exists, so that what waits can be
                // counted however slow the machine is; the later ones pass it at once.
                let go = notes + "/go"
                let line = "h=$(hostname); echo begin $(date +%s%N) >>\(notes)/$h; while [ ! -e \(go) ]; do sleep 0.05; done; echo end $(date +%s%N) >>\(notes)/$h"
                let started = try await cli.run([
                    "invoke", "--computer", names.joined(separator: ","), "--throttle", "2", "--as-job",
                    "--ssh-config", hosts.configFile, "-c", line,
                ])
                #expect(started.status == 0, "\(started.stderr)")
                let begun: () -> Int = { names.filter { FileManager.default.fileExists(atPath: "\(notes)/\($0)") }.count }
                #expect(try await eventually { begun() >= 2 }, "two hosts run")
                #expect(begun() == 2, "and only two")
                let early = try await cli.json("get", "--include-children")
                #expect(early.filter { $0["state"] as? String == "NotStarted" }.count == 3, "children beyond the throttle wait")
                #expect(begun() == 2, "and no third began meanwhile")
                #expect(FileManager.default.createFile(atPath: go, contents: nil), "the go-file")
                #expect(try await cli.run("wait", "1").status == 0)
                let children = try await cli.json("get", "2", "3", "4", "5", "6")
                #expect(children.allSatisfy { $0["state"] as? String == "Completed" }, "\(children)")

                var events: [(time: Int, delta: Int)] = []
                for name in names {
                    let text = try String(contentsOfFile: "\(notes)/\(name)", encoding: .utf8)
                    for entry in text.split(separator: "\n") {
                        let parts = entry.split(separator: " ")
                        events.append((Int(parts[1]) ?? 0, parts[0] == "begin" ? 1 : -1))
                    }
                }
                #expect(events.count == 10)
                var busy = 0
                var most = 0
                for event in events.sorted(by: { ($0.time, $0.delta) < ($1.time, $1.delta) }) {
                    busy += event.delta
                    most = max(most, busy)
                }
                #expect(most == 2, "at most 2 hosts ran at once, and 2 did")
            }
        }
    }

    @Test func aRefusedPortAndAChangedHostKeyFailOnlyTheirChild() async throws {
        try await withSSHHosts(["good", "forged"]) { hosts in
            try hosts.addAlias("closed", port: 1)
            try await hosts.forgeHostKey("forged")
            try await withCLI { cli in
                let started = try await cli.run([
                    "invoke", "--computer", "good,closed,forged", "--as-job", "--ssh-config", hosts.configFile,
                    "-c", "echo fine",
                ])
                #expect(started.status == 0, "\(started.stderr)")
                #expect(try await cli.run("wait", "1").status == 1)
                let jobs = try await cli.json("get", "1", "2", "3", "4")
                #expect(jobs.map { $0["state"] as? String } == ["Failed", "Completed", "Failed", "Failed"])
                #expect(jobs[2]["hasMoreData"] as? Bool == false)
                #expect(jobs[3]["hasMoreData"] as? Bool == false)
                let refused = jobs[2]["reason"] as? String ?? ""
                #expect(refused.hasPrefix("closed: ssh: connect to host 127.0.0.1 port 1"), "\(refused)")
                let changed = jobs[3]["reason"] as? String ?? ""
                #expect(changed.hasPrefix("forged: "), "\(changed)")
                #expect(changed.contains("REMOTE HOST IDENTIFICATION HAS CHANGED"), "\(changed)")
                #expect(changed.contains("Host key verification failed"), "\(changed)")
                #expect(!changed.contains("\n"))
                let output = try await cli.run("receive", "2")
                #expect(output.stdout == "fine\n")
                // Never accepted silently: the forged entry is still the one known.
                #expect(hosts.log("forged").contains("Accepted publickey") == false)
            }
        }
    }

    @Test func argumentsReachTheRemoteProgramByteForByte() async throws {
        try await withSSHHosts(["q1"]) { hosts in
            try await withCLI { cli in
                let words = ["a b", "it's", "$HOME", "x\ny", "é ü 日本", "*", "\"quoted\"", "back\\slash", "", "-n", "`id`"]
                let argv = ["invoke", "--computer", "q1", "--ssh-config", hosts.configFile, "--", "printf", "[%s]"] + words
                let line = [
                    "invoke", "--computer", "q1", "--ssh-config", hosts.configFile, "-c",
                    "echo \"$(hostname)\" 'x  y' $((6*7)) \"$0\" | tr -d '\\n'; exit 3",
                ]
                // Each form of the wrapper, for each kind of command: the first job to a host
                // goes cold (its ssh becomes the master; the login shell is not known yet, so
                // the wrapper goes through /bin/sh), the next warm (the shell was asked, and the
                // wrapper runs in it directly). Then the master goes, and the order swaps.
                let checkProgram: (String) async throws -> Void = { form in
                    let program = try await cli.run(argv)
                    #expect(program.status == 0, "\(form): \(program.stderr)")
                    #expect(program.stdout == words.map { "[\($0)]" }.joined(), "\(form): its bytes as they are")
                }
                let checkLine: (String) async throws -> Void = { form in
                    let shell = try await cli.run(line)
                    #expect(shell.status == 1, "\(form): \(shell.stderr)")
                    #expect(shell.stdout.hasPrefix("q1 x  y 42 "), "\(form): \(shell.stdout)")
                    #expect(shell.stdout.hasSuffix("sh"), "\(form): run by the login shell, /bin/sh")
                    #expect(shell.stderr.contains("exited with status 3"), "\(form)")
                }
                try await checkProgram("program, cold")
                try await checkLine("line, warm")
                // Stopped politely, the master goes; the next job starts cold again.
                _ = try await runProcessDetached("/usr/bin/pkill", ["-TERM", "-f", "\(cli.home.path)/ssh/"])
                try await waitUntilNoProcess(matching: "\(cli.home.path)/ssh/")
                try await checkLine("line, cold")
                try await checkProgram("program, warm")
                let prefixed = try await cli.run(
                    ["invoke", "--computer", "q1,q1", "--ssh-config", hosts.configFile, "--", "printf", "%s", "no newline"])
                #expect(prefixed.stdout == "q1: no newline\nq1: no newline\n", "a prefixed last line is ended")
            }
        }
    }

    @Test func aLoginShellThatIsNotPOSIXRunsLinesAsWritten() async throws {
        try await withSSHHosts(["fishy:fish"]) { hosts in
            try await withCLI { cli in
                let words = ["a b", "it's", "$HOME", "x\ny", "(echo no)", "é"]
                // Cold, then warm: fish is asked once whether it is POSIX (it is not), and the
                // wrapper keeps going through /bin/sh, with the line run by fish.
                for round in ["cold", "warm"] {
                    let line = try await cli.run([
                        "invoke", "--computer", "fishy", "--ssh-config", hosts.configFile, "-c", "echo (hostname) $SHELL",
                    ])
                    #expect(line.status == 0, "\(round): \(line.stderr)")
                    #expect(line.stdout == "fishy /usr/bin/fish\n", "\(round)")
                    let program = try await cli.run(
                        ["invoke", "--computer", "fishy", "--ssh-config", hosts.configFile, "--", "printf", "[%s]"] + words)
                    #expect(program.stdout == words.map { "[\($0)]" }.joined(), "\(round): \(program.stderr)")
                    let failing = try await cli.run(
                        ["invoke", "--computer", "fishy", "--ssh-config", hosts.configFile, "-c", "false; or exit 4"])
                    #expect(failing.status == 1)
                    #expect(failing.stderr.contains("exited with status 4"), "\(round): \(failing.stderr)")
                }
            }
        }
    }

    /// Cold, the job's own ssh becomes the host's master; through a master that is up, the
    /// supervisor asks the master to run the command itself, and no ssh process runs for it.
    @Test(arguments: [false, true])
    func stoppingARemoteChildLeavesNoProcessOfItOnItsHost(throughMaster: Bool) async throws {
        try await withSSHHosts(["s1"]) { hosts in
            try await withCLI { cli in
                let (parent, child) = try await cli.warmUp("s1", hosts, if: throughMaster)
                let started = try await cli.invokeAsJob("sleep 300 & echo $$ $!; wait", on: "s1", hosts)
                #expect(started.status == 0, "\(started.stderr)")
                let pids = try await cli.firstOutput(of: child).split(whereSeparator: \.isWhitespace).map(String.init)
                #expect(pids.count == 2)
                #expect(try await hosts.living(pids, on: "s1").split(separator: "\n").count == 2, "both run before the stop")
                let ownSSH = try await runProcessDetached("/usr/bin/pgrep", ["-f", "\(cli.home.path)/jobs/\(child).ssh"]).status == 0
                #expect(ownSSH == !throughMaster, "an ssh of its own runs only when no master was up")

                let stop = try await cli.run("stop", "\(parent)")
                #expect(stop.status == 0, "\(stop.stderr)")
                #expect(try await cli.json("get", "\(child)").first?["state"] as? String == "Stopped")
                let left = try await hosts.waitUntilGone(pids, on: "s1")
                #expect(left.isEmpty, "still there on s1: \(left)")
            }
        }
    }

    @Test(arguments: [false, true])
    func stopHonoursTheGracePeriodAndTheHostEndsWhatIgnoresSIGTERM(throughMaster: Bool) async throws {
        try await withSSHHosts(["t1"]) { hosts in
            try await withCLI { cli in
                // What a stop costs here and now, of a job that ends at SIGTERM: a loaded machine
                // stretches it to seconds, so the grace is measured against it, not a clock.
                let (quickParent, quickChild) = try await cli.warmUp("t1", hosts, if: throughMaster)
                let quick = try await cli.invokeAsJob("echo $$; sleep 300", on: "t1", hosts)
                #expect(quick.status == 0, "\(quick.stderr)")
                #expect(try await !cli.firstOutput(of: quickChild).isEmpty)
                let baseStart = ContinuousClock.now
                #expect(try await cli.run("stop", "\(quickParent)", "--grace", "0.5").status == 0)
                let base = ContinuousClock.now - baseStart
                let (parent, child) = (quickParent + 2, quickChild + 2)
                let started = try await cli.invokeAsJob("trap '' TERM; echo $$; sleep 300", on: "t1", hosts)
                #expect(started.status == 0, "\(started.stderr)")
                let pid = try await cli.firstOutput(of: child).trimmingCharacters(in: .whitespacesAndNewlines)
                let start = ContinuousClock.now
                #expect(try await cli.run("stop", "\(parent)", "--grace", "0.5").status == 0)
                // Kept to its 0.5 s, it costs about that more than the quick stop; had it waited
                // for the default grace (5 s) or the host's, 4.5 s more at least.
                #expect(ContinuousClock.now - start < base + .seconds(2.75), "the stop kept to its grace period (quick stop: \(base))")
                #expect(try await cli.json("get", "\(child)").first?["state"] as? String == "Stopped")
                let left = try await hosts.waitUntilGone([pid], on: "t1")
                #expect(left.isEmpty, "what ignored SIGTERM was killed on the host")
            }
        }
    }

    /// The host does not cut a stop short: a command that takes longer to clean up than the
    /// host's own 5 s gets the whole grace period the stop gave it.
    @Test(arguments: [false, true])
    func aStopGivesTheRemoteCommandTheWholeGracePeriod(throughMaster: Bool) async throws {
        try await withSSHHosts(["g1"]) { hosts in
            try await withCLI { cli in
                let (parent, child) = try await cli.warmUp("g1", hosts, if: throughMaster)
                let marker = FileManager.default.temporaryDirectory.path + "/jobkit-grace-\(UUID().uuidString)"
                defer { unlink(marker) }
                let started = try await cli.invokeAsJob(
                    "trap 'sleep 6; echo cleaned > \(marker); exit 0' TERM; echo ready; sleep 300 & wait", on: "g1", hosts)
                #expect(started.status == 0, "\(started.stderr)")
                #expect(try await cli.firstOutput(of: child) == "ready\n")
                let stop = try await cli.run("stop", "\(parent)", "--grace", "30")
                #expect(stop.status == 0, "\(stop.stderr)")
                #expect(FileManager.default.fileExists(atPath: marker), "its clean-up ran to the end")
                let job = try #require(try await cli.json("get", "\(child)").first)
                #expect(job["state"] as? String == "Stopped")
                #expect(job["exitCode"] as? Int == 0, "what the command exited with after the stop")
            }
        }
    }

    /// A child whose ssh is still connecting has no host to ask yet: the stop ends the
    /// connection attempt at once instead of waiting out the grace period.
    @Test func stoppingAChildStillConnectingDoesNotWaitForTheGrace() async throws {
        try await withSSHHosts(["c1"]) { hosts in
            // Takes connections and never says a word: ssh waits for its banner.
            let silent = try SilentListener()
            defer { silent.close() }
            try hosts.addAlias("silent", port: silent.port)
            try await withCLI { cli in
                let started = try await cli.invokeAsJob("sleep 300", on: "silent", hosts)
                #expect(started.status == 0, "\(started.stderr)")
                // ssh has connected (the connection waits to be accepted) and waits for the banner.
                #expect(try await eventually { silent.hasWaitingConnection }, "ssh reached the listener")
                #expect(try await cli.json("get", "2").first?["state"] as? String == "Running")
                let start = ContinuousClock.now
                let stop = try await cli.run("stop", "1", "--grace", "30")
                #expect(stop.status == 0, "\(stop.stderr)")
                #expect(ContinuousClock.now - start < .seconds(10), "not the 30 s grace")
                #expect(try await cli.json("get", "2").first?["state"] as? String == "Stopped")
            }
        }
    }

    @Test(arguments: [false, true])
    func aConnectionLostMidRunFailsTheChildWithThatReason(throughMaster: Bool) async throws {
        try await withSSHHosts(["b1"]) { hosts in
            try await withCLI { cli in
                let (parent, child) = try await cli.warmUp("b1", hosts, if: throughMaster)
                let started = try await cli.invokeAsJob(
                    "echo started; exit_later() { sleep 300; }; exit_later; exit 255", on: "b1", hosts)
                #expect(started.status == 0, "\(started.stderr)")
                #expect(try await cli.firstOutput(of: child) == "started\n")
                // The host goes away: its sshd and every session on it.
                await hosts.down()
                #expect(try await cli.run("wait", "\(parent)").status == 1)
                let job = try #require(try await cli.json("get", "\(child)").first)
                #expect(job["state"] as? String == "Failed")
                let reason = job["reason"] as? String ?? ""
                #expect(reason.hasPrefix("b1: the connection was lost while the command ran"), "\(reason)")
                #expect(try await cli.run("receive", "\(child)").stdout == "started\n", "what came before is kept")
            }
        }
    }

    @Test func withoutAsJobLinesArePrefixedAndTheStatusSaysIfAllCompleted() async throws {
        try await withSSHHosts(["p1", "p2"]) { hosts in
            try await withCLI { cli in
                let both = try await cli.run([
                    "invoke", "--computer", "p1,p2", "--ssh-config", hosts.configFile, "-c",
                    "echo out $(hostname); echo err $(hostname) >&2; [ $(hostname) = p1 ]",
                ])
                #expect(both.status == 1)
                #expect(Set(both.stdout.split(separator: "\n")) == ["p1: out p1", "p2: out p2"])
                #expect(both.stderr.contains("p1: err p1"))
                #expect(both.stderr.contains("p2: err p2"))
                #expect(both.stderr.contains("p2: exited with status 1"))
                #expect(!both.stderr.contains("p2: p2:"))
                #expect(try await cli.json("get").isEmpty, "the job is removed afterwards")

                let one = try await cli.run(["invoke", "--computer", "p1", "--ssh-config", hosts.configFile, "-c", "hostname"])
                #expect(one.status == 0)
                #expect(one.stdout == "p1\n", "one computer: no prefix")

                // A line's own `wait` waits for its own jobs only, not for anything of the wrapper's.
                let waits = try await cli.run([
                    "invoke", "--computer", "p1", "--ssh-config", hosts.configFile, "-c", "sleep 0.2 & sleep 0.1 & wait; echo done",
                ])
                #expect(waits.stdout == "done\n", "\(waits.stderr)")

                let hidden = try await cli.run(
                    ["invoke", "--computer", "p1,p2", "--hide-computer-name", "--ssh-config", hosts.configFile, "-c", "true"])
                #expect(hidden.status == 0)

                var environment = ProcessInfo.processInfo.environment
                environment["JOB_SSH_CONFIG"] = hosts.configFile
                let fromEnvironment = try await cli.run(["invoke", "--computer", "p2", "-c", "hostname"], environment: environment)
                #expect(fromEnvironment.stdout == "p2\n", "JOB_SSH_CONFIG: \(fromEnvironment.stderr)")
            }
        }
    }

    @Test func interruptingAWaitingInvokeStopsAndRemovesItsJob() async throws {
        try await withSSHHosts(["i1", "i2"]) { hosts in
            let marks = hosts.directory + "/marks"
            try FileManager.default.createDirectory(atPath: marks, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o777])
            try await withCLI { cli in
                // The shell waits until both hosts run the command, then presses Ctrl-C.
                let script = """
                    "$0" --home "$1" invoke --computer i1,i2 --ssh-config "$2" -c "$4" &
                    client=$!
                    i=0
                    while [ ! -s "$3/i1" ] || [ ! -s "$3/i2" ]; do
                      sleep 0.05; i=$((i+1)); [ $i -lt 400 ] || { kill -KILL $client; exit 99; }
                    done
                    kill -INT $client; wait $client
                    """
                let line = "echo $$ >\(marks)/$(hostname); exec sleep 300"
                let run = try await runProcessDetached("/bin/sh", ["-c", script, cli.job, cli.home.path, hosts.configFile, marks, line])
                #expect(run.status == 130, "\(run.stderr)")
                #expect(try await cli.json("get").isEmpty, "the job went with the command")
                let pids = try ["i1", "i2"].map {
                    try String(contentsOfFile: "\(marks)/\($0)", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
                }
                let left = try await hosts.waitUntilGone(pids, on: "i1")
                #expect(left.isEmpty, "still running: \(left)")
            }
        }
    }

    @Test func aSecondInvokeReusesTheHostsMaster() async throws {
        try await withSSHHosts(["m1"]) { hosts in
            try await withCLI { cli in
                // The master, as ssh itself reports it: "Master running (pid=N)".
                let master: () async throws -> String = {
                    let sockets = try FileManager.default.contentsOfDirectory(atPath: cli.home.path + "/ssh")
                        .filter { $0.hasSuffix(".sock") }
                    #expect(sockets.count == 1, "one master for one host: \(sockets)")
                    let check = try await runProcessDetached(
                        "/usr/bin/ssh",
                        ["-F", hosts.configFile, "-o", "ControlPath=\(cli.home.path)/ssh/\(sockets.first ?? "")", "-O", "check", "m1"])
                    return check.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
                }
                var seen: [String] = []
                for _ in 0..<3 {
                    let run = try await cli.run(["invoke", "--computer", "m1", "--ssh-config", hosts.configFile, "-c", "true"])
                    #expect(run.status == 0, "\(run.stderr)")
                    seen.append(try await master())
                }
                #expect(seen.first?.hasPrefix("Master running (pid=") == true, "\(seen)")
                #expect(Set(seen).count == 1, "the same master each time: \(seen)")
                let log = hosts.log("m1")
                #expect(log.components(separatedBy: "Accepted publickey").count - 1 == 1, "one handshake: \(log)")
                #expect(log.components(separatedBy: "Starting session").count - 1 >= 3, "three sessions on it")
            }
        }
    }

    /// sshd allows 10 sessions per connection by default (MaxSessions). Jobs beyond that
    /// through one master are refused by it: they connect by themselves, as ssh does.
    @Test func moreJobsThanAConnectionTakesStillRun() async throws {
        try await withSSHHosts(["n1:sessions=2"]) { hosts in
            try await withCLI { cli in
                _ = try await cli.warmUp("n1", hosts, if: true)
                let four = try await cli.run([
                    "invoke", "--computer", "n1,n1,n1,n1", "--ssh-config", hosts.configFile, "-c",
                    "sleep 1; echo \"$(hostname) ran\"",
                ])
                #expect(four.status == 0, "\(four.stderr)")
                #expect(four.stdout == String(repeating: "n1: n1 ran\n", count: 4))
                let log = hosts.log("n1")
                #expect(log.components(separatedBy: "Accepted publickey").count - 1 >= 2, "some connected by themselves")
            }
        }
    }

    /// The environment reaches the host as ssh passes it: only the variables SendEnv names
    /// (and the server accepts), through the job's own ssh or through a master alike.
    @Test func theEnvironmentGoesAsSendEnvSays() async throws {
        try await withSSHHosts(["e1"]) { hosts in
            try await withCLI { cli in
                try hosts.appendToConfig("Host *\n  SendEnv JOBTEST_SENT\n")
                var environment = ProcessInfo.processInfo.environment
                environment["JOBTEST_SENT"] = "sent"
                environment["JOBTEST_KEPT"] = "kept"
                let line = [
                    "invoke", "--computer", "e1", "--ssh-config", hosts.configFile, "-c",
                    "echo \"[$JOBTEST_SENT][$JOBTEST_KEPT]\"",
                ]
                for path in ["cold", "through the master"] {
                    let run = try await cli.run(line, environment: environment)
                    #expect(run.status == 0, "\(path): \(run.stderr)")
                    #expect(run.stdout == "[sent][]\n", "\(path)")
                }
            }
        }
    }

    @Test func aDeadMasterIsReplaced() async throws {
        try await withSSHHosts(["r1"]) { hosts in
            try await withCLI { cli in
                let invoke = ["invoke", "--computer", "r1", "--ssh-config", hosts.configFile, "-c", "hostname"]
                #expect(try await cli.run(invoke).stdout == "r1\n")
                let master = ["-f", "\(cli.home.path)/ssh/"]
                // Stopped politely, a master removes its socket; killed, it leaves it behind.
                #expect(try await runProcessDetached("/usr/bin/pkill", ["-TERM"] + master).status == 0)
                try await waitUntilNoProcess(matching: "\(cli.home.path)/ssh/")
                #expect(try await cli.run(invoke).stdout == "r1\n")
                #expect(try await runProcessDetached("/usr/bin/pkill", ["-KILL"] + master).status == 0)
                try await waitUntilNoProcess(matching: "\(cli.home.path)/ssh/")
                let third = try await cli.run(invoke)
                #expect(third.status == 0, "\(third.stderr)")
                #expect(third.stdout == "r1\n")
                #expect(hosts.log("r1").components(separatedBy: "Accepted publickey").count - 1 == 3)
            }
        }
    }

    @Test func badInvocationsAreRefusedWithOneLine() async throws {
        try await withCLI { cli in
            let config = try await cli.run(["invoke", "--computer", "x", "--ssh-config", "/nonexistent/config", "-c", "true"])
            #expect(config.status == 64)
            #expect(config.stderr.contains("cannot read the ssh config file /nonexistent/config"))
            let option = try await cli.run(["invoke", "--computer", "-oProxyCommand=evil", "--as-job", "-c", "true"])
            #expect(option.status != 0)
            #expect(try await cli.json("get").isEmpty)
        }
    }

    @Test func remoteJobsOutliveAKilledDaemonWithCompleteOutput() async throws {
        let names = ["k1", "k2", "k3"]
        try await withSSHHosts(names) { hosts in
            try await withCLI { cli in
                let go = hosts.directory + "/go"
                try FileManager.default.createDirectory(atPath: go, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o777])
                // Each host prints 1..40, the second half only once the daemon has been killed.
                let line = "for i in $(seq 20); do echo $(hostname) $i; done; while [ ! -e \(go)/now ]; do sleep 0.05; done; for i in $(seq 21 40); do echo $(hostname) $i; done"
                let started = try await cli.run([
                    "invoke", "--computer", names.joined(separator: ","), "--throttle", "2", "--as-job",
                    "--ssh-config", hosts.configFile, "-c", line,
                ])
                #expect(started.status == 0, "\(started.stderr)")
                // Receive part of it first: what was received must not come again.
                var first = ""
                for _ in 0..<200 where first.split(separator: "\n").count < 20 {
                    first += try await cli.run("receive", "1").stdout
                    try await Task.sleep(for: .milliseconds(50))
                }
                let status = try await cli.run("daemon", "status", "-o", "json")
                let pid = try #require(
                    (try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])?["pid"] as? Int)
                kill(pid_t(pid), SIGKILL)
                _ = FileManager.default.createFile(atPath: go + "/now", contents: nil)
                #expect(try await cli.run("wait", "1").status == 0)
                let jobs = try await cli.json("get", "1", "2", "3", "4")
                #expect(jobs.map { $0["state"] as? String } == ["Completed", "Completed", "Completed", "Completed"])
                let rest = try await cli.run("receive", "1")
                let lines = (first + rest.stdout).split(separator: "\n").map(String.init)
                let expected = names.flatMap { name in (1...40).map { "\(name) \($0)" } }
                #expect(lines.sorted() == expected.sorted(), "every line once")
                for name in names {
                    #expect(lines.filter { $0.hasPrefix(name + " ") } == (1...40).map { "\(name) \($0)" }, "\(name) in order")
                }
            }
        }
    }
}

extension CLI {
    /// `invoke --as-job -c LINE` on one of `hosts`: the parent is job 1, its child job 2.
    func invokeAsJob(_ line: String, on host: String, _ hosts: SSHHosts) async throws -> Run {
        try await run(["invoke", "--computer", host, "--as-job", "--ssh-config", hosts.configFile, "-c", line])
    }

    /// With `warm`, runs `true` on `host` first, so that its master is up (and its login shell
    /// known) for the next invoke; that job is removed. The ids the next `--as-job` invoke of
    /// one host gets: its parent's and its child's.
    func warmUp(_ host: String, _ hosts: SSHHosts, if warm: Bool) async throws -> (parent: Int, child: Int) {
        guard warm else { return (1, 2) }
        let run = try await run(["invoke", "--computer", host, "--ssh-config", hosts.configFile, "-c", "true"])
        #expect(run.status == 0, "\(run.stderr)")
        return (3, 4)
    }

    /// What job `id` has printed so far (kept for later), once it has printed anything; empty
    /// if nothing came within 10 s.
    func firstOutput(of id: Int) async throws -> String {
        for _ in 0..<200 {
            let text = try await run("receive", "\(id)", "--keep").stdout
            if !text.isEmpty { return text }
            try await Task.sleep(for: .milliseconds(50))
        }
        return ""
    }
}

extension SSHHosts {
    /// The processes of these pids still running on `host` (zombies count as gone), one
    /// `ps` state per line.
    func living(_ pids: [String], on host: String) async throws -> String {
        try await ssh(host, "for p in \(pids.joined(separator: " ")); do ps -o stat= -p $p | grep -v Z; done; true").stdout
    }

    /// Waits (up to 15 s) for those processes to be gone; returns what is left.
    func waitUntilGone(_ pids: [String], on host: String) async throws -> String {
        var left = try await living(pids, on: host)
        for _ in 0..<150 where !left.isEmpty {
            try await Task.sleep(for: .milliseconds(100))
            left = try await living(pids, on: host)
        }
        return left
    }
}

/// A TCP socket on 127.0.0.1 that takes connections (the kernel completes them) and never
/// answers: a host whose sshd hangs before its banner.
struct SilentListener {
    let fd: Int32
    let port: Int

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                bind(fd, raw, length) == 0 && listen(fd, 16) == 0 && getsockname(fd, raw, &length) == 0
            }
        }
        guard fd >= 0, bound else { throw FixtureError(message: "cannot listen on 127.0.0.1: \(errno)") }
        self.fd = fd
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    /// Whether a connection came and waits to be accepted (which it never is).
    var hasWaitingConnection: Bool {
        var ready = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&ready, 1, 0) > 0
    }

    func close() { _ = Glibc.close(fd) }
}

/// Waits (60 s at most) until no process's command line contains `pattern`: a master sent a
/// signal is gone only once pgrep no longer finds it.
func waitUntilNoProcess(matching pattern: String, sourceLocation: SourceLocation = #_sourceLocation) async throws {
    let gone = try await eventually(every: .milliseconds(50)) { try await runProcessDetached("/usr/bin/pgrep", ["-f", pattern]).status == 1 }
    #expect(gone, "no process matches \(pattern)", sourceLocation: sourceLocation)
}
