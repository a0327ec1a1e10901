import Foundation
import JobKit
import JobModel

/// Starts a real background job with JobKit, waits for it, and prints what it printed and
/// how it ended. `swift run jobkit-example [SHELL LINE]`.
/// Unbuffered, so that these lines and the job's output (copied straight to fd 1) keep their order.
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

@main
struct Example {
    static func main() async throws {
        let line = CommandLine.arguments.dropFirst().joined(separator: " ")
        let command = line.isEmpty ? "echo hello from a background job; uname -sr; date" : line
        let home = FileManager.default.temporaryDirectory.path + "/jobkit-example"
        try await JobManager.withManager(home: home) { jobs in
            let job = try await jobs.start(.shell(command))
            say("started \(job.name) (id \(job.id), child Job\(job.childJobs.first ?? 0)): \(job.command)")
            guard let done = try await jobs.wait([.id(job.id)])?.first else { return }
            let output = try await jobs.receive([.id(job.id)])
            try output.copy(output: STDOUT_FILENO, error: STDERR_FILENO)
            let code = done.exitCode.map { ", exit code \($0)" } ?? ""
            say("\(done.name) \(done.state.rawValue)\(code)\(done.reason.map { ": \($0)" } ?? "")")
            try await jobs.remove([.id(job.id)])
        }
    }
}
