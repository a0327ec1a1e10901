// jobkit-supervisor's parts, and what they share. The program and its forms are described
// in main.c; the layouts it writes are in jobkit_abi.h (Sources/CJobKitSystem/include), which
// the engine reads through too.
#ifndef JOBKIT_SUPERVISOR_H
#define JOBKIT_SUPERVISOR_H

#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

#include "jobkit_abi.h"

extern char **environ;

enum { LOCK_FD = 3 };
enum { CHUNK = 1 << 20 };

// ---- shared.c: what every supervisor opens once, and how it records its end ----

// The jobs directory, the slots file beside it and /dev/null: opened once by the zygote,
// whose forked supervisors inherit them, or by a supervisor started on its own.
extern int dir_fd;
extern int slots_fd;
extern int null_fd;
extern long long job_id;
// Which run of the job this is (1, or more when it is retried in place).
extern unsigned job_attempt;
// The job's slot as this supervisor writes it: the started half once the job started, both
// halves at the end (finish).
extern struct jobkit_slot job_slot;

int64_t now_ns(void);
int64_t now_ms(void);
// A pidfd of `pid` (its end polls readable), or -1.
int pidfd_of(pid_t pid);
int write_all(int fd, const void *buf, size_t len);
int read_all(int fd, void *buf, size_t len);
// Sends `len` bytes in one message, with descriptor `fd` attached unless it is -1. The number
// of bytes sent, or -1.
ssize_t send_with_fd(int sock, const void *data, size_t len, int fd);
// Splits a request's strings (`length` bytes: the cwd, `argc` arguments and `envc`
// environment entries, each NUL-terminated; jobkit_abi.h) into `words`, which has room for
// argc + envc + 3: the cwd, then argv from words + 1 and envp from words + 2 + argc, each
// NULL-terminated. 0, or -1 when there are not that many strings.
int split_request(char *strings, uint32_t length, uint32_t argc, uint32_t envc, char **words);
// Opens what every supervisor needs (see dir_fd), unless it was inherited. 0 or -1.
int open_shared(const char *dir);
// The signals a supervisor takes from its signalfd. They are blocked from the supervisor's
// birth (by whoever spawns it, and in the zygote that forks it), so that one sent before it
// is ready waits for it rather than kills it.
void handled_signals(sigset_t *set);
// What every supervisor does first: job `id`'s globals from the request's flags, a session of
// its own, the lock kept from the job, `handled` (the signals it takes from a signalfd)
// blocked, SIGPIPE ignored, and the shared descriptors open (or exit 70).
void begin_supervising(const char *dir, long long id, unsigned flags, sigset_t *handled);
// Records how the job ended in its slot, with what its processes used (when known), and
// goes on: a lane's next job follows.
struct rusage;
void record_end(uint8_t kind, uint8_t stage, int code, int64_t end_ns, const struct rusage *usage);
// Records how the job ended in its slot, with what its processes used, and exits.
_Noreturn void finish(uint8_t kind, uint8_t stage, int code, int64_t end_ns);
_Noreturn void fail(uint8_t stage, int err);

// ---- output.c: a job's two streams, from their pipes into their files ----

struct stream {
    int pipe_fd;      // read end; -1 once at end of file
    int file_fd;      // the stream's data file; -1 until its first byte arrives
    const char *name;
    uint64_t offset;  // bytes written to file_fd so far
    uint8_t kind;     // JOBKIT_STREAM_OUTPUT or JOBKIT_STREAM_ERROR
};

// Output goes after what the job's earlier attempts wrote (JOBKIT_REQUEST_APPEND): set before
// the first take.
extern int append_output;

// Moves what the pipe holds into the stream's file, recording it in the index; at end of
// file the pipe is closed (pipe_fd -1). 0 at end of file, -1 when there was nothing to read
// after all, else the bytes taken.
ssize_t take(struct stream *s);

// Stores bytes the supervisor has in memory as the stream's next (a remote session's command,
// whose output comes framed on the session's channel: channel.c).
void put(struct stream *s, const char *data, size_t n);

// Bytes of output that could not be stored, and the first errno that said why: written to
// the slot at the end, for the engine to fail the job with.
extern uint64_t lost_bytes;
extern int lost_errno;
// Forgets the last job's index and losses: a lane's next job writes files of its own.
void reset_output(void);
// How many records the job's index holds, plus one; 0 when not known here.
uint32_t output_records(void);

// ---- mux.c: a session through an ssh ControlMaster's socket (OpenSSH's PROTOCOL.mux) ----

enum { MUX_MAX_PACKET = 256 * 1024 };

struct mux {
    int fd;
    size_t have;                       // bytes in `in`
    unsigned char in[MUX_MAX_PACKET];  // what was read and not yet taken, whole packets first
};

enum { MUX_OPENED = 0, MUX_USE_SSH = 1, MUX_LOST = 2, MUX_STOPPED = 3 };

