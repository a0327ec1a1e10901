import FoundationEssentials
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Runs `body` on a new thread (the CLI links no Foundation `Thread`). False if none could
/// be made.
@discardableResult
func startThread(_ body: @escaping @Sendable () -> Void) -> Bool {
    final class Context: Sendable {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    let context = Unmanaged.passRetained(Context(body)).toOpaque()
    var thread = pthread_t()
    let rc = pthread_create(&thread, nil, { raw in
        guard let raw else { return nil }
        Unmanaged<Context>.fromOpaque(raw).takeRetainedValue().body()
        return nil
    }, context)
    guard rc == 0 else {
        Unmanaged<Context>.fromOpaque(context).release()
        return false
    }
    pthread_detach(thread)
    return true
}

/// Whether a signal came; once one has, its handler's thread ends the process.
final class Interruption: Sendable {
    fileprivate let caught = Atomic<Bool>(false)

    /// Blocks for good once interrupted, leaving the end to the handler.
    func waitIfInterrupted() {
        guard caught.load(ordering: .acquiring) else { return }
        while true { pause() }
    }
}

/// Runs `handler` on a thread of its own when SIGINT, SIGTERM or SIGHUP arrives (they are
/// blocked in every other thread from now on); the handler ends the process.
func onInterrupt(_ handler: @escaping @Sendable (Int32) -> Never) -> Interruption {
    let interruption = Interruption()
    var signals = sigset_t()
    sigemptyset(&signals)
    for signal in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&signals, signal) }
    pthread_sigmask(SIG_BLOCK, &signals, nil)
    let started = startThread {
        var signals = sigset_t()
        sigemptyset(&signals)
        for signal in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&signals, signal) }
        var caught: Int32 = 0
        sigwait(&signals, &caught)
        interruption.caught.store(true, ordering: .releasing)
        handler(caught)
    }
    // No thread: the signals act as before.
    if !started { pthread_sigmask(SIG_UNBLOCK, &signals, nil) }
    return interruption
}
