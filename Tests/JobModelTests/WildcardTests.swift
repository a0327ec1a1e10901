import Testing
import JobModel

@Suite("Wildcards") struct WildcardTests {
    @Test(arguments: [
        ("Job*", "Job12", true), ("job*", "JOB3", true), ("Job?", "Job1", true), ("Job?", "Job12", false),
        ("Job[12]", "Job2", true), ("Job[!12]", "Job2", false), ("Job[a-c]", "JobB", true),
        ("*build*", "nightly-build-x", true), ("build", "Build", true), ("build", "rebuild", false),
        ("a*b*c", "aXXbYYc", true), ("a*b*c", "aXXbYY", false), ("[", "[", true), ("*", "", true),
    ])
    func matches(pattern: String, text: String, expected: Bool) {
        #expect(Wildcard(pattern).matches(text) == expected)
    }

    @Test func knowsWhatIsAPattern() {
        #expect(Wildcard.hasWildcards("Job*"))
        #expect(Wildcard.hasWildcards("J[o]b"))
        #expect(!Wildcard.hasWildcards("build"))
    }
}