// Opens a session running `command` through the master at `socket_path`, with these
// descriptors as its stdin, stdout and stderr; see mux.c for what each answer means.
int mux_open(struct mux *m, const char *socket_path, const char *command, char **envp, int in_fd, int out_fd,
             int err_fd, int signal_fd, int *stop);
// Reads what the socket has, once poll said it has something. -1 at end of file or on an error.
int mux_fill(struct mux *m);
// Takes the exit status from the master's messages read so far: 1 and `*status` when the
// exit message came.
int mux_exit_status(struct mux *m, int *status);

// ---- ask.c: one request to a host through its master (jobkit-supervisor --ask) ----

// Runs COMMAND through the master at `socket_path`, its stdout this process's; the command's
// exit status, ASK_NO_MASTER when none answers (ask ssh instead), ASK_LOST when it went away.
enum { ASK_NO_MASTER = 254, ASK_LOST = 255 };
int ask_master(const char *socket_path, const char *command);

// ---- descendants.c: every process of the job, also those that left its group ----

// Makes this process the subreaper of what it starts. 0 or -1.
int become_subreaper(void);
// Sends `signo` (and SIGCONT after it, unless it is SIGKILL or SIGSTOP) to each living
// descendant not in process group `group`; how many living descendants there were, in the
// group or not.
int signal_descendants(pid_t group, int signo);
// SIGKILL to the group and to every descendant, until none is left.
void kill_descendants(pid_t group);
// Reaps the descendants re-parented to this process that have ended, but `main_pid`.
void reap_orphans(pid_t main_pid);
// A session's command (session.c): notes the processes below the shell and the session's
// supervisor before the command begins, and later sends `signo` to those that came since and
// to their descendants (SIGCONT after it, but for SIGKILL and SIGSTOP); how many lived.
void remember_existing(pid_t shell, pid_t session_supervisor);
int signal_command(pid_t shell, pid_t session_supervisor, int signo);

// ---- supervise.c, zygote.c: the two ways the program runs ----

// Runs job `id` (argv, in cwd, with envp) and records it; never returns. `flags`:
// JOBKIT_REQUEST_HOLD_STDIN, JOBKIT_REQUEST_MERGE_ERROR, JOBKIT_REQUEST_APPEND. With `mux_socket`, the job is
// `mux_command` run through the ssh master at that socket (see mux_open), and argv (ssh
// itself) runs only when no master answers there.
// `stdin_fd` (if >= 0) is the job's stdin (`job start --stdin`), else /dev/null.
_Noreturn void supervise(const char *dir, long long id, const char *cwd, char **job_argv, char **envp,
                         unsigned flags, const char *mux_socket, const char *mux_command, int stdin_fd);

// Runs command `id` in a session's shell (JOBKIT_REQUEST_SESSION; see session.c for `args`)
// and records it; never returns.
_Noreturn void run_in_session(const char *jobs_dir, long long id, char **args, unsigned flags);

// Runs command `id` in a remote session's shell, through the session's channel
// (JOBKIT_REQUEST_CHANNEL; see channel.c for `args`), and records it; never returns.
_Noreturn void run_on_channel(const char *jobs_dir, long long id, char **args, unsigned flags);

// A remote session's supervisor (--channel DIR): the channel's stdin, stdout and stderr are
// the FIFOs DIR/in, DIR/out and DIR/err, which its commands' supervisors write and read
// (channel.c); NULL for every other supervisor.
extern const char *channel_dir;
// Opens them for the session's channel: its stdin, stdout, stderr, and a writer of its stdin
// that this process keeps (a stop's line goes there, and its end is the session's). 0 or -1.
int open_channel(const char *dir, int *in_read, int *in_write, int *out, int *err);

// Serves fork requests on fd 3 until the engine's end closes; the exit status.
int zygote(const char *dir);

// ---- lane.c: a foreach's lane, a supervisor that runs one job after another ----

// The lane's pipes (JOBKIT_REQUEST_LANE), -1 for a supervisor of one job.
extern int lane_request_fd;
extern int lane_report_fd;
// The next job's request, taken from the request pipe: its cwd, argv, envp and flags, its id
// and attempt in the globals. Reports the last job's end first (and releases its lock). Exits
// instead when the engine has gone, the request pipe is closed, the last job left processes
// behind (a lane runs one job's processes at a time) or something fails.
struct lane_job {
    char *cwd;
    char **argv;
    char **envp;
    unsigned flags;
};
void lane_next(struct lane_job *next, int signal_fd);
// Takes the lock of the job just read (see lane_next) and checks that the engine is still
// there to hear of it: else exits, the job not started.
void lane_begin(void);
// Takes an addressed signal (JOBKIT_LANE_SIGNAL): the signal number it carries when it is
// for the current job, else 0.
int lane_signal(const void *siginfo);

#endif
