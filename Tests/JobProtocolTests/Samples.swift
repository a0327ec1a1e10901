import Foundation
import JobModel
import JobProtocol

/// One value of every request verb and every answer frame type, with the values that make a
/// coder work: text that needs escaping, unicode, nulls and non-defaults. Each has a golden
/// file, `Golden/<name>.json`, holding exactly the bytes the wire carries.
enum Samples {
    static let uuid = UUID(uuidString: "6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e")!
    static let begin = Date(timeIntervalSince1970: 1_764_633_600.25)
    static let end = Date(timeIntervalSince1970: 1_764_633_612.5)

    static let start = StartParameters(
        command: .shell("make -j4 test && echo \"done\"\n"), name: "build", workingDirectory: "/home/ana/src",
        environment: ["LANG": "C.UTF-8", "PATH": "/usr/bin:/bin", "TAB": "a\tb"], mergeError: true, stdin: true,
        queue: "nightly", dependsOn: [.id(3), .name("fetch*")], retry: 2)

    static let requests: [(name: String, request: Request)] = [
        ("request-start", Request(.start(start))),
        (
            "request-invoke",
            Request(
                .invoke(
                    InvokeParameters(
                        computers: ["web1", "db1"],
                        start: StartParameters(
                            command: .argv(["printf", "[%s]", "a b", "é ü 日本", "-n"]), workingDirectory: "/",
                            environment: [:]),
                        throttle: 2, sshConfig: "/home/ana/.ssh/lab_config")))
        ),
        (
            "request-get",
            Request(
                .get(
                    JobQuery(
                        selectors: [.id(3), .name("build*"), .instanceId(uuid)], state: .completed, includeChildren: true,
                        childState: .failed, hasMoreData: true, before: end, after: begin, newest: 5)))
        ),
        ("request-receive", Request(.receive(ReceiveParameters(selectors: [.id(1)], keep: true, recurse: false, locations: ["db1"])))),
        ("request-receiveWait", Request(.receiveWait(ReceiveParameters(selectors: [.name("Job1")], autoRemove: true, whole: true, ordered: true)))),
        ("request-wait", Request(.wait(WaitParameters(selectors: [], any: true, timeoutSeconds: 2.5, force: true, progress: true)))),
        ("request-stop", Request(.stop(StopParameters(selectors: [.id(7)], graceSeconds: 0.5)))),
        ("request-remove", Request(.remove(RemoveParameters(selectors: [.id(1), .id(3)], force: true)))),
        ("request-received", Request(.received([Receipt(jobId: 4, upTo: 9), Receipt(jobId: 5, upTo: 120)]))),
        ("request-suspend", Request(.suspend([.id(3), .name("build")]))),
        ("request-resume", Request(.resume([.instanceId(uuid)]))),
        ("request-restart", Request(.restart([.id(9)]))),
        (
            "request-foreach",
            Request(
                .foreach(
                    ForeachParameters(
                        start: StartParameters(
                            command: .argv(["gzip", "-k", "{}"]), name: "zip", workingDirectory: "/data",
                            environment: ["LANG": "C.UTF-8"], queue: "io", retry: 1),
                        throttle: 4, inputFile: "/data/files.txt", nul: true)))
        ),
        ("request-queueGet", Request(.queueGet(["default", "io*"]))),
        ("request-queueSet", Request(.queueSet(QueueSetParameters(name: "io", limit: 2)))),
        ("request-queueRemove", Request(.queueRemove(["old"]))),
        (
            "request-sessionNew",
            Request(
                .sessionNew(
                    SessionNewParameters(
                        computers: ["localhost"], name: "db", shell: "/bin/bash", workingDirectory: "/srv/é",
                        environment: ["HOME": "/home/ana", "PS1": "$ "])))
        ),
        ("request-sessionGet", Request(.sessionGet(["db", "web*"]))),
        ("request-sessionRemove", Request(.sessionRemove(SessionRemoveParameters(names: ["2"], graceSeconds: 1.5)))),
        ("request-status", Request(.status)),
        ("request-shutdown", Request(.shutdown)),
    ]

    static let parent = JobInfo(
        id: 3, instanceId: uuid, name: "build", type: .remoteJob, state: .failed, hasMoreData: true,
        location: "web1,db1", command: "printf '[%s]' 'a b'", childJobs: [4, 5], parentId: nil, beginTime: begin,
        endTime: end, exitCode: nil, reason: nil, queue: "nightly", dependsOn: [1, 2], attempt: 2, cpuSeconds: 1.5,
        maxRssBytes: 104_857_600)
    static let child = JobInfo(
        id: 5, instanceId: uuid, name: "Job5", type: .remoteJob, state: .failed, hasMoreData: false, location: "db1",
        command: "printf '[%s]' 'a b'", childJobs: [], parentId: 3, beginTime: begin, endTime: end, exitCode: 255,
        reason: "db1: ssh: connect to host 127.0.0.1 port 1: Connection refused", input: "a b\n\"c\"")

    static let responses: [(name: String, response: Response)] = [
        ("response-job", .job(parent)),
        ("response-jobs", .jobs([parent, child])),
        ("response-slices", .slices([OutputSlice(jobId: 4, jobName: "Job4", location: "web1", origin: "web1", prefix: "/home/ana/.local/state/job/jobs/4", start: 0, end: 12)])),
        (
            "response-output",
            .output(
                OutputChunk(
                    jobId: 4, jobName: "Job4", location: "web1", origin: "web1", stream: .error, time: end,
                    data: Array("binary \u{0}\u{1}\n".utf8), start: 7, end: 9))
        ),
        ("response-failure", .failure(JobFailure(jobId: 5, jobName: "Job5", location: "db1", reason: "exited with status 3"))),
        ("response-progress", .progress(finished: 3, total: 5, failed: ["Job4", "nightly"])),
        (
            "response-queues",
            .queues([QueueInfo(name: "default", limit: nil, running: 3, waiting: 0), QueueInfo(name: "io", limit: 2, running: 2, waiting: 7)])
        ),
        (
            "response-sessions",
            .sessions([
                SessionInfo(id: 1, name: "db", computerName: "localhost", state: .opened, availability: .busy, reason: nil, shell: "/bin/sh"),
                SessionInfo(
                    id: 2, name: "web \"1\"", computerName: "localhost", state: .broken, availability: .available,
                    reason: "its shell exited with status 3", shell: "/bin/bash"),
            ])
        ),
        (
            "response-status",
            .status(DaemonStatus(pid: 4242, home: "/home/ana/.local/state/job", socket: "/home/ana/.local/state/job/jobd.sock", version: "0.2.0", uptimeSeconds: 12.75, jobs: 9))
        ),
        (
            "response-done",
            .done(Outcome(notFound: [.noJob(id: 42), .noJob(named: "nightly")], timedOut: true, error: JobError(.refused, "job 3 is Running; stop it first or use --force")))
        ),
    ]

    /// Where the golden files are, beside this source file.
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden").path

    static func golden(_ name: String) throws -> [UInt8] {
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: directory + "/" + name + ".json")))
        // The files end with a newline for people and editors; the wire has none.
        if bytes.last == 0x0A { bytes.removeLast() }
        return bytes
    }
}
