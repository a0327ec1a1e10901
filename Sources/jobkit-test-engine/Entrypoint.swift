import Foundation
import JobKit
import JobModel

/// A process holding an engine, for tests that kill the engine with SIGKILL.
///
/// `jobkit-test-engine HOME LINE...` starts a job per LINE (`/bin/sh -c`), prints
/// `started PARENT_ID` for each, then `ready`, and runs until killed.
/// Unbuffered, so that the test reading the pipe sees each line at once.
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

@main
struct TestEngine {
    static func main() async throws {
        let args = CommandLine.arguments
        guard args.count >= 2 else {
            FileHandle.standardError.write(Data("usage: jobkit-test-engine HOME [LINE...]\n".utf8))
            exit(64)
        }
        try await JobManager.withManager(home: args[1]) { manager in
            for line in args.dropFirst(2) {
                let job = try await manager.start(.shell(line))
                say("started \(job.id)")
            }
            say("ready")
            try await Task.sleep(for: .seconds(3600))
        }
    }
}
