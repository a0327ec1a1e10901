import CJobKitSystem
import Foundation
import GRDB
import JobModel

#if canImport(Glibc)
import Glibc
#endif

/// A session as the engine keeps it (one row of the `session` table).
struct SessionRecord: Sendable, Equatable {
    var id: Int
    var name: String
    var computer: String
    var shell: String
    var state: SessionState
    var reason: String?
    var workingDirectory: String
    /// On another computer: where the session lives there and its shell's pid (known once
    /// it opened), and the ssh configuration file it is reached with.
    var remoteDirectory: String? = nil
    var remotePid: Int? = nil
    var sshConfig: String? = nil
}

/// How `newSession` opens a session.
public struct SessionOptions: Sendable {
    /// Default `Session<Id>`.
    public var name: String?
    /// A POSIX shell, by path or by name (looked up in the environment's PATH).
    public var shell: String
    public var computer: String
    /// Where the shell starts, and the environment it starts with (the caller's, as for a job).
    public var workingDirectory: String
    public var environment: [String: String]
    /// For another computer: `ssh -F FILE` (absolute); the user's own configuration when nil.
    public var sshConfigFile: String?

    public init(
        name: String? = nil, shell: String = "/bin/sh", computer: String = "localhost",
        workingDirectory: String = FileManager.default.currentDirectoryPath,
        environment: [String: String] = ProcessInfo.processInfo.environment, sshConfigFile: String? = nil
    ) {
        self.name = name
        self.shell = shell
        self.computer = computer
        self.workingDirectory = workingDirectory
        self.environment = environment
        self.sshConfigFile = sshConfigFile
    }
}

extension JobStore {
    func sessions() throws(JobError) -> [SessionRecord] {
        try access { db in
            try Row.fetchAll(db, sql: "SELECT * FROM session ORDER BY id").compactMap { row in
                guard let state = SessionState(rawValue: row["state"]) else { return nil }
                return SessionRecord(
                    id: row["id"], name: row["name"], computer: row["computer"], shell: row["shell"], state: state,
                    reason: row["reason"], workingDirectory: row["workingDirectory"], remoteDirectory: row["remoteDirectory"],
                    remotePid: row["remotePid"], sshConfig: row["sshConfig"])
            }
        }
    }

    /// Adds a session and returns it with its id (and its default name, `Session<Id>`).
    func insertSession(_ new: SessionRecord) throws(JobError) -> SessionRecord {
        try access { db in
            var made = new
            try db.inTransaction {
                try db.execute(
                    sql: """
                        INSERT INTO session (name, computer, shell, state, reason, workingDirectory, sshConfig)
                        VALUES (?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        new.name, new.computer, new.shell, new.state.rawValue, new.reason, new.workingDirectory, new.sshConfig,
                    ])
                made.id = Int(db.lastInsertedRowID)
                if made.name.isEmpty {
                    made.name = "Session\(made.id)"
                    try db.execute(sql: "UPDATE session SET name = ? WHERE id = ?", arguments: [made.name, made.id])
                }
                return .commit
            }
            return made
        }
    }

    func saveSession(_ session: SessionRecord) throws(JobError) {
        try access { db in
            try db.execute(
                sql: "UPDATE session SET state = ?, reason = ?, remoteDirectory = ?, remotePid = ? WHERE id = ?",
                arguments: [session.state.rawValue, session.reason, session.remoteDirectory, session.remotePid, session.id])
        }
    }

    func deleteSession(_ id: Int) throws(JobError) {
        try access { db in try db.execute(sql: "DELETE FROM session WHERE id = ?", arguments: [id]) }
    }
}
