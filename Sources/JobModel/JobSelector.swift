import Foundation

/// One word naming jobs: an Id, an InstanceId or a Name pattern.
public enum JobSelector: Sendable, Hashable, Codable, CustomStringConvertible {
    case id(Int)
    case instanceId(UUID)
    case name(String)

    /// Reads a word as users type it: digits are an Id, a UUID an InstanceId, anything else a
    /// name (with wildcards).
    public init(_ word: String) {
        if let id = Int(word), id > 0 {
            self = .id(id)
        } else if let uuid = UUID(uuidString: word) {
            self = .instanceId(uuid)
        } else {
            self = .name(word)
        }
    }

    public var description: String {
        switch self {
        case .id(let id): String(id)
        case .instanceId(let uuid): uuid.uuidString.lowercased()
        case .name(let name): name
        }
    }
}

/// Resolves selectors against a list of jobs, as every command that takes `JOB…` does.
public enum JobSelection {
    /// The jobs the selectors name, in the order named, each once.
    ///
    /// Ids, instance ids and names also match child jobs. A word that matches nothing
    /// throws `notFound`, except a name with wildcards, which may match nothing.
    /// - Parameter jobs: every job, parents and children, sorted by id.
    public static func resolve(_ selectors: [JobSelector], in jobs: [JobInfo]) throws(JobError) -> [JobInfo] {
        var result: [JobInfo] = []
        var seen = Set<Int>()
        var missing: [JobError] = []
        for selector in selectors {
            let matches: [JobInfo]
            switch selector {
            case .id(let id):
                matches = jobs.filter { $0.id == id }
                if matches.isEmpty { missing.append(.noJob(id: id)) }
            case .instanceId(let uuid):
                matches = jobs.filter { $0.instanceId == uuid }
                if matches.isEmpty {
                    missing.append(JobError(.notFound, "no job with instance id \(uuid.uuidString.lowercased())"))
                }
            case .name(let name):
                let pattern = Wildcard(name)
                matches = jobs.filter { pattern.matches($0.name) }
                if matches.isEmpty && !Wildcard.hasWildcards(name) { missing.append(.noJob(named: name)) }
            }
            for job in matches where seen.insert(job.id).inserted {
                result.append(job)
            }
        }
        // Callers that act on the other matches anyway use `resolvePartially`.
        if let first = missing.first { throw first }
        return result
    }

    /// Like `resolve`, but returns the matches together with the errors for the words that
    /// matched nothing, so that a command can act on the rest and still report them.
    public static func resolvePartially(_ selectors: [JobSelector], in jobs: [JobInfo]) -> (jobs: [JobInfo], errors: [JobError]) {
        var found: [JobInfo] = []
        var errors: [JobError] = []
        var seen = Set<Int>()
        for selector in selectors {
            do {
                for job in try resolve([selector], in: jobs) where seen.insert(job.id).inserted {
                    found.append(job)
                }
            } catch {
                errors.append(error)
            }
        }
        return (found, errors)
    }
}
