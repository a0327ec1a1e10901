import Foundation
import Testing
@testable import JobKit
import JobModel
import JobTesting

/// The engine's remote children, used as a library (no daemon), against real sshd hosts.
@Suite("Remote jobs in JobKit", .tags(.medium)) struct RemoteTests {
    @Test func invokeRunsOnEachComputerAndKeepsTheirOutputApart() async throws {
        try await withSSHHosts(["e1", "e2"]) { hosts in
            try await withTemporaryEngine { jobs, _ in
                let options = InvokeOptions(throttle: 1, sshConfigFile: hosts.configFile)
                let job = try await jobs.invoke(
                    .shell("echo out $(hostname); echo err $(hostname) >&2"), on: ["localhost", "e1", "e2"],
                    options: options)
                #expect(job.type == .remoteJob)
                #expect(job.location == "localhost,e1,e2")
                let children = try await job.childJobs.asyncMap { try #require(await jobs.job($0)) }
                #expect(children.map(\.state).filter { $0 == .notStarted }.count >= 1, "throttle 1: the rest wait")
                let done = try #require(try await jobs.wait([.id(job.id)], timeout: .seconds(60)))
                #expect(done.first?.state == .completed)

                let output = try await jobs.receive([.id(job.id)])
                let chunks = try output.chunks()
                #expect(chunks.filter { $0.stream == .output }.map(\.location) == ["localhost", "e1", "e2"])
                let remote = chunks.filter { $0.location == "e2" }
                #expect(remote.map { String(decoding: $0.data, as: UTF8.self) }.sorted() == ["err e2\n", "out e2\n"])
                #expect(remote.first { $0.stream == .error }.map { String(decoding: $0.data, as: UTF8.self) } == "err e2\n")
            }
        }
    }

    @Test func anUnreachableComputerFailsItsChildOnly() async throws {
        try await withSSHHosts(["f1"]) { hosts in
            try hosts.addAlias("gone", port: 1)
            try await withTemporaryEngine { jobs, _ in
                let job = try await jobs.invoke(
                    .argv(["true"]), on: ["f1", "gone"], options: InvokeOptions(sshConfigFile: hosts.configFile))
                _ = try await jobs.wait([.id(job.id)])
                let children = try await job.childJobs.asyncMap { try #require(await jobs.job($0)) }
                #expect(children.map(\.state) == [.completed, .failed])
                #expect(children[1].hasMoreData == false)
                #expect(children[1].reason?.hasPrefix("gone: ssh: connect to host 127.0.0.1 port 1") == true)
                #expect(await jobs.job(job.id)?.state == .failed)
            }
        }
    }

    @Test func removingJobsLeavesNoFileOfTheirs() async throws {
        try await withTemporaryEngine { jobs, home in
            // A refused port: ssh fails at once and leaves its log. Beside it a local child
            // with output, and one without.
            let config = home.path + "/ssh_config"
            try "Host gone\n  HostName 127.0.0.1\n  Port 1\n".write(toFile: config, atomically: true, encoding: .utf8)
            let job = try await jobs.invoke(
                .shell("echo out; echo err >&2"), on: ["localhost", "gone"], options: InvokeOptions(sshConfigFile: config))
            let quiet = try await jobs.start(.argv(["true"]))
            _ = try await jobs.wait([.id(job.id), .id(quiet.id)])
            let jobsDirectory = home.path + "/jobs"
            let before = try FileManager.default.contentsOfDirectory(atPath: jobsDirectory)
            #expect(before.contains("\(job.childJobs[1]).ssh"), "\(before)")
            #expect(before.contains("\(job.childJobs[0]).stdout"), "\(before)")
            try await jobs.remove([.id(job.id), .id(quiet.id)])
            let after = try FileManager.default.contentsOfDirectory(atPath: jobsDirectory).sorted()
            #expect(after == ["locks"], "only what every job shares is left")
        }
    }

    @Test func controlSocketsOfALongHomeGoToAPrivateDirectoryInTmp() throws {
        let short = SSHLink.make(host: "web1", configFile: nil, home: "/home/ann/.local/state/job")
        #expect(short.controlPath.hasPrefix("/home/ann/.local/state/job/ssh/"))
        let long = "/tmp/" + String(repeating: "deep/", count: 20) + "home"
        let link = SSHLink.make(host: "web1", configFile: nil, home: long)
        #expect(link.controlPath.hasPrefix("/tmp/job-ssh-\(getuid())-"))
        #expect(link.controlPath.utf8.count + 17 < 104, "room for ssh's temporary suffix")
        #expect(SSHLink.make(host: "web2", configFile: nil, home: long).controlPath != link.controlPath)
        #expect(SSHLink.make(host: "web1", configFile: "/etc/other", home: long).controlPath != link.controlPath)

        // Made by someone else, or open to others: refused.
        let directory = SSHLink.directory(home: long)
        try? FileManager.default.removeItem(atPath: directory)
        #expect(mkdir(directory, 0o755) == 0)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(throws: JobError.self) { try SSHLink.prepare(home: long) }
        #expect(chmod(directory, 0o700) == 0)
        try SSHLink.prepare(home: long)
    }

    @Test func invokeRefusesWhatCannotBeAComputerOrAThrottle() async throws {
        try await withTemporaryEngine { jobs, _ in
            await #expect(throws: JobError.self) { try await jobs.invoke(.argv(["true"]), on: ["-oProxyCommand=x"]) }
            await #expect(throws: JobError.self) { try await jobs.invoke(.argv(["true"]), on: ["a b"]) }
            await #expect(throws: JobError.self) { try await jobs.invoke(.argv(["true"]), on: []) }
            await #expect(throws: JobError.self) {
                try await jobs.invoke(.argv(["true"]), on: ["localhost"], options: InvokeOptions(throttle: 0))
            }
            #expect(await jobs.all().isEmpty)
        }
    }
}

extension Array {
    fileprivate func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var result: [T] = []
        for element in self { result.append(try await transform(element)) }
        return result
    }
}
