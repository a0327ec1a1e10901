import FoundationEssentials
import JobModel

/// Reading a frame's objects: each field by name and kind, with where it is for the error.
extension Wire {
    /// The largest number of seconds a duration may be (about 31 years): more is a mistake,
    /// and would overflow the engine's clock.
    public static let maximumSeconds: Double = 1e9

    /// An object's fields being read, with where they are for the error message.
    struct Fields {
        let fields: [(String, JSON)]
        let path: String

        init(_ fields: [(String, JSON)], path: String) {
            self.fields = fields
            self.path = path
        }

        /// The value of `key`, nil when absent or null.
        private func value(_ key: String) -> JSON? {
            guard let found = fields.first(where: { $0.0 == key })?.1, !found.isNull else { return nil }
            return found
        }

        func invalid(_ what: String) -> JobError {
            JobError(.invalidArgument, "malformed request: \(path): \(what)")
        }

        private func required<T>(_ key: String, _ kind: String, _ read: (JSON) -> T?) throws(JobError) -> T {
            guard let found = try optional(key, kind, read) else { throw invalid("\(key) is missing") }
            return found
        }

        private func optional<T>(_ key: String, _ kind: String, _ read: (JSON) -> T?) throws(JobError) -> T? {
            guard let found = value(key) else { return nil }
            guard let typed = read(found) else { throw invalid("\(key) must be \(kind)") }
            return typed
        }

        func string(_ key: String) throws(JobError) -> String { try required(key, "a string", \.string) }
        func optionalString(_ key: String) throws(JobError) -> String? { try optional(key, "a string", \.string) }
        func int(_ key: String) throws(JobError) -> Int { try required(key, "an integer", \.int) }
        func optionalInt(_ key: String) throws(JobError) -> Int? { try optional(key, "an integer", \.int) }
        func double(_ key: String) throws(JobError) -> Double { try required(key, "a number", \.double) }
        func optionalDouble(_ key: String) throws(JobError) -> Double? { try optional(key, "a number", \.double) }
        func bool(_ key: String, default fallback: Bool) throws(JobError) -> Bool {
            try optional(key, "true or false", \.bool) ?? fallback
        }
        func optionalBool(_ key: String) throws(JobError) -> Bool? { try optional(key, "true or false", \.bool) }

        func array(_ key: String, orEmpty: Bool = false) throws(JobError) -> [JSON] {
            if orEmpty, value(key) == nil { return [] }
            return try required(key, "an array", \.array)
        }

        func strings(_ key: String) throws(JobError) -> [String] {
            guard let found = try optionalStrings(key) else { throw invalid("\(key) is missing") }
            return found
        }

        func optionalStrings(_ key: String) throws(JobError) -> [String]? {
            try optional(key, "an array of strings") { json -> [String]? in
                guard let items = json.array else { return nil }
                let strings = items.compactMap(\.string)
                return strings.count == items.count ? strings : nil
            }
        }

        func object(_ key: String, orEmpty: Bool = false) throws(JobError) -> Fields {
            if orEmpty, value(key) == nil { return Fields([], path: path + "." + key) }
            return Fields(try required(key, "an object", \.fields), path: path + "." + key)
        }

        func optionalObject(_ key: String) throws(JobError) -> Fields? {
            try optional(key, "an object", \.fields).map { Fields($0, path: path + "." + key) }
        }

        func element(_ item: JSON, _ name: String) throws(JobError) -> Fields {
            guard let fields = item.fields else { throw invalid("\(name) must be an object") }
            return Fields(fields, path: path + "." + name)
        }

        /// A time from the year 1 to 9999 (the range ISO 8601 writes): found by the fuzz target,
        /// a time at infinity went out as `null` and came back as none.
        func optionalTime(_ key: String) throws(JobError) -> Date? {
            guard let seconds = try optional(key, "seconds since 1970", \.double) else { return nil }
            guard seconds >= -62_135_596_800, seconds <= 253_402_300_799 else {
                throw JobError(.invalidArgument, "\(key) must be a time from the year 1 to 9999, not \(JSON.number(seconds)) s since 1970")
            }
            return Date(timeIntervalSince1970: seconds)
        }

        func optionalState(_ key: String) throws(JobError) -> JobState? {
            try optional(key, "a job state", \.string).map { (name: String) throws(JobError) -> JobState in
                guard let state = JobState(rawValue: name) else { throw invalid("\(key) is not a job state: \(name)") }
                return state
            }
        }

        /// A duration in seconds: finite, from 0 to `maximumSeconds`.
        func optionalSeconds(_ key: String) throws(JobError) -> Double? {
            guard let seconds = try optional(key, "a number of seconds", \.double) else { return nil }
            guard seconds.isFinite, seconds >= 0, seconds <= Wire.maximumSeconds else {
                throw JobError(
                    .invalidArgument, "\(key) must be from 0 to \(Int(Wire.maximumSeconds)) seconds, not \(JSON.number(seconds))")
            }
            return seconds
        }
    }
}
