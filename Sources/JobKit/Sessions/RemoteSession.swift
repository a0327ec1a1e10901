import Foundation
import JobModel

/// A session on another computer: the same shell and the same two functions as a local one,
/// on the host, where only `/bin/sh` and the usual utilities (mkdir, mkfifo, ln, cat, ps, awk)
/// are needed. Everything goes through the host's ControlMaster: the session is one channel,
/// which keeps its shell (`sessionScript`), and each command another, which does there what
/// a local command's supervisor does here (`commandScript`). Each runs as `exec /bin/sh -c
/// SCRIPT sh ARGS…`, which every login shell takes (fish too); the scripts hold no `\\` and no
/// backslash before a quote, which fish would read differently inside single quotes, and the
/// command's text travels as octal escapes, byte for byte.
///
/// The session's directory is in memory where the host has `/dev/shm` (the name given is then
/// a link to it there): every command rewrites two files in it, and on a disk each truncation
/// of a written file costs a block's allocation and release (and, mounted with `discard`, a
/// trim): 0.2–1 ms a file on the development machine, against 25 µs in memory.
///
/// The session's channel is its shell's life: when it ends (the connection broke, the master
/// died, `job session remove`), the script removes the session's directory and kills its
/// process group (the shell, and every command's processes: an interactive shell without job
/// control makes no group of its own). Nothing is left on the host.
enum RemoteSession {
    /// Args: the session's directory (made here), the shell, the bootstrap (which writes the
    /// shell's pid to fd 5, this channel's stdout: its one line of output), and the probe that
    /// a POSIX shell answers 42 (the bootstrap's functions are POSIX sh). The shell runs in
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
        "$2" -c "$4" </dev/null >/dev/null 2>&1; [ $? = 42 ] || exit 126
        t=
        if [ -d /dev/shm ] && [ -w /dev/shm ] && mkdir "/dev/shm/${d##*/}" 2>/dev/null; then
          t=/dev/shm/${d##*/}
          ln -s "$t" "$d" 2>/dev/null || { rmdir "$t"; t=; }
        fi
        [ -n "$t" ] || mkdir "$d" || exit 125
        mkfifo "$d/in" "$d/status" || exit 125
        exec 4<>"$d/in"
        echo "$3" >&4
        { read -r _ <&3; read -r _ <&3; rm -rf "$d" $t; kill -KILL 0; } >/dev/null 2>&1 &
        w=$!
        exec 3<&-
        PS1= PS2= ENV= HISTFILE= MAIL= MAILPATH= "$2" -i +m <&4 5>&1 >/dev/null 2>&1 4<&-
        r=$?
        exec 4<&-
        read -r a <"$d/answers" 2>/dev/null && echo "exit $r" 2>/dev/null 1<>"$a"
        rm -rf "$d" $t
        kill -KILL "$w" 2>/dev/null
        exit "$r"
        """

    /// Args: the session's directory, the command's id, the shell's pid, the command's text (as
    /// `printf` escapes, see `escaped`). As a local command's supervisor: the text to the
    /// session's command file, then a line to the shell that runs the command with this
    /// channel's own stdout and stderr as its streams and this channel's stdin for the shell's
    /// answers (through /proc, as copies on fds 7 and 8 for the streams: a builtin's redirection
    /// here swaps fd 1 for a moment), so that one reader takes both the shell's answers and the
    /// stop lines, and nothing is forked on the way; the shell then asks itself for `$?` (see
    /// `bootstrap`; a session opened by an earlier version says `started` instead, and is sent
    /// that line from here). The channel ends, and its child with it, once the command's streams
    /// are let go of, as a pipeline's; if the command left a process behind, a watcher of stdin
    /// stays for a stop meanwhile (still waiting for the hello if the shell's answer came first:
    /// both share this stdin, and a late hello is no stop). Where there is no /proc, FIFOs
    /// relayed by `cat` carry the streams, and the session's status FIFO the answers, with a
    /// watcher of stdin from the start.
    ///
    /// A stop line abandons the command: SIGINT to the shell and to the processes it started for
    /// it, SIGTERM to them half a second later (those seen before too: nothing reaps orphans for
    /// the session here, and one whose parent died has left the tree); stdin's end before the
    /// status (the stop's grace is over, or the connection went) kills them, and the shell too
    /// if it has still not finished the command two seconds later (its session is then broken).
    static let commandScript = """
        exec 3<&0 </dev/null
        d=$1; n=$2; s=$3; f=$1/$2
        if [ ! -p "$d/in" ] || ! kill -0 "$s" 2>/dev/null; then echo "job: the shell of this session is gone" >&2; exit 125; fi
        umask 077
        printf "$4" >"$d/cmd" || exit 125
        old=
        if [ -r "/proc/$s/task/$s/children" ]; then read -r old <"/proc/$s/task/$s/children"; else old=$(ps -e -o pid= -o ppid= | awk -v p="$s" '$2 == p { printf "%s ", $1 }'); fi
        old=" $old "
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
          while [ $i -lt 20 ] && kill -0 $$; do sleep 0.1; i=$((i+1)); done 2>/dev/null
          if kill -0 $$ 2>/dev/null; then kill -KILL "$s"; fi
        }
        trap "" TERM INT HUP
        answers() {
          r=
          while read -r k a b; do
            case $k in
            started) [ "$a" = "$n" ] && echo "_jobkit_report $n" '$?' "$1" 2>/dev/null 1<>"$d/in" ;;
            done) if [ "$a" = "$n" ]; then r=$b; return; fi ;;
            exit) r=$a; return ;;
            "") if [ -n "$h" ]; then soft; fi; h=1 ;;
            esac
          done
        }
        h=
        if [ -e "/proc/$$/fd/3" ]; then
          exec 7>&1 8>&2
          echo "_jobkit_run $n /proc/$$/fd/7 /proc/$$/fd/8 /proc/$$/fd/3" 2>/dev/null 1<>"$d/in"
          answers "/proc/$$/fd/3" <&3
          if [ -z "$r" ]; then hard; exit 125; fi
          now=
          read -r now <"/proc/$s/task/$s/children"
          for p in $now; do
            case $old in *" $p "*) ;; *) { exec 7>&- 8>&-; answers x <&3; } >/dev/null 2>&1 & break ;; esac
          done
          exit "$r"
        fi
        exec 5<>"$d/status"
        mkfifo "$f.out" "$f.err" || exit 125
        cat "$f.out" & o=$!
        cat "$f.err" >&2 & e=$!
        {
          read -r _ <&3
          while read -r _; do soft; done <&3
          if [ ! -e "$f.done" ]; then hard; kill -KILL $$ $o $e; fi
          rm -f "$f.out" "$f.err" "$f.done"
        } >/dev/null 2>&1 &
        exec 3<&-
        echo "_jobkit_run $n $f.out $f.err $d/status" 2>/dev/null 1<>"$d/in"
        h=1
        answers "$d/status" <&5
        wait "$o"; wait "$e"
        true 2>/dev/null >"$f.done"
        exit "${r:-125}"
        """

    /// What a remote session's shell reads first: its pid to the channel (fd 5), then the
    /// functions: `_jobkit_run N OUT ERR ANSWERS` notes where command N's answers go (for the
    /// session's script, should the shell end), puts the line that asks for `$?` in its own
    /// input (read once the command is done, or abandoned: an interactive shell that abandons a
    /// command drops only what it had read ahead, and this line comes after), then dot-sources
    /// the command's file with /dev/null as stdin and OUT and ERR as stdout and stderr;
    /// `_jobkit_report N STATUS ANSWERS` says how it ended. Asking from here, not from the
    /// command's script once told that the command began, saves a round trip per command. One
    /// command at a time, so one file for the command's text; each answer names its command, so
    /// that one a killed command's script did not read (in the session's status FIFO) is not
    /// taken for the next one's.
    static func bootstrap(directory: String) -> String {
        let d = ShellQuoting.singleQuoted(directory)
        return """
            echo $$ >&5; exec 5>&-
            _jobkit_run() { command echo "$4" >|\(d)/answers; command echo "_jobkit_report $1 \\$? $4" 1<>\(d)/in; . \(d)/cmd </dev/null >|"$2" 2>|"$3"; }
            _jobkit_report() { command echo done "$1" "$2" 1<>"$3"; }

            """
    }

    /// A command's text as `printf` takes it for a format: every byte an octal escape, so
    /// that no byte is read as anything else there, nor by the login shell on the way (it
    /// holds no `\\` and no backslash before a quote).
    static func escaped(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count * 4)
        for byte in text.utf8 {
            out += "\\"
            out += String(byte >> 6)
            out += String((byte >> 3) & 7)
            out += String(byte & 7)
        }
        return out
    }

    /// The remote command line that runs `script` with `args`: by the login shell itself when
    /// it is a POSIX shell (`direct`: one program start less for every command; zsh is asked
    /// to behave as sh), else by `/bin/sh`, which every login shell can start (fish too).
    static func line(_ script: String, _ args: [String], form: RemoteCommand.Form = .viaSh) -> String {
        switch form {
        case .direct:
            return (["set", "--"] + args.map(ShellQuoting.singleQuoted)).joined(separator: " ")
                + "\n[ -n \"${ZSH_VERSION-}\" ] && emulate sh\n" + script
        case .viaSh:
            return (["exec", "/bin/sh", "-c", script, "sh"] + args).map(ShellQuoting.singleQuoted).joined(separator: " ")
        }
    }

    /// Where a session lives on its host: made by its script, named here so that the
    /// bootstrap can name it.
    static func directory() -> String {
        "/tmp/job-session." + UUID().uuidString.lowercased()
    }
}
