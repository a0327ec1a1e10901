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
