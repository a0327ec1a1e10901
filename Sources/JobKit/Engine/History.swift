import Foundation
import JobModel

/// Every job as users see it, under way or finished. The table holds the jobs under way; the
/// database holds every job, and finished families (a top-level job with its children) are
/// read from it when asked for, not kept in memory: what a lookup costs, the daemon's memory
/// and its start-up do not grow with the history. The table's record wins for a job in both
/// (it may hold an end not committed yet).
struct History: JobSource {
    let table: JobTable
    let store: JobStore

    func job(withId id: Int) -> JobInfo? {
        table.info(id) ?? infos([id]).first
    }

    /// The jobs with these ids that exist, in the order given.
    func infos(_ ids: [Int]) -> [JobInfo] {
        let missing = ids.filter { table[$0] == nil }
        let stored = missing.isEmpty ? JobTable() : JobTable((try? store.families(of: missing)) ?? [])
        return ids.compactMap { table.info($0) ?? stored.info($0) }
    }

    func jobs(matching pattern: Wildcard) -> [JobInfo] {
        let stored: [Int]
        if Wildcard.hasWildcards(pattern.pattern) {
            stored = ((try? store.names()) ?? []).filter { pattern.matches($0.name) }.map(\.id)
        } else {
            stored = (try? store.ids(named: pattern.pattern)) ?? []
        }
        let live = table.ids.filter { table[$0].map { pattern.matches($0.name) } ?? false }
        return infos(Array(Set(stored + live)).sorted())
    }

    func jobs(withInstanceId uuid: UUID) -> [JobInfo] {
        let live = table.ids.filter { table[$0]?.instanceId == uuid }
        return infos(Array(Set(((try? store.ids(instanceId: uuid)) ?? []) + live)).sorted())
    }

    /// Every job: the whole history, built in memory. Only for queries that need all of it
    /// at once (`--newest`); listings page through it (`page`).
    var allJobs: [JobInfo] {
        var all: [JobInfo] = []
        var after = 0
        while let page = page(after: after, limit: Self.pageSize), !page.jobs.isEmpty {
            all += page.jobs
            after = page.last
        }
        return all.sorted { $0.id < $1.id }
    }

    static let pageSize = 2_000

    /// The families after `id` (about `limit` jobs), in id order, and
    /// the last id of the page; nil when the database cannot be read.
    func page(after id: Int, limit: Int) -> (jobs: [JobInfo], last: Int)? {
        guard let records = try? store.page(after: id, limit: limit) else { return nil }
        let ids = records.map(\.id)
        // A foreach's children are made as its inputs come, and a job started meanwhile takes
        // the next id: its family may reach past the page, and its info needs all of it.
        var context = records
        let spread = records.filter { $0.parentId == nil && $0.type == .psTaskJob }.map(\.id)
        if !spread.isEmpty, let families = try? store.families(of: spread) {
            let here = Set(ids)
            context += families.filter { !here.contains($0.id) }
        }
        let stored = JobTable(context)
        let jobs = ids.compactMap { table.info($0) ?? stored.info($0) }
        return (jobs, records.last?.id ?? id)
    }
}

/// One page of the history as a source for a query: its jobs by id, for children's lookups.
struct JobPage: JobSource {
    let allJobs: [JobInfo]
    private let byId: [Int: JobInfo]

    init(_ jobs: [JobInfo]) {
        allJobs = jobs
        byId = Dictionary(jobs.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
    }

    func job(withId id: Int) -> JobInfo? { byId[id] }
}
