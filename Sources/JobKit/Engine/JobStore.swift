import Foundation

#if canImport(Glibc)
import Glibc
#endif
import GRDB
import GRDBSQLite
import JobModel
import Synchronization

/// The jobs' database: one SQLite file (WAL), one row per job, small transactions. Used by
/// `JobManager` only; every change is committed before the operation that made it returns.
final class JobStore: Sendable {
    private let queue: DatabaseQueue
    /// The last id handed out, kept here rather than read back per insert: this store is the
    /// database's only writer.
    private let lastId: Mutex<Int>
    /// Where the database is, for messages.
    private let directory: String
    /// The environment last stored or found, and its id (see `environmentId`).
    private let lastEnvironment = Mutex<(environment: [String: String], id: Int)?>(nil)

    init(path: String) throws(JobError) {
        directory = (path as NSString).deletingLastPathComponent
        do {
            var config = Configuration()
            config.journalMode = .wal
            config.busyMode = .timeout(5)
            config.prepareDatabase { db in
                // A crash (even SIGKILL) loses nothing committed under WAL with NORMAL; only a
                // power cut can lose the last transactions, never consistency.
                try db.execute(sql: "PRAGMA synchronous = NORMAL")
            }
            // The user's alone, as every file of the home: SQLite gives its -wal and -shm
            // files the database's mode.
            let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
            if fd >= 0 { close(fd) }
            _ = chmod(path, 0o600)
            queue = try DatabaseQueue(path: path, configuration: config)
            try Self.migrator.migrate(queue)
            lastId = Mutex(try queue.read { db in
                try Int.fetchOne(db, sql: "SELECT seq FROM sqlite_sequence WHERE name = 'job'") ?? 0
            })
        } catch {
            throw JobError(.storage, "cannot open the job database \(path): \(error)")
        }
    }

