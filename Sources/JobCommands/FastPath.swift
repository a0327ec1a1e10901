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
        guard let verb = args.first else { return nil }
        var options = Options(args)
        let run: (CommonOptions) throws -> Int32
        switch verb {
        case "start":
            guard let input = start(&options), (try? input.validate()) != nil else { return nil }
            run = input.run
        case "invoke":
            guard let input = invoke(&options), (try? input.validate()) != nil else { return nil }
            run = input.run
        case "get":
            guard let input = get(&options), (try? input.validate()) != nil else { return nil }
            run = input.run
        default:
            return nil
        }
        let common = CommonOptions(home: options.home, format: options.format, properties: options.properties)
        if (try? JobRender.resolve(common.properties, default: [])) == nil { return nil }
        do {
            return try run(common)
        } catch let exit as Exit {
            return exit.status
        } catch let usage as UsageError {
            complain(usage.message)
            return ExitStatus.usage
        } catch {
            complain("\(error)")
            return ExitStatus.failed
        }
    }

    private static func start(_ options: inout Options) -> StartInput? {
        var input = StartInput()
        let parsed = options.walk { arg, options in
            switch arg {
            case "--name": guard let v = options.value() else { return false }; input.name = v
            case "--cwd": guard let v = options.value() else { return false }; input.cwd = v
            case "--env": guard let v = options.value() else { return false }; input.env.append(v)
            case "-c": guard let v = options.value() else { return false }; input.command.line = v
            case "--": input.command.program = options.rest()
            default: return false
            }
            return true
        }
        return parsed ? input : nil
    }

    private static func invoke(_ options: inout Options) -> InvokeInput? {
        var input = InvokeInput()
        var computerGiven = false
        let parsed = options.walk { arg, options in
            switch arg {
            case "--computer": guard let v = options.value() else { return false }; input.computer = v; computerGiven = true
            case "--as-job": input.asJob = true
            case "--name": guard let v = options.value() else { return false }; input.name = v
            case "--throttle": guard let v = options.value(), let n = Int(v) else { return false }; input.throttle = n
            case "--ssh-config": guard let v = options.value() else { return false }; input.sshConfig = v
            case "--hide-computer-name": input.hideComputerName = true
            case "-c": guard let v = options.value() else { return false }; input.command.line = v
            case "--": input.command.program = options.rest()
            default: return false
            }
            return true
        }
        return parsed && computerGiven ? input : nil
    }

    /// `job get [JOB…]` with no filter: the list scripts poll.
    private static func get(_ options: inout Options) -> GetInput? {
        var input = GetInput()
        let parsed = options.walk { arg, _ in
            guard !arg.hasPrefix("-") else { return false }
            input.jobs.append(arg)
            return true
        }
        return parsed ? input : nil
    }

    /// The words after the verb, read one at a time, and the options every command takes.
    private struct Options {
        let args: [String]
        var index = 1
        var home: String?
        var format = OutputFormatOption.table
        var properties: [String]?

        init(_ args: [String]) { self.args = args }

        enum Taken { case taken, invalid, other }

        /// Reads every word: the common options here, the others by `take`, which reads their
        /// values from the `Options` it is given. False as soon as a word is not understood.
        mutating func walk(_ take: (String, inout Options) -> Bool) -> Bool {
            while let word = next() {
                switch takeCommon(word) {
                case .taken: continue
                case .invalid: return false
                case .other: if !take(word, &self) { return false }
                }
            }
            return true
        }

        /// The next word, nil at the end.
        mutating func next() -> String? {
            guard index < args.count else { return nil }
            defer { index += 1 }
            return args[index]
        }

        /// The value of the option just read.
        mutating func value() -> String? { next() }

        /// Every word left (after `--`).
        mutating func rest() -> [String] {
            defer { index = args.count }
            return Array(args[min(index, args.count)...])
        }

        /// Takes `word` if it is `--home`, `-o` or `--property`, with its value.
        mutating func takeCommon(_ word: String) -> Taken {
            switch word {
            case "--home":
                guard let v = value() else { return .invalid }
                home = v
            case "-o", "--output":
                guard let v = value(), let f = OutputFormatOption(rawValue: v), f != .raw else { return .invalid }
                format = f
            case "--property":
                guard let v = value() else { return .invalid }
                properties = propertyList(v)
            default: return .other
            }
            return .taken
        }
    }
}
