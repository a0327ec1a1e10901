import Foundation
import Synchronization
import Testing
@testable import JobKit
import JobModel
import JobTesting

@Suite("Receiving output", .tags(.medium)) struct OutputTests {
    @Test func hasMoreDataIsTrueWhileRunningAndUntilReceived() async throws {
        try await withTemporaryEngine { jobs, _ in
            let job = try await jobs.sh("sleep 0.3; echo done")
            #expect(try #require(await jobs.job(job.id)).hasMoreData)
            let done = try await jobs.finished(job.id)
            #expect(done.hasMoreData)
            #expect(try await jobs.text(job.id, keep: true) == "done\n")
            #expect(try #require(await jobs.job(job.id)).hasMoreData, "--keep does not drain")
            #expect(try await jobs.text(job.id) == "done\n")
            #expect(try #require(await jobs.job(job.id)).hasMoreData == false)
            let child = try await jobs.child(of: done)
            #expect(child.hasMoreData == false)
            #expect(try await jobs.text(job.id) == "", "a drained job returns nothing, and no error")
        }
    }

    @Test func aJobWithNoOutputHasNoMoreDataOnceFinished() async throws {
        try await withTemporaryEngine { jobs, _ in
            let job = try await jobs.sh("true")
            #expect(try await jobs.finished(job.id).hasMoreData == false)
        }
    }

    @Test func partialReceivesOfARunningJobLoseAndRepeatNothing() async throws {
        try await withTemporaryEngine { jobs, home in
            // Five steps of twenty lines, each after a go-file of the test's: every step is
            // received while the job runs (and may be mid-write), however slow the machine.
            let steps = 5
            let go = home.path + "/go"
            let job = try await jobs.sh(
                "for s in $(seq \(steps)); do seq $(( (s-1)*20 )) $(( s*20-1 )); n=0; "
                    + "while [ ! -e '\(go)'$s ]; do n=$((n+1)); [ $n -gt 3000 ] && exit 9; sleep 0.02; done; done")
            var collected = ""
            var partial = 0
            for step in 1...steps {
                var text = ""
                for _ in 0..<3000 where text.isEmpty {
                    text = try await jobs.text(job.id)
                    if text.isEmpty { try await Task.sleep(for: .milliseconds(10)) }
                }
                if !text.isEmpty, try #require(await jobs.job(job.id)).state == .running { partial += 1 }
                collected += text
                touch(go + "\(step)")
            }
            _ = try await jobs.finished(job.id)
            collected += try await jobs.text(job.id)
            #expect(partial == steps, "the job was read, in pieces, while it ran")
            #expect(collected == (0..<100).map { "\($0)\n" }.joined())
        }
    }

    @Test func keepReturnsTheCumulativeBufferUntilAReceiveDrainsIt() async throws {
        try await withTemporaryEngine { jobs, home in
            let go = home.path + "/go"
            let job = try await jobs.sh("echo one; \(waitForFile(go)); echo two")
            try #require(try await eventually { try await !jobs.text(job.id, keep: true).isEmpty }, "the job printed")
            #expect(try await jobs.text(job.id, keep: true) == "one\n")
            touch(go)
            #expect(try await jobs.finished(job.id).exitCode == 0)
            #expect(try await jobs.text(job.id, keep: true) == "one\ntwo\n")
            #expect(try await jobs.text(job.id, keep: true) == "one\ntwo\n")
            #expect(try await jobs.text(job.id) == "one\ntwo\n")
            #expect(try await jobs.text(job.id, keep: true) == "")
        }
    }

    @Test func tenMegabytesOfBinaryOutputComeBackByteForByte() async throws {
        try await withTemporaryEngine { jobs, home in
            // Made on a thread of its own: ten million random bytes take a while in a debug build.
            let bytes = try await onOwnThread {
                var generator = SystemRandomNumberGenerator()
                return (0..<(10 << 20)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            }
            let file = home.path + "/random.bin"
            try Data(bytes).write(to: URL(fileURLWithPath: file))
            let job = try await jobs.start(.argv(["cat", file]))
            _ = try await jobs.finished(job.id)
            let output = try await jobs.receive([.id(job.id)])
            #expect(try output.data(.output) == bytes)
            #expect(try output.data(.error).isEmpty)
        }
    }

    @Test func stdoutAndStderrStayApartAndInOrder() async throws {
        try await withTemporaryEngine { jobs, home in
            // Each write waits until the one before it has been recorded (the test's go-file
            // N follows record N): writes apart in time, however slow the machine.
            let go = home.path + "/go"
            let gate = "n=0; while [ ! -e '\(go)'$k ]; do n=$((n+1)); [ $n -gt 3000 ] && exit 9; sleep 0.02; done; k=$((k+1))"
            let job = try await jobs.sh("k=1; for i in 1 2 3 4 5; do echo out$i; \(gate); echo err$i >&2; \(gate); done")
            for record in 1...10 {
                try await eventually { try await jobs.receive([.id(job.id)], keep: true).chunks(coalesce: false).count >= record }
                touch(go + "\(record)")
            }
            _ = try await jobs.finished(job.id)
            let output = try await jobs.receive([.id(job.id)])
            let chunks = try output.chunks(coalesce: false)
            let lines = chunks.map { "\($0.stream.name):\(String(decoding: $0.data, as: UTF8.self))" }
            #expect(lines == (1...5).flatMap { ["output:out\($0)\n", "error:err\($0)\n"] })
            #expect(try output.data(.output) == Array((1...5).map { "out\($0)\n" }.joined().utf8))
            #expect(try output.data(.error) == Array((1...5).map { "err\($0)\n" }.joined().utf8))
            #expect(chunks.allSatisfy { $0.jobName == "Job2" && $0.location == "localhost" })
        }
    }

    @Test func aParentReadsItsChildrenThenItself_noRecurseReadsNothing() async throws {
        try await withTemporaryEngine { jobs, _ in
            let job = try await jobs.sh("echo hi")
            _ = try await jobs.finished(job.id)
            #expect(try await jobs.receive([.id(job.id)], recurse: false).slices.isEmpty)
            let child = try await jobs.child(of: job)
            #expect(try await jobs.receive([.id(job.id)], keep: true, locations: ["elsewhere"]).slices.isEmpty)
            #expect(try await jobs.receive([.id(job.id)], keep: true, locations: ["LOCALHOST"]).data() == Array("hi\n".utf8))
            #expect(try await jobs.receive([.id(child.id)], recurse: false).data() == Array("hi\n".utf8))
            #expect(try await jobs.text(job.id) == "")
        }
    }

    @Test func aFailedJobsReasonComesWithEveryReceive() async throws {
        try await withTemporaryEngine { jobs, _ in
            let job = try await jobs.sh("echo partial; exit 2")
            _ = try await jobs.finished(job.id)
            let first = try await jobs.receive([.id(job.id)])
            #expect(try first.data() == Array("partial\n".utf8))
            #expect(first.failures.map(\.reason) == ["exited with status 2"])
            let second = try await jobs.receive([.id(job.id)])
            #expect(second.slices.isEmpty)
            #expect(second.failures.map(\.jobName) == ["Job2"])
        }
    }

    @Test func receivingAnUnknownJobIsAnError() async throws {
        try await withTemporaryEngine { jobs, _ in
            await #expect(throws: JobError.noJob(id: 9)) { try await jobs.receive([.id(9)]) }
            await #expect(throws: JobError.noJob(named: "build")) { try await jobs.receive([.name("build")]) }
            let none = try await jobs.receive([.name("build*")])
            #expect(none.slices.isEmpty)
        }
    }
}

@Suite("Streaming receive", .tags(.medium)) struct ReceiveStreamTests {
    @Test func streamsOutputAsItArrivesUntilTheJobEnds() async throws {
        try await withTemporaryEngine { jobs, home in
            // The job goes on only once the test has seen its first line through the stream,
            // so a stream that held output back until the end would make it fail (exit 9).
            let go = home.path + "/go"
            let job = try await jobs.sh(
                "echo line1; \(waitForFile(go)); echo line2; echo oops >&2; exit 4")
            var output = ""
            var errors = ""
            var failures: [JobFailure] = []
            var finished: [JobInfo] = []
            for try await event in jobs.receiveStream([.id(job.id)]) {
                switch event {
                case .output(let chunk):
                    let text = String(decoding: chunk.data, as: UTF8.self)
                    if chunk.stream == .output { output += text } else { errors += text }
                    if output == "line1\n" { touch(go) }
                case .failed(let failure):
                    failures.append(failure)
                case .finished(let jobs):
                    finished = jobs
                case .whole:
                    Issue.record("a receive stream hands output out as it comes, not whole")
                }
            }
            #expect(finished.map(\.state) == [.failed], "the job as it ended, last")
            let done = try #require(await jobs.job(job.id))
            #expect(done.exitCode == 4, "the first line reached the stream while the job ran")
            #expect(output == "line1\nline2\n")
            #expect(errors == "oops\n")
            #expect(failures.map(\.reason) == ["exited with status 4"])
            #expect(done.hasMoreData == false)
        }
    }

    @Test func autoRemoveRemovesTheJobsAtTheEnd() async throws {
        try await withTemporaryEngine { jobs, _ in
            let job = try await jobs.sh("echo bye")
            var text = ""
            for try await case .output(let chunk) in jobs.receiveStream([.id(job.id)], autoRemove: true) {
                text += String(decoding: chunk.data, as: UTF8.self)
            }
            #expect(text == "bye\n")
            #expect(await jobs.job(job.id) == nil)
        }
    }

    @Test func aStreamOverAFinishedJobEndsAtOnce() async throws {
        try await withTemporaryEngine { jobs, _ in
            let job = try await jobs.sh("true")
            _ = try await jobs.finished(job.id)
            var events: [ReceiveEvent] = []
            for try await event in jobs.receiveStream([.id(job.id)]) { events.append(event) }
            #expect(events.count == 1, "no output: only the job as it finished")
            if case .finished(let finished) = events.first { #expect(finished.map(\.state) == [.completed]) }
        }
    }

    @Test func aStreamOverSeveralJobsSeesEachOnesWritesAsTheyCome() async throws {
        try await withTemporaryEngine { jobs, home in
            // a writes, waits for b's line to be seen; b waits for a's first line to be seen:
            // each line must come through the stream while the other job is silent.
            let goA = home.path + "/goA", goB = home.path + "/goB"
            let a = try await jobs.sh("echo a1; \(waitForFile(goA)); echo a2")
            let b = try await jobs.sh("\(waitForFile(goB)); echo b1")
            var lines: [String] = []
            for try await case .output(let chunk) in jobs.receiveStream([.id(a.id), .id(b.id)]) {
                lines.append(String(decoding: chunk.data, as: UTF8.self))
                if lines == ["a1\n"] { touch(goB) }
                if lines == ["a1\n", "b1\n"] { touch(goA) }
            }
            #expect(lines == ["a1\n", "b1\n", "a2\n"])
            #expect(try #require(await jobs.job(a.id)).state == .completed)
            #expect(try #require(await jobs.job(b.id)).state == .completed)
        }
    }
}

@Suite("The engine's output watch", .tags(.medium)) struct OutputWatcherTests {
    /// Notifications got so far, and a way to wait for them without sleeping blind.
    final class Seen: Sendable {
        let ids = Mutex<[Set<Int>?]>([])
        func until(_ done: ([Set<Int>?]) -> Bool) async throws -> [Set<Int>?] {
            for _ in 0..<500 {
                let now = ids.withLock { $0 }
                if done(now) { return now }
                try await Task.sleep(for: .milliseconds(10))
            }
            return ids.withLock { $0 }
        }
    }

    @Test func tellsEachSubscriberOfItsOwnJobsAndStopsWhenIdle() async throws {
        let home = try TemporaryHome("watcher")
        let watcher = OutputWatcher(jobsDirectory: home.path, idleTime: .milliseconds(50))
        defer { watcher.shutdown() }
        let seen = Seen()
        let token = watcher.subscribe([7, 9]) { ids in seen.ids.withLock { $0.append(ids) } }
        #expect(watcher.isWatching)
        try Data([1]).write(to: URL(fileURLWithPath: home.path + "/8.index"))  // not ours
        try Data([1]).write(to: URL(fileURLWithPath: home.path + "/7.stdout"))  // not an index
        try Data([1]).write(to: URL(fileURLWithPath: home.path + "/7.index"))
        let first = try await seen.until { !$0.isEmpty }
        #expect(first == [[7]], "only job 7's index, only to its subscriber")

        watcher.unsubscribe(token)
        for _ in 0..<500 where watcher.isWatching { try await Task.sleep(for: .milliseconds(10)) }
        #expect(!watcher.isWatching, "no subscriber for a while: the watch ends")

        let again = watcher.subscribe([9]) { ids in seen.ids.withLock { $0.append(ids) } }
        #expect(watcher.isWatching, "and comes back with the next subscriber")
        try Data([1]).write(to: URL(fileURLWithPath: home.path + "/9.index"))
        #expect(try await seen.until { $0.count == 2 }.last == [9])
        watcher.unsubscribe(again)
    }
}
