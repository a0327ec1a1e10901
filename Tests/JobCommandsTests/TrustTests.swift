import Foundation
import JobTesting
import Testing

/// A home, and a daemon, are trusted as ssh trusts `~/.ssh`: before `job` sends a byte (its
/// command line and whole environment), the home must be the user's and closed to others'
/// writes, and what answers on its socket must run as the user.
@Suite("Whom job trusts", .tags(.cli)) struct TrustTests {
    static let nobody: uid_t = getpwnam("nobody")?.pointee.pw_uid ?? 65534
    static let nogroup: gid_t = getgrnam("nogroup")?.pointee.gr_gid ?? 65534

    /// A directory for the test, removed at the end whatever happens.
    private func scratch(_ body: (String) async throws -> Void) async throws {
        let directory = try TemporaryHome("trust")
        try await body(directory.path)
    }

    @Test func aHomeInADirectoryAnotherUserOwnsIsRefused() async throws {
        try await scratch { dir in
            let theirs = dir + "/theirs"
            #expect(mkdir(theirs, 0o777) == 0 && chmod(theirs, 0o777) == 0 && chown(theirs, Self.nobody, Self.nogroup) == 0)
            let home = theirs + "/home"
            let refused = try await CLI.execute(builtExecutable("job"), ["--home", home, "start", "-c", "echo secret"])
            #expect(refused.status == 1, "\(refused.stderr)")
            #expect(refused.stderr == "job: \(theirs) belongs to user \(Self.nobody): they could replace the home \(home); use a home under a directory of yours\n")
            #expect(!FileManager.default.fileExists(atPath: home), "nothing made there, no daemon started")
        }
    }

    @Test func aHomeOthersMayWriteIsRefused() async throws {
        try await scratch { dir in
            let home = dir + "/open"
            #expect(mkdir(home, 0o777) == 0 && chmod(home, 0o777) == 0)
            let refused = try await CLI.execute(builtExecutable("job"), ["--home", home, "get"])
            #expect(refused.status == 1, "\(refused.stderr)")
            #expect(refused.stderr == "job: the home \(home) may be written by others (mode 777); run chmod go-w \(home)\n")
            #expect(!FileManager.default.fileExists(atPath: home + "/jobd.sock"))
            #expect(chmod(home, 0o700) == 0)
            let fixed = try await CLI.execute(builtExecutable("job"), ["--home", home, "get"])
            #expect(fixed.status == 0, "as ssh says: fixed by chmod: \(fixed.stderr)")
            _ = try await CLI.execute(builtExecutable("job"), ["--home", home, "daemon", "stop"])
        }
    }

    @Test func everyFileOfTheHomeIsTheUsersAlone() async throws {
        try await withCLI { cli in
            try await cli.run("start", "-c", "echo out; echo err >&2")
            #expect(try await cli.run("wait").status == 0)
            let walker = FileManager.default.enumerator(atPath: cli.home.path)
            var open: [String] = []
            var seen = 0
            while let name = walker?.nextObject() as? String {
                var info = stat()
                guard lstat(cli.home.path + "/" + name, &info) == 0 else { continue }
                seen += 1
                if info.st_mode & 0o077 != 0 { open.append("\(name) \(String(info.st_mode & 0o777, radix: 8))") }
            }
            #expect(seen >= 6, "the database, its journal, the slots, the output, the socket")
            #expect(open.isEmpty, "readable or writable by others: \(open)")
        }
    }

    /// Someone else's process listening on the socket (it bound as root, then became nobody
    /// before listening, so that the kernel names nobody as its owner) receives nothing.
    @Test func aSocketAnsweredBySomeoneElseGetsNothing() async throws {
        try await scratch { dir in
            let home = dir + "/home"
            #expect(mkdir(home, 0o700) == 0)
            let got = dir + "/got"
            let server = """
                import os, socket, sys
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.bind(sys.argv[1])
                os.setgid(\(Self.nogroup)); os.setuid(\(Self.nobody)); s.listen(1); s.settimeout(60)
                print('listening', flush=True)
                c, _ = s.accept(); c.settimeout(5)
                data = b''
                try:
                    while True:
                        chunk = c.recv(65536)
                        if not chunk: break
                        data += chunk
                except socket.timeout:
                    pass
                print('got', len(data), flush=True)
                """
            let ready = dir + "/ready"
            let wrapper = "python3 -c \"$0\" \(home)/jobd.sock \(got) | while read line; do echo \"$line\" >> \(ready); done"
            async let served = runProcessDetached("/bin/sh", ["-c", wrapper, server])
            #expect(try await eventually { (try? String(contentsOfFile: ready, encoding: .utf8))?.contains("listening") ?? false })
            let refused = try await CLI.execute(builtExecutable("job"), ["--home", home, "start", "-c", "echo secret"])
            #expect(refused.status == 1, "\(refused.stderr)")
            #expect(refused.stderr.contains("runs as user \(Self.nobody), not as you"), "\(refused.stderr)")
            #expect(refused.stderr.contains("nothing was sent"))
            _ = try await served
            let log = (try? String(contentsOfFile: ready, encoding: .utf8)) ?? ""
            #expect(log.contains("got 0"), "the other user's process received nothing: \(log)")
        }
    }
}
