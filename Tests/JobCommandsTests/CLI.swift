import Foundation
import JobTesting
import Testing

extension Tag {
    @Tag static var cli: Self
}

/// What one run of the built `job` binary did.
struct Run {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// A temporary home and the built `job` run against it. The daemon it starts is stopped at
/// the end (`finish`), so that tests leave no process behind.
final class CLI: Sendable {
    let home: TemporaryHome
    let job = builtExecutable("job")

    init(_ label: String = "cli") throws {
        home = try TemporaryHome(label)
    }

    /// Runs `job ARGS --home HOME` (the home goes before the subcommand: global options are
    /// accepted there too).
    @discardableResult
    func run(_ args: [String], environment: [String: String]? = nil, in directory: String? = nil) async throws -> Run {
        try await Self.execute(job, ["--home", home.path] + args, environment: environment, directory: directory)
    }

    @discardableResult
    func run(_ args: String...) async throws -> Run { try await run(args) }

    /// Runs `job ARGS` with `input` as its standard input (a file).
    @discardableResult
    func run(_ args: [String], input: String) async throws -> Run {
        let file = home.path + "/stdin-\(UUID().uuidString)"
        try Data(input.utf8).write(to: URL(fileURLWithPath: file))
        defer { unlink(file) }
        let result = try await runProcessDetached(job, ["--home", home.path] + args, stdin: file)
        return Run(status: result.status, stdout: result.stdout, stderr: result.stderr)
    }

    /// The daemon's pid, as it says itself.
    func daemonPid() async throws -> pid_t {
        let status = try await run("daemon", "status", "-o", "json")
        let object = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any]
        return pid_t(try #require(object?["pid"] as? Int, "\(status.stdout)\(status.stderr)"))
    }

    /// SIGKILLs the daemon and waits until it is gone; the next command starts another.
    func killDaemon() async throws {
        let pid = try await daemonPid()
        kill(pid, SIGKILL)
        #expect(try await eventually { kill(pid, 0) != 0 || (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8))?.contains(") Z") == true })
    }

    /// One job, by id or name, as `get -o json` shows it.
    func job(_ word: String) async throws -> [String: Any] {
        try #require(try await json("get", word).first, "job \(word)")
    }

    /// A property of one job.
    func state(_ word: String) async throws -> String? { try await job(word)["state"] as? String }

    static func execute(_ executable: String, _ args: [String], environment: [String: String]? = nil, directory: String? = nil) async throws -> Run {
        let result = try await runProcessDetached(executable, args, environment: environment, directory: directory)
        return Run(status: result.status, stdout: result.stdout, stderr: result.stderr)
    }

    func finish() async {
        // Sessions' shells outlive the daemon, as jobs do: a test's are ended with it.
        let sessions = (try? FileManager.default.contentsOfDirectory(atPath: home.path + "/sessions/run")) ?? []
        if sessions.contains(where: { $0 != "locks" }) { _ = try? await run("session", "remove", "*", "--grace", "2") }
        _ = try? await run("daemon", "stop")
    }

    /// The JSON `job … -o json` printed.
    func json(_ args: String...) async throws -> [[String: Any]] {
        let result = try await run(args + ["-o", "json"])
        #expect(result.status == 0, "\(args): \(result.stderr)")
        return (try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]]) ?? []
    }
}

/// Runs `body` with a fresh CLI home, stopping its daemon afterwards.
func withCLI(_ label: String = #function, _ body: (CLI) async throws -> Void) async throws {
    let cli = try CLI(String(label.prefix { $0.isLetter }.prefix(24)))
    do {
        try await body(cli)
    } catch {
        await cli.finish()
        throw error
    }
    await cli.finish()
}
