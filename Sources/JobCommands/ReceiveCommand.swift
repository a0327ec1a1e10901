import ArgumentParser
import FoundationEssentials
import JobClient
import JobModel
import JobOutput
import JobProtocol

#if canImport(Glibc)
import Glibc
#endif

struct ReceiveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "receive",
        abstract: "Write what jobs printed and has not been received yet.",
        discussion: """
            Output goes to stdout and errors to stderr, byte for byte (-o raw, the default); what is \
            written counts as received unless --keep. For a parent, its children's output in order. \
            -o table, list, json or jsonl write one record per line, with the keys of lines that are \
            JSON objects.
            """
    )

    @OptionGroup var options: GlobalOptions

    @Argument(help: ArgumentHelp("Jobs by id, instance id or name.", valueName: "JOB"))
    var jobs: [String]

    @Flag(help: "Do not count what is written as received (with --wait: follow, like tail -f).")
    var keep = false

    @Flag(name: .customLong("wait"), help: "Stream output as it arrives until the jobs end.")
    var follow = false

    @Flag(help: "With --wait: remove the jobs at the end.")
    var autoRemove = false

    @Option(help: ArgumentHelp("Only the child jobs at these computers.", valueName: "HOST[,HOST…]"))
    var location: String?

    @Flag(help: "Only the named jobs' own output, not their children's.")
    var noRecurse = false

    @Flag(help: "Prefix each line with its computer (remote jobs) or its parent's name (local ones).")
    var prefix = false

    mutating func validate() throws {
        if autoRemove && !follow { throw ValidationError("--auto-remove needs --wait") }
        if autoRemove && keep { throw ValidationError("--auto-remove removes what --keep keeps; use one of them") }
        if jobs.isEmpty { throw ValidationError("name at least one JOB") }
    }

    func run() throws {
        let locations = location.map { $0.split(separator: ",").map(String.init) }
        let parameters = ReceiveParameters(
            selectors: selectors(jobs), keep: keep, recurse: !noRecurse, locations: locations, autoRemove: autoRemove)
        let format = options.outputOption ?? .raw
        let printer = OutputPrinter(format: format, properties: options.properties, prefix: prefix ? .origin : nil, live: follow)
        let request = Request(follow ? .receiveWait(parameters) : .receive(parameters))
        let result = try Receiving(printer: printer, acknowledge: !keep, coalesce: format == .raw).run(request, options.common) {
            complain("\($0.jobName) failed: \($0.reason)")
        }
        if let readError = result.readError { complain(readError) }
        if result.status != ExitStatus.ok { throw Exit(status: result.status) }
        let ended = result.jobs.contains { $0.state == .failed || $0.state == .stopped }
        if result.failed || ended || result.readError != nil { throw Exit(status: ExitStatus.failed) }
    }
}

/// One receive, as `receive` and `invoke` run it: output written as it comes, and the daemon
/// told what was written (`received` frames), for only that counts as received. Interrupted
/// (SIGINT, SIGTERM, SIGHUP), it says what it wrote and dies of the signal; when stdout
/// cannot be written it says what it wrote before, and ends as `OutputError` says.
struct Receiving {
    let printer: OutputPrinter
    /// Whether what is written counts as received (not with `--keep`).
    let acknowledge: Bool
    /// Join a slice's records into chunks as large as they go (raw output).
    let coalesce: Bool

    /// Bytes written between receipts in a long one-shot receive: what a kill may hand out again.
    static let receiptInterval = 1 << 20

    struct Result {
        var status: Int32
        var jobs: [JobInfo] = []
        var failed = false
        var readError: String?
    }

    func run(_ request: Request, _ options: CommonOptions, onFailure: (JobFailure) -> Void) throws -> Result {
        let conversation: Conversation
        do {
            conversation = try options.client.open(request)
        } catch let error as ClientError {
            throw end(error, of: request)
        }
        var result = Result(status: ExitStatus.ok)
        do {
            while true {
                // Before waiting for more: what is written so far counts.
                if !conversation.hasInput { try report(conversation) }
                let frame: Response
                do {
                    frame = try conversation.next()
                } catch let error as ClientError {
                    try report(conversation)
                    throw end(error, of: request)
                }
                switch frame {
                case .slices(let slices):
                    for slice in slices {
                        do {
                            try write(slice, conversation)
                        } catch let error as JobError {
                            result.readError = error.message
                        }
                    }
                case .output(let chunk):
                    try printer.write(chunk)
                    try stopIfInterrupted(conversation)
                case .failure(let failure):
                    result.failed = true
                    try printer.flush()
                    onFailure(failure)
                case .jobs(let jobs):
                    // They come after all the output: what is held back (a line not ended)
                    // goes out, so that all of it counts.
                    result.jobs += jobs
                    try printer.flush()
                case .done(let outcome):
                    try printer.finish()
                    try report(conversation)
                    result.status = status(of: outcome)
                    return result
                default:
                    break
                }
            }
        } catch let error as OutputError {
            // What did get out counts; the rest stays for the next receive.
            if acknowledge, let receipts = try? printer.receipts(flushing: false), !receipts.isEmpty {
                try? conversation.send(Request(.received(receipts)))
            }
            throw error
        }
    }

    /// Reads a slice from the job's files (the daemon only said where), saying what was
    /// written every `receiptInterval` bytes.
    private func write(_ slice: OutputSlice, _ conversation: Conversation) throws {
        let reader = try OutputSliceReader(slice: slice, coalesce: coalesce)
        while let chunk = try reader.nextChunk() {
            try printer.write(chunk)
            if printer.unreported >= Self.receiptInterval { try report(conversation) }
            try stopIfInterrupted(conversation)
        }
    }

    private func report(_ conversation: Conversation) throws {
        guard acknowledge else { return }
        let receipts = try printer.receipts()
        if !receipts.isEmpty { try conversation.send(Request(.received(receipts))) }
    }

    /// A signal came: what is written counts, and the command dies of the signal.
    private func stopIfInterrupted(_ conversation: Conversation) throws {
        let signal = Interrupts.caught
        guard signal != 0 else { return }
        try report(conversation)
        Interrupts.exitBySignal(signal)
    }
}
