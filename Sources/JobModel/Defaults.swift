/// The defaults of the contract that the engine, the wire and the CLI all take: written here
/// once.
public enum Defaults {
    /// `invoke --throttle`: how many computers are worked on at once.
    public static let throttle = 32
    /// `stop --grace`: how long SIGTERM has before SIGKILL, in seconds.
    public static let graceSeconds: Double = 5
    /// The same, as a duration.
    public static let grace = Duration.seconds(5)
}

extension Defaults {
    /// The queue of a job started without `--queue`; it has no limit unless one is set.
    public static let queue = "default"
    /// How long a failed job waits before it is run again (`--retry`).
    public static let retryDelay = Duration.seconds(1)
    /// The most `--retry` takes: the attempt is recorded in 16 bits.
    public static let maxRetries = 1000
}
