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
