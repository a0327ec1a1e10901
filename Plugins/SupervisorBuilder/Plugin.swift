import Foundation
import PackagePlugin

/// Builds `jobkit-supervisor` with the toolchain's clang as a plain static C program, into
/// JobKit's resources. SwiftPM links every executable target it builds against the Swift
/// runtime, which costs about 1.7 ms of start-up per job (measured here): more than the job.
@main
struct SupervisorBuilder: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let source = context.package.directoryURL.appending(path: "Supervisor/jobkit-supervisor.c")
        let output = context.pluginWorkDirectoryURL.appending(path: "jobkit-supervisor")
        let clang = try context.tool(named: "clang")
        return [
            .buildCommand(
                displayName: "Compiling jobkit-supervisor (static C)",
                executable: clang.url,
                arguments: ["-O2", "-static", "-Wall", "-o", output.path(percentEncoded: false), source.path(percentEncoded: false)],
                inputFiles: [source],
                outputFiles: [output]
            )
        ]
    }
}
