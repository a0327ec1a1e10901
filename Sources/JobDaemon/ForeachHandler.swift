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
        let fd: Int32
        if let file = p.inputFile {
            // Not waiting for a writer, should it be a FIFO: this is the daemon's thread.
            fd = open(file, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
            guard fd >= 0 else {
                throw JobError(.invalidArgument, "cannot read the input file \(file): \(String(cString: strerror(errno)))")
            }
            var info = stat()
            guard fstat(fd, &info) == 0, info.st_mode & S_IFMT != S_IFDIR else {
                close(fd)
                throw JobError(.invalidArgument, "cannot read the input file \(file): it is a directory")
            }
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        } else {
            fd = try openClientDescriptor(0, of: client, for: "standard input, to read the inputs from")
        }
        let job = try await engine.foreach(
            spec, input: .descriptor(fd, nul: p.nul), name: p.start.name, throttle: throttle, scheduling: scheduling(p.start))
        try await send(.job(job))
        return .ok
    }
}
