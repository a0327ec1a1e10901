import Foundation
import JobModel
import JobProtocol
import JobTesting
import Testing

/// The golden frames pin the wire: every coder the project has must write them byte for byte
/// and read them back to the same value — Swift's `Wire` (which the CLI, its fast path and
/// the daemon all use) and the tests' Python client.
@Suite("The wire's golden frames") struct GoldenTests {
    @Test(arguments: Samples.requests.map(\.name)) func requestsWriteAndReadTheirGoldenFrame(_ name: String) throws {
        let request = try #require(Samples.requests.first { $0.name == name }?.request)
        let golden = try Samples.golden(name)
        #expect(String(decoding: Wire.encode(request), as: UTF8.self) == String(decoding: golden, as: UTF8.self))
        #expect(try Wire.decodeRequest(golden) == request)
    }

    @Test(arguments: Samples.responses.map(\.name)) func answersWriteAndReadTheirGoldenFrame(_ name: String) throws {
        let response = try #require(Samples.responses.first { $0.name == name }?.response)
        let golden = try Samples.golden(name)
        #expect(String(decoding: Wire.encode(response), as: UTF8.self) == String(decoding: golden, as: UTF8.self))
        #expect(try Wire.decodeResponse(golden) == response)
    }

    @Test func everyVerbAndEveryFrameTypeHasAGoldenFrame() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Samples.directory).filter { $0.hasSuffix(".json") }
        let names = Set(files.map { String($0.dropLast(5)) })
        #expect(names == Set(Samples.requests.map(\.name) + Samples.responses.map(\.name)), "a sample per file")
        #expect(Set(Samples.requests.map(\.request.verb.name)) == Set(Verb.allCases.map(\.name)))
        #expect(Samples.requests.count == Verb.allCases.count)
        #expect(Set(Samples.responses.map(\.response.type)) == Set(Response.types))
        #expect(Samples.responses.count == Response.types.count)
    }

    @Test func thePythonClientWritesAndReadsEveryGoldenFrame() async throws {
        let client = URL(fileURLWithPath: Samples.directory).deletingLastPathComponent().appendingPathComponent("wire_client.py").path
        let result = try await runProcessDetached("/usr/bin/env", ["python3", client, "check", Samples.directory])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("checked \(Samples.requests.count + Samples.responses.count) golden frames"))
    }
}

@Suite("Reading requests and answers") struct WireTests {
    private func refusal(_ text: String) -> JobError? {
        #expect(throws: JobError.self, "\(text)") { try Wire.decodeRequest(Array(text.utf8)) }
    }

    @Test func theVersionAndTheVerbAreReadFirst() {
        let newer = refusal(#"{"v":2,"verb":"frobnicate","params":{"whatever":[1,2]}}"#)
        #expect(newer?.code == .unsupportedVersion)
        #expect(newer?.message.contains("same release") == true)
        let unknown = refusal(#"{"v":1,"verb":"frobnicate","params":{"x":1}}"#)
        #expect(unknown?.code == .unknownVerb)
        #expect(unknown?.message.contains("frobnicate") == true)
        #expect(refusal(#"{"verb":"get"}"#)?.code == .invalidArgument, "no version")
        #expect(refusal(#"{"v":1,"verb":"start","params":{"command":{"shell":"x","argv":["y"]},"workingDirectory":"/"}}"#)?.code == .invalidArgument, "both")
        #expect(refusal(#"{"v":1,"verb":"start","params":{"command":{},"workingDirectory":"/"}}"#)?.code == .invalidArgument, "neither")
        #expect(refusal(#"{"v":1,"verb":"get","params":{"selectors":[{"id":"3"}]}}"#)?.code == .invalidArgument, "an id as text")
        #expect(refusal("[1,2]")?.code == .invalidArgument)
    }

    @Test func absentFieldsTakeTheirDefaultsAndUnknownOnesAreIgnored() throws {
        let request = try Wire.decodeRequest(Array(#"{"v":1,"verb":"receive","params":{"selectors":[{"id":1}],"later":true}}"#.utf8))
        #expect(request == Request(.receive(ReceiveParameters(selectors: [.id(1)]))))
        #expect(try Wire.decodeRequest(Array(#"{"v":1,"verb":"status"}"#.utf8)) == Request(.status))
        let stop = try Wire.decodeRequest(Array(#"{"v":1,"verb":"stop","params":{"selectors":[{"name":"a"}]}}"#.utf8))
        #expect(stop == Request(.stop(StopParameters(selectors: [.name("a")], graceSeconds: 5))))
    }

    @Test func durationsOutOfRangeAreRefusedNotTrapped() {
        for value in ["1e16", "-1", "1e300"] {
            let wait = refusal(#"{"v":1,"verb":"wait","params":{"timeoutSeconds":\#(value)}}"#)
            #expect(wait?.code == .invalidArgument, "\(value)")
            #expect(wait?.message.contains("timeoutSeconds must be from 0 to") == true, "\(value)")
            #expect(refusal(#"{"v":1,"verb":"stop","params":{"graceSeconds":\#(value)}}"#)?.code == .invalidArgument)
        }
    }

    @Test func nestingTooDeepIsRefused() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(refusal(#"{"v":1,"verb":"get","params":{"x":\#(deep)}}"#)?.code == .invalidArgument)
    }

    @Test func anAnswerOfAnUnknownTypeIsKeptToBeSkipped() throws {
        #expect(try Wire.decodeResponse(Array(#"{"type":"hint","text":"new"}"#.utf8)) == .unknown(type: "hint"))
        let done = try Wire.decodeResponse(Array(#"{"type":"done","error":{"code":"quotaExceeded","message":"later"}}"#.utf8))
        #expect(done == .done(Outcome(error: JobError(JobError.Code("quotaExceeded"), "later"))), "an error code of a newer daemon")
    }

    /// Found by the fuzz target (Fuzz/README.md): a job's times, taken from the clock, travel
    /// as seconds since 1970 in a double and may come back a bit off in the last place. What
    /// holds is that a frame read back writes the same bytes, and the time is the same to the
    /// microsecond.
    @Test func timesFromTheClockReadBackToTheSameBytes() throws {
        for step in 0..<2_000 {
            let time = Date(timeIntervalSinceNow: Double(step) * 0.000_123_457)
            var job = Samples.parent
            job.beginTime = time
            job.endTime = time.addingTimeInterval(1.5)
            let bytes = Wire.encode(Response.job(job))
            let back = try Wire.decodeResponse(bytes)
            #expect(Wire.encode(back) == bytes)
            guard case .job(let read) = back, let begin = read.beginTime else {
                Issue.record("not a job frame")
                return
            }
            #expect(abs(begin.timeIntervalSince(time)) < 0.000_001)
        }
    }

    /// Found by the fuzz target: `"after":17646331e3085` read as a time at infinity, which was
    /// written back as null. A number no double holds is malformed JSON; a time must be in
    /// the years 1 to 9999.
    @Test func numbersBeyondADoubleAndTimesBeyondTheCalendarAreRefused() {
        let huge = Array(#"{"v":1,"verb":"get","params":{"after":17646331e3085}}"#.utf8)
        #expect(throws: JobError.self) { try Wire.decodeRequest(huge) }
        let far = Array(#"{"v":1,"verb":"get","params":{"before":1e300}}"#.utf8)
        #expect(throws: JobError.self) { try Wire.decodeRequest(far) }
        let fine = Array(#"{"v":1,"verb":"get","params":{"after":1764633600.25}}"#.utf8)
        #expect((try? Wire.decodeRequest(fine)) != nil)
    }
}
