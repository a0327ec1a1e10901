import Foundation
import Testing
import JobModel
import JobOutput
import JobProtocol

@Suite("Selecting jobs") struct SelectionTests {
    let uuid = UUID()
    var jobs: [JobInfo] {
        [
            JobInfo(id: 1, name: "build", type: .backgroundJob, state: .completed, hasMoreData: true, location: "localhost", command: "make", childJobs: [2]),
            JobInfo(id: 2, name: "Job2", type: .backgroundJob, state: .completed, hasMoreData: true, location: "localhost", command: "make", parentId: 1),
            JobInfo(id: 3, instanceId: uuid, name: "Job3", type: .backgroundJob, state: .running, hasMoreData: true, location: "localhost", command: "sleep 9", childJobs: [4]),
            JobInfo(id: 4, name: "Job4", type: .backgroundJob, state: .running, hasMoreData: true, location: "localhost", command: "sleep 9", parentId: 3),
        ]
    }

    @Test func wordsAreIdsUuidsOrNames() {
        #expect(JobSelector("7") == .id(7))
        #expect(JobSelector(uuid.uuidString) == .instanceId(uuid))
        #expect(JobSelector("build*") == .name("build*"))
        #expect(JobSelector("0") == .name("0"))
    }

    @Test func idsAndNamesAlsoMatchChildren() throws {
        #expect(try JobSelection.resolve([.id(4)], in: jobs).map(\.id) == [4])
        #expect(try JobSelection.resolve([.name("job*")], in: jobs).map(\.id) == [2, 3, 4])
        #expect(try JobSelection.resolve([.instanceId(uuid)], in: jobs).map(\.id) == [3])
    }

    @Test func keepsTheOrderNamedAndEachJobOnce() throws {
        #expect(try JobSelection.resolve([.id(3), .id(1), .name("Job3")], in: jobs).map(\.id) == [3, 1])
    }

    @Test func aWordThatMatchesNothingIsAnError() {
        #expect(throws: JobError(.notFound, "no job with id 42")) { try JobSelection.resolve([.id(42)], in: jobs) }
        #expect(throws: JobError(.notFound, "no job named 'deploy'")) {
            try JobSelection.resolve([.name("deploy")], in: jobs)
        }
    }

    @Test func anUnmatchedWildcardIsSilent() throws {
        #expect(try JobSelection.resolve([.name("deploy*")], in: jobs).isEmpty)
    }

    @Test func partialResolutionKeepsTheMatchesAndReportsTheRest() {
        let (found, errors) = JobSelection.resolvePartially([.id(1), .id(42), .name("nope")], in: jobs)
        #expect(found.map(\.id) == [1])
        #expect(errors.map(\.message) == ["no job with id 42", "no job named 'nope'"])
    }
}

@Suite("job get filters") struct QueryTests {
    func job(_ id: Int, _ state: JobState, parent: Int? = nil, children: [Int] = [], more: Bool = true, end: Double? = nil) -> JobInfo {
        JobInfo(
            id: id, name: "Job\(id)", type: .backgroundJob, state: state, hasMoreData: more, location: "localhost",
            command: "c\(id)", childJobs: children, parentId: parent, endTime: end.map(Date.init(timeIntervalSince1970:)))
    }

    var jobs: [JobInfo] {
        [
            job(1, .completed, children: [2], more: false, end: 100), job(2, .completed, parent: 1, more: false, end: 100),
            job(3, .failed, children: [4], end: 200), job(4, .failed, parent: 3, end: 200),
            job(5, .running, children: [6]), job(6, .running, parent: 5),
        ]
    }

    @Test func listsTopLevelJobsByDefault() throws {
        #expect(try JobQuery().apply(to: jobs.reversed()).map(\.id) == [1, 3, 5])
    }

    @Test func includesChildrenOnRequest() throws {
        #expect(try JobQuery(includeChildren: true).apply(to: jobs).map(\.id) == [1, 2, 3, 4, 5, 6])
        #expect(try JobQuery(childState: .failed).apply(to: jobs).map(\.id) == [1, 3, 4, 5])
    }

    @Test func filtersByStateAndData() throws {
        #expect(try JobQuery(state: .failed).apply(to: jobs).map(\.id) == [3])
        #expect(try JobQuery(hasMoreData: false).apply(to: jobs).map(\.id) == [1])
    }

    @Test func timeBoundsCompareEndTimeAndSkipRunningJobs() throws {
        let t150 = Date(timeIntervalSince1970: 150)
        #expect(try JobQuery(before: t150).apply(to: jobs).map(\.id) == [1])
        #expect(try JobQuery(after: t150).apply(to: jobs).map(\.id) == [3])
        #expect(try JobQuery(before: Date(timeIntervalSince1970: 100)).apply(to: jobs).isEmpty)
    }

    @Test func newestKeepsTheLastEndedThenSortsById() throws {
        #expect(try JobQuery(newest: 1).apply(to: jobs).map(\.id) == [3])
        #expect(try JobQuery(newest: 2).apply(to: jobs).map(\.id) == [1, 3])
    }
}

@Suite("Output format") struct OutputFormatTests {
    @Test func recordsRoundTrip() {
        let record = OutputRecord(time: Date(timeIntervalSince1970: 1_700_000_000.123456), stream: .error, offset: 1 << 33, length: 4096)
        let bytes = OutputFormat.encode(record)
        #expect(bytes.count == OutputFormat.recordSize)
        let decoded = bytes.withUnsafeBytes { OutputFormat.decode($0, at: 0) }
        #expect(decoded?.stream == .error)
        #expect(decoded?.offset == 1 << 33)
        #expect(decoded?.length == 4096)
        #expect(abs((decoded?.time.timeIntervalSince1970 ?? 0) - 1_700_000_000.123456) < 1e-6)
    }

    @Test func jobInfoEncodesEveryKeyWithNulls() throws {
        let info = JobInfo(id: 1, name: "Job1", type: .backgroundJob, state: .running, hasMoreData: true, location: "localhost", command: "true", childJobs: [2])
        let json = try JSONSerialization.jsonObject(with: Data(Wire.json(info).bytes())) as? [String: Any]
        let keys = Set(json?.keys.map { $0 } ?? [])
        #expect(keys == [
            "id", "name", "instanceId", "type", "state", "hasMoreData", "location", "command", "childJobs", "parentId", "beginTime",
            "endTime", "exitCode", "reason", "queue", "dependsOn", "attempt", "input", "cpuSeconds", "maxRssBytes",
        ])
        #expect(json?["parentId"] is NSNull)
        #expect(json?["cpuSeconds"] is NSNull && json?["input"] is NSNull)
        #expect(json?["queue"] as? String == "default" && json?["attempt"] as? Int == 1)
        #expect(json?["state"] as? String == "Running")
    }
}
