import Foundation

/// A `foreach` command with GNU parallel's replacement strings, made into each child's
/// command: `{}` the input, `{.}` without its extension, `{/}` its basename, `{//}` its
/// directory, `{/.}` its basename without extension, `{#}` the child's 1-based sequence
/// number. In a shell line the values are shell-quoted (so that any input is one word, as
/// parallel quotes them); in a program's arguments they go in as they are. With no
/// replacement string anywhere, the input is appended as the last argument (a quoted word
/// of the line).
struct ForeachTemplate: Sendable, Equatable {
    let command: ProcessSpec.Command

    /// Whether the command names its input anywhere; if not, it is appended.
    let hasReplacement: Bool

    init(_ command: ProcessSpec.Command) {
        self.command = command
        switch command {
        case .shell(let line): hasReplacement = Self.containsReplacement(line)
        case .argv(let words): hasReplacement = words.contains(where: Self.containsReplacement)
        }
    }

    /// The child's command for `input`, the `sequence`th (from 1).
    func command(for input: String, sequence: Int) -> ProcessSpec.Command {
        switch command {
        case .shell(let line):
            guard hasReplacement else { return .shell(line + " " + Self.quote(input)) }
            return .shell(Self.replace(in: line, input: input, sequence: sequence, quoting: true))
        case .argv(let words):
            guard hasReplacement else { return .argv(words + [input]) }
            return .argv(words.map { Self.replace(in: $0, input: input, sequence: sequence, quoting: false) })
        }
    }

    /// The strings, longest first where one begins another (`{//}` before `{/}`).
    static let replacements = ["{}", "{.}", "{//}", "{/.}", "{/}", "{#}"]

    static func containsReplacement(_ text: String) -> Bool {
        replacements.contains { text.contains($0) }
    }

    /// One pass over `text`, so that a value holding a replacement string is not replaced
    /// again.
    static func replace(in text: String, input: String, sequence: Int, quoting: Bool) -> String {
        var result = ""
        var rest = Substring(text)
        while let open = rest.firstIndex(of: "{") {
            result += rest[..<open]
            let tail = rest[open...]
            guard let token = replacements.first(where: { tail.hasPrefix($0) }) else {
                result.append("{")
                rest = rest[rest.index(after: open)...]
                continue
            }
            let value = self.value(of: token, input: input, sequence: sequence)
            result += quoting && token != "{#}" ? quote(value) : value
            rest = tail.dropFirst(token.count)
        }
        return result + rest
    }

    static func value(of token: String, input: String, sequence: Int) -> String {
        switch token {
        case "{.}": return withoutExtension(input)
        case "{/}": return basename(input)
        case "{//}": return dirname(input)
        case "{/.}": return withoutExtension(basename(input))
        case "{#}": return String(sequence)
        default: return input
        }
    }

    /// What follows the last `/` (all of it when there is none), as GNU parallel's `{/}`.
    static func basename(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }

    /// What comes before the last `/`; `.` when there is none, `/` for a path at the root.
    static func dirname(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let head = path[..<slash]
        return head.isEmpty ? "/" : String(head)
    }

    /// The input without the extension of its last component (`a.d/b` keeps its dot).
    static func withoutExtension(_ path: String) -> String {
        let name = basename(path)
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return path }
        let cut = name.distance(from: dot, to: name.endIndex)
        return String(path.dropLast(cut))
    }

    static func quote(_ word: String) -> String { ShellQuoting.singleQuoted(word) }
}
