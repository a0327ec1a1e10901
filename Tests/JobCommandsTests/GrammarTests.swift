import ArgumentParser
import Testing

@testable import JobCommands

/// The verbs' options are declared once (`OptionSpec`), for ArgumentParser and the fast path
/// alike: both must read every command line to the same input.
@Suite("One option grammar") struct GrammarTests {
    static let start: [[String]] = [
        ["start", "-c", "make test"],
        ["start", "--name", "build", "--", "make", "-j4", "test"],
        ["start", "--cwd", "/tmp", "--env", "A=1", "--env", "B=x=y", "-c", "env | sort"],
        ["start", "-o", "json", "--property", "Id, State", "-c", "true"],
        ["start", "--output", "list", "--home", "/tmp/h", "-c", "true", "--name", "late"],
        ["start", "--", "-c", "--name", "not options"],
        ["start", "--name", "first", "--name", "second", "-c", "x"],
        ["start", "--env", "EMPTY=", "--", "printf", "%s\n", "é ü 日本"],
        ["start", "--merge-error", "-c", "echo out; echo err >&2"],
        ["start", "--queue", "build", "--depends-on", "1, fetch*", "--depends-on", "7", "--retry", "2", "-c", "make"],
    ]
    static let invoke: [[String]] = [
        ["invoke", "--computer", "web1,web2, db1", "-c", "uptime"],
        ["invoke", "--computer", "localhost", "--as-job", "--name", "fan", "--throttle", "2", "--", "df", "-h", "/"],
        ["invoke", "--hide-computer-name", "--computer", "a", "--ssh-config", "/etc/ssh/ssh_config", "-c", "x"],
        ["invoke", "-o", "json", "--property", "Id", "--computer", "a", "--as-job", "-c", "x"],
        ["invoke", "--computer", "a,b", "--queue", "q", "--retry", "1", "--depends-on", "3", "--", "uptime"],
    ]
    static let get: [[String]] = [
        ["get"],
        ["get", "3", "build*", "6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e"],
        ["get", "--state", "completed", "--include-children", "--child-state", "Failed"],
        ["get", "--has-more-data", "false", "--newest", "2", "-o", "list"],
        ["get", "--before", "2026-12-01T10:00:00Z", "--after", "2026-11-30", "--home", "/tmp/h", "5"],
        ["get", "-o", "json", "--property", "id,state,exitCode"],
        ["get", "3", "--", "-dashed-name", "4"],
    ]
    /// Lines one parser or both refuse: the fast path must never take one ArgumentParser refuses.
    static let refused: [[String]] = [
        ["start"], ["start", "-c", "x", "--", "y"], ["start", "--env", "novalue", "-c", "x"],
        ["start", "--bogus", "-c", "x"], ["start", "-o", "raw", "-c", "x"], ["start", "--name"],
        ["invoke", "-c", "x"], ["invoke", "--computer", ",", "-c", "x"],
        ["invoke", "--computer", "a", "--throttle", "0", "-c", "x"], ["invoke", "--computer", "a", "--throttle", "many", "-c", "x"],
        ["get", "--has-more-data", "maybe"], ["get", "--state", "Sleeping"], ["get", "--newest", "-1"],
        ["get", "--before", "yesterday"], ["get", "-x"],
        ["start", "--retry", "many", "-c", "x"], ["start", "--retry", "-1", "-c", "x"], ["start", "--retry", "1001", "-c", "x"],
    ]

    private func same<Command: InputCommand>(_ line: [String], _ command: Command.Type) throws
    where Command.Input: TabledInput {
        let fast = try #require(FastPath.parse(line, as: Command.Input.self), "the fast path takes \(line)")
        let parsed = try #require(try JobCommand.parseAsRoot(line) as? Command, "\(line)")
        #expect(parsed.input == fast.0, "\(line)")
        #expect(parsed.options.common == fast.1, "\(line)")
    }

    @Test(arguments: start) func startLinesReadAlike(_ line: [String]) throws { try same(line, StartCommand.self) }
    @Test(arguments: invoke) func invokeLinesReadAlike(_ line: [String]) throws { try same(line, InvokeCommand.self) }
    @Test(arguments: get) func getLinesReadAlike(_ line: [String]) throws { try same(line, GetCommand.self) }

    @Test(arguments: refused) func whatArgumentParserRefusesTheFastPathLeavesToIt(_ line: [String]) {
        #expect(throws: (any Error).self, "ArgumentParser refuses \(line)") { try JobCommand.parseAsRoot(line) }
        let fast: Bool =
            switch line[0] {
            case "start": FastPath.parse(line, as: StartInput.self) != nil
            case "invoke": FastPath.parse(line, as: InvokeInput.self) != nil
            default: FastPath.parse(line, as: GetInput.self) != nil
            }
        #expect(!fast, "the fast path leaves \(line) to ArgumentParser")
    }

    private func documented<Command: InputCommand>(_ command: Command.Type) where Command.Input: TabledInput {
        let help = Command.helpMessage(columns: 10_000)
        for spec in Command.Input.options + [] {
            #expect(help.contains(spec.spelling), "\(Command.self) --help names \(spec.spelling)")
            #expect(help.contains(spec.help), "\(Command.self) --help says what \(spec.spelling) does")
        }
        for spec in CommonOptionTable.all {
            #expect(help.contains(spec.spelling) && help.contains(spec.help), "\(Command.self) --help has \(spec.spelling)")
        }
    }

    @Test func everyDeclaredOptionIsInHelp() {
        documented(StartCommand.self)
        documented(InvokeCommand.self)
        documented(GetCommand.self)
    }
}
