/// Joins an argv into one line that a POSIX shell reads back as the same words, in the style
/// of bash's `printf %q`: plain words stay plain, others get backslashes, and words with
/// control characters use `$'…'`.
public enum ShellQuoting {
    public static func join(_ words: [String]) -> String {
        words.map(quote).joined(separator: " ")
    }

    public static func quote(_ word: String) -> String {
        if word.isEmpty { return "''" }
        if word.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) {
            var out = "$'"
            for scalar in word.unicodeScalars {
                switch scalar {
                case "\n": out += "\\n"
                case "\t": out += "\\t"
                case "\r": out += "\\r"
                case "\\": out += "\\\\"
                case "'": out += "\\'"
                default:
                    if scalar.value < 0x20 || scalar.value == 0x7f {
                        let hex = String(scalar.value, radix: 8)
                        out += "\\" + String(repeating: "0", count: 3 - hex.count) + hex
                    } else {
                        out.unicodeScalars.append(scalar)
                    }
                }
            }
            return out + "'"
        }
        var out = ""
        for (i, scalar) in word.unicodeScalars.enumerated() {
            let safe = scalar.value >= 0x80 || scalar.properties.isAlphabetic && scalar.isASCII
                || ("0"..."9").contains(scalar) || "_./,:@%+=-".unicodeScalars.contains(scalar)
                || (scalar == "~" && i > 0)
            if !safe { out += "\\" }
            out.unicodeScalars.append(scalar)
        }
        return out
    }

    /// POSIX single quoting: any bytes (newlines, `$`, quotes) as one word, for every POSIX
    /// shell (dash has no `$'…'`), and for bash, zsh and fish too. Plain words stay plain.
    public static func singleQuoted(_ word: String) -> String {
        if !word.isEmpty, word.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "/._-=".contains($0)) }) {
            return word
        }
        return "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
