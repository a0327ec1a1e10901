import Foundation

/// What a local process job runs, where, and with which environment.
public struct ProcessSpec: Sendable, Equatable, Codable {
    public enum Command: Sendable, Equatable, Codable {
        /// A line run by `/bin/sh -c`, as typed.
        case shell(String)
        /// A program and its arguments, run directly (looked up in the job's `PATH`).
        case argv([String])
    }

    public var command: Command
    /// The job's working directory; defaults to the caller's at the time the spec is made.
    public var workingDirectory: String
    /// The job's whole environment; defaults to the caller's at the time the spec is made.
    public var environment: [String: String]
    /// Its standard error goes into its standard output (`2>&1`): one stream, in the exact
    /// order written.
    public var mergeError = false

    /// - Parameters:
    ///   - workingDirectory: defaults to the current directory.
    ///   - environment: defaults to the current environment.
    ///   - overrides: added to, or replacing, entries of `environment`.
    public init(
        _ command: Command, workingDirectory: String? = nil, environment: [String: String]? = nil,
        overrides: [String: String] = [:]
    ) {
        self.command = command
        self.workingDirectory = workingDirectory ?? FileManager.default.currentDirectoryPath
        self.environment = (environment ?? ProcessInfo.processInfo.environment).merging(overrides) { _, new in new }
    }

    /// `/bin/sh -c LINE`.
    public static func shell(_ line: String, workingDirectory: String? = nil, overrides: [String: String] = [:]) -> Self {
        ProcessSpec(.shell(line), workingDirectory: workingDirectory, overrides: overrides)
    }

    /// A program and its arguments.
    public static func argv(_ argv: [String], workingDirectory: String? = nil, overrides: [String: String] = [:]) -> Self {
        ProcessSpec(.argv(argv), workingDirectory: workingDirectory, overrides: overrides)
    }

    private enum CodingKeys: String, CodingKey { case command, workingDirectory, environment, mergeError }

    // By hand for `mergeError`: a launch plan kept by an earlier release has none.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        command = try c.decode(Command.self, forKey: .command)
        workingDirectory = try c.decode(String.self, forKey: .workingDirectory)
        environment = try c.decode([String: String].self, forKey: .environment)
        mergeError = try c.decodeIfPresent(Bool.self, forKey: .mergeError) ?? false
    }

    /// The Command users see: the line as given, or the argv joined with shell quoting.
    public var commandText: String {
        switch command {
        case .shell(let line): line
        case .argv(let words): ShellQuoting.join(words)
        }
    }

    var argv: [String] {
        switch command {
        case .shell(let line): ["/bin/sh", "-c", line]
        case .argv(let words): words
        }
    }
}
