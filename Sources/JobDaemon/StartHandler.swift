import Foundation
import JobKit
import JobModel
import JobProtocol

/// `job start`: the command as the engine takes it, checked here first.
extension Handlers {
    func start(_ p: StartParameters, client: pid_t?, send: Send) async throws -> Outcome {
        let spec = try spec(p)
        guard p.stdin else {
            try await send(.job(try await engine.start(spec, name: p.name)))
            return .ok
        }
        // The client's own stdin, opened while it waits for this answer: the same pipe or
        // file, handed to the job, nothing copied. (A socket cannot be opened this way.)
        guard let client else { throw JobError(.refused, "cannot tell which process asked, to take its standard input") }
        let fd = open("/proc/\(client)/fd/0", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw JobError(
                .refused,
                "cannot hand your standard input to the job: \(String(cString: strerror(errno))) (a file, a pipe or a terminal can be handed on; a socket cannot)")
        }
        try await send(.job(try await engine.start(spec, name: p.name, stdin: fd)))
        return .ok
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
