import Foundation
import Testing
@testable import JobKit
import JobModel
import JobOutput
import JobTesting

/// Finished jobs live in the database, not in memory (finding 9 of #6): everything a user
/// does with them works the same after the engine let go of them, and after it reopens.
@Suite("A history of finished jobs", .tags(.medium)) struct HistoryTests {
    /// 300 finished thread jobs, every tenth failing and every third printing a line; then
    /// the engine reopens on the same home.
    static func withHistory(_ body: (JobManager) async throws -> Void) async throws {
        let home = try TemporaryHome("history")
        try await JobManager.withManager(home: home.path) { jobs in
            for i in 1...300 {
                _ = try await jobs.start(name: i % 2 == 0 ? "even\(i)" : nil) { context in
                    if i % 3 == 0 { try context.write("line \(i)") }
                    if i % 10 == 0 { throw JobError(.invalidArgument, "number \(i) fails") }
                }
            }
            _ = try await jobs.wait(timeout: .seconds(60))
            try await body(jobs)
        }
        try await JobManager.withManager(home: home.path) { jobs in try await body(jobs) }
    }

    @Test func finishedJobsAreFoundByIdNameWildcardAndInstanceId() async throws {
        try await Self.withHistory { jobs in
            let all = try await jobs.get()
            #expect(all.map(\.id) == Array(1...300))
            #expect(all.filter { $0.state == .failed }.map(\.id) == Array(stride(from: 10, through: 300, by: 10)))
            #expect(all.filter(\.hasMoreData).map(\.id) == Array(stride(from: 3, through: 300, by: 3)))
            let seven = try await jobs.get(JobQuery(selectors: [.id(7)]))
            #expect(seven.map(\.name) == ["Job7"])
            #expect(try await jobs.get(JobQuery(selectors: [.name("EVEN42")])).map(\.id) == [42])
            #expect(try await jobs.get(JobQuery(selectors: [.name("even2?")])).map(\.id) == [20, 22, 24, 26, 28])
            let uuid = try #require(seven.first).instanceId
            #expect(try await jobs.get(JobQuery(selectors: [.instanceId(uuid)])).map(\.id) == [7])
            #expect(try await jobs.get(JobQuery(state: .failed, newest: 2)).count == 2)
            await #expect(throws: JobError.self) { try await jobs.get(JobQuery(selectors: [.id(999)])) }
            #expect(try #require(try await jobs.wait([.id(42)], timeout: .zero)).map(\.state) == [.completed])
        }
    }

    /// What finished is let go of: after 300 jobs have ended and the engine committed
    /// something since, memory holds only what is under way; a look at an old job brings
    /// it in, and the next commit lets it go again.
    @Test func finishedFamiliesLeaveMemory() async throws {
        try await withTemporaryEngine("history") { jobs, _ in
            for _ in 1...300 { _ = try await jobs.start { _ in } }
            _ = try await jobs.wait(timeout: .seconds(60))
            let running = try await jobs.start { _ in try await Task.sleep(for: .seconds(60)) }
            let held = await jobs.jobsInMemory
            #expect(held <= 2, "\(held) jobs held")
            _ = try await jobs.receive([.id(150)])
            let afterLook = await jobs.jobsInMemory
            #expect(afterLook <= 2, "\(afterLook) jobs held after a look")
            #expect(try await jobs.get().count == 301)
            _ = try await jobs.stop([.id(running.id)], grace: .seconds(5))
        }
    }

    @Test func aFinishedJobsOutputIsReceivedOnceAndItCanBeRemoved() async throws {
        let home = try TemporaryHome("history")
        try await JobManager.withManager(home: home.path) { jobs in
            for i in 1...50 { _ = try await jobs.start { context in try context.write("out \(i)") } }
            _ = try await jobs.wait(timeout: .seconds(60))
        }
        try await JobManager.withManager(home: home.path) { jobs in
            let output = try await jobs.receive([.id(33)])
            let reader = try OutputSliceReader(slice: try #require(output.slices.first))
            #expect(try reader.nextChunk().map { String(decoding: $0.data, as: UTF8.self) } == "out 33\n")
            #expect(try await jobs.receive([.id(33)]).slices.isEmpty, "received once")
            #expect(await jobs.job(33)?.hasMoreData == false)
            try await jobs.remove([.name("Job4*")])
            #expect(try await jobs.get().map(\.id) == Array(1...50).filter { !(40...49).contains($0) && $0 != 4 })
        }
        try await JobManager.withManager(home: home.path) { jobs async throws in
            #expect(await jobs.job(33)?.hasMoreData == false, "the cursor was committed")
            #expect(try await jobs.get().count == 39)
            #expect(try await jobs.count() == 39)
        }
    }
}

@Suite("Reading UUIDs", .tags(.small)) struct UUIDParseTests {
    @Test func readsWhatFoundationWritesAndNothingElse() {
        for _ in 0..<500 {
            let uuid = UUID()
            #expect(UUID.parse(uuid.uuidString.lowercased()) == uuid)
            #expect(UUID.parse(uuid.uuidString) == uuid)
        }
        for bad in ["", "6f1c2d3e", "6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5", "6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5ez",
                    "6f1c2d3e4a5b-4c6d-8e7f-901a2b3c4d5e0", "6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e-"] {
            #expect(UUID.parse(bad) == nil, "\(bad)")
        }
    }
}
