import FoundationEssentials
import JobClient
import JobModel
import JobProtocol

#if canImport(Glibc)
import Glibc
#endif

/// `job start …`, `job get …` and `job invoke …` in their plain forms, parsed without
/// ArgumentParser.
///
/// They are what scripts run in loops, and what makes `job` slow to start is not the work but
/// the Swift runtime's first-use metadata lookups (scanning every conformance of the binary)
/// that ArgumentParser's reflection sets off: milliseconds per command, measured. The words
/// become the same inputs (`StartInput`, `InvokeInput`, `GetInput`) that the ArgumentParser
/// commands make, checked and run by the same code. Anything this does not recognise — other
/// commands, `--help`, a mistake — is left to ArgumentParser, which owns the error messages.
enum FastPath {
    /// Runs `args` and returns the exit status, or nil when they are not a plain start, get or invoke.
    static func run(_ args: [String]) -> Int32? {
        switch args.first {
        case "start": run(args, as: StartInput.self)
        case "invoke": run(args, as: InvokeInput.self)
        case "get": run(args, as: GetInput.self)
        default: nil
        }
    }

    private static func run<Input: TabledInput>(_ args: [String], as: Input.Type) -> Int32? {
        guard let (input, common) = parse(args, as: Input.self) else { return nil }
        do {
            return try input.run(common)
        } catch let exit as Exit {
            return exit.status
        } catch let output as OutputError {
            output.exit()
        } catch let usage as UsageError {
            complain(usage.message)
            return ExitStatus.usage
        } catch {
            complain("\(error)")
            return ExitStatus.failed
        }
    }

    /// The verb's input and the common options from the words after the verb, as its
    /// ArgumentParser command would make them; nil for anything this does not take as it
    /// stands (ArgumentParser then has the line, and says what is wrong with it).
    static func parse<Input: TabledInput>(_ args: [String], as: Input.Type) -> (Input, CommonOptions)? {
        var input = Input()
        var common = CommonOptions()
        var index = 1
        while index < args.count {
            let word = args[index]
            index += 1
            if word == "--" {
                // The rest is the program, or words that are not options.
                if let program = Input.program {
                    program(&input, Array(args[index...]))
                } else if let take = Input.word {
                    for word in args[index...] { take(&input, word) }
                } else {
                    return nil
                }
                break
            }
            if let spec = CommonOptionTable.spec(for: word) {
                guard index < args.count, spec.set(&common, args[index]) else { return nil }
                index += 1
            } else if let spec = Input.options.first(where: { $0.spelling == word }) {
                if spec.isFlag {
                    _ = spec.set(&input, "")
                    continue
                }
                guard index < args.count, spec.set(&input, args[index]) else { return nil }
                index += 1
            } else if !word.hasPrefix("-"), let take = Input.word {
                take(&input, word)
            } else {
                return nil
            }
        }
        // -o raw is receive's alone.
        guard common.format != .raw, (try? input.validate()) != nil,
            (try? JobRender.resolve(common.properties, default: [])) != nil
        else { return nil }
        return (input, common)
    }
}
