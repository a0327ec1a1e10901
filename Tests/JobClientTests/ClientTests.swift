import Foundation
import JobClient
import JobModel
import JobProtocol
import JobTesting
import Testing

/// The client against a stand-in daemon (Python, on a real socket) that answers with frames
/// given by the test.
@Suite("The daemon client") struct ClientTests {
    /// Serves one connection on `home`'s socket: reads the request, writes it to `request`,
    /// answers with `frames` (bodies), and exits.
    private func standIn(_ home: JobHome, request: String, frames: [String]) -> String {
        let bodies = frames.map { "b'" + $0.replacingOccurrences(of: "'", with: "\\'") + "'" }.joined(separator: ", ")
        return """
            import socket, struct, os
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.bind('\(home.socket)'); s.listen(1)
            open('\(home.path)/listening', 'w').close()
            c, _ = s.accept()
            head = c.recv(4, socket.MSG_WAITALL); n = struct.unpack('>I', head)[0]
            open('\(request)', 'wb').write(c.recv(n, socket.MSG_WAITALL))
            for body in [\(bodies)]: c.sendall(struct.pack('>I', len(body)) + body)
            c.close(); os.unlink('\(home.socket)')
            """
    }

    private func exchange(_ frames: [String], _ request: Request) async throws -> (sent: String, got: [Response], outcome: Outcome) {
        let dir = try TemporaryHome("client")
        let home = JobHome(explicit: dir.path)
        let sent = dir.path + "/request"
        async let server = runProcessDetached("/usr/bin/env", ["python3", "-c", standIn(home, request: sent, frames: frames)])
        #expect(try await eventually { FileManager.default.fileExists(atPath: dir.path + "/listening") }, "the stand-in listens")
        let client = DaemonClient(home: home)
        let (got, outcome) = try await onOwnThread {
            var got: [Response] = []
            let outcome = try client.call(request, autoStart: false) { got.append($0) }
            return (got, outcome)
        }
        let result = try await server
        #expect(result.status == 0, "\(result.stderr)")
        return (try String(contentsOfFile: sent, encoding: .utf8), got, outcome)
    }

    @Test func framesOfUnknownTypesAreSkippedAndErrorCodesKeptAsTheyCame() async throws {
        let (sent, got, outcome) = try await exchange(
            [
                #"{"type":"hint","text":"from a newer daemon"}"#, #"{"type":"progress","finished":1,"total":2,"eta":3}"#,
                #"{"type":"done","notFound":[],"timedOut":false,"error":{"code":"quotaExceeded","message":"too many"}}"#,
            ],
            Request(.get(JobQuery())))
        #expect(sent.hasPrefix(#"{"v":1,"verb":"get","params":{"#), "\(sent)")
        #expect(got == [.progress(finished: 1, total: 2, failed: [])], "a field absent is its default")
        #expect(outcome.error == JobError(JobError.Code("quotaExceeded"), "too many"))
    }

    @Test func anAnswerThatIsNotTheWireIsAnErrorThatSaysSo() async throws {
        let error = await #expect(throws: ClientError.self) {
            _ = try await exchange([#"{"jobs":{"_0":[]}}"#], Request(.status))
        }
        #expect(error?.message.contains("same release") == true, "\(String(describing: error))")
    }
}
