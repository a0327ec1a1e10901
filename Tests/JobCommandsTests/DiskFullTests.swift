import Foundation
import JobTesting
import Testing

/// A home on a disk that fills up (finding 5 of #6): output that cannot be stored fails its
/// job and says how much was lost; the home stays usable, and removing a job frees its space.
@Suite("a full disk", .tags(.cli)) struct DiskFullTests {
    /// A CLI whose home is a tmpfs of `megabytes`, mounted for the test and unmounted after,
    /// whatever happens.
    static func withSmallDisk(megabytes: Int, _ body: (CLI) async throws -> Void) async throws {
        let cli = try CLI("diskfull")
        let mount = try await CLI.execute("/bin/mount", ["-t", "tmpfs", "-o", "size=\(megabytes)m,mode=0700", "tmpfs", cli.home.path])
        try #require(mount.status == 0, "mounting a tmpfs needs root: \(mount.stderr)")
        var failure: (any Error)?
        do {
            try await body(cli)
        } catch {
            failure = error
        }
        await cli.finish()
        let unmount = try await CLI.execute("/bin/umount", [cli.home.path])
        if unmount.status != 0 { _ = try await CLI.execute("/bin/umount", ["-l", cli.home.path]) }
        if let failure { throw failure }
    }

    /// Bytes the shell pipeline counted.
    static func count(_ cli: CLI, _ pipeline: String) async throws -> Int {
        let result = try await CLI.execute("/bin/sh", ["-c", pipeline, cli.job, cli.home.path])
        return Int(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }

    @Test func outputThatCannotBeStoredFailsTheJobAndIsCounted() async throws {
        try await Self.withSmallDisk(megabytes: 20) { cli in
            try await cli.run("start", "-c", "head -c 50000000 /dev/zero; echo oops >&2")
            #expect(try await cli.run("wait", "1").status == 1)
            let child = try #require(try await cli.json("get", "2").first)
            #expect(child["state"] as? String == "Failed")
            #expect(child["exitCode"] as? Int == 0, "its own exit status stays")
            let reason = child["reason"] as? String ?? ""
            #expect(reason.hasSuffix(" bytes of output could not be stored: No space left on device"), "\(reason)")
            let lost = Int(reason.prefix { $0.isNumber }) ?? 0
            let stored = try await Self.count(cli, "\"$0\" --home \"$1\" receive 1 --keep 2>/dev/null | wc -c")
            let storedErrors = try await Self.count(cli, "\"$0\" --home \"$1\" receive 1 --keep 2>&1 >/dev/null | grep -v '^job: ' | wc -c")
            #expect(lost > 0 && stored > 0)
            #expect(stored + storedErrors + lost == 50_000_005, "every byte is stored or counted as lost")
        }
    }

    @Test func aFullHomeStaysUsableAndRemovingAJobFreesItsSpace() async throws {
        try await Self.withSmallDisk(megabytes: 20) { cli in
            try await cli.run("start", "-c", "head -c 12000000 /dev/zero")
            try await cli.run("wait", "1")
            // The rest of the disk, taken by someone else.
            _ = try await CLI.execute("/bin/sh", ["-c", "head -c 100000000 /dev/zero > \"$0\"/filler", cli.home.path])
            let start = try await cli.run("start", "-c", "echo never")
            #expect(start.status == 1)
            #expect(start.stderr.hasPrefix("job: disk full"), "\(start.stderr)")
            #expect(try await cli.json("get").map { $0["id"] as? Int } == [1], "nothing half-made")
            #expect(try await Self.count(cli, "\"$0\" --home \"$1\" receive 1 --keep | wc -c") == 12_000_000)
            let remove = try await cli.run("remove", "1")
            #expect(remove.status == 0, "\(remove.stderr)")
            #expect(try await cli.json("get").isEmpty)
            try FileManager.default.removeItem(atPath: cli.home.path + "/filler")
            // (The ids the refused start had are not handed out again: its process was made,
            // held, and ended unrun.)
            let fine = try #require(try await cli.json("start", "-c", "echo fine").first?["id"] as? Int)
            try await cli.run("wait", String(fine))
            #expect(try await cli.run("receive", String(fine)).stdout == "fine\n")
        }
    }
}
