import Foundation
import JobModel

/// What a detached remote child (`invoke --detached`) runs on its computer: one POSIX `sh`
/// script, sent whole with each request, that takes a verb. The command's files are
/// `${XDG_STATE_HOME:-~/.local/state}/job/detached/KEY.*` on the host (files, not a directory
/// per job: every inode made there, and every program started, is on each job's path):
/// - `KEY.out`, `KEY.err`: the command's stdout and stderr, byte for byte;
/// - `KEY.pid`: a line with the supervisor's pid, its process group and session (the one
///   sshd made for the request that started it, which the command shares and which a stop
///   signals: the supervisor ignores SIGTERM, SIGKILL ends both, and the engine knows the end
///   of what it stopped) and the host's boot id, where it has one; and a line with the exit
///   status (128+signal when killed) once the command ended. Both appended, in either order;
/// - `KEY.follower`: the pid of a follower that did not start the command, to wake at the
///   end (SIGWINCH), made only when one reconnects.
/// The supervisor is a subshell, orphaned at once (nothing done to the connection's processes
/// reaches it), with SIGHUP ignored, as `nohup` would.
///
/// Verbs (`$2`; `$3` is the key, `$1` the script itself):
/// - `start MODE ARG…`: starts the command (MODE `line`: ARG is a line for the user's
///   `$SHELL`, run by this `sh` when that is `/bin/sh`; `here`: a line for this shell, which
///   is the user's login shell; `argv`: ARG… are the words; `merge-`: stderr into stdout), and answers `started`. A key started already answers `started`
///   again without running anything: a start repeated (its answer was lost) is harmless.
///   `error REASON` when it cannot.
/// - `run OUT ERR MODE ARG…`: `start`, then `follow OUT ERR`, in one request (exit 255 if it
///   could not start: `check` and `start` then say why).
/// - `follow OUT ERR`: writes the streams from those offsets on, stdout to stdout and stderr
///   to stderr, as they grow, and exits with the command's status once it ended and all is
///   written. 255 means "ask `check`" (the status itself was 255, the command was lost, or
///   its files are gone). Its stdin is held by the local supervisor (`--ticks`): the first
///   line is its hello, an empty line a tick (when to look for more output: the clock is
///   the local supervisor's, so that no `sleep` runs here), `s` a stop (SIGTERM, then
///   SIGKILL), and end of file after a stop means SIGKILL; end of file otherwise only ends
///   the following: the command goes on.
/// - `check`: answers `running OUT ERR`, `ended STATUS OUT ERR`, `lost OUT ERR` (no status,
///   and the supervisor is gone: the host restarted, or it was killed) or `gone` (no such
///   command), with the streams' sizes.
/// - `clean [KEY…]`: for this key and any more, ends the command if it still runs (TERM, up
///   to 5 s, KILL) and removes its files; answers `cleaned`.
///
/// Every answer is one line on stdout; the script's own errors never reach the job's
/// streams. No single quote and no backslash in it (but in its comments, which are not
/// sent): it is sent in single quotes, which fish and csh read too.
enum DetachedCommand {
    /// The script, whole, as sent: without its comments, which are for the reader of this file.
    static let script = sections.map(\.text).joined(separator: "\n")

    /// What a verb needs of it: every request carries its script, and sshd and the host's
    /// shell handle every byte of it.
    static func script(for verb: String) -> String {
        let needs: Set<String>
        switch verb {
        case "run": needs = ["common", "begin", "follow", "dispatch"]
        case "start": needs = ["common", "begin", "dispatch"]
        case "follow": needs = ["common", "follow", "dispatch"]
        default: needs = ["common", "dispatch"]
        }
        return sections.filter { needs.contains($0.name) }.map(\.text).joined(separator: "\n")
    }

    /// The source's parts (`#= NAME` lines begin them), without comments.
    private static let sections: [(name: String, text: String)] = {
        var result: [(name: String, text: String)] = []
        for line in source.split(separator: "\n") {
            let code = line.drop { $0 == " " }
            if code.hasPrefix("#= ") {
                result.append((String(code.dropFirst(3)), ""))
            } else if !code.hasPrefix("#"), let last = result.indices.last {
                result[last].text += (result[last].text.isEmpty ? "" : "\n") + line
            }
        }
        return result
    }()

