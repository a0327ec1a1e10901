import CJobKitSystem
import Foundation
import JobKit
import JobModel
import JobOutput

#if canImport(Glibc)
import Glibc
#endif

/// JobKit's throughput next to the floor a user could reach by hand, in one run:
///
/// - jobs/s: start-and-wait of N `/bin/true` jobs through the engine, against a plain
///   posix_spawn + waitpid loop, each at concurrency 1 and 8;
/// - ingest MB/s: a job writing 1 GiB to stdout, stored by the engine, against
///   `cat /dev/zero | head -c 1G > file`.
///
/// `swift run -c release JobKitBenchmarks [--jobs N] [--ingest-mib M] [--rounds R]`
/// (Benchmarks/run does this). Prints a Markdown table of figures and ratios.
@main
struct Benchmarks {
    static func main() async throws {
        let options = Options(CommandLine.arguments.dropFirst())
        let scratch = FileManager.default.temporaryDirectory.path + "/jobkit-bench-\(getpid())"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }

        print("| benchmark | JobKit | baseline | ratio (JobKit / baseline) | target |")
        print("| --- | --- | --- | --- | --- |")
        for concurrency in [1, 8] {
            var engine: [Double] = []
            var raw: [Double] = []
            for round in 0..<options.rounds {
                // Alternate which goes first, so neither always gets a warm or a cold machine.
                if round % 2 == 0 {
                    raw.append(try rawSpawnLoop(count: options.jobs, concurrency: concurrency))
                    engine.append(try await engineLoop(count: options.jobs, concurrency: concurrency, home: scratch + "/home-\(concurrency)-\(round)"))
                } else {
                    engine.append(try await engineLoop(count: options.jobs, concurrency: concurrency, home: scratch + "/home-\(concurrency)-\(round)"))
                    raw.append(try rawSpawnLoop(count: options.jobs, concurrency: concurrency))
                }
            }
            let e = median(engine), r = median(raw)
            print("| \(options.jobs) × `/bin/true`, start and wait, \(concurrency) at once | \(fmt(e)) jobs/s | \(fmt(r)) jobs/s (posix_spawn + waitpid) | \(String(format: "%.2f", e / r))× | ≥ 0.6× |")
        }
        var engineIngest: [Double] = []
        var catIngest: [Double] = []
        for round in 0..<options.rounds {
            catIngest.append(try catBaseline(mib: options.ingestMiB, file: scratch + "/cat.out"))
            engineIngest.append(try await engineIngestRun(mib: options.ingestMiB, home: scratch + "/ingest-\(round)"))
        }
        let e = median(engineIngest), c = median(catIngest)
        print("| ingest of \(options.ingestMiB) MiB from a job's stdout | \(fmt(e)) MB/s | \(fmt(c)) MB/s (`cat /dev/zero \\| head -c … > file`) | \(String(format: "%.2f", e / c))× | ≥ 0.7× |")
        print("")
        print("Medians of \(options.rounds) rounds; \(ProcessInfo.processInfo.activeProcessorCount) cores; \(Date()).")
    }

    struct Options {
        var jobs = 2000
        var ingestMiB = 1024
        var rounds = 3

        init(_ args: ArraySlice<String>) {
            var it = args.makeIterator()
            while let arg = it.next() {
                switch arg {
                case "--jobs": jobs = it.next().flatMap(Int.init) ?? jobs
                case "--ingest-mib": ingestMiB = it.next().flatMap(Int.init) ?? ingestMiB
                case "--rounds": rounds = it.next().flatMap(Int.init) ?? rounds
                default:
                    FileHandle.standardError.write(Data("usage: JobKitBenchmarks [--jobs N] [--ingest-mib M] [--rounds R]\n".utf8))
                    exit(64)
                }
            }
        }
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted[sorted.count / 2]
    }

    static func fmt(_ value: Double) -> String { String(format: "%.0f", value) }

    static func seconds(_ body: () throws -> Void) rethrows -> Double {
        let start = ContinuousClock.now
        try body()
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    static func seconds(_ body: () async throws -> Void) async rethrows -> Double {
        let start = ContinuousClock.now
        try await body()
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    /// The floor: spawn `/bin/true` and reap it, keeping `concurrency` running.
    static func rawSpawnLoop(count: Int, concurrency: Int) throws -> Double {
        let env = ProcessInfo.processInfo.environment.map { "\($0.key)=\($0.value)" }
        let time = try seconds {
            var started = 0, running = 0
            while started < count || running > 0 {
                while running < concurrency && started < count {
                    var pid: pid_t = 0
                    let rc = withCStrings(["/bin/true"]) { argv in
                        withCStrings(env) { envp in jobkit_spawn_plain("/bin/true", argv, envp, -1, &pid) }
                    }
                    guard rc == 0 else { throw JobError(.supervisor, "posix_spawn: \(rc)") }
                    started += 1
                    running += 1
                }
                var status: Int32 = 0
                if waitpid(-1, &status, 0) > 0 { running -= 1 }
            }
        }
        return Double(count) / time
    }

    /// The same through the engine: each of `concurrency` workers starts a job and waits for it.
    static func engineLoop(count: Int, concurrency: Int, home: String) async throws -> Double {
        try await JobManager.withManager(home: home) { jobs in
            let spec = ProcessSpec.argv(["/bin/true"])
            let time = try await seconds {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for worker in 0..<concurrency {
                        let share = count / concurrency + (worker < count % concurrency ? 1 : 0)
                        group.addTask {
                            for _ in 0..<share {
                                let job = try await jobs.start(spec)
                                guard let done = try await jobs.wait([.id(job.id)], force: true)?.first, done.state == .completed else {
                                    throw JobError(.unavailable, "a benchmark job did not complete")
                                }
                            }
                        }
                    }
                    try await group.waitForAll()
                }
            }
            return Double(count) / time
        }
    }

    static func catBaseline(mib: Int, file: String) throws -> Double {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "cat /dev/zero | head -c \(mib)M > '\(file)'"]
        let time = try seconds {
            try process.run()
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: file)
        return Double(mib) * 1_048_576 / 1e6 / time
    }

    static func engineIngestRun(mib: Int, home: String) async throws -> Double {
        try await JobManager.withManager(home: home) { jobs in
            var bytes = 0
            let time = try await seconds {
                let job = try await jobs.start(.argv(["head", "-c", "\(mib)M", "/dev/zero"]))
                guard let done = try await jobs.wait([.id(job.id)], force: true)?.first, done.state == .completed else {
                    throw JobError(.unavailable, "the ingest job did not complete")
                }
                let output = try await jobs.receive([.id(job.id)], keep: true)
                bytes = output.slices.isEmpty ? 0 : try OutputSliceReader.byteCount(output.slices)
            }
            guard bytes == mib * 1_048_576 else { throw JobError(.storage, "stored \(bytes) bytes, not \(mib) MiB") }
            try await jobs.remove(state: .completed)
            return Double(bytes) / 1e6 / time
        }
    }
}

func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    var pointers = strings.map { strdup($0) }
    pointers.append(nil)
    defer { for p in pointers { free(p) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}

extension OutputSliceReader {
    /// Total bytes named by the slices, from the index alone.
    static func byteCount(_ slices: [OutputSlice]) throws -> Int {
        var total = 0
        for slice in slices {
            let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: OutputFormat.indexPath(prefix: slice.prefix)))
            defer { try? handle.close() }
            let data = try handle.readToEnd() ?? Data()
            data.withUnsafeBytes { raw in
                for i in slice.start..<slice.end {
                    total += Int(OutputFormat.decode(raw, at: i * OutputFormat.recordSize)?.length ?? 0)
                }
            }
        }
        return total
    }
}
