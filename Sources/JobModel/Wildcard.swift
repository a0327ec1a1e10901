/// A PowerShell-style wildcard pattern: `*`, `?` and `[…]` (ranges and `!`/`^` negation),
/// matched case-insensitively against the whole string.
public struct Wildcard: Sendable, Hashable {
    private enum Token: Hashable {
        case literal(Character)
        case any
        case anyRun
        case set([ClosedRange<Character>], negated: Bool)
    }

    private let tokens: [Token]
    public let pattern: String

    /// Whether `text` uses any wildcard character: a name without one must match something.
    public static func hasWildcards(_ text: String) -> Bool {
        text.contains { $0 == "*" || $0 == "?" || $0 == "[" }
    }

    public init(_ pattern: String) {
        self.pattern = pattern
        var tokens: [Token] = []
        let chars = Array(pattern.lowercased())
        var i = 0
        while i < chars.count {
            let c = chars[i]
            switch c {
            case "*":
                if tokens.last != .anyRun { tokens.append(.anyRun) }
            case "?":
                tokens.append(.any)
            case "[":
                if let (set, next) = Self.parseSet(chars, from: i + 1) {
                    tokens.append(set)
                    i = next
                    continue
                }
                tokens.append(.literal(c))
            default:
                tokens.append(.literal(c))
            }
            i += 1
        }
        self.tokens = tokens
    }

    // A `[` without its `]` is an ordinary character, as in most shells.
    private static func parseSet(_ chars: [Character], from start: Int) -> (Token, Int)? {
        var i = start
        var negated = false
        if i < chars.count, chars[i] == "!" || chars[i] == "^" {
            negated = true
            i += 1
        }
        var ranges: [ClosedRange<Character>] = []
        var first = true
        while i < chars.count {
            let c = chars[i]
            if c == "]" && !first { return (.set(ranges, negated: negated), i + 1) }
            first = false
            if i + 2 < chars.count, chars[i + 1] == "-", chars[i + 2] != "]" {
                let (lo, hi) = (c, chars[i + 2])
                ranges.append(lo <= hi ? lo...hi : hi...lo)
                i += 3
            } else {
                ranges.append(c...c)
                i += 1
            }
        }
        return nil
    }

    public func matches(_ text: String) -> Bool {
        let chars = Array(text.lowercased())
        // Iterative matching with one backtrack point for the last `*`: linear in practice,
        // never exponential.
        var t = 0, c = 0
        var starToken = -1, starChar = 0
        while c < chars.count {
            if t < tokens.count {
                switch tokens[t] {
                case .anyRun:
                    starToken = t
                    starChar = c
                    t += 1
                    continue
                case .any:
                    t += 1
                    c += 1
                    continue
                case .literal(let l) where l == chars[c]:
                    t += 1
                    c += 1
                    continue
                case .set(let ranges, let negated) where ranges.contains(where: { $0.contains(chars[c]) }) != negated:
                    t += 1
                    c += 1
                    continue
                default:
                    break
                }
            }
            guard starToken >= 0 else { return false }
            t = starToken + 1
            starChar += 1
            c = starChar
        }
        while t < tokens.count, tokens[t] == .anyRun { t += 1 }
        return t == tokens.count
    }
}
