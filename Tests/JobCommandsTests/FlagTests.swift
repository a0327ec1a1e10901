import Foundation
import JobProtocol
import JobTesting
import Testing

/// The flags of the contract that the per-verb suites do not reach on their way.
@Suite("More flags", .tags(.cli)) struct FlagTests {
    @Test func removeByCommandPatternRemovesOnlyTheJobsWhoseCommandMatches() async throws {
        try await withCLI { cli in
            try await cli.run("start", "-c", "sleep 0.1")
            try await cli.run("start", "-c", "true")
            #expect(try await cli.run("wait").status == 0)
            let removed = try await cli.run("remove", "--command", "sleep*")
            #expect(removed.status == 0, "\(removed.stderr)")
            #expect(removed.stdout.isEmpty, "prints nothing on success")
            #expect(try await cli.json("get").map { $0["command"] as? String } == ["true"])
        }
    }

    @Test func versionPrintsTheRelease() async throws {
        try await withCLI { cli in
            let version = try await cli.run("--version")
            #expect(version.status == 0)
            #expect(version.stdout == Release.version + "\n")
            try await cli.run("get")
            let status = try await cli.run("daemon", "status", "-o", "json")
            #expect(status.stdout.contains("\"version\": \"\(Release.version)\""), "the daemon's is the same: \(status.stdout)")
        }
    }

    /// `job wait --timeout 1e16` and `job stop --grace 1e16` once killed jobd (an overflowing
    /// conversion): a number out of range is a usage error, and the daemon goes on.
    @Test func secondsOutOfRangeAreUsageErrors() async throws {
        try await withCLI { cli in
            try await cli.run("start", "-c", "sleep 1000")
            for args in [["wait", "1", "--timeout", "1e16"], ["stop", "1", "--grace", "1e16"], ["wait", "--timeout", "nan"], ["stop", "1", "--grace", "1e300"]] {
                let refused = try await cli.run(args)
                #expect(refused.status == 64, "\(args): \(refused.stderr)")
                #expect(refused.stderr.contains("seconds, not"), "\(args): \(refused.stderr)")
            }
            #expect(try await cli.run("stop", "1", "--grace", "0").status == 0, "the daemon still serves")
            let after = try await cli.json("get", "1", "--include-children")
            #expect(after.first?["state"] as? String == "Stopped", "\(after)")
        }
    }

    /// `job remove '*'` names the children too: they go with their parents, and nothing is
    /// reported missing (it said "no job with id 2" and exited 1).
    @Test func removeWithAWildcardRemovesParentsWithTheirChildren() async throws {
        try await withCLI { cli in
            for _ in 0..<2 { try await cli.run("start", "-c", "true") }
            #expect(try await cli.run("wait").status == 0)
            let removed = try await cli.run("remove", "*")
            #expect(removed.status == 0, "\(removed.stderr)")
            #expect(removed.stderr.isEmpty)
            #expect(try await cli.json("get", "--include-children").isEmpty)
            try await cli.run("start", "-c", "true")
            #expect(try await cli.run("wait").status == 0)
            let child = try await cli.run("remove", "Job6")
            #expect(child.status == 1)
            #expect(child.stderr == "job: job 6 is a child of job 5; remove job 5\n", "a child named alone is still refused")
        }
    }

    @Test func aHomeThatCannotBeMadeSaysWhyInOneLine() async throws {
        let result = try await CLI.execute(builtExecutable("job"), ["--home", "/proc/no-such-home/job", "get"])
        #expect(result.status == 69)
        #expect(result.stderr == "job: cannot create the job home /proc/no-such-home/job: No such file or directory; choose another with --home or JOB_HOME\n")
    }

    /// `job daemon unit` prints a systemd user unit that systemd takes: `job daemon run` as a
    /// simple service, ending only the daemon when stopped, so that jobs outlive a restart.
    @Test func daemonUnitIsAUnitSystemdTakes() async throws {
        try await withCLI { cli in
            let unit = try await cli.run("daemon", "unit")
            #expect(unit.status == 0, "\(unit.stderr)")
            #expect(unit.stdout.contains("\nType=simple\n") && unit.stdout.contains("\nKillMode=process\n"), "\(unit.stdout)")
            #expect(unit.stdout.contains("ExecStart=\(cli.job) daemon run --home \(cli.home.path)\n"), "\(unit.stdout)")
            let file = cli.home.path + "/jobd.service"
            try unit.stdout.write(toFile: file, atomically: true, encoding: .utf8)
            let verified = try await runProcessDetached("/usr/bin/env", ["systemd-analyze", "verify", file])
            #expect(verified.status == 0, "\(verified.stdout)\(verified.stderr)")
            #expect(try await cli.run("daemon", "unit", "--help").stdout.contains("loginctl enable-linger"))
        }
    }

    /// Usage errors are one line, beginning `job: `, saying where to look; a mistyped command
    /// gets a suggestion; `job help` of no command is a usage error too.
    @Test func usageErrorsAreOneLineThatSaysWhatToDo() async throws {
        try await withCLI { cli in
            let cases: [([String], String)] = [
                (["strat", "-c", "true"], "job: unknown command 'strat'; did you mean 'start'? (job --help lists them)\n"),
                (["help", "bogus"], "job: unknown command 'bogus' (job --help lists them)\n"),
                (["get", "--bogus"], "job: Unknown option '--bogus' (job get --help says more)\n"),
                (["wait", "--timeout", "-1"], "job: --timeout takes 0 to 1000000000 seconds, not -1.0 (job wait --help says more)\n"),
                (["stop", "1", "--grace", "-1"], "job: --grace takes 0 to 1000000000 seconds, not -1.0 (job stop --help says more)\n"),
            ]
            for (args, message) in cases {
                let result = try await cli.run(args)
                #expect(result.status == 64, "\(args)")
                #expect(result.stderr == message, "\(args)")
                #expect(result.stdout.isEmpty, "\(args)")
            }
            // A long word comes back cut, not whole.
            let long = String(repeating: "x", count: 100_000)
            let missing = try await cli.run("get", long)
            #expect(missing.status == 1)
            #expect(missing.stderr == "job: no job named '\(String(repeating: "x", count: 77))…'\n")
        }
    }

    @Test func getNewestKeepsTheMostRecentJobs() async throws {
        try await withCLI { cli in
            // Each ended before the next began: "ended last" is then the last two started.
            for _ in 0..<3 {
                try await cli.run("start", "-c", "true")
                #expect(try await cli.run("wait").status == 0)
            }
            #expect(try await cli.json("get", "--newest", "2").map { $0["id"] as? Int } == [3, 5])
        }
    }

    @Test func receiveByLocationAndWithoutRecursion() async throws {
        try await withCLI { cli in
            // A computer whose port nothing listens on: refused at once, no sshd needed.
            let config = cli.home.path + "/ssh_config"
            try "Host gone\n  HostName 127.0.0.1\n  Port 1\n".write(toFile: config, atomically: true, encoding: .utf8)
            let started = try await cli.run([
                "invoke", "--computer", "localhost,gone", "--as-job", "--ssh-config", config, "-c", "echo here",
            ])
            #expect(started.status == 0, "\(started.stderr)")
            #expect(try await cli.run("wait", "1").status == 1)

            let own = try await cli.run("receive", "1", "--no-recurse", "--keep")
            #expect(own.stdout.isEmpty, "a parent's own output is empty")
            let local = try await cli.run("receive", "1", "--location", "localhost", "--keep")
            #expect(local.stdout == "here\n")
            #expect(!local.stderr.contains("gone"), "only the localhost child is read: \(local.stderr)")
            let remote = try await cli.run("receive", "1", "--location", "gone", "--keep")
            #expect(remote.stdout.isEmpty)
            #expect(remote.status == 1)
            #expect(remote.stderr.contains("gone: ssh: connect to host 127.0.0.1 port 1"), "\(remote.stderr)")
        }
    }

    @Test func daemonStartAndRunInTheForeground() async throws {
        try await withCLI { cli in
            #expect(try await cli.run("daemon", "status").status == 1, "not running yet")
            #expect(try await cli.run("daemon", "start").status == 0)
            #expect(try await cli.run("daemon", "status").status == 0)
            #expect(try await cli.run("daemon", "stop").status == 0)
            #expect(try await cli.run("daemon", "status").status == 1)

            // `run` stays in the foreground until stopped, serving meanwhile.
            let script = """
                "$0" --home "$1" daemon run & daemon=$!
                i=0; until "$0" --home "$1" daemon status >/dev/null 2>&1; do
                  sleep 0.05; i=$((i+1)); [ $i -lt 200 ] || { kill $daemon; exit 99; }; done
                kill -0 $daemon || exit 98
                "$0" --home "$1" daemon stop >/dev/null; wait $daemon
                """
            let run = try await runProcessDetached("/bin/sh", ["-c", script, cli.job, cli.home.path])
            #expect(run.status == 0, "\(run.stderr)")
        }
    }
}
