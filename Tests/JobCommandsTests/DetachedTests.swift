import Foundation
import JobTesting
import Testing

/// `job invoke --detached` on real sshd hosts (`scripts/ssh-hosts`), with faults made for
/// real: a host's sshd and its connections killed and started again, the master killed, the
/// daemon SIGKILLed. Each host has a state directory of its own, where its detached jobs live.
@Suite(.tags(.cli, .ssh))
struct DetachedTests {
    /// A counter that runs until the go-file exists, then prints `end` and exits `status`.
    static func counter(go: String, status: Int = 0) -> String {
        "i=0; while [ ! -e \(go) ]; do echo $i; i=$((i+1)); sleep 0.05; done; echo end; exit \(status)"
    }

    /// The counter's output is whole: 0, 1, 2, … once each, in order, then `end`.
    static func expectWholeCount(_ text: String, atLeast: Int, sourceLocation: SourceLocation = #_sourceLocation) {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines.last == "", "ends with a newline", sourceLocation: sourceLocation)
        lines.removeLast()
        #expect(lines.last == "end", sourceLocation: sourceLocation)
        let numbers = lines.dropLast()
        #expect(numbers.count >= atLeast, "\(numbers.count) numbers", sourceLocation: sourceLocation)
        #expect(Array(numbers) == (0..<numbers.count).map(String.init), "every number once, in order", sourceLocation: sourceLocation)
    }

