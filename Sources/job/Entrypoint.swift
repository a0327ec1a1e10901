import JobCommands

@main
struct Entrypoint {
    static func main() { JobCommand.runMain() }
}
