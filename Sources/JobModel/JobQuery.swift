import FoundationEssentials

/// The filters of `job get`, applied in PowerShell's order: selection, children, has-more-data,
/// end-time bounds, newest, then a final sort by id.
public struct JobQuery: Sendable, Equatable {
    /// Jobs to start from; empty means every top-level job.
    public var selectors: [JobSelector]
    /// Only jobs in this state (applies to the starting list).
    public var state: JobState?
    /// Add every child of the listed jobs.
    public var includeChildren: Bool
    /// Add the children of the listed jobs that are in this state.
    public var childState: JobState?
    /// Keep only jobs whose HasMoreData is this.
    public var hasMoreData: Bool?
    /// Keep only jobs that ended before this time (exclusive); running jobs never pass.
    public var before: Date?
    /// Keep only jobs that ended after this time (exclusive); running jobs never pass.
    public var after: Date?
    /// Keep the N that ended last.
    public var newest: Int?

    public init(
        selectors: [JobSelector] = [], state: JobState? = nil, includeChildren: Bool = false,
        childState: JobState? = nil, hasMoreData: Bool? = nil, before: Date? = nil, after: Date? = nil,
        newest: Int? = nil
    ) {
        self.selectors = selectors
        self.state = state
        self.includeChildren = includeChildren
        self.childState = childState
        self.hasMoreData = hasMoreData
        self.before = before
        self.after = after
        self.newest = newest
    }

    /// Applies the query to every job (parents and children).
    public func apply(to source: some JobSource) throws(JobError) -> [JobInfo] {
        if let newest, newest < 0 { throw JobError(.invalidArgument, "--newest must be 0 or more, not \(newest)") }
        // Only the jobs named are looked up: the source may hold many more (a history on disk).
        var list = selectors.isEmpty ? source.allJobs.filter(\.isTopLevel) : try JobSelection.resolve(selectors, in: source)
        if let state { list = list.filter { $0.state == state } }
        if includeChildren || childState != nil {
            var listed = Set(list.map(\.id))
            for job in list {
                for childId in job.childJobs {
                    guard listed.insert(childId).inserted, let child = source.job(withId: childId) else { continue }
                    if let childState, child.state != childState { continue }
                    list.append(child)
                }
            }
        }
        if let hasMoreData { list = list.filter { $0.hasMoreData == hasMoreData } }
        if let before { list = list.filter { $0.endTime.map { $0 < before } ?? false } }
        if let after { list = list.filter { $0.endTime.map { $0 > after } ?? false } }
        if let newest {
            list = Array(list.sorted { ($0.endTime ?? .distantPast) > ($1.endTime ?? .distantPast) }.prefix(newest))
        }
        return list.sorted { $0.id < $1.id }
    }
}
