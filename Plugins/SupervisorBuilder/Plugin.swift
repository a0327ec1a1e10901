import Foundation
import PackagePlugin

/// Builds `jobkit-supervisor` with the toolchain's clang as a plain static C program, into
/// JobKit's resources. SwiftPM links every executable target it builds against the Swift
/// runtime, which costs about 1.7 ms of start-up per job (measured here): more than the job.
/// Its sources are `Supervisor/*.c`; the layouts it shares with the engine are in
/// `Sources/CJobKitSystem/include/jobkit_abi.h`.
@main
struct SupervisorBuilder: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let package = context.package.directoryURL
        let directory = package.appending(path: "Supervisor")
        let include = package.appending(path: "Sources/CJobKitSystem/include")
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path(percentEncoded: false)).sorted()
        let sources = names.filter { $0.hasSuffix(".c") }.map { directory.appending(path: $0) }
        let headers = names.filter { $0.hasSuffix(".h") }.map { directory.appending(path: $0) }
            + [include.appending(path: "jobkit_abi.h")]
        let output = context.pluginWorkDirectoryURL.appending(path: "jobkit-supervisor")
        let clang = try context.tool(named: "clang")
        let flags = ["-O2", "-static", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-I", include.path(percentEncoded: false)]
        return [
            .buildCommand(
                displayName: "Compiling jobkit-supervisor (static C)",
                executable: clang.url,
                arguments: flags + ["-o", output.path(percentEncoded: false)] + sources.map { $0.path(percentEncoded: false) },
                inputFiles: sources + headers,
                outputFiles: [output]
            )
        ]
    }
}