    /// A directory the hosts' user can write to, for go-files.
    static func notes(_ hosts: SSHHosts) throws -> String {
        let notes = hosts.directory + "/notes"
        try FileManager.default.createDirectory(atPath: notes, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o777])
        return notes
    }

    /// The seed's third configuration ("Invoke-Command running Start-Job"): where `job` is
    /// installed on the computers, each one's job is kept by its own daemon there.
    @Test func jobsStartedOnComputersAreKeptByTheirOwnDaemons() async throws {
        try await withSSHHosts(["js1", "js2"]) { hosts in
            try hosts.install(builtExecutable("job"), as: "job")
            try await withCLI { cli in
                let remote = { (line: String) in
                    try await cli.run(["invoke", "--computer", "js1,js2", "--ssh-config", hosts.configFile, "-c", line])
                }
                let started = try await remote("job start --name seed -- sh -c 'echo hello from $(hostname)'")
                #expect(started.status == 0, "\(started.stderr)")
                let lines = started.stdout.split(separator: "\n")
                #expect(lines.contains { $0.hasPrefix("js1: ") && $0.contains("seed") }, "\(started.stdout)")
                #expect(lines.contains { $0.hasPrefix("js2: ") && $0.contains("seed") })
                #expect(try await cli.run("get").stdout.isEmpty, "nothing of theirs is kept here")
                let received = try await remote("job wait seed >/dev/null && job receive seed")
                #expect(received.status == 0, "\(received.stderr)")
                #expect(Set(received.stdout.split(separator: "\n")) == ["js1: hello from js1", "js2: hello from js2"])
                #expect(try await remote("job remove seed && job daemon stop").status == 0)
            }
        }
    }

    func invoke(_ cli: CLI, _ hosts: SSHHosts, _ computers: String, _ line: String) async throws {
        let started = try await cli.run([
            "invoke", "--computer", computers, "--as-job", "--detached", "--ssh-config", hosts.configFile, "-c", line,
        ])
        #expect(started.status == 0, "\(started.stderr)")
    }

    @Test func aDetachedJobRunsOnItsHostAndItsFilesGoWithIt() async throws {
        // d3's login shell is fish: the host's supervisor is /bin/sh all the same.
        try await withSSHHosts(["d1", "d2", "d3:fish"]) { hosts in
            try await withCLI { cli in
                try await invoke(cli, hosts, "d1,d2,d3", "echo out $(hostname); echo err >&2; [ $(hostname) != d2 ] || exit 3")
                #expect(try await cli.run("wait", "1").status == 1, "a child failed")
                let children = try await cli.json("get", "2", "3", "4")
                #expect(children.map { $0["state"] as? String } == ["Completed", "Failed", "Completed"])
                #expect(children.map { $0["exitCode"] as? Int } == [0, 3, 0])
                #expect(try await cli.run("receive", "4", "--keep").stdout == "out d3\n")
                #expect(children[1]["reason"] as? String == "exited with status 3")
                #expect(try await cli.run("receive", "2", "--keep").stdout == "out d1\n")
                let failed = try await cli.run("receive", "3", "--keep", "-o", "json")
                #expect(failed.status == 1, "the child failed")
                let errors = (try JSONSerialization.jsonObject(with: Data(failed.stdout.utf8)) as? [[String: Any]]) ?? []
                #expect(errors.map { $0["stream"] as? String } == ["output", "error"], "\(errors)")
                #expect(errors.map { $0["text"] as? String } == ["out d2", "err"])
                // What it left on its host stays until the job is removed, then goes.
                #expect(hosts.detachedJobs("d1").count == 1)
                let job = try #require(hosts.detachedJobs("d1").first)
                for suffix in ["out", "err", "pid"] {
                    #expect(FileManager.default.fileExists(atPath: "\(job).\(suffix)"), "\(job).\(suffix)")
                }
                #expect(try await cli.run("remove", "1").status == 0)
                #expect(try await eventually { ["d1", "d2", "d3"].allSatisfy { hosts.detachedJobs($0).isEmpty } })
            }
        }
    }

    /// A counter on the host `spec` names, until it is told to end: `interrupt` does what the
    /// test does to it once it prints; then it ends, and its output must be whole.
    func expectCounterWhole(
        on spec: String, atLeast: Int = 20, config: String? = nil, label: String = #function,
        _ interrupt: (SSHHosts, CLI) async throws -> Void
    ) async throws {
        let host = String(spec.prefix { $0 != ":" })
        try await withSSHHosts([spec], label: label) { hosts in
            if let config { try hosts.appendToConfig(config) }
            let go = try Self.notes(hosts) + "/go"
            try await withCLI(label) { cli in
                try await invoke(cli, hosts, host, Self.counter(go: go))
                #expect(try await eventually { try await cli.run("receive", "2", "--keep").stdout.count > 10 }, "the counter runs")
                try await interrupt(hosts, cli)
                #expect(FileManager.default.createFile(atPath: go, contents: nil), "the go-file")
                #expect(try await cli.run("wait", "1").status == 0)
                Self.expectWholeCount(try await cli.run("receive", "1").stdout, atLeast: atLeast)
            }
        }
    }

    /// `host` cut off by `cut`: the child and its parent are Disconnected with ssh's reason,
    /// the counter goes on there; after `restore` the child is Running again.
    func expectAwayAndBack(
        _ hosts: SSHHosts, _ cli: CLI, _ host: String, cut: () async throws -> Void, restore: () async throws -> Void,
        reason expected: (String) -> Bool
    ) async throws {
        try await cut()
        #expect(try await eventually { try await cli.state("2") == "Disconnected" }, "the child is Disconnected")
        #expect(try await cli.state("1") == "Disconnected", "and so is its parent")
        let reason = try await cli.job("2")["reason"] as? String ?? ""
        #expect(expected(reason), "\(reason)")
        // The counter keeps counting on the host meanwhile.
        let out = try #require(hosts.detachedJobs(host).first) + ".out"
        let size = { (try? FileManager.default.attributesOfItem(atPath: out)[.size] as? Int) ?? 0 }
        let before = size()
        #expect(try await eventually { size() > before + 20 }, "the command goes on")
        try await restore()
        #expect(try await eventually { try await cli.state("2") == "Running" }, "reached again")
    }

    @Test func theCommandGoesOnWhileItsHostCannotBeReachedAndNothingIsLostOrRepeated() async throws {
        try await expectCounterWhole(on: "dc1") { hosts, cli in
            try await expectAwayAndBack(hosts, cli, "dc1", cut: { try await hosts.stop("dc1") }, restore: { try await hosts.start("dc1") }) {
                $0.hasPrefix("dc1: ssh: connect to host 127.0.0.1")
            }
        }
    }

    /// A host whose network goes away (its link set down): the connection times out rather
    /// than being refused; ssh is told to notice within seconds.
    @Test func aHostWhoseLinkGoesDownForAWhileLosesNothing() async throws {
        try await expectCounterWhole(
            on: "dl1:netns", config: "Host dl1\n  ServerAliveInterval 1\n  ServerAliveCountMax 2\n  ConnectTimeout 2\n"
        ) { hosts, cli in
            try await expectAwayAndBack(
                hosts, cli, "dl1", cut: { try await hosts.link("dl1", up: false) }, restore: { try await hosts.link("dl1", up: true) }
            ) { $0.hasPrefix("dl1: ") && $0.contains("timed out") }
        }
    }

    @Test func aKilledMasterIsReplacedAndTheOutputGoesOnWhole() async throws {
        try await expectCounterWhole(on: "dm1") { _, cli in
            // The master: the ssh named after the home's control socket ("ssh: SOCKET [mux]").
            let masters = try await CLI.execute("/usr/bin/pkill", ["-KILL", "-f", "\(cli.home.path)/ssh/.*mux"])
            #expect(masters.status == 0, "a master was killed")
            let count = { try await cli.run("receive", "2", "--keep").stdout.count }
            let after = try await count()
            #expect(try await eventually { try await count() > after + 20 }, "followed again")
        }
    }

    @Test func aNewDaemonReconnectsToWhatTheKilledOneFollowed() async throws {
        try await expectCounterWhole(on: "dk1") { hosts, cli in
            try await hosts.stop("dk1")
            try await cli.killDaemon()
            // The next command starts a daemon, which finds the host away.
            #expect(try await eventually { try await cli.state("2") == "Disconnected" })
            try await hosts.start("dk1")
            #expect(try await eventually { try await cli.state("2") == "Running" })
        }
    }

    /// This machine restarting: the daemon, every supervisor and every master of the home
    /// gone at once; the daemon started later reconnects.
    @Test func everythingLocalKilledAtOnceIsLikeARestartAndLosesNothing() async throws {
        try await expectCounterWhole(on: "dr1", atLeast: 5) { _, cli in
            try await cli.killDaemon()
            // The supervisors (their argv names the home's jobs) and the masters (named by
            // the home's sockets).
            _ = try await CLI.execute("/usr/bin/pkill", ["-KILL", "-f", "\(cli.home.path)/"])
            #expect(try await eventually { try await CLI.execute("/usr/bin/pgrep", ["-f", "\(cli.home.path)/"]).status != 0 })
            #expect(try await eventually { try await cli.state("2") == "Running" }, "the next daemon reconnects")
        }
    }

    @Test func aRemovedJobsFilesGoFromAHostThatWasAwayOnceItIsBack() async throws {
        try await withSSHHosts(["da1"]) { hosts in
            try await withCLI { cli in
                try await invoke(cli, hosts, "da1", "sleep 4601; echo never")
                #expect(try await eventually { try await CLI.execute("/usr/bin/pgrep", ["-fx", "sleep 4601"]).status == 0 })
                try await hosts.stop("da1")
                #expect(try await eventually { try await cli.state("2") == "Disconnected" })
                let removed = try await cli.run("remove", "1", "--force")
                #expect(removed.status == 0, "\(removed.stderr)")
                #expect(try await cli.run("get").stdout.isEmpty, "gone here at once")
                #expect(!hosts.detachedJobs("da1").isEmpty, "its files wait for the host")
                try await hosts.start("da1")
                // The daemon tries again on its own (30 s after a failure, at most).
                #expect(try await eventually(within: .seconds(90)) { hosts.detachedJobs("da1").isEmpty }, "then they go")
                #expect(try await CLI.execute("/usr/bin/pgrep", ["-fx", "sleep 4601"]).status != 0, "and so does the command")
            }
        }
    }

    @Test func aCommandThatEndsWhileNobodyIsConnectedKeepsItsStatus() async throws {
        try await withSSHHosts(["de1"]) { hosts in
            let go = try Self.notes(hosts) + "/go"
            try await withCLI { cli in
                try await invoke(cli, hosts, "de1", Self.counter(go: go, status: 7))
                #expect(try await eventually { try await cli.run("receive", "2", "--keep").stdout.count > 10 })
                try await hosts.stop("de1")
                #expect(try await eventually { try await cli.state("2") == "Disconnected" })
                #expect(FileManager.default.createFile(atPath: go, contents: nil), "the go-file")
                let pid = try #require(hosts.detachedJobs("de1").first) + ".pid"
                // Its status is the pid file's line of one word, beside the supervisor's ids.
                let ended = { ((try? String(contentsOfFile: pid, encoding: .utf8)) ?? "").split(separator: "\n").contains("7") }
                #expect(try await eventually { ended() }, "it ended on its host")
                #expect(try await cli.state("2") == "Disconnected", "unseen here")
                #expect(try await cli.run("wait", "1").status == 0, "Disconnected is done for wait, without --force")
                try await hosts.start("de1")
                #expect(try await cli.run("wait", "1", "--force").status == 1)
                let child = try await cli.job("2")
                #expect(child["state"] as? String == "Failed")
                #expect(child["exitCode"] as? Int == 7)
                Self.expectWholeCount(try await cli.run("receive", "1").stdout, atLeast: 10)
            }
        }
    }

    @Test func stopEndsTheWholeTreeOnTheHostAlsoOnceTheHostIsBack() async throws {
        try await withSSHHosts(["ds1"]) { hosts in
            try await withCLI { cli in
                let tree = { (pattern: String) in
                    try await CLI.execute("/usr/bin/pgrep", ["-f", pattern]).status == 0
                }
                // Both sleeps of a tree run: two processes match "sleep 450N" beside the shell.
                let both = { (a: String, b: String) in
                    let first = try await CLI.execute("/usr/bin/pgrep", ["-fx", "sleep \(a)"]).status == 0
                    let second = try await CLI.execute("/usr/bin/pgrep", ["-fx", "sleep \(b)"]).status == 0
                    return first && second
                }
                try await invoke(cli, hosts, "ds1", "sleep 4501 & sleep 4502 & echo up; wait")
                #expect(try await eventually { try await both("4501", "4502") })
                #expect(try await cli.run("stop", "1").status == 0)
                #expect(try await cli.state("2") == "Stopped")
                #expect(try await eventually { try await !tree("sleep 450[12]") }, "no process of it left on the host")

                // Stopped while the host is away: Stopping until it is back, then stopped there.
                try await invoke(cli, hosts, "ds1", "sleep 4503 & sleep 4504 & echo up; wait")
                #expect(try await eventually { try await both("4503", "4504") })
                #expect(try await eventually { try await cli.run("receive", "4", "--keep").stdout == "up\n" })
                try await hosts.stop("ds1")
                #expect(try await eventually { try await cli.state("4") == "Disconnected" })
                let stop = try await cli.run("stop", "3")
                #expect(stop.status == 0, "\(stop.stderr)")
                #expect(try await cli.state("4") == "Stopping")
                #expect(try await tree("sleep 4503"), "it runs until the host is reached")
                try await hosts.start("ds1")
                #expect(try await eventually { try await cli.state("4") == "Stopped" })
                #expect(try await eventually { try await !tree("sleep 450[34]") })
                let ids = try await cli.run("get", "--include-children", "-o", "table", "--property", "Id,InstanceId,State")
                #expect(try await cli.run("remove", "*").status == 0)
                #expect(try await eventually { hosts.detachedJobs("ds1").isEmpty }, "\(ids.stdout) left: \(hosts.detachedJobs("ds1"))")
            }
        }
    }

    @Test func binaryOutputArrivesByteForByteAndCostsTheDaemonNoMemory() async throws {
        try await withSSHHosts(["db1"]) { hosts in
            let notes = try Self.notes(hosts)
            try await withCLI { cli in
                try await cli.run("get")
                let pid = try await cli.daemonPid()
                let rss = { () -> Int in
                    let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
                    let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
                    return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
                }
                try await invoke(cli, hosts, "db1", "head -c 10485760 /dev/urandom | tee \(notes)/copy")
                #expect(try await cli.run("wait", "1").status == 0)
                let copy = try Data(contentsOf: URL(fileURLWithPath: notes + "/copy"))
                #expect(copy.count == 10_485_760)
                let received = try Data(contentsOf: URL(fileURLWithPath: cli.home.path + "/jobs/2.stdout"))
                #expect(received == copy, "byte-identical")
                let raw = try await CLI.execute("/bin/sh", ["-c", "\"$0\" --home \"$1\" receive 1 --keep | cmp - \"$2\"", cli.job, cli.home.path, notes + "/copy"])
                #expect(raw.status == 0, "receive writes the same bytes: \(raw.stdout)\(raw.stderr)")

                let before = rss()
                try await invoke(cli, hosts, "db1", "head -c 104857600 /dev/zero")
                #expect(try await cli.run("wait", "3").status == 0)
                let size = (try FileManager.default.attributesOfItem(atPath: cli.home.path + "/jobs/4.stdout")[.size] as? Int) ?? 0
                #expect(size == 104_857_600)
                #expect(rss() - before < 20_000, "the daemon's RSS grew \(rss() - before) KiB for 100 MB of output")
            }
        }
    }
}
