import ArgumentParser
import FoundationEssentials
import JobModel
import JobProtocol

/// Parses `JOB…` words.
func selectors(_ words: [String]) -> [JobSelector] { words.map(JobSelector.init) }

/// Parses a time given on the command line: ISO 8601, with or without fractional seconds or a
/// time zone (local time then).
func parseTime(_ text: String) throws(UsageError) -> Date {
    if let date = try? Date.ISO8601FormatStyle().parse(text) { return date }
    if let date = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text) { return date }
    // Without a zone: local time, `YYYY-MM-DD[THH:MM[:SS]]` (a space may stand for the T).
    let parts = text.split(whereSeparator: { $0 == "T" || $0 == " " }).map(String.init)
    let day = parts.first?.split(separator: "-").compactMap { Int($0) } ?? []
    let time = parts.count > 1 ? parts[1].split(separator: ":").compactMap { Int($0) } : []
    if parts.count <= 2, day.count == 3, parts.count == 1 || (2...3).contains(time.count) {
        var components = DateComponents()
        (components.year, components.month, components.day) = (day[0], day[1], day[2])
        components.hour = time.first ?? 0
        components.minute = time.count > 1 ? time[1] : 0
        components.second = time.count > 2 ? time[2] : 0
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = .current
        if let date = calendar.date(from: components) { return date }
    }
    throw UsageError("'\(JobError.shown(text))' is not a time: use ISO 8601, e.g. 2026-11-24T18:30:00Z")
}

func parseState(_ text: String) throws(UsageError) -> JobState {
    guard let state = JobState(name: text) else {
        throw UsageError(
            "'\(JobError.shown(text))' is not a job state: use one of \(JobState.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    return state
}

/// A number of seconds given on the command line: from 0 to what the wire takes (about 31
/// years), or a usage error, never a crash.
func checkSeconds(_ seconds: Double, of option: String) throws(UsageError) {
    guard seconds.isFinite, seconds >= 0, seconds <= Wire.maximumSeconds else {
        throw UsageError("\(option) takes 0 to \(Int(Wire.maximumSeconds)) seconds, not \(seconds)")
    }
}
