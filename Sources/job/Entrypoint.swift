import JobCommands

@main
struct Entrypoint {
    static func main() async { await JobCommand.runMain() }
}
