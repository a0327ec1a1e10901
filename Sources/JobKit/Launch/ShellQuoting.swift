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
    /// By bytes: the engine quotes each remote job's script (kilobytes) with it, and
    /// Foundation's search through UTF-16 was most of what a detached child cost the daemon.
    public static func singleQuoted(_ word: String) -> String {
        let bytes = word.utf8
        if !bytes.isEmpty, bytes.allSatisfy(isPlain) { return word }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + 2)
        out.append(UInt8(ascii: "'"))
        for byte in bytes {
            if byte == UInt8(ascii: "'") {
                out += Array("'\\''".utf8)
            } else {
                out.append(byte)
            }
        }
        out.append(UInt8(ascii: "'"))
        return String(decoding: out, as: UTF8.self)
    }

    private static func isPlain(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "/"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: "="):
            return true
        default:
            return false
        }
    }
}
