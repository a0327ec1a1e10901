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

/// Standard output could not be written: a reader that went away (EPIPE) ends us quietly, as
/// it ends any Unix tool; anything else (a full disk) is an error.
struct OutputError: Error {
    var code: Int32

    /// Ends the command as this calls for.
    func exit() -> Never {
        if code == EPIPE { Interrupts.exitBySignal(SIGPIPE) }
        complain("cannot write output: \(String(cString: strerror(code)))")
        Glibc.exit(ExitStatus.failed)
    }
}

func writeOut(_ text: String) throws(OutputError) {
    try writeOut(Array(text.utf8))
}

/// Writes all of `bytes` to stdout, or says why not.
func writeOut(_ bytes: [UInt8], to fd: Int32 = 1) throws(OutputError) {
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { throw OutputError(code: n == 0 ? EIO : errno) }
        done += n
    }
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
        throw end(error, of: request)
    }
    return (outcome, status(of: outcome))
}

/// Reports the words that matched nothing and the error that stopped the request, and
/// returns the exit status they call for.
func status(of outcome: Outcome) -> Int32 {
    for error in outcome.notFound { complain(error.message) }
    if let error = outcome.error {
        complain(error.message)
        return error.code == .invalidArgument ? ExitStatus.usage : ExitStatus.failed
    }
    return outcome.notFound.isEmpty ? ExitStatus.ok : ExitStatus.failed
}

/// How a command ends when its exchange with the daemon failed: interrupted by a signal it
/// dies of that signal (saying, when it had asked for a change, that the daemon may have made
/// it); refused, exit 1; else the daemon could not be reached, 69.
func end(_ error: ClientError, of request: Request) -> Exit {
    if let signal = error.signal {
        switch request.verb {
        case .get, .receive, .receiveWait, .wait, .status, .received: break
        default: complain("interrupted; the daemon may still do what was asked ('job get' shows the jobs)")
        }
        Interrupts.exitBySignal(signal)
    }
    complain(error.message)
    return Exit(status: error.refused ? ExitStatus.failed : ExitStatus.unreachable)
}

/// Writes all of `bytes` to a descriptor, as far as it can: for stderr, where a failure has
/// nowhere to be reported.
func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return }
        done += n
    }
}