    private static let source = """
        #= common
        umask 077
        d=${XDG_STATE_HOME:-$HOME/.local/state}/job/detached/$3
        v=$2 n=
        shift 3
        alive() { [ -n "$u" ] && kill -0 "$u" 2>/dev/null; }
        # A signal to the command's process group and session (which the supervisor shares),
        # then SIGCONT, so that a stopped process can act on it.
        hit() {
          kill -"$1" -- "-$g" 2>/dev/null
          command -v pkill >/dev/null 2>&1 && pkill -"$1" -s "$g" 2>/dev/null
          [ "$1" = KILL ] || kill -CONT -- "-$g" 2>/dev/null
        }
        # A stream's size in $z: no process for an empty one.
        size() { z=0; [ ! -s "$d.$1" ] || z=$(($(wc -c <"$d.$1"))); }
        sizes() { size out; y=$z; size err; }
        # KEY.pid: the supervisor's pid in $p, its group in $g and, while it runs on this boot
        # of the host, its pid in $u; and the command's exit status in $r once it ended. Two
        # lines, appended: the status may come first (a command that ends before its
        # supervisor's line is written), and a line is taken only once written whole.
        ids() {
          p= g= c= r=
          { while read -r w1 w2 w3; do if [ -n "$w2" ]; then p=$w1 g=$w2 c=$w3; else r=$w1; fi; done <"$d.pid"; } 2>/dev/null
          [ -n "$g" ] || return 1
          u=$p
          [ -n "$c" ] || return 0
          # The host's boot id, read once (dash reads a byte per system call).
          [ -n "$n" ] || { read -r n </proc/sys/kernel/random/boot_id; } 2>/dev/null || n=-
          [ "$n" = - ] || [ "$n" = "$c" ] || u=
        }
        ended() { ids && [ -n "$r" ]; }
        #= begin
        begin() {
          [ ! -s "$d.pid" ] || return 0
          if [ ! -d "${d%/*}" ]; then
            { mkdir -p "${d%/*}" && chmod 700 "${d%/*}"; } 2>/dev/null || { why="cannot create ${d%/*}"; return 1; }
          fi
          b=
          { read -r b </proc/sys/kernel/random/boot_id; } 2>/dev/null
          : >>"$d.out" && : >>"$d.err" || { why="cannot write in ${d%/*}"; return 1; }
          # The supervisor is a subshell of a subshell that ends at once: nobody's child
          # here, so that nothing done to this connection's processes reaches it. It keeps
          # the session and process group sshd made for this request, alone in them once
          # the request is answered: the command's, which a stop signals. KEY.pid is opened
          # once, for both: its line here, the status when the command ends.
          (exec 4>>"$d.pid" && { supervise "$a" "$@" & echo "$! $$ $b" >&4; })
          [ -s "$d.pid" ] || { why="the command could not be started"; return 1; }
        }
        supervise() {
          # Not redirections of the call: sh would keep copies of the connection's
          # descriptors meanwhile, which would hold the request open.
          exec </dev/null >/dev/null 2>&1
          trap "" HUP
          a=$1 m=$2
          shift 2
          # A line for /bin/sh runs in a subshell of this one, with no program to start; the
          # user's other shells get it as ssh would give it to them.
          case ${SHELL:-/bin/sh} in /bin/sh | /usr/bin/sh) h= ;; *) h=$SHELL ;; esac
          e=$d.err
          case $m in merge-*) e=$d.out ;; esac
          case $m in *here) h= ;; esac
          case $m in
          *line | *here) if [ -z "$h" ]; then (cd && eval "$1"); else (cd && exec "$h" -c "$1"); fi </dev/null >>"$d.out" 2>>"$e" 3<&- 4>&- & ;;
          *) (cd && exec "$@") </dev/null >>"$d.out" 2>>"$e" 3<&- 4>&- & ;;
          esac
          c=$!
          trap "" INT TERM
          wait $c
          r=$?
          echo $r >&4
          # The follower that started it hears of the end at once: a line in its stdin,
          # which this one holds too (fd 3; through /proc, where there is one: an end line
          # wakes every shell's read, SIGWINCH only some), else SIGWINCH. One that came
          # later is sent SIGWINCH, and else finds it at its next tick.
          [ -z "$a" ] || { echo e >/proc/self/fd/3; } 2>/dev/null || kill -WINCH "$a" 2>/dev/null
          { read -r f <"$d.follower" && [ -n "$f" ] && kill -WINCH "$f"; } 2>/dev/null
        }
        #= follow
        # The request's stdin (fd 3) is held by the local supervisor: its first line is the
        # hello, then an empty line is a tick (the follower's clock: no `sleep` here), "s" a
        # stop (SIGTERM, then SIGKILL), "e" the supervisor's end; its end, after a stop, is
        # the stop's SIGKILL, else only the end of following: the command goes on.
        follow() {
          ids || exit 255
          o=$1 e=$2
          # The supervisor knows a follower that started it; a later one says where it is.
          k=
          [ "$3" = - ] || { k=$d.follower; echo $$ >"$k"; }
          # A stop's SIGTERM reaches the follower that started the command (its group is
          # the command's): it goes on, to bring the status.
          trap "x=1" WINCH
          trap "" TERM
          t=
          while :; do
            x= f=0
            if ended; then f=1; elif ! alive; then ended && f=1 || f=2; fi
            size out
            if [ "$z" -gt "$o" ]; then tail -c +$((o + 1)) "$d.out" | head -c $((z - o)); o=$z; fi
            size err
            if [ "$z" -gt "$e" ]; then tail -c +$((e + 1)) "$d.err" | head -c $((z - e)) >&2; e=$z; fi
            if [ $f != 0 ]; then
              [ -z "$k" ] || : >"$k"
              [ $f = 1 ] && exit "$r"
              exit 255
            fi
            # A SIGWINCH since the look above (x) is not waited through; one during the
            # read ends it in the shells whose read a trapped signal interrupts, with what
            # it had read of a line so far.
            l=
            if [ -z "$x" ] && ! read -r l <&3 && [ -z "$x" ] && [ -z "$l" ]; then
              [ -z "$t" ] || hit KILL
              [ -z "$k" ] || : >"$k"
              exit 255
            fi
            case $l in s*) if [ -z "$t" ]; then hit TERM; t=1; else hit KILL; fi ;; esac
          done
        }
        #= dispatch
        case $v in
        run)
          o=$1 e=$2 a=$$
          shift 2
          exec 3<&0 </dev/null
          begin "$@" || exit 255
          follow "$o" "$e" -
          ;;
        start)
          a=
          if begin "$@"; then echo started; else echo "error $why"; fi
          ;;
        follow) exec 3<&0 </dev/null; follow "$1" "$2" ;;
        check)
          ids || { echo gone; exit 0; }
          # The status before the sizes: once it is there, the sizes are the last.
          if [ -n "$r" ] || { ! alive && ended; }; then sizes; echo "ended $r $y $z"
          elif alive; then sizes; echo "running $y $z"
          else sizes; echo "lost $y $z"
          fi
          ;;
        clean)
          # The key, then any more: the removed jobs of one host in one request.
          for k in "${d##*/}" "$@"; do
            d=${d%/*}/$k
            if ids && ! ended && alive; then
              hit TERM
              i=0
              while [ $i -lt 50 ] && ! ended && alive; do sleep 0.1 2>/dev/null || sleep 1; i=$((i + 1)); done
              hit KILL
            fi
            rm -f "$d.pid" "$d.out" "$d.err" "$d.follower" || { echo "error cannot remove $d.*"; exit 0; }
          done
          echo cleaned
          ;;
        *) echo "error unknown request $v" ;;
        esac
        """

