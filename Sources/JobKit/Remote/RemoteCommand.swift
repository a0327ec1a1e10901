import CJobKitSystem
import Foundation
import JobModel

#if canImport(Glibc)
import Glibc
#endif


/// The command sent to a remote computer: a small POSIX `sh` wrapper that runs the job's
/// command in the background and watches its stdin, which is a pipe the job's supervisor holds
/// open (ssh forwards no signals, but it forwards stdin). A line there means "stop": SIGTERM
/// to the session's process group (sshd makes every session its own group, so the group is
/// the job's); the job then ends when the command does, and the stop's grace is kept by the
/// engine, which cuts the connection when it is over. The first line is not a stop but the
/// supervisor's hello, written as the job starts: ssh reads its stdin only once the session
/// is open, so the supervisor knows by the hello still in the pipe that a job is still
/// connecting, and then stops the connection attempt instead. End of file means the connection is
/// gone: SIGKILL at once after a stop, otherwise SIGTERM and SIGKILL once the command has gone
/// or after 5 s. End of file comes when the supervisor kills the job's ssh or closes its
/// session, when the supervisor dies, and when the connection goes away, and at no other
/// time. The wrapper and its watcher ignore SIGTERM (the command, started before, does not):
/// the wrapper lives until it has reaped the command, so "the command has gone" is "the
/// wrapper has gone", which holds even where nothing reaps orphans.
enum RemoteCommand {
    /// How the wrapper gets to run.
    enum Form: Sendable, Equatable {
        /// Run by the remote user's login shell itself: right for POSIX shells (sh, bash, zsh,
        /// ksh), and one program start less per job.
        case direct
        /// Passed to `/bin/sh -c` by the login shell, whatever it is (fish, csh…); `-c LINE`
        /// then goes to `$SHELL -c`.
        case viaSh
    }

    /// No single quotes inside: the whole is passed in single quotes. `$1` is how to run the
    /// rest: `here` (a line, evaluated by this shell), `line` (a line for `$SHELL`), `argv`.
    static let wrapper = """
        exec 3<&0 </dev/null
        case $1 in
        here) (eval "$2") & ;;
        line) case ${SHELL:-/bin/sh} in
          /bin/sh | /usr/bin/sh) (eval "$2") & ;;
          *) "$SHELL" -c "$2" & ;;
          esac ;;
        *) shift; "$@" & ;;
        esac
        p=$!
        trap "" TERM
        { s=; read -r _ <&3; while read -r _; do kill -TERM 0; s=1; done <&3
          if [ -z "$s" ]; then kill -TERM 0; i=0
            while [ $i -lt 50 ] && kill -0 $$; do sleep 0.1; i=$((i+1)); done
          fi
          kill -KILL 0; } >/dev/null 2>&1 &
        w=$!
        exec 3<&-
        wait $p
        s=$?
        kill -KILL $w
        exit $s
        """

    /// The remote shell's command line for a job's command: `-c LINE` is run by the remote
    /// user's shell as written; argv words arrive byte for byte (single-quoted).
    static func line(for command: ProcessSpec.Command, form: Form) -> String {
        switch (command, form) {
        case (.shell(let line), .direct):
            return "set -- here \(quote(line))\n" + wrapper
        case (.shell(let line), .viaSh):
            return viaShPrefix + " line " + quote(line)
        case (.argv(let words), .direct):
            return "set -- argv " + words.map(quote).joined(separator: " ") + "\n" + wrapper
        case (.argv(let words), .viaSh):
            return ([viaShPrefix, "argv"] + words.map(quote)).joined(separator: " ")
        }
    }

    /// `exec /bin/sh -c '<wrapper>' sh`, quoted once: every cold job sends it.
    private static let viaShPrefix = ["exec", "/bin/sh", "-c", wrapper, "sh"].map(quote).joined(separator: " ")

    /// Exits 42 in a POSIX shell only (fish, csh and rc stumble on it; fish then exits 0):
    /// whether the wrapper can run `direct`.
    static let posixProbe = "x=42; case ${x:-1} in 42) exit 42;; esac; exit 1"
    static let posixProbeAnswer: Int32 = 42

    static func quote(_ word: String) -> String { ShellQuoting.singleQuoted(word) }
}
