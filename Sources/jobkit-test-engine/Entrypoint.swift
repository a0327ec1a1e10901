import Foundation
import JobKit
import JobModel

/// A process holding an engine, for tests that kill the engine with SIGKILL.
///
/// `jobkit-test-engine HOME` reads commands from stdin, one per line, and answers each on
/// stdout with one line:
///   `start LINE`    starts `/bin/sh -c LINE`   → `started PARENT_ID`
///   `receive ID`    receives (consumes) output → `received HEX_OF_STDOUT`
///   `stop ID SECS`  stops with that grace       → `stopped`
/// and runs until killed or stdin closes.
@main
struct TestEngine {
    static func main() async throws {
        let args = CommandLine.arguments
        guard args.count == 2 else {
            FileHandle.standardError.write(Data("usage: jobkit-test-engine HOME\n".utf8))
            exit(64)
        }
        try await JobManager.withManager(home: args[1]) { manager in
            say("ready")
            while let line = readLine() {
                let (verb, rest) = split(line)
                switch verb {
                case "start":
                    let job = try await manager.start(.shell(rest))
                    say("started \(job.id)")
                case "receive":
                    let output = try await manager.receive([JobSelector(rest)])
                    say("received " + (try output.data(.output)).map { String(format: "%02x", $0) }.joined())
                case "stop":
                    let (id, grace) = split(rest)
                    _ = try await manager.stop([JobSelector(id)], grace: .seconds(Double(grace) ?? 5))
                    say("stopped")
                default:
                    say("error unknown command \(verb)")
                }
            }
        }
    }

    static func split(_ line: String) -> (String, String) {
        guard let space = line.firstIndex(of: " ") else { return (line, "") }
        return (String(line[..<space]), String(line[line.index(after: space)...]))
    }
}

/// Unbuffered, so that the test reading the pipe sees each line at once.
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
