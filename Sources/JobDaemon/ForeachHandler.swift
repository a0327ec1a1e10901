import Foundation
import JobKit
import JobModel
import JobProtocol

#if canImport(Glibc)
import Glibc
#endif

/// `job foreach`: the inputs are read here, from the client's own standard input (opened
/// through /proc while it waits for the answer, as `start --stdin` does) or from the file it
/// names, as the children are needed; so the client holds none of them, and with `--as-job`
/// it may exit at once while its pipe is read on.
extension Handlers {
    func foreach(_ p: ForeachParameters, client: pid_t?, send: Send) async throws -> Outcome {
        guard !p.start.stdin else { throw JobError(.invalidArgument, "a foreach job's children have no stdin to be given") }
        let spec = try spec(p.start)
        let throttle = p.throttle ?? max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        guard throttle >= 1 else { throw JobError(.invalidArgument, "--throttle takes 1 or more, not \(throttle)") }
        let fd: Int32
        if let file = p.inputFile {
            fd = open(file, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                throw JobError(.invalidArgument, "cannot read the input file \(file): \(String(cString: strerror(errno)))")
            }
        } else {
            fd = try openClientDescriptor(0, of: client, for: "standard input, to read the inputs from")
        }
        let job = try await engine.foreach(
            spec, input: .descriptor(fd, nul: p.nul), name: p.start.name, throttle: throttle, scheduling: scheduling(p.start))
        try await send(.job(job))
        return .ok
    }
}
