import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The signals that end a command (SIGINT, SIGTERM, SIGHUP), caught rather than left to kill
/// it, so that what it was doing can end cleanly: a receive says what it wrote before it goes,
/// a wait does not report the daemon as unreachable. A caught signal interrupts the call
/// blocked on the daemon (no SA_RESTART), which then throws `ClientError` with its `signal`;
/// the command ends with `exitBySignal`. SIGPIPE is caught too (and ignored), so that a write
/// to a reader that went away fails with EPIPE, to be handled, instead of killing us. Caught,
/// not ignored: a caught signal is reset by exec, so the daemon this starts, and its jobs,
/// get the usual dispositions.
public enum Interrupts {
    /// The signal caught, 0 when none.
    public static var caught: Int32 { caughtSignal.load(ordering: .relaxed) }

    public static func catchThem() {
        for signal in [SIGINT, SIGTERM, SIGHUP] { install(signal) { caughtSignal.store($0, ordering: .relaxed) } }
        install(SIGPIPE) { _ in }
    }

    /// Ends the process as the signal would have, so that a shell or script that ran us sees
    /// a death by that signal (and a loop in a script stops at Ctrl-C, as it should).
    public static func exitBySignal(_ signal: Int32) -> Never {
        Glibc.signal(signal, SIG_DFL)
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, signal)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        raise(signal)
        exit(128 + signal)
    }

    /// A signal the caller ignores (`nohup` ignores SIGHUP) stays ignored.
    private static func install(_ signal: Int32, _ handler: @convention(c) (Int32) -> Void) {
        var current = sigaction()
        sigaction(signal, nil, &current)
        if let handler = current.__sigaction_handler.sa_handler, case let ignore = SIG_IGN,
            unsafeBitCast(handler, to: Int.self) == unsafeBitCast(ignore, to: Int.self)
        { return }
        var action = sigaction()
        action.__sigaction_handler.sa_handler = handler
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0
        sigaction(signal, &action, nil)
    }
}

private let caughtSignal = Atomic<Int32>(0)
