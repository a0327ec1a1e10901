import ArgumentParser
import FoundationEssentials
import JobClient
import JobModel
import JobProtocol

#if canImport(Glibc)
import Glibc
#endif

struct DaemonCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "daemon",
        abstract: "Start, stop or inspect the per-user daemon (jobd).",
        discussion: """
            Other commands start the daemon when it is not running; these are for people and \
            service managers. Stopping it leaves running jobs running.
            """,
        subcommands: [Start.self, Stop.self, Status.self, Run.self, Unit.self]
    )

    struct Start: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Start the daemon in the background.")
        @OptionGroup var options: GlobalOptions

        func run() throws {
            if options.client.isRunning() {
                complain("a daemon is already running for \(options.jobHome.path)")
                throw Exit(status: ExitStatus.failed)
            }
            _ = try perform(Request(.status), with: options) { _ in }
        }
    }

    struct Stop: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Shut the daemon down; running jobs keep running.")
        @OptionGroup var options: GlobalOptions

        func run() throws {
            let client = options.client
            guard client.isRunning() else {
                complain("no daemon is running for \(options.jobHome.path)")
                throw Exit(status: ExitStatus.failed)
            }
            var pid: Int?
            _ = try? client.call(Request(.status), autoStart: false) { frame in
                if case .status(let status) = frame { pid = status.pid }
            }
            _ = try perform(Request(.shutdown), with: options) { _ in }
            // Return once it is gone, so that a `job daemon start` right after works. An exited
            // daemon may linger as a zombie until its new parent reaps it: that counts as gone.
            let deadline = Date().addingTimeInterval(10)
            while let pid, Self.isAlive(pid), Date() < deadline { usleep(5_000) }
        }

        static func isAlive(_ pid: Int) -> Bool {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return false }
            let state = stat[stat.index(close, offsetBy: 2)...].prefix(1)
            return state != "Z" && state != "X"
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the daemon's pid, home, socket, version, uptime and number of jobs.",
            discussion: "Exit status 1 when no daemon is running.")
        @OptionGroup var options: GlobalOptions

        func run() throws {
            guard options.client.isRunning() else {
                complain("no daemon is running for \(options.jobHome.path)")
                throw Exit(status: ExitStatus.failed)
            }
            var status: DaemonStatus?
            _ = try perform(Request(.status), with: options) { frame in
                if case .status(let s) = frame { status = s }
            }
            guard let status else { throw Exit(status: ExitStatus.unreachable) }
            switch options.output {
            case .json, .jsonl:
                let object = JSON.object([
                    ("pid", .int(status.pid)), ("home", .string(status.home)), ("socket", .string(status.socket)),
                    ("version", .string(status.version)), ("uptimeSeconds", .double(status.uptimeSeconds)),
                    ("jobs", .int(status.jobs)),
                ])
                try writeOut(options.output == .json ? JobRender.jsonText(object) : object.text(pretty: false) + "\n")
            default:
                let uptime = decimal(status.uptimeSeconds, places: 0) + " s"
                try writeOut(JobRender.list(
                    properties: ["Pid", "Home", "Socket", "Version", "Uptime", "Jobs"],
                    items: [[String(status.pid), status.home, status.socket, status.version, uptime, String(status.jobs)]]))
            }
        }
    }

    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the daemon in the foreground (for systemd and the like).",
            discussion: "For a service manager, e.g. systemd's ExecStart.")
        @OptionGroup var options: GlobalOptions

        func run() throws {
            guard let jobd = DaemonClient.locateDaemon() else {
                complain("cannot find jobd beside job or on PATH; install both together")
                throw Exit(status: ExitStatus.unreachable)
            }
            let argv = [jobd, "--home", options.jobHome.path]
            var cArgs = argv.map { strdup($0) } + [nil]
            execv(jobd, &cArgs)
            complain("cannot run \(jobd): \(String(cString: strerror(errno)))")
            throw Exit(status: ExitStatus.unreachable)
        }
    }

    struct Unit: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a systemd user unit that runs the daemon.",
            discussion: """
                Save it as ~/.config/systemd/user/jobd.service, then: systemctl --user enable --now \
                jobd; loginctl enable-linger, so that jobs outlive your last login. KillMode=process: \
                restarting the unit restarts the daemon only, and jobs keep running.
                """)
        @OptionGroup var options: GlobalOptions

        func run() throws {
            try writeOut(Self.text(job: Self.executable(), home: options.home == nil ? nil : options.jobHome.path))
        }

        /// This `job`, as systemd is to run it.
        static func executable() -> String {
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        }

        /// The unit: `job daemon run` (with the home, when one was named) as a simple service.
        static func text(job: String, home: String?) -> String {
            let words = [job, "daemon", "run"] + (home.map { ["--home", $0] } ?? [])
            // systemd's quoting: a word with a blank or a quote in double quotes, \\ and \" escaped.
            let command = words.map { word -> String in
                guard word.contains(where: { " \"\\'".contains($0) }) else { return word }
                var quoted = "\""
                for character in word {
                    if character == "\"" || character == "\\" { quoted.append("\\") }
                    quoted.append(character)
                }
                return quoted + "\""
            }.joined(separator: " ")
            return """
                [Unit]
                Description=jobd, the daemon that keeps your background jobs (job)

                [Service]
                Type=simple
                ExecStart=\(command)
                # Stopping or restarting the unit ends the daemon only: jobs keep running.
                KillMode=process
                Restart=on-failure

                [Install]
                WantedBy=default.target

                """
        }
    }
}
