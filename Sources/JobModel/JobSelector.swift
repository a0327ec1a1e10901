import FoundationEssentials

/// One word naming jobs: an Id, an InstanceId or a Name pattern.
public enum JobSelector: Sendable, Hashable, CustomStringConvertible {
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

/// Where selectors look jobs up: by id directly, or through all of them (for instance ids
/// and names). A list of jobs is one; the engine's table is another, which finds ids without
/// building every job.
public protocol JobSource {
    func job(withId id: Int) -> JobInfo?
    /// Every job, parents and children, sorted by id.
    var allJobs: [JobInfo] { get }
    /// The jobs whose name the pattern matches, sorted by id (by default, from `allJobs`).
    func jobs(matching pattern: Wildcard) -> [JobInfo]
    /// The jobs with this instance id (by default, from `allJobs`).
    func jobs(withInstanceId uuid: UUID) -> [JobInfo]
}

extension JobSource {
    public func jobs(matching pattern: Wildcard) -> [JobInfo] { allJobs.filter { pattern.matches($0.name) } }
    public func jobs(withInstanceId uuid: UUID) -> [JobInfo] { allJobs.filter { $0.instanceId == uuid } }
}

extension Array: JobSource where Element == JobInfo {
    public func job(withId id: Int) -> JobInfo? { first { $0.id == id } }
    public var allJobs: [JobInfo] { sorted { $0.id < $1.id } }
}

/// Resolves selectors, as every command that takes `JOB…` does.
public enum JobSelection {
    /// The jobs the selectors name, in the order named, each once.
    ///
    /// Ids, instance ids and names also match child jobs. A word that matches nothing
    /// throws `notFound`, except a name with wildcards, which may match nothing.
    public static func resolve(_ selectors: [JobSelector], in source: some JobSource) throws(JobError) -> [JobInfo] {
        let (jobs, errors) = resolvePartially(selectors, in: source)
        // Callers that act on the other matches anyway use `resolvePartially`.
        if let first = errors.first { throw first }
        return jobs
    }

    /// The jobs less the children whose parent is among them: what a remove of them all
    /// removes (`job remove '*'` names both, and the children go with their parents).
    public static func withoutChildrenOfListed(_ jobs: [JobInfo]) -> [JobInfo] {
        let listed = Set(jobs.map(\.id))
        return jobs.filter { job in job.parentId.map { !listed.contains($0) } ?? true }
    }

    /// Like `resolve`, but returns the matches together with the errors for the words that
    /// matched nothing, so that a command can act on the rest and still report them.
    public static func resolvePartially(_ selectors: [JobSelector], in source: some JobSource)
        -> (jobs: [JobInfo], errors: [JobError])
    {
        var found: [JobInfo] = []
        var errors: [JobError] = []
        var seen = Set<Int>()
        for selector in selectors {
            let matches: [JobInfo]
            switch selector {
            case .id(let id):
                matches = source.job(withId: id).map { [$0] } ?? []
                if matches.isEmpty { errors.append(.noJob(id: id)) }
            case .instanceId(let uuid):
                matches = source.jobs(withInstanceId: uuid)
                if matches.isEmpty {
                    errors.append(JobError(.notFound, "no job with instance id \(uuid.uuidString.lowercased())"))
                }
            case .name(let name):
                matches = source.jobs(matching: Wildcard(name))
                if matches.isEmpty && !Wildcard.hasWildcards(name) { errors.append(.noJob(named: name)) }
            }
            for job in matches where seen.insert(job.id).inserted {
                found.append(job)
            }
        }
        return (found, errors)
    }
}
