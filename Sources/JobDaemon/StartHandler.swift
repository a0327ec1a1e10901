import Foundation
import JobKit
import JobModel
import JobProtocol

/// `job start`: the command as the engine takes it, checked here first.
extension Handlers {
    func start(_ p: StartParameters, client: pid_t?, send: Send) async throws -> Outcome {
        let spec = try spec(p)
        guard p.stdin else {
            try await send(.job(try await engine.start(spec, name: p.name, options: scheduling(p))))
            return .ok
        }
        let fd = try openClientDescriptor(0, of: client, for: "standard input, to hand it to the job")
        try await send(.job(try await engine.start(spec, name: p.name, options: scheduling(p), stdin: fd)))
        return .ok
    }

    /// When and how often the job runs, as the engine takes it.
    func scheduling(_ p: StartParameters) -> StartOptions {
        StartOptions(queue: p.queue ?? Defaults.queue, dependsOn: p.dependsOn, retry: p.retry)
    }

    /// A descriptor of the client's own (`/proc/PID/fd/N`), opened while it waits for the
    /// answer: the same pipe or file, nothing copied. (A socket cannot be opened this way.)
    func openClientDescriptor(_ fd: Int, of client: pid_t?, for use: String) throws -> Int32 {
        guard let client else { throw JobError(.refused, "cannot tell which process asked, to take its \(use)") }
        let opened = open("/proc/\(client)/fd/\(fd)", O_RDONLY | O_CLOEXEC)
        guard opened >= 0 else {
            throw JobError(
                .refused,
                "cannot take your \(use): \(String(cString: strerror(errno))) (a file, a pipe or a terminal can be handed on; a socket cannot)")
        }
        return opened
    }

    func spec(_ p: StartParameters) throws -> ProcessSpec {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: p.workingDirectory, isDirectory: &isDirectory), isDirectory.boolValue
        else {
            throw JobError(.invalidArgument, "no such directory: \(p.workingDirectory)")
        }
        let command: ProcessSpec.Command =
            switch p.command {
            case .shell(let line): .shell(line)
            case .argv(let argv): .argv(argv)
            }
        var spec = ProcessSpec(command, workingDirectory: p.workingDirectory, environment: p.environment)
        spec.mergeError = p.mergeError
        return spec
    }
}
