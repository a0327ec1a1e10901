// jobkit-supervisor: runs one job and records it in a directory, so that the job does not
// depend on the engine that started it (the role of containerd's shim or podman's conmon).
// It is C, not Swift, because it is started once per job: it must start in a fraction of a
// millisecond and use no memory worth mentioning.
//
// Usage: jobkit-supervisor [--hold-stdin] [--stdin] [--merge-error] [--append] [--attempt N] [--mux SOCKET COMMAND]
//                          DIR ID CWD PROGRAM [ARG...]
//   --hold-stdin: the job's stdin is a pipe that this process holds open for as long as it
//   lives, writing only a line when asked to stop (a remote job's ssh forwards both, and its
//   end of file, to the remote command's watcher, which then ends the remote process group;
//   see supervise.c); otherwise /dev/null.
//   --merge-error: the job's stderr is its stdout (2>&1).
//   --append: the job's output goes after what its earlier attempts wrote.
//   --attempt N: which run of the job this is (recorded with its end; default 1).
//   --null-output: the job's stdout and stderr are /dev/null (a session's shell).
//   --session: DIR ID SESSION_DIR SHELL_PID SESSION_SUPERVISOR_PID SESSION_SLOTS SESSION_ID
//   COMMAND instead: job ID is COMMAND run in a session's shell (session.c).
//   --channel-command: DIR ID CHANNEL_DIR SESSION_SUPERVISOR_PID COMMAND instead: job ID is
//   COMMAND (printf escapes) run in a remote session's shell through its channel (channel.c).
//   --channel CHANNEL_DIR: the job (a remote session's ssh) has the FIFOs CHANNEL_DIR/in, out
//   and err as its stdin, stdout and stderr (with --hold-stdin: this process holds a writer of
//   its stdin, and writes a line there when asked to stop).
//   --mux: run COMMAND through the ssh master listening at SOCKET, as ssh would through it
//   (mux.c); PROGRAM (ssh) runs only if no master answers there.
//   fd 3 (optional): holds a lock on byte ID of DIR/locks; held until this process exits,
//   so that an engine can tell a live supervisor from a dead one without trusting a pid.
//   environment: the job's environment, passed on to PROGRAM unchanged.
//
// Or: jobkit-supervisor --zygote DIR, with fd 3 a stream socket to the engine: a fork server
// of supervisors (zygote.c).
// Or: jobkit-supervisor --ask SOCKET COMMAND: COMMAND through the master at SOCKET, its
// stdout this one's, exiting with its status (ask.c).
//
// Writes (layouts: jobkit_abi.h), creating no file for a job that prints nothing, since
// creating inodes is most of the cost of a short job:
//   DIR/ID.stdout, DIR/ID.stderr  the job's two streams, byte for byte, once there is any
//   DIR/ID.index   one record per chunk read: time, offset, length, stream
//   DIR/../slots   the job's slot: its pids once started, how it ended, each half written
//                  with one pwrite(2)
#include "supervisor.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--zygote") == 0) return zygote(argv[2]);
    if (argc == 4 && strcmp(argv[1], "--ask") == 0) return ask_master(argv[2], argv[3]);
    unsigned flags = 0;
    const char *mux_socket = NULL, *mux_command = NULL;
    int stdin_fd = -1;
    for (;;) {
        if (argc > 1 && strcmp(argv[1], "--hold-stdin") == 0) {
            flags |= JOBKIT_REQUEST_HOLD_STDIN;
            argv++;
            argc--;
        } else if (argc > 1 && strcmp(argv[1], "--stdin") == 0) {
            // The job's stdin is this process's own (see jobkit_spawn_supervisor).
            stdin_fd = fcntl(0, F_DUPFD_CLOEXEC, 3);
            int null = open("/dev/null", O_RDONLY);
            if (null > 0) {
                dup2(null, 0);
                close(null);
            }
            argv++;
            argc--;
        } else if (argc > 1 && strcmp(argv[1], "--ticks") == 0) {
            flags |= JOBKIT_REQUEST_TICKS;
            argv++;
            argc--;
        } else if (argc > 1 && strcmp(argv[1], "--null-output") == 0) {
            flags |= JOBKIT_REQUEST_NULL_OUTPUT;
            argv++;
            argc--;
        } else if (argc > 1 && strcmp(argv[1], "--session") == 0) {
            flags |= JOBKIT_REQUEST_SESSION;
            argv++;
            argc--;
        } else if (argc > 1 && strcmp(argv[1], "--channel-command") == 0) {
            flags |= JOBKIT_REQUEST_CHANNEL;
            argv++;
            argc--;
        } else if (argc > 2 && strcmp(argv[1], "--channel") == 0) {
            channel_dir = argv[2];
            argv += 2;
            argc -= 2;
        } else if (argc > 1 && strcmp(argv[1], "--merge-error") == 0) {
            flags |= JOBKIT_REQUEST_MERGE_ERROR;
            argv++;
            argc--;
        } else if (argc > 1 && strcmp(argv[1], "--append") == 0) {
            flags |= JOBKIT_REQUEST_APPEND;
            argv++;
            argc--;
        } else if (argc > 2 && strcmp(argv[1], "--attempt") == 0) {
            long attempt = strtol(argv[2], NULL, 10);
            if (attempt < 1 || attempt > 65535) return 64;
            job_attempt = (unsigned)attempt;
            argv += 2;
            argc -= 2;
        } else if (argc > 3 && strcmp(argv[1], "--mux") == 0) {
            mux_socket = argv[2];
            mux_command = argv[3];
            argv += 3;
            argc -= 3;
        } else {
            break;
        }
    }
    if (argc == 6 && (flags & JOBKIT_REQUEST_CHANNEL)) {
        long long command_id = strtoll(argv[2], NULL, 10);
        if (command_id <= 0) return 64;
        run_on_channel(argv[1], command_id, argv + 3, flags);
    }
    if (argc < 5) {
        static const char usage[] =
            "usage: jobkit-supervisor [--hold-stdin [--ticks]] [--stdin] [--merge-error] [--append] [--attempt N] [--mux SOCKET COMMAND]\n"
            "                         [--null-output] DIR ID CWD PROGRAM [ARG...]\n"
            "       jobkit-supervisor [--append] [--attempt N] --session DIR ID SESSION_DIR SHELL_PID\n"
            "                         SESSION_SUPERVISOR_PID SESSION_SLOTS SESSION_ID COMMAND\n"
            "       jobkit-supervisor --channel-command DIR ID CHANNEL_DIR SESSION_SUPERVISOR_PID COMMAND\n"
            "       jobkit-supervisor --zygote DIR\n";
        write_all(2, usage, sizeof usage - 1);
        return 64;
    }
    long long id = strtoll(argv[2], NULL, 10);
    if (id <= 0) return 64;
    // DIR ID SESSION_DIR SHELL_PID SESSION_SUPERVISOR_PID SESSION_SLOTS SESSION_ID COMMAND
    if (flags & JOBKIT_REQUEST_SESSION) {
        if (argc != 9) return 64;
        run_in_session(argv[1], id, argv + 3, flags);
    }
    supervise(argv[1], id, argv[3], argv + 4, environ, flags, mux_socket, mux_command, stdin_fd);
}
