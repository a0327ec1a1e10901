import Foundation
import JobModel

/// A session on another computer: the same shell and the same two functions as a local one,
/// on the host, where only `/bin/sh` and the usual utilities (mkdir, mkfifo, cat, ps, awk)
/// are needed. Everything goes through the host's ControlMaster: the session is one channel,
/// which keeps its shell (`sessionScript`), and each command another, which does there what
/// a local command's supervisor does here (`commandScript`). Each runs as `exec /bin/sh -c
/// SCRIPT sh ARGS…`, which every login shell takes (fish too); the scripts hold no `\\` and no
/// backslash before a quote, which fish would read differently inside single quotes, and the
/// command's text travels hex-encoded, byte for byte.
///
/// The session's channel is its shell's life: when it ends (the connection broke, the master
/// died, `job session remove`), the script removes the session's directory and kills its
/// process group (the shell, and every command's processes: an interactive shell without job
/// control makes no group of its own). Nothing is left on the host.
enum RemoteSession {
    /// Args: the session's directory (made here), the shell, the bootstrap (which writes the
    /// shell's pid to fd 5, this channel's stdout: its one line of output). The shell runs in
    /// the foreground: run with `&` it would ignore SIGINT for good, and so would every
    /// command it runs, as a background command of a shell without job control does. Its
    /// stdin is the supervisor's held pipe, watched by a process of its own: the hello, then a
    /// line (remove) or its end (the connection went) remove the directory and end the
    /// session's process group. When the shell exits (a command's `exit`), its status goes to
    /// the commands waiting for one, which then end with it, their output whole.
    static let sessionScript = """
        exec 3<&0 </dev/null
        umask 077
        d=$1
        command -v "$2" >/dev/null || exit 127
        mkdir "$d" && mkfifo "$d/in" || exit 125
        exec 4<>"$d/in"
        echo "$3" >&4
        { read -r _ <&3; read -r _ <&3; rm -rf "$d"; kill -KILL 0; } >/dev/null 2>&1 &
        w=$!
        exec 3<&-
        PS1= PS2= ENV= HISTFILE= MAIL= MAILPATH= "$2" -i +m <&4 5>&1 >/dev/null 2>&1 4<&-
        r=$?
        exec 4<&-
        for f in "$d"/*.status; do [ -p "$f" ] && echo "$r" 1<>"$f"; done
        rm -rf "$d"
        kill -KILL "$w" 2>/dev/null
        exit "$r"
        """

    /// What a remote session's shell reads first: its pid to the channel, then the functions.
    static func bootstrap(directory: String) -> String {
        "echo $$ >&5; exec 5>&-\n" + JobManager.bootstrap(directory: directory)
    }

    /// Args: the session's directory, the command's id, the shell's pid, the command's text in
    /// hex. As a local command's supervisor: the text to a file, FIFOs for its streams and
    /// status (held open from before the shell is asked: it may write and close before this
    /// reads), one line to the shell, the streams relayed to this channel's stdout and stderr
    /// until let go of, then `$?` asked for and made this channel's exit status. A line on
    /// stdin (stop) abandons the command: SIGINT to the shell and to the processes it started
    /// for the command, SIGTERM to them half a second later; stdin's end (the stop's grace is
    /// over, or the connection went) kills them, and the shell too if it still has not let go
    /// of the command two seconds later (its session is then broken).
    static let commandScript = """
        exec 3<&0 </dev/null
        d=$1; n=$2; s=$3; f=$1/$2
        if [ ! -p "$d/in" ] || ! kill -0 "$s" 2>/dev/null; then echo "job: the shell of this session is gone" >&2; exit 125; fi
        umask 077
        echo "$4" | LC_ALL=C awk '{ h = "0123456789abcdef"; for (i = 1; i < length($0); i += 2) printf "%c", (index(h, substr($0, i, 1)) - 1) * 16 + index(h, substr($0, i + 1, 1)) - 1 }' >"$f.cmd" && mkfifo "$f.out" "$f.err" "$f.status" || { rm -f "$f.cmd" "$f.out" "$f.err" "$f.status"; exit 125; }
        old=" $(ps -e -o pid= -o ppid= | awk -v p="$s" '$2 == p { printf "%s ", $1 }')"
        procs() {
          ps -e -o pid= -o ppid= | awk -v root="$s" -v old="$old" '{ k[$2] = k[$2] " " $1 } END { q = k[root]; while (q != "") { sub(/^ +/, "", q); if (q == "") break; p = q; sub(/ .*/, "", p); sub(/^[^ ]+/, "", q); if (index(old, " " p " ")) continue; printf "%s ", p; q = q " " k[p] } }'
        }
        seen=
        soft() {
          seen="$seen $(procs)"
          kill -INT "$s" $seen 2>/dev/null
          sleep 0.5
          seen="$seen $(procs)"
          kill -TERM $seen 2>/dev/null
        }
        hard() {
          seen="$seen $(procs)"
          kill -INT "$s" 2>/dev/null
          kill -KILL $seen 2>/dev/null
          i=0
          while [ $i -lt 20 ]; do l=$(procs); [ -z "$l" ] && break; kill -KILL $l; sleep 0.1; i=$((i+1)); done 2>/dev/null
          i=0
          while [ $i -lt 20 ] && { kill -0 "$o" || kill -0 "$e"; }; do sleep 0.1; i=$((i+1)); done 2>/dev/null
          if kill -0 "$o" 2>/dev/null || kill -0 "$e" 2>/dev/null; then kill -KILL "$s"; fi
        }
        trap "" TERM INT HUP
        cat "$f.out" & o=$!
        cat "$f.err" >&2 & e=$!
        { read -r _ <&3; while read -r _; do soft; done <&3; hard; rm -f "$f.cmd" "$f.out" "$f.err" "$f.status"; kill -KILL $$ "$o" "$e"; } >/dev/null 2>&1 &
        w=$!
        exec 3<&-
        exec 5<>"$f.status"
        echo "_jobkit_run $n" 1<>"$d/in" 2>/dev/null
        wait "$o"; wait "$e"
        echo "_jobkit_report $n" '$?' 1<>"$d/in" 2>/dev/null
        read -r r <&5
        rm -f "$f.cmd" "$f.out" "$f.err" "$f.status"
        kill -KILL "$w" 2>/dev/null
        exit "${r:-125}"
        """

    /// The remote command line that runs `script` with `args`, whatever the login shell.
    static func line(_ script: String, _ args: [String]) -> String {
        (["exec", "/bin/sh", "-c", script, "sh"] + args).map(ShellQuoting.singleQuoted).joined(separator: " ")
    }

    /// A command's text, as the command script takes it.
    static func hex(_ text: String) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count * 2)
        for byte in text.utf8 {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Where a session lives on its host: made by its script, named here so that the
    /// bootstrap can name it.
    static func directory() -> String {
        "/tmp/job-session." + UUID().uuidString.lowercased()
    }
}