    private static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            // AUTOINCREMENT: ids are never reused, even after the newest job is removed.
            try db.execute(
                sql: """
                    CREATE TABLE job (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        instanceId TEXT NOT NULL,
                        name TEXT NOT NULL,
                        type TEXT NOT NULL,
                        state TEXT NOT NULL,
                        location TEXT NOT NULL,
                        command TEXT NOT NULL,
                        parentId INTEGER REFERENCES job(id) ON DELETE CASCADE,
                        beginTime DOUBLE,
                        endTime DOUBLE,
                        exitCode INTEGER,
                        reason TEXT,
                        received INTEGER NOT NULL DEFAULT 0,
                        recorded INTEGER NOT NULL DEFAULT 0,
                        supervisorPid INTEGER, -- unused: the supervisor's slot says; kept so v1 files stay valid
                        stopRequested BOOLEAN NOT NULL DEFAULT 0,
                        program TEXT,
                        workingDirectory TEXT
                    )
                    """)
        }
        migrator.registerMigration("v2") { db in
            try db.execute(sql: "ALTER TABLE job ADD COLUMN launch TEXT")
        }
        migrator.registerMigration("v3") { db in
            // Finished jobs are read from here, not kept in memory: by id (the key), by
            // family, by instance id and by name, and the few unfinished ones at start-up.
            try db.execute(
                sql: """
                    CREATE INDEX job_parent ON job(parentId);
                    CREATE INDEX job_instance ON job(instanceId);
                    CREATE INDEX job_name ON job(name COLLATE NOCASE);
                    CREATE INDEX job_unfinished ON job(state) WHERE \(Self.unfinished);
                    """)
        }
        migrator.registerMigration("v4") { db in
            // Queues, dependencies, retries, suspend, foreach inputs and resource usage; and a
            // parent's launch plan kept for `restart`, its environment once for all the jobs
            // that share it (they mostly do: one shell's).
            try db.execute(
                sql: """
                    ALTER TABLE job ADD COLUMN queue TEXT NOT NULL DEFAULT 'default';
                    ALTER TABLE job ADD COLUMN dependsOn TEXT;
                    ALTER TABLE job ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1;
                    ALTER TABLE job ADD COLUMN retries INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE job ADD COLUMN input TEXT;
                    ALTER TABLE job ADD COLUMN cpuMicros INTEGER;
                    ALTER TABLE job ADD COLUMN maxRssBytes INTEGER;
                    ALTER TABLE job ADD COLUMN environmentId INTEGER;
                    ALTER TABLE job ADD COLUMN suspendRequested BOOLEAN NOT NULL DEFAULT 0;
                    ALTER TABLE job ADD COLUMN throttle INTEGER NOT NULL DEFAULT 1;
                    ALTER TABLE job ADD COLUMN dependenciesMet BOOLEAN NOT NULL DEFAULT 0;
                    ALTER TABLE job ADD COLUMN feed INTEGER NOT NULL DEFAULT 0;
                    CREATE INDEX job_environment ON job(environmentId) WHERE environmentId IS NOT NULL;
                    CREATE TABLE environment (id INTEGER PRIMARY KEY, digest INTEGER NOT NULL, body TEXT NOT NULL);
                    CREATE INDEX environment_digest ON environment(digest);
                    CREATE TABLE queue (name TEXT PRIMARY KEY COLLATE NOCASE, "limit" INTEGER);
                    INSERT INTO queue (name, "limit") VALUES ('default', NULL);
                    """)
        }
        registerSessionMigrations(&migrator)
        return migrator
    }

    /// Sessions (`job session`): their table, and a child's session.
    private static func registerSessionMigrations(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v5") { db in
            // Sessions (`job session`), with their own ids, never reused; a child run in one
            // names it.
            try db.execute(
                sql: """
                    ALTER TABLE job ADD COLUMN session INTEGER;
                    CREATE TABLE session (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        name TEXT NOT NULL,
                        computer TEXT NOT NULL,
                        shell TEXT NOT NULL,
                        state TEXT NOT NULL,
                        reason TEXT,
                        workingDirectory TEXT NOT NULL
                    );
                    """)
        }
        migrator.registerMigration("v6") { db in
            // A session on another computer: where it lives there, its shell's pid, and the ssh
            // configuration it was opened with.
            try db.execute(
                sql: """
                    ALTER TABLE session ADD COLUMN remoteDirectory TEXT;
                    ALTER TABLE session ADD COLUMN remotePid INTEGER;
                    ALTER TABLE session ADD COLUMN sshConfig TEXT;
                    """)
        }
        migrator.registerMigration("v7") { db in
            // Detached remote children: how far each is known to be on its host; and the
            // hosts' files of removed ones, to delete once the host can be reached.
            try db.execute(
                sql: """
                    ALTER TABLE job ADD COLUMN detached TEXT;
                    CREATE TABLE remoteCleanup (
                        key TEXT PRIMARY KEY,
                        computer TEXT NOT NULL,
                        sshConfig TEXT
                    );
                    """)
        }
    }

    /// SQL that holds for a job not finished.
    private static let unfinished = "state NOT IN ('Completed', 'Failed', 'Stopped')"

    /// The jobs still under way: every unfinished job and the other children of its parent,
    /// in id order. Finished jobs stay in the database until asked for.
    func loadUnfinished() throws(JobError) -> [JobRecord] {
        try access { db in
            try Self.records(
                db,
                """
                SELECT \(Self.columns) FROM job WHERE \(Self.unfinished)
                UNION SELECT \(Self.columns) FROM job WHERE parentId IN (SELECT coalesce(parentId, id) FROM job WHERE \(Self.unfinished))
                ORDER BY id
                """)
        }
    }

    /// The whole families (a top-level job and its children) of these ids, in id order.
    func families(of ids: [Int]) throws(JobError) -> [JobRecord] {
        guard !ids.isEmpty else { return [] }
        let list = ids.map(String.init).joined(separator: ",")
        return try access { db in
            try Self.records(
                db,
                """
                WITH top(id) AS (SELECT coalesce(parentId, id) FROM job WHERE id IN (\(list)))
                SELECT \(Self.columns) FROM job WHERE id IN top OR parentId IN top ORDER BY id
                """, cached: false)
        }
    }

    /// Whole families after `id`, about `limit` jobs: a page of the history, read as one
    /// range of ids (a family's ids follow each other: a parent N, its children N+1, N+2, …).
    func page(after id: Int, limit: Int) throws(JobError) -> [JobRecord] {
        try access { db in
            var rows = try Self.records(db, "SELECT \(Self.columns) FROM job WHERE id > ? ORDER BY id LIMIT ?", [id, limit])
            guard rows.count == limit, let lastParent = rows.lastIndex(where: { $0.parentId == nil }) else { return rows }
            if lastParent > 0 {
                // The last family may go on past the page: it starts the next one.
                rows.removeSubrange(lastParent...)
                return rows
            }
            // One family larger than a page: the rest of its children too.
            let parent = rows[0].id
            rows += try Self.records(
                db, "SELECT \(Self.columns) FROM job WHERE parentId = ? AND id > ? ORDER BY id", [parent, rows[rows.count - 1].id])
            return rows
        }
    }

    /// The ids and names of every job, for matching names with wildcards.
    func names() throws(JobError) -> [(id: Int, name: String)] {
        try access { db in
            try Row.fetchAll(db, sql: "SELECT id, name FROM job ORDER BY id").map { ($0["id"], $0["name"]) }
        }
    }

    /// The ids of jobs with this name (case-insensitive) or this instance id.
    func ids(named name: String) throws(JobError) -> [Int] {
        try access { db in try Int.fetchAll(db, sql: "SELECT id FROM job WHERE name = ? COLLATE NOCASE ORDER BY id", arguments: [name]) }
    }

    func ids(instanceId: UUID) throws(JobError) -> [Int] {
        try access { db in
            try Int.fetchAll(db, sql: "SELECT id FROM job WHERE instanceId = ? ORDER BY id", arguments: [instanceId.uuidString.lowercased()])
        }
    }

    /// The ids of every top-level job, in order.
    func topLevelIds() throws(JobError) -> [Int] {
        try access { db in try Int.fetchAll(db, sql: "SELECT id FROM job WHERE parentId IS NULL ORDER BY id") }
    }

    func count() throws(JobError) -> Int {
        try access { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM job") ?? 0 }
    }

    /// Inserts a new job: the first record takes the next id, the rest the ids after it, in
    /// one transaction. Names left empty become `Job<Id>`. Returns the records with their ids.
    ///
    /// `beforeCommit` sees the records with their ids before the transaction, and says whether
    /// it put the ids to use outside (started a process under them): they are then used up
    /// even if the transaction fails, never to be handed out again.
    ///
    /// `environment` is the first record's (a parent's) launch environment: stored once for
    /// all the jobs that share it, and named by the record's `environmentId`. The queue the
    /// records are in is made if it is new.
    func insert(
        _ new: [JobRecord], environment: [String: String]? = nil, alsoSaving pending: [JobRecord] = [],
        beforeCommit: ([JobRecord]) -> Bool = { _ in false }
    ) throws(JobError) -> [JobRecord] {
        try lastId.withLock { lastId throws(JobError) in
            var records = new
            let first = lastId + 1
            for i in records.indices {
                records[i].id = first + i
                if records[i].name.isEmpty { records[i].name = "Job\(first + i)" }
                if i > 0, records[i].parentId != nil { records[i].parentId = first }
            }
            let used = beforeCommit(records)
            do throws(JobError) {
                try access { db in
                    try db.inTransaction {
                        if let environment, !records.isEmpty {
                            records[0].environmentId = try self.environmentId(environment, db: db)
                        }
                        if let queue = records.first?.queue, queue != Defaults.queue {
                            try db.execute(sql: "INSERT OR IGNORE INTO queue (name, \"limit\") VALUES (?, NULL)", arguments: [queue])
                        }
                        for record in records { try Self.write(record, db: db, insert: true) }
                        for record in pending { try Self.write(record, db: db, insert: false) }
                        return .commit
                    }
                }
            } catch {
                // An environment stored by the transaction went with it.
                lastEnvironment.withLock { $0 = nil }
                // Otherwise only once committed: a failed insert must not use up ids in memory
                // that the database (AUTOINCREMENT) would hand out again.
                if used { lastId += records.count }
                throw error
            }
            lastId += records.count
            return records
        }
    }

    /// Inserts more children of a parent (a foreach's, as its inputs come): the next ids, in
    /// order, in one transaction; names `Job<Id>`.
    func insertChildren(_ new: [JobRecord], alsoSaving pending: [JobRecord] = []) throws(JobError) -> [JobRecord] {
        try lastId.withLock { lastId throws(JobError) in
            var records = new
            for i in records.indices {
                records[i].id = lastId + 1 + i
                records[i].name = "Job\(records[i].id)"
            }
            try access { db in
                try db.inTransaction {
                    for record in records { try Self.write(record, db: db, insert: true) }
                    for record in pending { try Self.write(record, db: db, insert: false) }
                    return .commit
                }
            }
            lastId += records.count
            return records
        }
    }

    /// The last id handed out.
    var highestId: Int { lastId.withLock { $0 } }

    /// Makes `id` the last id handed out, if it is beyond: ids a crashed engine used (see
    /// `insert`'s `beforeCommit`) are never handed out again.
    func useIds(through id: Int) throws(JobError) {
        try lastId.withLock { lastId throws(JobError) in
            guard id > lastId else { return }
            try access { db in
                try db.execute(sql: "UPDATE sqlite_sequence SET seq = ? WHERE name = 'job'", arguments: [id])
                if db.changesCount == 0 {
                    try db.execute(sql: "INSERT INTO sqlite_sequence (name, seq) VALUES ('job', ?)", arguments: [id])
                }
            }
            lastId = id
        }
    }

    func save(_ records: [JobRecord]) throws(JobError) {
        guard !records.isEmpty else { return }
        try access { db in
            try db.inTransaction {
                for record in records { try Self.write(record, db: db, insert: false) }
                return .commit
            }
        }
    }

    /// Deletes jobs, and the environments no job shares any more; `cleanups` (the host files
    /// of detached children among them) are kept in the same transaction, for
    /// `remoteCleanups` to delete on their hosts.
    func delete(_ ids: [Int], cleanups: [RemoteCleanup] = []) throws(JobError) {
        guard !ids.isEmpty else { return }
        let list = ids.map(String.init).joined(separator: ",")
        try access { db in
            try db.inTransaction {
                for cleanup in cleanups {
                    try db.execute(
                        sql: "INSERT OR REPLACE INTO remoteCleanup (key, computer, sshConfig) VALUES (?, ?, ?)",
                        arguments: [cleanup.key, cleanup.computer, cleanup.sshConfig])
                }
                let environments = try Int.fetchAll(
                    db, sql: "SELECT DISTINCT environmentId FROM job WHERE id IN (\(list)) AND environmentId IS NOT NULL")
                try db.execute(sql: "DELETE FROM job WHERE id IN (\(list))")
                if !environments.isEmpty {
                    try db.execute(
                        sql: """
                            DELETE FROM environment WHERE id IN (\(environments.map(String.init).joined(separator: ",")))
                            AND NOT EXISTS (SELECT 1 FROM job WHERE environmentId = environment.id)
                            """)
                    lastEnvironment.withLock { last in
                        if let id = last?.id, environments.contains(id) { last = nil }
                    }
                }
                return .commit
            }
        }
    }

    /// The host files still to delete, oldest first.
    func remoteCleanups() throws(JobError) -> [RemoteCleanup] {
        try access { db in
            try Row.fetchAll(db, sql: "SELECT key, computer, sshConfig FROM remoteCleanup ORDER BY rowid").map {
                RemoteCleanup(key: $0["key"], computer: $0["computer"], sshConfig: $0["sshConfig"])
            }
        }
    }

    func finishCleanup(_ key: String) throws(JobError) {
        try access { db in try db.execute(sql: "DELETE FROM remoteCleanup WHERE key = ?", arguments: [key]) }
    }

    /// The id of a stored environment equal to this one, stored now if there is none; the
    /// last one stored or found is remembered (one shell starts its jobs with the same).
    private func environmentId(_ environment: [String: String], db: Database) throws -> Int {
        if let last = lastEnvironment.withLock({ $0 }), last.environment == environment { return last.id }
        let body = Self.encode(environment)
        let digest = Self.digest(body)
        var id: Int?
        for row in try Row.fetchAll(db, sql: "SELECT id, body FROM environment WHERE digest = ?", arguments: [digest]) {
            if (row["body"] as String?) == body { id = row["id"] }
        }
        if id == nil {
            try db.execute(sql: "INSERT INTO environment (digest, body) VALUES (?, ?)", arguments: [digest, body])
            id = Int(db.lastInsertedRowID)
        }
        let found = id ?? 0
        lastEnvironment.withLock { $0 = (environment, found) }
        return found
    }

    /// A stored environment, by id.
    func environment(_ id: Int) throws(JobError) -> [String: String]? {
        let body = try access { db in try String.fetchOne(db, sql: "SELECT body FROM environment WHERE id = ?", arguments: [id]) }
        guard let body, let data = body.data(using: .utf8) else { return nil }
        return try? JSONDecoder().decode([String: String].self, from: data)
    }

    /// An environment as text that is the same for the same environment (keys sorted).
    static func encode(_ environment: [String: String]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return (try? encoder.encode(environment)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    /// FNV-1a, 64 bits: to find an equal environment by an index, compared whole after.
    static func digest(_ text: String) -> Int64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return Int64(bitPattern: hash)
    }

    /// The states of these jobs; those that do not exist (removed) are missing.
    func states(of ids: [Int]) throws(JobError) -> [Int: JobState] {
        guard !ids.isEmpty else { return [:] }
        let list = ids.map(String.init).joined(separator: ",")
        return try access { db in
            var result: [Int: JobState] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT id, state FROM job WHERE id IN (\(list))") {
                if let state = JobState(rawValue: row["state"]) { result[row["id"]] = state }
            }
            return result
        }
    }

    // MARK: Queues

    /// Every queue made (by a job started in it, or by `queue set`), with its limit.
    func queues() throws(JobError) -> [(name: String, limit: Int?)] {
        try access { db in
            try Row.fetchAll(db, sql: "SELECT name, \"limit\" FROM queue ORDER BY name COLLATE NOCASE").map { ($0["name"], $0["limit"]) }
        }
    }

    /// Makes a queue, or changes its limit (nil: none).
    func setQueue(_ name: String, limit: Int?) throws(JobError) {
        try access { db in
            try db.execute(
                sql: "INSERT INTO queue (name, \"limit\") VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET \"limit\" = excluded.\"limit\"",
                arguments: [name, limit])
        }
    }

    func removeQueue(_ name: String) throws(JobError) {
        try access { db in try db.execute(sql: "DELETE FROM queue WHERE name = ?", arguments: [name]) }
    }


    func access<T>(_ body: (Database) throws -> T) throws(JobError) -> T {
        do {
            return try queue.inDatabase(body)
        } catch let error as JobError {
            throw error
        } catch let error as DatabaseError where error.resultCode == .SQLITE_FULL {
            throw JobError(
                .storage, "disk full: the job database in \(directory) cannot grow; remove jobs ('job remove') or free space there")
        } catch {
            throw JobError(.storage, "the job database failed: \(error)")
        }
    }

    private static func write(_ r: JobRecord, db: Database, insert: Bool) throws {
        guard insert else { return try update(r, db: db) }
        let sql = """
            INSERT INTO job (instanceId, name, type, state, location, command, parentId, beginTime, endTime,
                exitCode, reason, received, recorded, stopRequested, program, workingDirectory, launch, queue,
                dependsOn, attempt, retries, input, cpuMicros, maxRssBytes, environmentId, suspendRequested, throttle,
                dependenciesMet, feed, session, detached, id)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """
        let arguments: StatementArguments = [
            r.instanceId.uuidString.lowercased(), r.name, r.type.rawValue, r.state.rawValue, r.location, r.command,
            r.parentId, r.beginTime?.timeIntervalSince1970, r.endTime?.timeIntervalSince1970, r.exitCode, r.reason,
            r.received, r.recorded, r.stopRequested, r.program, r.workingDirectory, r.launch, r.queue,
            storedDependsOn(r), r.attempt, r.retries,
            r.input, r.usage?.cpuMicroseconds, r.usage?.maxRssBytes, r.environmentId, r.suspendRequested, r.throttle,
            r.dependenciesMet, r.feed.rawValue, r.sessionId, r.detached?.stored, r.id,
        ]
        try db.cachedStatement(sql: sql).execute(arguments: arguments)
    }

    /// `dependsOn` as its column holds it: the ids with commas, NULL for none.
    private static func storedDependsOn(_ r: JobRecord) -> String? {
        r.dependsOn.isEmpty ? nil : r.dependsOn.map(String.init).joined(separator: ",")
    }

    /// A job's columns that change over its life. Those fixed when it was made (its instance
    /// id, name, type, location, command, parent, program, directory, launch plan, queue,
    /// throttle, input, environment) are not written again: a parent's save would copy its
    /// launch plan, and every save format its UUID, at every child's end.
    private static func update(_ r: JobRecord, db: Database) throws {
        let sql = """
            UPDATE job SET state = ?, beginTime = ?, endTime = ?, exitCode = ?, reason = ?, received = ?,
                recorded = ?, stopRequested = ?, dependsOn = ?, attempt = ?, retries = ?, cpuMicros = ?,
                maxRssBytes = ?, suspendRequested = ?, dependenciesMet = ?, feed = ?, session = ?, detached = ?
            WHERE id = ?
            """
        let arguments: StatementArguments = [
            r.state.rawValue, r.beginTime?.timeIntervalSince1970, r.endTime?.timeIntervalSince1970, r.exitCode, r.reason,
            r.received, r.recorded, r.stopRequested, storedDependsOn(r),
            r.attempt, r.retries, r.usage?.cpuMicroseconds, r.usage?.maxRssBytes, r.suspendRequested, r.dependenciesMet,
            r.feed.rawValue, r.sessionId, r.detached?.stored, r.id,
        ]
        try db.cachedStatement(sql: sql).execute(arguments: arguments)
    }

    /// The columns a record is read from, in the order `record` reads them (by index: a
    /// lookup by name per column per row was most of the cost of reading a page).
    private static let columns = """
        id, instanceId, name, type, state, location, command, parentId, beginTime, endTime, exitCode, reason, \
        received, recorded, stopRequested, program, workingDirectory, launch, queue, dependsOn, attempt, retries, \
        input, cpuMicros, maxRssBytes, environmentId, suspendRequested, throttle, dependenciesMet, feed, session, \
        detached
        """

    /// The records a query of `columns` returns, read straight from SQLite's row (GRDB's
    /// generic decoding of each column was most of the cost of reading a page of history).
    /// A query whose text changes from call to call (an id list written into it) is not
    /// `cached`: the cache would keep every one.
    private static func records(
        _ db: Database, _ sql: String, _ arguments: StatementArguments = [], cached: Bool = true
    ) throws -> [JobRecord] {
        let statement = cached ? try db.cachedStatement(sql: sql) : try db.makeStatement(sql: sql)
        try statement.setArguments(arguments)
        let raw = statement.sqliteStatement
        var result: [JobRecord] = []
        let cursor = try Row.fetchCursor(statement)
        while try cursor.next() != nil {
            if let record = record(raw) { result.append(record) }
        }
        return result
    }

    // A row this version cannot read (a state or type from a newer one) is skipped, not fatal.
    private static func record(_ row: SQLiteStatement) -> JobRecord? {
        func text(_ i: Int32) -> String? {
            guard let bytes = sqlite3_column_text(row, i) else { return nil }
            return String(decoding: UnsafeBufferPointer(start: bytes, count: Int(sqlite3_column_bytes(row, i))), as: UTF8.self)
        }
        func int(_ i: Int32) -> Int? { sqlite3_column_type(row, i) == SQLITE_NULL ? nil : Int(sqlite3_column_int64(row, i)) }
        func time(_ i: Int32) -> Date? {
            sqlite3_column_type(row, i) == SQLITE_NULL ? nil : Date(timeIntervalSince1970: sqlite3_column_double(row, i))
        }
        guard let id = int(0), let type = text(3).flatMap(JobType.init(rawValue:)),
            let state = text(4).flatMap(JobState.init(rawValue:)), let instanceId = text(1).flatMap(UUID.parse)
        else { return nil }
        return JobRecord(
            id: id, instanceId: instanceId, name: text(2) ?? "", type: type, state: state, location: text(5) ?? "",
            command: text(6) ?? "", parentId: int(7), beginTime: time(8), endTime: time(9), exitCode: int(10),
            reason: text(11), received: int(12) ?? 0, recorded: int(13) ?? 0, stopRequested: int(14) == 1,
            program: text(15), workingDirectory: text(16), launch: text(17), environmentId: int(25), throttle: int(27) ?? 1,
            queue: text(18) ?? Defaults.queue, dependsOn: idList(text(19)), dependenciesMet: int(28) == 1,
            attempt: int(20) ?? 1, retries: int(21) ?? 0, input: text(22), feed: Feed(rawValue: int(29) ?? 0) ?? .none,
            usage: int(23).map { ResourceUsage(cpuMicroseconds: $0, maxRssBytes: int(24) ?? 0) }, suspendRequested: int(26) == 1,
            sessionId: int(30), detached: DetachedProgress(stored: text(31)))
    }

    static func idList(_ text: String?) -> [Int] {
        (text ?? "").split(separator: ",").compactMap { Int($0) }
    }
}
