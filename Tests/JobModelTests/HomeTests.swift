import Testing
import JobProtocol

@Suite("Choosing the home") struct HomeTests {
    @Test func theFirstOfFlagJobHomeXDGStateHomeAndHomeWins() {
        let all = ["JOB_HOME": "/srv/jobs", "XDG_STATE_HOME": "/home/ann/.state", "HOME": "/home/ann"]
        #expect(JobHome(explicit: "/tmp/h", environment: all).path == "/tmp/h")
        #expect(JobHome(environment: all).path == "/srv/jobs")
        #expect(JobHome(environment: ["XDG_STATE_HOME": "/home/ann/.state", "HOME": "/home/ann"]).path == "/home/ann/.state/job")
        #expect(JobHome(environment: ["HOME": "/home/ann"]).path == "/home/ann/.local/state/job")
        #expect(JobHome(environment: ["JOB_HOME": "", "HOME": "/home/ann"]).path == "/home/ann/.local/state/job")
    }

    @Test func pathsAreMadeAbsoluteAndPlain() {
        #expect(JobHome(explicit: "/srv//jobs/./a/../b/").path == "/srv/jobs/b")
        #expect(JobHome(explicit: "/srv/jobs/..").path == "/srv")
        let relative = JobHome(explicit: "some/dir", environment: [:]).path
        #expect(relative.hasPrefix("/") && relative.hasSuffix("/some/dir"))
        #expect(JobHome(explicit: "/srv/jobs").socket == "/srv/jobs/jobd.sock")
    }
}
