import CJobKitSystem
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A `foreach` job's inputs, read from a descriptor (the caller's stdin, or a file) a batch at
/// a time, only as its children are needed: what is not read yet stays in the pipe (its
/// writer waits) or the file, not in memory. Reads are made on a queue of their own, never on
/// the engine's actor, and can be cancelled while they wait.
final class InputFeed: Sendable {
    private let fd: Int32
    private let separator: UInt8
    /// Wakes a read that waits, when the feed is cancelled.
    private let wake: Int32
    private let queue = DispatchQueue(label: "jobkit.foreach.input")

    private struct State {
        /// Bytes read and not yet taken as inputs: at most one input, cut short, and those
        /// read beyond the last batch.
        var pending: [UInt8] = []
        var ended = false
        var cancelled = false
        var closed = false
        /// Why reading stopped early, if it did.
        var error: String?
    }
    private let state = Mutex(State())

    /// Takes `fd`: it is closed when the feed is.
    init(fd: Int32, nul: Bool) {
        self.fd = fd
        separator = nul ? 0 : UInt8(ascii: "\n")
        wake = jobkit_eventfd()
    }

    deinit { close() }

    /// Why the input ended before its end of file (a read failed), if it did.
    var error: String? { state.withLock { $0.error } }

    /// Stops the feed: a read waiting returns nil, and no more is read.
    func cancel() {
        state.withLock { $0.cancelled = true }
        var one: UInt64 = 1
        _ = write(wake, &one, 8)
    }

    func close() {
        let first = state.withLock { state in
            defer { state.closed = true }
            return !state.closed
        }
        guard first else { return }
        Glibc.close(fd)
        if wake >= 0 { Glibc.close(wake) }
    }

    /// The next inputs, at most `limit` (at least one), in order; nil at the end of the input
    /// (the last one need not end with a separator) or once cancelled.
    func next(limit: Int) async -> [String]? {
        await withCheckedContinuation { continuation in
            queue.async { continuation.resume(returning: self.read(limit: limit)) }
        }
    }

    private func read(limit: Int) -> [String]? {
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let (inputs, ended) = state.withLock { state -> ([String], Bool) in
                (Self.split(&state.pending, separator: separator, limit: limit, atEnd: state.ended), state.ended)
            }
            if !inputs.isEmpty { return inputs }
            if ended || state.withLock({ $0.cancelled }) { return nil }
            guard waitReadable() else { return nil }
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            let message = n < 0 ? String(cString: strerror(errno)) : nil
            state.withLock { state in
                if n > 0 { state.pending += buffer[..<n] } else { state.ended = true }
                if let message { state.error = "its input could not be read: \(message)" }
            }
        }
    }

    /// Waits until the input can be read or the feed is cancelled; false when cancelled.
    private func waitReadable() -> Bool {
        var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: wake, events: Int16(POLLIN), revents: 0)]
        while true {
            let rc = poll(&fds, 2, -1)
            if rc < 0 && errno == EINTR { continue }
            if fds[1].revents != 0 { return false }
            return true
        }
    }

    /// Takes up to `limit` whole inputs from the front of `pending`; at the end of the input,
    /// what is left is one more.
    static func split(_ pending: inout [UInt8], separator: UInt8, limit: Int, atEnd: Bool) -> [String] {
        var inputs: [String] = []
        var start = 0
        while inputs.count < limit, let cut = pending[start...].firstIndex(of: separator) {
            inputs.append(String(decoding: pending[start..<cut], as: UTF8.self))
            start = cut + 1
        }
        if atEnd, inputs.count < limit, start < pending.count {
            inputs.append(String(decoding: pending[start...], as: UTF8.self))
            start = pending.count
        }
        pending.removeFirst(start)
        return inputs
    }
}
