import Foundation
import JobKit
import JobModel
import JobProtocol

/// `job start`: the command as the engine takes it, checked here first.
extension Handlers {
    func start(_ p: StartParameters, send: Send) async throws -> Outcome {
        try await send(.job(try await engine.start(try spec(p), name: p.name)))
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
