import Foundation
import JobModel

/// A session on another computer: the same shell and the same two functions as a local one,
/// on the host, where only `/bin/sh` and the usual utilities (mkdir, mkfifo, ln, cat, ps, awk)
/// are needed. The session is one channel through the host's ControlMaster, which carries its
/// commands too (see Supervisor/channel.c for the local side): a command costs no channel of
/// its own, no login shell and no program start but two `cat`s. The script runs as `exec
/// /bin/sh -c SCRIPT sh ARGS…`, which every login shell takes (fish too); it holds no `\\` and
/// no backslash before a quote, which fish would read differently inside single quotes, and a
/// command's text travels as octal escapes, byte for byte.
///
/// The session's directory is in memory where the host has `/dev/shm` (the name given is then
/// a link to it there): every command rewrites files in it, and on a disk each truncation of a
/// written file costs a block's allocation and release (and, mounted with `discard`, a trim):
/// 0.2–1 ms a file on the development machine, against 25 µs in memory.
///
/// The session's channel is its shell's life: when it ends (the connection broke, the master
/// died, `job session remove`), the script removes the session's directory and kills its
/// process group (the shell, and every command's processes: an interactive shell without job
/// control makes no group of its own). Nothing is left on the host.
enum RemoteSession {
    /// Args: the session's directory (made here), the shell, the bootstrap (which writes the
    /// shell's pid to fd 5, this channel's stdout: its first line), and the probe that a POSIX
    /// shell answers 42 (the bootstrap's functions are POSIX sh).
    ///
    /// The shell runs in the foreground: run with `&` it would ignore SIGINT for good, and so
    /// would every command it runs, as a background command of a shell without job control
    /// does. It reads its input from the FIFO `in`. Two loops run beside it:
    /// - the channel's reader: `r ID NONCE TEXT` goes on to
    ///   the runner; `s ID` and `k ID` stop command ID, if it is the current one (see `cur`),
    ///   softly (SIGINT to the shell and to the processes that came below it since the command
    ///   began, SIGTERM to them half a second later: nothing reaps orphans for the session
    ///   here, and one whose parent died has left the tree, so those seen before are sent it
    ///   too) or hard (SIGKILL to them until none is left, and to the shell too if it still has
    ///   not finished the command two seconds later: its session is then broken). The first
    ///   empty line is the supervisor's hello (a command's line may come before it: the
    ///   shell's pid, which opens the session, does not wait for it); the next one (`job
    ///   session remove`), or the channel's end, removes the directory and ends the session's
    ///   process group.
    /// - the runner, reading the FIFO `ctl`: the shell's pid (`p`), the commands to run, the
    ///   shell's answers (`d ID STATUS`) and its end (`x STATUS`, from this script). A command:
    ///   its text to `cmd`, the processes already below the shell to `cur` (an earlier
    ///   command's background work is not this one's to stop), the begin markers to the
    ///   channel's two streams, a `cat` of each of the command's FIFOs (`o`, `e`) onto them,
    ///   and the line that has the shell run it; once the shell answered and both `cat`s
    ///   ended (the command's streams let go of, as a pipeline's), the end markers, the
    ///   status after stdout's. A command sent while one runs (the one running lost its
    ///   supervisor, and the engine went on) waits for it.
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
        mkfifo "$d/in" "$d/ctl" "$d/o" "$d/e" || exit 125
        exec 4<>"$d/in" 6<>"$d/ctl"
        echo "$3" >&4
        procs() {
          ps -e -o pid= -o ppid= | awk -v root="$s" -v old="$old" '{ k[$2] = k[$2] " " $1 } END { q = k[root]; while (q != "") { sub(/^ +/, "", q); if (q == "") break; p = q; sub(/ .*/, "", p); sub(/^[^ ]+/, "", q); if (index(old, " " p " ")) continue; printf "%s ", p; q = q " " k[p] } }'
        }
        current() {
          read -r m s b old <"$d/cur" && [ "$m" = "$1" ] || return 1
          old=" $old "
          [ "$seenof" = "$1" ] || seen=
          seenof=$1
        }
        soft() {
          current "$1" || return 0
          seen="$seen $(procs)"
          kill -INT "$s" $seen
          sleep 0.5
          seen="$seen $(procs)"
          kill -TERM $seen
        }
        hard() {
          current "$1" || return 0
          seen="$seen $(procs)"
          kill -INT "$s"
          kill -KILL $seen
          i=0
          while [ $i -lt 20 ]; do l=$(procs); [ -z "$l" ] && break; kill -KILL $l; sleep 0.1; i=$((i+1)); done
          i=0
          while [ $i -lt 20 ] && current "$1" && [ "$b" = 1 ]; do sleep 0.1; i=$((i+1)); done
          if current "$1" && [ "$b" = 1 ]; then kill -KILL "$s"; fi
        }
        {
          h= seen= seenof=
          while read -r k l; do
            case $k in
            r) printf 'r %s\n' "$l" >&6 ;;
            s) soft "$l" ;;
            k) hard "$l" ;;
            "") [ -n "$h" ] && break; h=1 ;;
            esac
          done
          rm -rf "$d" $t
          kill -KILL 0
        } <&3 >/dev/null 2>&1 4<&- &
        w=$!
        run() {
          printf "$3" >"$d/cmd"
          old=
          if [ -r "/proc/$s/task/$s/children" ]; then read -r old <"/proc/$s/task/$s/children"; else old=$(ps -e -o pid= -o ppid= | awk -v p="$s" '$2 == p { printf "%s ", $1 }'); fi
          echo "$1 $s 1 $old" >"$d/cur"
          printf '%s+' "$2"
          printf '%s+' "$2" >&2
          cat "$d/o" &
          o=$!
          cat "$d/e" >&2 &
          e=$!
          echo "_jobkit_run $1" 1<>"$d/in"
          r=
          while read -r k x y z; do
            case $k in
            d) if [ "$x" = "$1" ]; then r=$y; break; fi ;;
            x) r=$x; break ;;
            r) next="$x $y $z" ;;
            esac
          done
          echo "$1 $s 0 $old" >"$d/cur"
          wait "$o"
          wait "$e"
          : >"$d/cur"
          printf '%s-%s\n' "$2" "$r"
          printf '%s-\n' "$2" >&2
        }
        {
          s=
          while read -r k a b c; do
            case $k in
            p) s=$a ;;
            r)
              next="$a $b $c"
              while [ "$k" != x ] && [ -n "$next" ]; do
                set -- $next
                next=
                run "$1" "$2" "$3"
              done
              ;;
            esac
            [ "$k" = x ] && break
          done
        } <&6 3<&- 4<&- &
        c=$!
        exec 3<&-
        PS1= PS2= ENV= HISTFILE= MAIL= MAILPATH= "$2" -i +m <&4 5>&1 >/dev/null 2>&1 4<&- 6<&-
        r=$?
        exec 4<&-
        echo "x $r" >&6
        wait "$c"
        rm -rf "$d" $t
        kill -KILL "$w" 2>/dev/null
        exit "$r"
        """

    /// What a remote session's shell reads first: its pid to the channel (fd 5) and to the
    /// runner, then the functions: `_jobkit_run N` puts the line that asks for `$?` in its own
    /// input (read once the command is done, or abandoned: an interactive shell that abandons a
    /// command drops only what it had read ahead, and this line comes after), then dot-sources
    /// the command's file with /dev/null as stdin and the command's FIFOs as stdout and stderr;
    /// `_jobkit_report N STATUS` says how it ended. Each answer names its command, so that one
    /// for a command abandoned is not taken for the next one's.
    static func bootstrap(directory: String) -> String {
        let d = ShellQuoting.singleQuoted(directory)
        return """
            echo $$ >&5; exec 5>&-
            command echo p $$ 1<>\(d)/ctl
            _jobkit_run() { command echo "_jobkit_report $1 \\$?" 1<>\(d)/in; . \(d)/cmd </dev/null >|\(d)/o 2>|\(d)/e; }
            _jobkit_report() { command echo d "$1" "$2" 1<>\(d)/ctl; }

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

    /// The remote command line that runs `script` with `args`, by `/bin/sh`, which every login
    /// shell can start (fish too). Once per session: no need to learn whether the login shell
    /// could run it itself.
    static func line(_ script: String, _ args: [String]) -> String {
        (["exec", "/bin/sh", "-c", script, "sh"] + args).map(ShellQuoting.singleQuoted).joined(separator: " ")
    }

    /// Where a session lives on its host: made by its script, named here so that the
    /// bootstrap can name it.
    static func directory() -> String {
        "/tmp/job-session." + UUID().uuidString.lowercased()
    }
}
