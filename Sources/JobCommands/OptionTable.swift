import ArgumentParser

/// One option of a verb, declared once: its name, its value's name (nil for a flag) and its
/// help, which the ArgumentParser command is declared with, and how it sets the verb's input,
/// which the fast path uses. A test parses a corpus of command lines both ways and checks that
/// they make the same input, and that every option here is in the command's `--help`.
struct OptionSpec<Input>: Sendable {
    /// `"name"` for `--name`, or one letter for `-c`.
    let name: String
    /// The value's name in the usage; nil for a flag.
    let value: String?
    let help: String
    /// A flag takes no value.
    let isFlag: Bool
    /// Sets the input from the value ("" for a flag); false when the value is not one
    /// ArgumentParser would take, so that the fast path leaves the line to it.
    let set: @Sendable (inout Input, String) -> Bool

    init(_ name: String, value: String? = nil, help: String, set: @escaping @Sendable (inout Input, String) -> Bool) {
        self.name = name
        self.spelling = Self.spelling(of: name)
        self.value = value
        self.help = help
        self.isFlag = false
        self.set = set
    }

    /// A flag.
    init(flag name: String, help: String, set: @escaping @Sendable (inout Input) -> Void) {
        self.name = name
        self.spelling = Self.spelling(of: name)
        self.value = nil
        self.help = help
        self.isFlag = true
        self.set = { input, _ in
            set(&input)
            return true
        }
    }

    /// `-c LINE`, as `start`, `invoke` and later verbs take it.
    static func line(help: String, set: @escaping @Sendable (inout Input, String) -> Void) -> OptionSpec {
        OptionSpec("c", value: "LINE", help: help) { input, value in
            set(&input, value)
            return true
        }
    }

    /// How it is written on the command line; made once, since the fast path compares every
    /// word with it.
    let spelling: String

    private static func spelling(of name: String) -> String { name.count == 1 ? "-" + name : "--" + name }

    /// For `@Option(name:)` and `@Flag(name:)`.
    var names: NameSpecification { name.count == 1 ? [.customShort(Character(name))] : [.customLong(name)] }

    /// For `@Option(help:)` and `@Flag(help:)`.
    var argumentHelp: ArgumentHelp { ArgumentHelp(help, valueName: value) }
}

/// What the verbs' inputs declare for the fast path: their options, and what takes the other
/// words.
protocol TabledInput: VerbInput {
    init()
    static var options: [OptionSpec<Self>] { get }
    /// Takes a word that is not an option (`job get`'s JOBs); nil when the verb takes none.
    static var word: (@Sendable (inout Self, String) -> Void)? { get }
    /// Takes the words after `--`; nil when the verb takes none.
    static var program: (@Sendable (inout Self, [String]) -> Void)? { get }
}

extension TabledInput {
    static var word: (@Sendable (inout Self, String) -> Void)? { nil }
    static var program: (@Sendable (inout Self, [String]) -> Void)? { nil }
}

/// The options every command takes, declared once as the verbs' are.
enum CommonOptionTable {
    static let output = OptionSpec<CommonOptions>(
        "output", value: "output", help: "table (the default), list, json or jsonl (an object per line); receive also raw (its default)."
    ) { options, value in
        guard let format = OutputFormatOption(rawValue: value) else { return false }
        options.format = format
        return true
    }
    static let property = OptionSpec<CommonOptions>(
        "property", value: "NAME[,NAME…]", help: "Which columns or fields to show (case-insensitive)."
    ) { options, value in
        options.properties = propertyList(value)
        return true
    }
    static let home = OptionSpec<CommonOptions>(
        "home", value: "DIR", help: "The job home (default: $JOB_HOME, $XDG_STATE_HOME/job, ~/.local/state/job)."
    ) { options, value in
        options.home = value
        return true
    }
    static let all = [output, property, home]

    /// `-o`, the short name `--output` also has.
    static let outputShort = "-o"

    /// The spellings that take a value, for moving them after the verb (`job --home H get`).
    static let spellings = all.map(\.spelling) + [outputShort]

    static func spec(for word: String) -> OptionSpec<CommonOptions>? {
        word == outputShort ? output : all.first { $0.spelling == word }
    }
}
