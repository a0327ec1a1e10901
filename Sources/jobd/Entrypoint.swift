import CJobdProcess
import Foundation
import JobDaemon
import JobModel
import JobProtocol

/// `jobd [--home DIR]`: the per-user daemon, in the foreground. `job` starts it when needed.
@main
struct Entrypoint {
    static func main() async {
        _ = jobd_process_prepared()
        var explicitHome: String?
        var args = CommandLine.arguments.dropFirst().makeIterator()
        while let arg = args.next() {
            switch arg {
            case "--home":
                explicitHome = args.next()
            case "--version":
                print(Daemon.version)
                return
            default:
                FileHandle.standardError.write(Data("jobd: unknown argument '\(arg)'; usage: jobd [--home DIR]\n".utf8))
                exit(64)
            }
        }
        do {
            try await Daemon.run(home: JobHome(explicit: explicitHome))
        } catch let error as JobError {
            FileHandle.standardError.write(Data("jobd: \(error.message)\n".utf8))
            exit(error.code == .homeInUse ? 1 : 69)
        } catch {
            FileHandle.standardError.write(Data("jobd: \(error)\n".utf8))
            exit(69)
        }
    }
}
