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
                // The first child holds the one slot until the go-file exists.
                let go = hosts.directory + "/go"
                let job = try await jobs.invoke(
                    .shell("\(waitForFile(go)); echo out $(hostname); echo err $(hostname) >&2"), on: ["localhost", "e1", "e2"],
                    options: options)
                #expect(job.type == .remoteJob)
                #expect(job.location == "localhost,e1,e2")
                let children = try await job.childJobs.asyncMap { try #require(await jobs.job($0)) }
                #expect(children.map(\.state) == [.running, .notStarted, .notStarted], "throttle 1: the rest wait")
                touch(go)
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

    /// The supervisor's own command line (the engine's way when it has no fork server): a
    /// session through the master at a socket, and ssh when no master answers there.
    @Test func aSupervisorOnItsOwnGoesThroughTheMasterOrElseSSH() async throws {
        try await withSSHHosts(["d1"]) { hosts in
            let home = try TemporaryHome("direct-mux")
            let jobsDirectory = home.path + "/jobs"
            try FileManager.default.createDirectory(atPath: jobsDirectory, withIntermediateDirectories: true)
            let executable = try Supervisor.locate(explicit: nil)
            let supervisor = try Supervisor(executable: executable, jobsDirectory: jobsDirectory)
            defer { supervisor.shutdown() }
            let socket = home.path + "/master.sock"
            let ssh = ["-F", hosts.configFile, "-o", "ControlPath=\(socket)"]
            let master = try await runProcessDetached("/usr/bin/ssh", ssh + ["-o", "ControlMaster=yes", "-o", "ControlPersist=60", "-N", "-f", "d1"])
            #expect(master.status == 0, "\(master.stderr)")
            defer { _ = try? runProcess("/usr/bin/ssh", ssh + ["-O", "exit", "d1"]) }
            let output: (Int) -> String = { id in
                (try? String(contentsOfFile: "\(jobsDirectory)/\(id).stdout", encoding: .utf8)) ?? ""
            }

            _ = try await runProcessDetached(
                executable, ["--hold-stdin", "--mux", socket, "echo \"$(hostname)\"; exit 3", jobsDirectory, "1", "/", "/bin/false"])
            #expect(output(1) == "d1\n", "run on the host, through the master")
            #expect(supervisor.ending(1)?.outcome == .exited(3))

            _ = try await runProcessDetached(
                executable,
                ["--hold-stdin", "--mux", home.path + "/none.sock", "echo unused", jobsDirectory, "2", "/", "/bin/sh", "-c", "echo ssh"])
            #expect(output(2) == "ssh\n", "no master there: the program given runs instead")
            #expect(supervisor.ending(2)?.outcome == .exited(0))
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
        let refused = #expect(throws: JobError.self) { try SSHLink.prepare(home: long) }
        #expect(refused?.code == .storage)
        #expect(chmod(directory, 0o700) == 0)
        try SSHLink.prepare(home: long)
    }

    /// ssh takes the first value it finds: the engine's own options come first (no prompt, its
    /// masters), the user's configuration next, the engine's defaults last, so that the user's
    /// say wins where they may have one. Checked with ssh's own reading (`ssh -G`).
    @Test func theUsersSSHConfigurationWinsOverTheEngineDefaults() async throws {
        let home = try TemporaryHome("ssh-config")
        let config = home.path + "/user config"
        try "Host web1\n  ConnectTimeout 7\n  ServerAliveCountMax 9\n  BatchMode no\nHost *\n  User ann\n"
            .write(toFile: config, atomically: true, encoding: .utf8)
        try SSHLink.prepare(home: home.path)
        let effective: (String, String?) async throws -> [String: String] = { host, file in
            let link = SSHLink.make(host: host, configFile: file, home: home.path)
            try link.writeConfig()
            let result = try await runProcessDetached("/usr/bin/ssh", ["-G"] + link.options + [host])
            #expect(result.status == 0, "\(result.stderr)")
            return Dictionary(
                result.stdout.split(separator: "\n").map { line in
                    let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
                    return (parts[0], parts.count > 1 ? parts[1] : "")
                }, uniquingKeysWith: { first, _ in first })
        }
        let web1 = try await effective("web1", config)
        #expect(web1["connecttimeout"] == "7")
        #expect(web1["serveralivecountmax"] == "9")
        #expect(web1["serveraliveinterval"] == "10", "the engine's default where the user says nothing")
        #expect(web1["batchmode"] == "yes", "never a prompt, whatever the configuration says")
        #expect(web1["controlmaster"] == "auto")
        #expect(web1["user"] == "ann")
        let web2 = try await effective("web2", config)
        #expect(web2["connecttimeout"] == "30")
        #expect(web2["serveralivecountmax"] == "3")
        #expect(try await effective("web1", nil)["batchmode"] == "yes", "ssh's own configuration files, read the same way")
        #expect(SSHLink.layered(configFile: nil)?.contains("Include \"/etc/ssh/ssh_config\"") == true)
        #expect(SSHLink.layered(configFile: "/odd/*.conf") == nil, "a glob would be expanded by Include")
    }

    /// What ssh logged, as a Reason (the lines are ssh 9.2's, in batch mode).
    @Test func sshsLogBecomesAReasonThatSaysWhatToDo() {
        #expect(SSHLog.reason(log: "ssh: connect to host 127.0.0.1 port 1: Connection refused\r\n")
            == "ssh: connect to host 127.0.0.1 port 1: Connection refused")
        let toDo = "Host key verification failed: add the host's key to known_hosts (connect once with ssh, or use ssh-keyscan)"
        #expect(SSHLog.reason(log: "Host key verification failed.\r\n") == toDo, "an unknown key (ask): what to do")
        let strict = "No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict checking."
        #expect(SSHLog.reason(log: strict + "\r\nHost key verification failed.\r\n") == strict + " " + toDo, "(yes)")
        let changed = """
            @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
            @    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @
            @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
            IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!
            Host key for [127.0.0.1]:2222 has changed and you have requested strict checking.
            Host key verification failed.

            """
        #expect(SSHLog.reason(log: changed) == "WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! Host key verification failed.")
        #expect(SSHLog.reason(log: "Control socket connect(/x): No such file or directory\n") == nil, "routine only")
    }

    @Test func invokeRefusesWhatCannotBeAComputerOrAThrottle() async throws {
        let quoted = FileManager.default.temporaryDirectory.path + "/jobkit-\(UUID().uuidString)-a\"quote"
        touch(quoted)
        defer { unlink(quoted) }
        try await withTemporaryEngine { jobs, _ in
            for file in ["relative/config", "/nonexistent/config", quoted] {
                let error = await #expect(throws: JobError.self, "\(file)") {
                    try await jobs.invoke(.argv(["true"]), on: ["web1"], options: InvokeOptions(sshConfigFile: file))
                }
                #expect(error?.code == .invalidArgument, "\(file)")
            }
            for computers in [["-oProxyCommand=x"], ["a b"], []] {
                let error = await #expect(throws: JobError.self, "\(computers)") {
                    try await jobs.invoke(.argv(["true"]), on: computers)
                }
                #expect(error?.code == .invalidArgument, "\(computers)")
            }
            let throttle = await #expect(throws: JobError.self) {
                try await jobs.invoke(.argv(["true"]), on: ["localhost"], options: InvokeOptions(throttle: 0))
            }
            #expect(throttle?.code == .invalidArgument)
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
