import FoundationEssentials
import JobClient
import JobModel
import JobProtocol

#if canImport(Glibc)
import Glibc
#endif

/// A command's end: an exit status, after its errors were written.
struct Exit: Error {
    var status: Int32
}

enum ExitStatus {
    static let ok: Int32 = 0
    static let failed: Int32 = 1
    static let usage: Int32 = 64
    static let unreachable: Int32 = 69
    static let timedOut: Int32 = 124
}

/// Writes one `job: …` line to stderr.
func complain(_ message: String) {
    writeAll(2, Array("job: \(message)\n".utf8))
}

/// `job: HOST: REASON` for a child of `invoke` that failed. A connection's reason already
/// starts with its computer (the contract puts it there); it is not named twice.
func complainOfFailure(at location: String, _ reason: String) {
    complain(reason.hasPrefix(location + ": ") ? reason : "\(location): \(reason)")
}

func writeOut(_ text: String) {
    writeAll(1, Array(text.utf8))
}

/// Runs one request: frames go to `onFrame`; unknown words and errors are reported; returns
/// the exit status the outcome calls for (throws `Exit` for the daemon being unreachable).
func perform(_ request: Request, with options: GlobalOptions, onFrame: (Response) throws -> Void) throws -> (Outcome, Int32) {
    try perform(request, with: options.common, onFrame: onFrame)
}

func perform(_ request: Request, with options: CommonOptions, onFrame: (Response) throws -> Void) throws -> (Outcome, Int32) {
    let outcome: Outcome
    do {
        outcome = try options.client.call(request, onFrame: onFrame)
    } catch let error as ClientError {
        complain(error.message)
        throw Exit(status: error.refused ? ExitStatus.failed : ExitStatus.unreachable)
    }
    for error in outcome.notFound { complain(error.message) }
    if let error = outcome.error {
        complain(error.message)
        return (outcome, error.code == .invalidArgument ? ExitStatus.usage : ExitStatus.failed)
    }
    return (outcome, outcome.notFound.isEmpty ? ExitStatus.ok : ExitStatus.failed)
}

/// Writes all of `bytes` to a descriptor (stdout 1, stderr 2).
func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return }
        done += n
    }
}
