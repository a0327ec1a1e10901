/// One queue, as `job queue get` shows it: how many of its jobs may run at once, and how
/// many run and wait now.
public struct QueueInfo: Sendable, Equatable {
    public var name: String
    /// At most this many of its jobs' children run at once; nil: no limit.
    public var limit: Int?
    /// Its children running now (suspended ones and those between attempts included: they
    /// hold their slot).
    public var running: Int
    /// Its children waiting to start (held back ones included).
    public var waiting: Int

    public init(name: String, limit: Int?, running: Int, waiting: Int) {
        self.name = name
        self.limit = limit
        self.running = running
        self.waiting = waiting
    }
}
