import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The processes (other than this one) whose pid and command line, its arguments NUL-separated as
/// in `/proc/PID/cmdline`, pass `include`, with their parents and state letters ('S', 'T', 'Z'…).
/// Read with plain reads into one buffer: tests call this in loops while hundreds of processes
/// exist (test hosts, other tests' jobs), and decoding each command line through Foundation took
/// long enough in a debug build to keep both of this machine's cooperative threads busy while the
/// engines under test waited.
public func scanProcesses(where include: (pid_t, [UInt8]) -> Bool) -> [(pid: pid_t, parent: pid_t, state: Character)] {
    guard let directory = opendir("/proc") else { return [] }
    defer { closedir(directory) }
    let own = getpid()
    var buffer = [UInt8](repeating: 0, count: 8192)
    var found: [(pid: pid_t, parent: pid_t, state: Character)] = []
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        guard let pid = pid_t(name), pid != own else { continue }
        let length = readFile("/proc/\(name)/cmdline", into: &buffer)
        guard length > 0, include(pid, Array(buffer[0..<length])), let (state, parent) = stat(of: name, buffer: &buffer) else { continue }
        found.append((pid, parent, Character(Unicode.Scalar(state))))
    }
    return found
}

/// The living processes (not zombies, not this one) whose command line holds `marker` (a
/// marker with a blank matches across arguments).
public func processes(matching marker: String) -> [pid_t] {
    let needle = Array(marker.utf8)
    return scanProcesses { mentions($1, needle) }.filter { $0.state != "Z" }.map(\.pid)
}

/// The states of the processes whose command line is exactly `argv`.
public func processStates(_ argv: [String]) -> [Character] {
    let wanted = Array((argv.joined(separator: "\0") + "\0").utf8)
    return scanProcesses { $1 == wanted }.map(\.state)
}

/// `processes(matching:)` looked up on a thread of its own: for `eventually` loops, which
/// would otherwise hold a thread of the cooperative pool for every look.
public func processesOffPool(matching marker: String) async -> [pid_t] {
    (try? await onOwnThread { processes(matching: marker) }) ?? []
}

/// The state letter and the parent's pid in `/proc/PID/stat` (after the command name, in
/// parentheses, which may hold anything).
private func stat(of pid: String, buffer: inout [UInt8]) -> (state: UInt8, parent: pid_t)? {
    let length = readFile("/proc/\(pid)/stat", into: &buffer)
    guard let close = buffer[0..<length].lastIndex(of: UInt8(ascii: ")")), close + 2 < length else { return nil }
    let fields = buffer[(close + 2)..<length].split(separator: UInt8(ascii: " "), maxSplits: 2)
    guard fields.count >= 2, let parent = pid_t(String(decoding: fields[1], as: UTF8.self)) else { return nil }
    return (buffer[close + 2], parent)
}

/// SIGKILL to every process whose command line mentions `text` (a test's home: its
/// supervisors, fork server, daemon and masters all name it) and to all their descendants, so
/// that a test that failed half-way leaves no job running after it.
public func endProcesses(mentioning text: String) {
    let needle = Array(text.utf8)
    var doomed = Set<pid_t>()
    let all = scanProcesses { pid, commandLine in
        if mentions(commandLine, needle) { doomed.insert(pid) }
        return true
    }
    guard !doomed.isEmpty else { return }
    // Descendants, found by their parents: a job's processes are in sessions of their own.
    var grew = true
    while grew {
        grew = false
        for process in all where !doomed.contains(process.pid) && doomed.contains(process.parent) {
            doomed.insert(process.pid)
            grew = true
        }
    }
    for pid in doomed { kill(pid, SIGKILL) }
}

/// Up to `buffer.count` bytes of the file; 0 if it cannot be read.
private func readFile(_ path: String, into buffer: inout [UInt8]) -> Int {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return 0 }
    defer { close(fd) }
    var total = 0
    while total < buffer.count {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + total, $0.count - total) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { break }
        total += n
    }
    return total
}

/// Whether a command line (NUL-separated) holds `needle`, the arguments read as if joined by
/// blanks.
private func mentions(_ commandLine: [UInt8], _ needle: [UInt8]) -> Bool {
    contains(commandLine.map { $0 == 0 ? 32 : $0 }, needle)
}

private func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    guard !needle.isEmpty else { return true }
    guard haystack.count >= needle.count else { return false }
    return haystack.withUnsafeBufferPointer { hay in
        needle.withUnsafeBufferPointer { pin in
            (0...(hay.count - pin.count)).contains { start in
                hay[start] == pin[0] && memcmp(hay.baseAddress! + start, pin.baseAddress!, pin.count) == 0
            }
        }
    }
}
