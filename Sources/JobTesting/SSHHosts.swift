import Foundation

/// Real `sshd`s on 127.0.0.1 for tests, one per name, each with its own port, host key and
/// hostname (`scripts/ssh-hosts`, which the benchmarks use too). Logins are as the user
/// `jobtest`. Torn down, with every session they started, by `down()`.
public final class SSHHosts: Sendable {
    /// The fixture's directory: keys, logs, `ssh_config`, `known_hosts`.
    public let directory: String
    public let names: [String]

    /// `ssh -F` this: a `Host` alias per name, plus whatever `addAlias` added.
    public var configFile: String { directory + "/ssh_config" }
    public var knownHosts: String { directory + "/known_hosts" }

    /// `scripts/ssh-hosts`, found from this source file: the fixture lives in the project.
    public static let script: String = {
        var dir = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { dir.deleteLastPathComponent() }
        return dir.path + "/scripts/ssh-hosts"
    }()

    private init(directory: String, names: [String]) {
        self.directory = directory
        self.names = names
    }

    /// Starts one sshd per name.
    public static func up(_ names: [String], label: String = "ssh") async throws -> SSHHosts {
        let base = FileManager.default.temporaryDirectory.path + "/jobkit-tests"
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        let directory = base + "/\(label)-hosts-\(UUID().uuidString.prefix(8))"
        let result = try await runProcessDetached("/bin/bash", [script, "up", directory] + names)
        guard result.status == 0 else {
            _ = try? await runProcessDetached("/bin/bash", [script, "down", directory])
            throw FixtureError(message: "ssh-hosts up failed: \(result.stderr)")
        }
        return SSHHosts(directory: directory, names: names)
    }

    /// Stops the sshds and everything their sessions run; removes the directory.
    public func down() async {
        _ = try? await runProcessDetached("/bin/bash", [Self.script, "down", directory])
    }

    /// The port a host's sshd listens on.
    public func port(_ name: String) -> Int {
        Int((try? String(contentsOfFile: "\(directory)/\(name).port", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0
    }

    /// What a host's sshd logged (VERBOSE: one "Accepted publickey" per connection).
    public func log(_ name: String) -> String {
        (try? String(contentsOfFile: "\(directory)/\(name).log", encoding: .utf8)) ?? ""
    }

    /// Adds a `Host` alias to the configuration, e.g. one whose port nothing listens on.
    public func addAlias(_ name: String, port: Int) throws {
        try appendToConfig("Host \(name)\n  HostName 127.0.0.1\n  Port \(port)\n")
    }

    /// Adds lines at the end of the client configuration (ssh takes the first value of an
    /// option it finds, so they set only what nothing before them did).
    public func appendToConfig(_ text: String) throws {
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: configFile))
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(text.utf8))
    }

    /// Gives a host a different key in known_hosts, as if its key had changed.
    public func forgeHostKey(_ name: String) async throws {
        let forged = try await runProcessDetached("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", "\(directory)/\(name).forged"])
        guard forged.status == 0 else { throw FixtureError(message: "ssh-keygen failed: \(forged.stderr)") }
        let key = try String(contentsOfFile: "\(directory)/\(name).forged.pub", encoding: .utf8)
            .split(separator: " ").prefix(2).joined(separator: " ")
        let entry = "[127.0.0.1]:\(port(name)) "
        let lines = try String(contentsOfFile: knownHosts, encoding: .utf8).split(separator: "\n").map { line in
            line.hasPrefix(entry) ? entry + key : String(line)
        }
        try (lines.joined(separator: "\n") + "\n").write(toFile: knownHosts, atomically: true, encoding: .utf8)
    }

    /// Kills a host's sshd and every connection to it, as if it crashed; what runs detached
    /// there goes on.
    public func stop(_ name: String) async throws {
        let result = try await runProcessDetached("/bin/bash", [Self.script, "stop", directory, name])
        guard result.status == 0 else { throw FixtureError(message: "ssh-hosts stop failed: \(result.stderr)") }
    }

    /// Starts a stopped host's sshd again, on its port.
    public func start(_ name: String) async throws {
        let result = try await runProcessDetached("/bin/bash", [Self.script, "start", directory, name])
        guard result.status == 0 else { throw FixtureError(message: "ssh-hosts start failed: \(result.stderr)") }
    }

    /// Cuts (false) or restores (true) a `NAME:netns` host's link: packets vanish meanwhile.
    public func link(_ name: String, up: Bool) async throws {
        let result = try await runProcessDetached("/bin/bash", [Self.script, "link", directory, name, up ? "up" : "down"])
        guard result.status == 0 else { throw FixtureError(message: "ssh-hosts link failed: \(result.stderr)") }
    }

    /// Puts a program on the hosts' PATH (a link in the fixture's `bin`, first in it).
    public func install(_ program: String, as name: String) throws {
        try FileManager.default.createSymbolicLink(atPath: "\(directory)/bin/\(name)", withDestinationPath: program)
    }

    /// A host's state directory (its sessions' XDG_STATE_HOME).
    public func stateDirectory(_ name: String) -> String { "\(directory)/state/\(name)" }

    /// The detached jobs a host has files of (`job/detached/KEY.*`): each one's path without
    /// the suffix, by key.
    public func detachedJobs(_ name: String) -> [String] {
        let path = stateDirectory(name) + "/job/detached"
        let files = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        return Set(files.map { String($0.prefix { $0 != "." }) }).sorted().map { "\(path)/\($0)" }
    }

    /// Runs a command on a host as the test user, straight through ssh (no master).
    public func ssh(_ name: String, _ command: String) async throws -> ProcessResult {
        try await runProcessDetached("/usr/bin/ssh", ["-F", configFile, "-o", "ControlPath=none", name, command])
    }
}

public struct FixtureError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }

    public init(message: String) {
        self.message = message
    }
}

/// Runs `body` with sshd hosts up, tearing them down afterwards whatever happens.
public func withSSHHosts<R>(
    _ names: [String], label: String = #function, isolation: isolated (any Actor)? = #isolation,
    _ body: (SSHHosts) async throws -> R
) async throws -> R {
    let hosts = try await SSHHosts.up(names, label: String(label.prefix { $0.isLetter }.prefix(20)))
    do {
        let result = try await body(hosts)
        await hosts.down()
        return result
    } catch {
        await hosts.down()
        throw error
    }
}
