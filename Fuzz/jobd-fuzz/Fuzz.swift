import Dispatch
import Foundation
import JobDaemon
import JobKit
import JobModel
import JobProtocol

/// libFuzzer's target over what the daemon does with the bytes a client sends: cutting them
/// into frames (`FrameSplitter`, fed in two pieces, so that frames split anywhere are tried),
/// decoding each as a request (`Wire`), and answering it on a real engine in a home of its own
/// (`RequestDispatcher`, the daemon's handlers). What it checks besides not crashing: a
/// request decoded writes and reads back the same, and every answer frame read back writes
/// the same bytes; every
/// answer ends with one `done`. Run by `scripts/fuzz`; see `Fuzz/README.md`.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    runOne(data, size)
}

/// SwiftPM links an executable's `main` to `<module>_main`, which `-parse-as-library` leaves
/// undefined: this is that, and hands the process to libFuzzer's driver, as its own `main`
/// would.
@_cdecl("jobd_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    var count = argc
    var arguments: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = argv
    return llvmFuzzerRunDriver(&count, &arguments) { data, size in
        guard let data else { return 0 }
        return runOne(data, size)
    }
}

@_silgen_name("LLVMFuzzerRunDriver")
func llvmFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

private func runOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    // The first byte says where the stream is cut in two.
    let cut = bytes.isEmpty ? 0 : Int(bytes[0]) * bytes.count / 256
    var splitter = FrameSplitter()
    for piece in [bytes.dropFirst().prefix(cut), bytes.dropFirst().dropFirst(cut)] {
        splitter.append(piece)
        while case .frame(let body) = splitter.next() {
            handle(body)
        }
    }
    Harness.shared.tidy()
    return 0
}

private func handle(_ body: [UInt8]) {
    let request: Request
    do throws(JobError) {
        request = try Wire.decodeRequest(body)
    } catch {
        return
    }
    guard let again = try? Wire.decodeRequest(Wire.encode(request)), again == request else {
        fatalError("a request does not read back as written: \(request)")
    }
    guard let verb = Harness.harmless(request.verb) else { return }
    let frames = Harness.shared.answer(verb)
    guard case .done = frames.last, frames.dropLast().allSatisfy({ if case .done = $0 { false } else { true } }) else {
        fatalError("an answer without exactly one done frame at its end: \(frames)")
    }
    // Times travel as seconds since 1970 in a double, which may differ from the Date's own
    // value in the last bit: what is checked is that a frame read back writes the same bytes.
    for frame in frames {
        let bytes = Wire.encode(frame)
        guard let back = try? Wire.decodeResponse(bytes), Wire.encode(back) == bytes else {
            fatalError("an answer frame does not read back as written: \(frame)")
        }
    }
}

/// One engine for the whole run, and the requests it may be given: whatever a request says,
/// it runs nothing but `true`, reaches no other computer, and waits for nothing.
final class Harness: @unchecked Sendable {
    // Sendable by construction: the engine is an actor, the rest is set once; libFuzzer calls
    // from one thread.
    static let shared = Harness()

    let engine: JobManager
    let dispatcher: RequestDispatcher
    private var inputs = 0

    private init() {
        let path = FileManager.default.temporaryDirectory.path + "/jobd-fuzz-\(getpid())"
        do {
            engine = try JobManager(home: path)
        } catch {
            fatalError("cannot open the fuzz home \(path): \(error.message)")
        }
        dispatcher = RequestDispatcher(engine: engine, home: JobHome(explicit: path))
        let engine = engine
        // For the life of the process, which libFuzzer ends by exiting.
        Thread.detachNewThread {
            let done = DispatchSemaphore(value: 0)
            Task {
                await engine.run()
                done.signal()
            }
            done.wait()
        }
    }

    /// The request, made harmless: commands become `true` on this computer, waits and grace
    /// periods 0; nil for `shutdown`.
    static func harmless(_ verb: Verb) -> Verb? {
        switch verb {
        case .start(var p):
            p.command = .shell("true")
            p.workingDirectory = "/"
            return .start(p)
        case .invoke(var p):
            p.start.command = .argv(["true"])
            p.start.workingDirectory = "/"
            p.computers = p.computers.map { _ in "localhost" }
            p.sshConfig = nil
            return .invoke(p)
        case .wait(var p):
            p.timeoutSeconds = 0
            return .wait(p)
        case .stop(var p):
            p.graceSeconds = 0
            return .stop(p)
        case .receiveWait(let p):
            // A stream lasts as long as its jobs: the one-shot receive stands for it.
            return .receive(p)
        case .shutdown:
            return nil
        default:
            return verb
        }
    }

    func answer(_ verb: Verb) -> [Response] {
        let result = Result()
        let done = DispatchSemaphore(value: 0)
        let dispatcher = dispatcher
        Task {
            result.frames = await dispatcher.answer(verb)
            done.signal()
        }
        done.wait()
        return result.frames
    }

    /// Every few hundred inputs, the jobs they made go, so that memory stays flat.
    func tidy() {
        inputs += 1
        guard inputs % 256 == 0 else { return }
        let engine = engine
        let done = DispatchSemaphore(value: 0)
        Task {
            try? await engine.remove([.name("*")], force: true)
            done.signal()
        }
        done.wait()
    }

    private final class Result: @unchecked Sendable {
        // Written by the one task before the semaphore is signalled, read after.
        var frames: [Response] = []
    }
}
