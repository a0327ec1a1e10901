import ArgumentParser
import FoundationEssentials
import Synchronization

#if canImport(Glibc)
import Glibc
#endif
import JobModel
import JobProtocol

struct WaitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wait",
        abstract: "Wait until jobs are finished, then print them.",
        discussion: """
            Without JOB, every top-level job. Finished means Completed, Failed or Stopped (or \
            Disconnected, unless --force). On timeout nothing is printed, the jobs go on, and the \
            exit status is 124.
            """
    )

    @OptionGroup var options: GlobalOptions

    @Argument(help: ArgumentHelp("Jobs by id, instance id or name.", valueName: "JOB"))
    var jobs: [String] = []

    @Flag(help: "Return when at least one is done, and print that one.")
    var any = false

    // Unconditional: `--timeout -1` is a number out of range, not a missing value.
    @Option(parsing: .unconditional, help: ArgumentHelp("Give up after this long; 0 looks once.", valueName: "SECONDS"))
    var timeout: Double?

    @Flag(help: "Wait through Disconnected to a finished state.")
    var force = false

    func validate() throws {
        try options.validateJobFormat()
        if let timeout { try validating { () throws(UsageError) in try checkSeconds(timeout, of: "--timeout") } }
    }

    func run() throws {
        // Progress only for a person watching: stderr is a terminal.
        let live = isatty(2) == 1
        let parameters = WaitParameters(selectors: selectors(jobs), any: any, timeoutSeconds: timeout, force: force, progress: live)
        var done: [JobInfo] = []
        let progress = ProgressLine(ticking: live)
        let (outcome, status) = try perform(Request(.wait(parameters)), with: options) { frame in
            switch frame {
            case .jobs(let jobs): done += jobs
            case .progress(let finished, let total, let failed): progress.update(finished: finished, total: total, failed: failed)
            default: break
            }
        }
        progress.end()
        if outcome.timedOut { throw Exit(status: ExitStatus.timedOut) }
        if !done.isEmpty { try show(done, options) }
        if status != ExitStatus.ok { throw Exit(status: status) }
        if done.contains(where: { $0.state == .failed || $0.state == .stopped }) { throw Exit(status: ExitStatus.failed) }
    }
}

/// `wait`'s line on a terminal: finished of total, which failed, and the time since the wait
/// began (`3/5 finished, 1 failed (Job4), 12 s`), redrawn on every change and every second
/// between them.
final class ProgressLine: Sendable {
    private struct State {
        var counts: (finished: Int, total: Int, failed: [String])?
        var ended = false
    }
    private let state = Mutex(State())
    private let started = Date()

    /// `ticking`: redraw every second (only for a terminal: the daemon sends progress only then).
    init(ticking: Bool) {
        guard ticking else { return }
        startThread { [self] in
            while true {
                usleep(1_000_000)
                let going = state.withLock { state in
                    if !state.ended, state.counts != nil { draw(state) }
                    return !state.ended
                }
                if !going { return }
            }
        }
    }

    func update(finished: Int, total: Int, failed: [String] = []) {
        state.withLock { state in
            state.counts = (finished, total, failed)
            draw(state)
        }
    }

    /// Clears the line, if one was drawn; nothing is drawn after.
    func end() {
        state.withLock { state in
            if state.counts != nil { writeAll(2, Array("\r\u{1B}[K".utf8)) }
            state.ended = true
        }
    }

    private func draw(_ state: State) {
        guard let (finished, total, failed) = state.counts else { return }
        let elapsed = Int(Date().timeIntervalSince(started))
        writeAll(2, Array("\r\u{1B}[K\(Self.text(finished: finished, total: total, failed: failed)), \(elapsed) s".utf8))
    }

    /// `3/5 finished, 2 failed (Job4, Job7)`: the first few failed jobs by name.
    static func text(finished: Int, total: Int, failed: [String]) -> String {
        guard !failed.isEmpty else { return "\(finished)/\(total) finished" }
        let named = failed.prefix(3).joined(separator: ", ") + (failed.count > 3 ? ", …" : "")
        return "\(finished)/\(total) finished, \(failed.count) failed (\(named))"
    }
}