    /// The command line for the login shell: `/bin/sh` runs the script (which any login shell
    /// can be asked to do: see `RemoteCommand.Form.viaSh`), with the script itself as `$1`, so
    /// that the start can hand it on to the supervisor it starts.
    /// A POSIX login shell (`direct`) runs it itself, one program start less.
    static func line(_ verb: String, key: String, _ arguments: [String] = [], form: RemoteCommand.Form = .viaSh) -> String {
        let script = quotedScripts[verb] ?? RemoteCommand.quote(script(for: verb))
        let rest = ([verb, key] + arguments).map(RemoteCommand.quote).joined(separator: " ")
        switch form {
        case .direct:
            return "set -- \(script) \(rest)\neval \"$1\""
        case .viaSh:
            return "exec /bin/sh -c \(RemoteCommand.quote("eval \"$1\"")) sh \(script) \(rest)"
        }
    }

    /// Each verb's script, quoted once: every request carries one.
    private static let quotedScripts: [String: String] = Dictionary(
        uniqueKeysWithValues: ["run", "start", "follow", "check", "clean"].map { ($0, RemoteCommand.quote(script(for: $0))) })

    static func start(key: String, command: ProcessSpec.Command, mergeError: Bool, form: RemoteCommand.Form) -> String {
        line("start", key: key, commandWords(command, mergeError: mergeError, form: form), form: form)
    }

    /// `run`: the start (if it was not yet), then the follower, in one request.
    static func run(
        key: String, command: ProcessSpec.Command, mergeError: Bool, from offsets: StreamOffsets, form: RemoteCommand.Form
    ) -> String {
        line("run", key: key, [String(offsets.output), String(offsets.error)] + commandWords(command, mergeError: mergeError, form: form), form: form)
    }

    /// A line run by the login shell itself (`direct`) is the user's shell's already: `here`,
    /// evaluated by it, as an attached job's is, with no second start of that shell.
    private static func commandWords(_ command: ProcessSpec.Command, mergeError: Bool, form: RemoteCommand.Form) -> [String] {
        let merge = mergeError ? "merge-" : ""
        switch command {
        case .shell(let text): return [merge + (form == .direct ? "here" : "line"), text]
        case .argv(let words): return [merge + "argv"] + words
        }
    }

    static func follow(key: String, from offsets: StreamOffsets, form: RemoteCommand.Form) -> String {
        line("follow", key: key, [String(offsets.output), String(offsets.error)], form: form)
    }

    static func check(key: String, form: RemoteCommand.Form) -> String { line("check", key: key, form: form) }
    static func clean(key: String, form: RemoteCommand.Form = .viaSh) -> String { clean(keys: [key], form: form) }

    /// `clean` of several jobs of one host, in one request (`keys` not empty).
    static func clean(keys: [String], form: RemoteCommand.Form = .viaSh) -> String {
        line("clean", key: keys.first ?? "", Array(keys.dropFirst()), form: form)
    }

    /// The follower's exit status that means "ask `check`" rather than the command's own.
    static let askCheck: Int32 = 255

    /// What `check` answered.
    enum State: Equatable {
        case running(StreamOffsets)
        case ended(status: Int32, StreamOffsets)
        case lost(StreamOffsets)
        case gone
    }

    static func parse(check answer: String) -> State? {
        let words = answer.split(whereSeparator: \.isWhitespace)
        func offsets(_ at: Int) -> StreamOffsets? {
            guard words.count == at + 2, let out = Int(words[at]), let err = Int(words[at + 1]) else { return nil }
            return StreamOffsets(output: out, error: err)
        }
        switch words.first {
        case "running": return offsets(1).map { .running($0) }
        case "ended":
            guard words.count > 1, let status = Int32(words[1]) else { return nil }
            return offsets(2).map { .ended(status: status, $0) }
        case "lost": return offsets(1).map { .lost($0) }
        case "gone": return words.count == 1 ? .gone : nil
        default: return nil
        }
    }

    /// `start` and `clean` answer this word, or `error REASON`.
    static func error(in answer: String) -> String? {
        let line = answer.split(separator: "\n").last.map(String.init) ?? ""
        if line.hasPrefix("error ") { return String(line.dropFirst(6)) }
        return nil
    }

    /// Where the files are on the host, for messages (the host's XDG_STATE_HOME may move them).
    static func filesHint(_ key: String) -> String { "~/.local/state/job/detached/\(key).*" }

    /// The files' name on the host: the child's instance id and its attempt, so that a
    /// retried child runs anew, and a start repeated for the same attempt finds its own.
    static func key(instanceId: UUID, attempt: Int) -> String {
        "\(instanceId.uuidString.lowercased())-\(attempt)"
    }
}

/// How many bytes of each stream: where a follower goes on from.
struct StreamOffsets: Sendable, Equatable {
    var output: Int
    var error: Int

    static let zero = StreamOffsets(output: 0, error: 0)
}
