import FoundationEssentials

/// One chunk of a stream, as read by the supervisor at one time.
public struct OutputRecord: Sendable, Equatable {
    public var time: Date
    public var stream: OutputStreamKind
    /// Where the chunk starts in its stream's file.
    public var offset: UInt64
    public var length: UInt32

    public init(time: Date, stream: OutputStreamKind, offset: UInt64, length: UInt32) {
        self.time = time
        self.stream = stream
        self.offset = offset
        self.length = length
    }
}

/// A range of one job's output records: what a receive hands out. It names files, not bytes,
/// so that handing out 10 GB costs nothing until someone reads it.
public struct OutputSlice: Sendable, Equatable {
    public var jobId: Int
    public var jobName: String
    /// The job's computer, for `ComputerName`.
    public var location: String
    /// What tells this job's output from others' (`receive --prefix`): its computer for a
    /// remote job, its parent's Name for a local one.
    public var origin: String
    /// Where the job's files are: `<prefix>.stdout`, `<prefix>.stderr`, `<prefix>.index`.
    public var prefix: String
    /// The first record in the range.
    public var start: Int
    /// One past the last record in the range.
    public var end: Int

    public init(jobId: Int, jobName: String, location: String, origin: String, prefix: String, start: Int, end: Int) {
        self.jobId = jobId
        self.jobName = jobName
        self.location = location
        self.origin = origin
        self.prefix = prefix
        self.start = start
        self.end = end
    }

    public var isEmpty: Bool { start >= end }
}

/// A failed job met by a receive: its Reason goes to the error stream, every time.
public struct JobFailure: Sendable, Equatable {
    public var jobId: Int
    public var jobName: String
    public var location: String
    public var reason: String

    public init(jobId: Int, jobName: String, location: String, reason: String) {
        self.jobId = jobId
        self.jobName = jobName
        self.location = location
        self.reason = reason
    }
}

/// Bytes of one stream of one job, with when they were read.
public struct OutputChunk: Sendable, Equatable {
    public var jobId: Int
    public var jobName: String
    public var location: String
    /// As in `OutputSlice`.
    public var origin: String
    public var stream: OutputStreamKind
    public var time: Date
    public var data: [UInt8]
    /// The records the bytes came from, `start..<end` in the job's index: what a reader
    /// acknowledges (`Receipt`) once it has written them.
    public var start: Int
    public var end: Int

    public init(
        jobId: Int, jobName: String, location: String, origin: String, stream: OutputStreamKind, time: Date, data: [UInt8],
        start: Int, end: Int
    ) {
        self.jobId = jobId
        self.jobName = jobName
        self.location = location
        self.origin = origin
        self.stream = stream
        self.time = time
        self.data = data
        self.start = start
        self.end = end
    }
}

/// A reader's word that it has written a job's output up to a record: only this moves the
/// job's receive cursor, so that output handed to a reader that dies, or cannot write it, is
/// not lost.
public struct Receipt: Sendable, Equatable {
    public var jobId: Int
    /// One past the last record written.
    public var upTo: Int

    public init(jobId: Int, upTo: Int) {
        self.jobId = jobId
        self.upTo = upTo
    }
}
