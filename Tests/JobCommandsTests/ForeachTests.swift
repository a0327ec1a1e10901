import Foundation
import JobTesting
import Testing

@Suite("foreach", .tags(.cli)) struct ForeachTests {
    /// Inputs that a careless quoting would break: blanks, quotes, `$`, a glob, unicode, a
    /// leading dash, and (with -0) a newline.
    static let awkward = ["a b.txt", "it's \"quoted\"", "$HOME and `x`", "*", "ünï/cödé.tar.gz", "-n", "dir.d/file", "/top"]

    @Test func replacementStringsInAShellLineAreQuotedInputs() async throws {
        try await withCLI { cli in
            let run = try await cli.run(
                ["foreach", "--keep-order", "-c", "printf '[%s][%s][%s][%s][%s][%s]\\n' {} {.} {/} {//} {/.} {#}"],
                input: Self.awkward.joined(separator: "\n") + "\n")
            #expect(run.status == 0, "\(run.stderr)")
            let expected = Self.awkward.enumerated().map { index, input in
                "[\(input)][\(Self.withoutExtension(input))][\(Self.basename(input))][\(Self.dirname(input))][\(Self.withoutExtension(Self.basename(input)))][\(index + 1)]\n"
            }.joined()
            #expect(run.stdout == expected)
            #expect(try await cli.json("get").isEmpty, "the job is removed afterwards")
        }
    }

    static func basename(_ s: String) -> String { s.split(separator: "/", omittingEmptySubsequences: false).last.map(String.init) ?? s }
    static func dirname(_ s: String) -> String {
        guard let slash = s.lastIndex(of: "/") else { return "." }
        return slash == s.startIndex ? "/" : String(s[..<slash])
    }
    static func withoutExtension(_ s: String) -> String {
        let name = basename(s)
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return s }
        return String(s.dropLast(name.distance(from: dot, to: name.endIndex)))
    }

    @Test func inAProgramsArgumentsValuesGoInAsTheyAre() async throws {
        try await withCLI { cli in
            let inputs = Self.awkward + ["two\nlines"]
            let run = try await cli.run(
                ["foreach", "-0", "--keep-order", "--", "printf", "<%s|%s>\\n", "{}", "pre{/}post"],
                input: inputs.joined(separator: "\0"))
            #expect(run.status == 0, "\(run.stderr)")
            #expect(run.stdout == inputs.map { "<\($0)|pre\(Self.basename($0))post>\n" }.joined())
        }
    }

    @Test func withNoReplacementStringTheInputIsTheLastArgumentAndJOB_INPUTHoldsIt() async throws {
        try await withCLI { cli in
            let argv = try await cli.run(["foreach", "--keep-order", "--", "echo", "got"], input: "x y\n-e\n")
            #expect(argv.stdout == "got x y\ngot -e\n", "\(argv.stderr)")
            let line = try await cli.run(["foreach", "--keep-order", "-c", "printf '%s|%s\\n' \"$JOB_INPUT\""], input: "it's\n$x\n")
            #expect(line.stdout == "it's|it's\n$x|$x\n", "\(line.stderr)")
        }
    }

    @Test func eachChildsOutputIsWrittenWholeInTheOrderTheyFinishOrInInputOrder() async throws {
        try await withCLI { cli in
            // The first input's child waits (with `job wait`) until the second's has finished:
            // they finish 2, then 1, as the daemon sees it too.
            func line(secondChild: Int) -> String {
                "[ {} = 1 ] && '\(cli.job)' --home '\(cli.home.path)' wait \(secondChild) --timeout 60 >/dev/null; echo {}-a; echo {}-err >&2; echo {}-b"
            }
            let finishOrder = try await cli.run(["foreach", "--throttle", "2", "-c", line(secondChild: 3)], input: "1\n2\n")
            #expect(finishOrder.status == 0, "\(finishOrder.stderr)")
            #expect(finishOrder.stdout == "2-a\n2-b\n1-a\n1-b\n")
            #expect(finishOrder.stderr == "2-err\n1-err\n")
            let inputOrder = try await cli.run(["foreach", "--throttle", "2", "--keep-order", "--tag", "-c", line(secondChild: 6)], input: "1\n2\n")
            #expect(inputOrder.stdout == "1\t1-a\n1\t1-b\n2\t2-a\n2\t2-b\n", "\(inputOrder.stderr)")
            #expect(inputOrder.stderr == "1\t1-err\n2\t2-err\n")
        }
    }

    @Test func theExitStatusSaysWhetherEveryChildCompleted() async throws {
        try await withCLI { cli in
            let good = try await cli.run(["foreach", "-c", "exit 0"], input: "1\n2\n3\n")
            #expect(good.status == 0)
            let bad = try await cli.run(["foreach", "-c", "[ {} != 2 ]"], input: "1\n2\n3\n")
            #expect(bad.status == 1)
            #expect(bad.stderr.contains("failed: exited with status 1"), "\(bad.stderr)")
            let empty = try await cli.run(["foreach", "-c", "echo never"], input: "")
            #expect(empty.status == 0 && empty.stdout.isEmpty, "no input: nothing runs, and that is success")
            #expect(try await cli.json("get").isEmpty)
        }
    }

    @Test func asAJobItIsAParentWithAChildPerInput() async throws {
        try await withCLI { cli in
            let file = cli.home.path + "/inputs"
            try Data("alpha\nbeta\ngamma".utf8).write(to: URL(fileURLWithPath: file))
            let started = try await cli.run(["foreach", "--as-job", "--name", "greek", "--input-file", file, "-o", "json", "-c", "echo {}"])
            #expect(started.status == 0, "\(started.stderr)")
            let parent = try #require((try JSONSerialization.jsonObject(with: Data(started.stdout.utf8)) as? [[String: Any]])?.first)
            #expect(parent["type"] as? String == "PSTaskJob" && parent["name"] as? String == "greek")
            let done = try await cli.run("wait", "greek", "--timeout", "60")
            #expect(done.status == 0, "\(done.stderr)")
            let all = try await cli.json("get", "--include-children")
            #expect(all.map { $0["id"] as? Int } == [1, 2, 3, 4])
            #expect(all.dropFirst().map { $0["input"] as? String } == ["alpha", "beta", "gamma"], "the last line needs no newline")
            #expect(all.dropFirst().map { $0["command"] as? String } == ["echo alpha", "echo beta", "echo gamma"])
            #expect(all.dropFirst().allSatisfy { $0["type"] as? String == "PSTaskJob" && $0["location"] as? String == "localhost" })
            #expect(try await cli.run("receive", "greek").stdout == "alpha\nbeta\ngamma\n")
        }
    }

    @Test func theThrottleBoundsHowManyRunAtOnce() async throws {
        try await withCLI { cli in
            let marks = Marks(directory: cli.home.path)
            let started = try await cli.run(["foreach", "--as-job", "--throttle", "2", "-c", marks.command("{}")], input: "1\n2\n3\n4\n5\n")
            #expect(started.status == 0, "\(started.stderr)")
            #expect(try await marks.waitUntilBegun(2))
            #expect(try await cli.state("4") == "NotStarted")
            for n in 1...5 {
                marks.go("\(n)")
                #expect(try await marks.waitUntilBegun(min(5, n + 2)))
            }
            #expect(try await cli.run("wait", "1", "--timeout", "60").status == 0)
            // The first two start together; each later one once a slot is freed, in order.
            #expect(marks.mostAtOnce == 2, "\(marks.lines)")
            #expect(Set(marks.begun.prefix(2)) == ["1", "2"] && Array(marks.begun.dropFirst(2)) == ["3", "4", "5"], "\(marks.lines)")
        }
    }

    @Test func itTakesQueuesDependenciesAndRetries() async throws {
        try await withCLI { cli in
            let marks = Marks(directory: cli.home.path)
            try await cli.run("start", "--name", "first", "-c", marks.command("first"))
            try await cli.run("queue", "set", "q", "--limit", "1")
            let counter = cli.home.path + "/count-"
            let line = "n=$(cat '\(counter){}' 2>/dev/null || echo 0); n=$((n+1)); echo $n > '\(counter){}'; echo {} try $n; [ $n -ge 2 ]"
            let started = try await cli.run(
                ["foreach", "--as-job", "--queue", "q", "--depends-on", "first", "--retry", "1", "--throttle", "4", "-c", line], input: "a\nb\n")
            #expect(started.status == 0, "\(started.stderr)")
            #expect(try await marks.waitUntilBegun(1))
            #expect(try await cli.state("3") == "NotStarted")
            marks.go("first")
            let done = try await cli.run("wait", "3", "--timeout", "60", "-o", "json")
            #expect(done.status == 0, "\(done.stderr)")
            #expect(try await cli.run("receive", "3").stdout == "a try 1\na try 2\nb try 1\nb try 2\n")
            #expect(try await cli.job("4")["attempt"] as? Int == 2)
        }
    }

    @Test func ctrlCStopsTheChildrenAndRemovesTheJob() async throws {
        try await withCLI { cli in
            let tag = "1000.\(getpid() % 1000)3"
            let file = cli.home.path + "/inputs"
            try Data("1\n2\n3\n".utf8).write(to: URL(fileURLWithPath: file))
            let out = cli.home.path + "/foreach.out"
            let foreach = try Spawned(
                [cli.job, "--home", cli.home.path, "foreach", "--throttle", "2", "--input-file", file, "-c", "exec sleep \(tag) # {}"],
                stdout: out)
            #expect(try await eventually { processStates(["sleep", tag]).count == 2 })
            kill(foreach.pid, SIGINT)
            let end = try await foreach.wait()
            #expect(end.signal == nil && end.status == 130, "\(end)")
            #expect(try await eventually { processStates(["sleep", tag]).isEmpty }, "no child is left")
            #expect(try await cli.json("get").isEmpty, "the job went with it")
        }
    }

    /// Inputs read while another job is started: that job takes the next id, and the
    /// foreach's later children come after it; listings still show every child with its parent.
    @Test func aJobStartedWhileInputsAreReadTakesTheNextId() async throws {
        try await withCLI { cli in
            let go = cli.home.path + "/go-more"
            let writer = "(echo a; echo b; while [ ! -e '\(go)' ]; do sleep 0.1; done; echo c)"
            let pipeline = try Spawned(
                ["/bin/sh", "-c", "\(writer) | '\(cli.job)' --home '\(cli.home.path)' foreach --as-job -c 'echo {}'"],
                stdout: cli.home.path + "/pipeline.out")
            #expect(try await eventually { (try? await cli.json("get", "--include-children").count) == 3 })
            try await cli.run("start", "--name", "between", "-c", "true")
            #expect(FileManager.default.createFile(atPath: go, contents: nil), "the go-file")
            _ = try await pipeline.wait()
            #expect(try await eventually { (try? await cli.json("get", "--include-children").count) == 6 })
            #expect(try await cli.run("wait", "--timeout", "60").status == 0)
            let all = try await cli.json("get", "--include-children")
            #expect(all.map { $0["id"] as? Int } == [1, 2, 3, 4, 5, 6])
            #expect(all.first?["childJobs"] as? [Int] == [2, 3, 6], "\(all)")
            #expect(all[5]["parentId"] as? Int == 1 && all[5]["input"] as? String == "c")
            #expect(try await cli.run("receive", "1").stdout == "a\nb\nc\n")
            // Once finished and out of memory, read back from the database the same way.
            try await cli.run("daemon", "stop")
            #expect(try await cli.json("get", "--include-children").first?["childJobs"] as? [Int] == [2, 3, 6])
        }
    }

    @Test func badInputIsRefusedBeforeAnythingStarts() async throws {
        try await withCLI { cli in
            let missing = try await cli.run("foreach", "--input-file", "/nonexistent/inputs", "-c", "true")
            #expect(missing.status == 1 && missing.stderr.hasPrefix("job: cannot read the input file /nonexistent/inputs"), "\(missing.stderr)")
            let both = try await cli.run("foreach", "--as-job", "--keep-order", "--input-file", "/dev/null", "-c", "true")
            #expect(both.status == 64, "\(both.stderr)")
            let zero = try await cli.run("foreach", "--throttle", "0", "--input-file", "/dev/null", "-c", "true")
            #expect(zero.status == 64)
            #expect(try await cli.json("get").isEmpty)
        }
    }
}
