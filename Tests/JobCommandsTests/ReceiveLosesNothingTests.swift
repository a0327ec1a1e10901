import Foundation
import JobTesting
import Testing

/// Output counts as received only once `job receive` has written it: a full disk, a reader
/// that goes away, or a receive interrupted or killed loses nothing (finding 1 of #6).
@Suite("receive loses nothing", .tags(.cli)) struct ReceiveLosesNothingTests {
    /// A job's whole output, whatever receive did with it: read with --keep, consuming nothing.
    static func everything(_ cli: CLI, _ job: String) async throws -> String {
        try await cli.run("receive", job, "--keep").stdout
    }

    @Test func aFullDiskFailsTheReceiveAndTheOutputStays() async throws {
        try await withCLI { cli in
            try await cli.run("start", "-c", "seq 1 200000")
            try await cli.run("wait", "1")
            let whole = try await Self.everything(cli, "1")
            let full = try await CLI.execute("/bin/sh", ["-c", "exec \"$0\" --home \"$1\" receive 1 > /dev/full", cli.job, cli.home.path])
            #expect(full.status == 1)
            #expect(full.stderr == "job: cannot write output: No space left on device\n")
            #expect(try await cli.run("receive", "1").stdout == whole, "nothing was consumed")
            #expect(try await cli.run("receive", "1").stdout.isEmpty)

            let get = try await CLI.execute("/bin/sh", ["-c", "exec \"$0\" --home \"$1\" get > /dev/full", cli.job, cli.home.path])
            #expect(get.status == 1)
            #expect(get.stderr.hasPrefix("job: cannot write output:"))
        }
    }

    @Test func aReaderThatGoesAwayEndsItQuietlyAndWhatItDidNotTakeStays() async throws {
        try await withCLI { cli in
            try await cli.run("start", "-c", "seq 1 500000")
            try await cli.run("wait", "1")
            let whole = try await Self.everything(cli, "1")
            let piped = try await CLI.execute(
                "/bin/bash", ["-c", "\"$0\" --home \"$1\" receive 1 | head -1; echo \"${PIPESTATUS[0]}\" >&2", cli.job, cli.home.path])
            #expect(piped.stdout == "1\n")
            // Killed by SIGPIPE, as any Unix tool is, and saying nothing.
            #expect(piped.stderr == "141\n")
            let rest = try await cli.run("receive", "1").stdout
            #expect(!rest.isEmpty, "what never reached the pipe is still there")
            #expect(whole.hasSuffix(rest))
        }
    }

    /// A receive --wait ended by a signal (or stopped and killed) while a job prints a counter:
    /// the receives after it, put together, have every number, in order.
    @Test(arguments: ["TERM", "INT", "HUP", "STOP KILL"])
    func anInterruptedFollowLosesNothing(signals: String) async throws {
        try await withCLI { cli in
            // It counts until told to stop, so that the follower is killed while output flows
            // however slowly the machine runs.
            let go = cli.home.path + "/go"
            try await cli.run("start", "-c", "i=0; while [ ! -e '\(go)' ]; do i=$((i+1)); echo $i; [ $((i % 200)) = 0 ] && sleep 0.02; done; exit 0")
            let first = cli.home.path + "/first.out"
            let followerErrors = cli.home.path + "/first.err"
            let follower = try Spawned([cli.job, "--home", cli.home.path, "receive", "1", "--wait"], stdout: first, stderr: followerErrors)
            // Once it has written some of it, and before the job ends.
            #expect(try await eventually(within: .seconds(30)) { ((try? String(contentsOfFile: first, encoding: .utf8)) ?? "").count > 2000 })
            for signal in signals.split(separator: " ") {
                kill(follower.pid, signal == "TERM" ? SIGTERM : signal == "INT" ? SIGINT : signal == "HUP" ? SIGHUP : signal == "STOP" ? SIGSTOP : SIGKILL)
            }
            let end = try await follower.wait()
            #expect(FileManager.default.createFile(atPath: go, contents: nil), "the go-file")
            #expect(
                end.signal != nil,
                "it dies of the signal, as a shell expects; exited \(end.status): \((try? String(contentsOfFile: followerErrors, encoding: .utf8)) ?? "")")
            let second = try await cli.run("receive", "1", "--wait")
            #expect(second.status == 0, "\(second.stderr)")
            let lines = try String(contentsOfFile: first, encoding: .utf8).split(separator: "\n") + second.stdout.split(separator: "\n")
            let numbers = lines.compactMap { Int($0) }
            // At most the chunk in flight comes again: drop what the second repeats of the first.
            var seen = 0
            var ordered: [Int] = []
            for n in numbers where n > seen {
                ordered.append(n)
                seen = n
            }
            #expect(ordered.count > 500)
            #expect(ordered == Array(1...max(1, ordered.count)), "every number, in order")
            #expect(numbers.count - ordered.count <= 200_000, "repeats are at most a chunk (1 MiB of output)")
        }
    }

    @Test func anInterruptedWaitDiesOfTheSignalWithoutBlamingTheDaemon() async throws {
        try await withCLI { cli in
            try await cli.run("start", "--", "sleep", "60")
            let errors = cli.home.path + "/wait.err"
            let waiter = try Spawned([cli.job, "--home", cli.home.path, "wait", "1"], stdout: "/dev/null", stderr: errors)
            // Once it waits for the daemon's answer: blocked in read(2), system call 0.
            let blocked = try await eventually(within: .seconds(30)) {
                let call = (try? String(contentsOfFile: "/proc/\(waiter.pid)/syscall", encoding: .utf8)) ?? ""
                let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(waiter.pid)/exe")) ?? ""
                return exe.hasSuffix("/job") && call.hasPrefix("0 ")
            }
            #expect(blocked)
            kill(waiter.pid, SIGINT)
            #expect(try await waiter.wait().signal == SIGINT)
            #expect(try String(contentsOfFile: errors, encoding: .utf8).isEmpty, "no 'daemon could not be reached'")
            try await cli.run("stop", "1")
        }
    }
}
