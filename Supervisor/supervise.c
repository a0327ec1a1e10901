// One job, supervised: started in its own session, its output taken into files, signals
// passed on, and its end recorded in its slot. Every event of its life has a handler below.
//
// Signals: SIGTERM, SIGINT and SIGHUP are passed on to the job's process group and to every
// process descended from the job that left it (followed by SIGCONT so that a stopped job can
// act on them); SIGTSTP stops them all with SIGSTOP and SIGCONT continues them (job suspend,
// job resume); SIGUSR1 sends them all SIGKILL, until none is left, and then the job ends as
// soon as its main process has, even if something else still holds its output. With --hold-stdin (a remote job), SIGTERM, SIGINT and SIGHUP write a line to the
// job's stdin instead, which the host's wrapper takes as "stop" (see RemoteCommand in
// JobKit), and SIGUSR1 cuts the connection. With --ticks as well (a detached job's follower,
// see DetachedCommand in JobKit) that stdin also carries the follower's clock: an empty line
// now and then, sooner while output comes, so that the host needs no `sleep` of its own to
// look for more; a stop is then the line "s".
#include "supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

// Why a job could not start: what failed (JOBKIT_STAGE_CHDIR or _EXEC) and errno.
// Volatile: the vfork child writes it, which the compiler cannot see.
struct spawn_error {
    volatile int err;
    volatile uint8_t stage;
};

// In the vfork child: says what failed, for the parent to read, and ends.
static _Noreturn void child_failed(struct spawn_error *error, uint8_t stage) {
    error->err = errno;
    error->stage = stage;
    _exit(127);
}

// Starts the job with vfork, which shares this process's memory until the exec, as
// posix_spawn does, but without what makes posix_spawn cost ~140 system calls here: glibc's
// child resets the disposition of every signal one by one (this process installs no handler,
// so only SIGPIPE's, ignored here, needs it), and checks each descriptor against the limit.
// The child writes a failure into `error` (shared memory) before it exits; vfork returns
// once it has exec'd or exited.
static pid_t spawn_job(char **argv, char **envp, const char *cwd, int in_fd, int out_fd, int err_fd,
                       struct spawn_error *error) {
    sigset_t none;
    sigemptyset(&none);
    pid_t pid = vfork();
    if (pid != 0) return pid;
    // In the child: only system calls, nothing that allocates or takes a lock.
    setsid();
    if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0) child_failed(error, JOBKIT_STAGE_EXEC);
    if (chdir(cwd) != 0) child_failed(error, JOBKIT_STAGE_CHDIR);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGPIPE, &dfl, NULL);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execvpe(argv[0], argv, envp);
    child_failed(error, JOBKIT_STAGE_EXEC);
}

// Sends `signo` to the job's process group, and SIGCONT after it unless it is SIGKILL, so
// that a stopped job can act on it.
static void signal_group(pid_t pid, int signo) {
    kill(-pid, signo);
    if (signo != SIGKILL) kill(-pid, SIGCONT);
}

// A job being supervised: what the event handlers below share.
struct supervision {
    int hold_stdin;
    // --ticks: when the next empty line is due, and how many went by without output.
    int ticks;
    int idle_ticks;
    int64_t next_tick_ns;
    // The job's stdin when given one (`job start --stdin`), else -1: /dev/null.
    int stdin_fd;
    // The held stdin (-1, -1 without --hold-stdin). The write end stays open until the job
    // ends; the read end too, only to see whether a stop's line has been read.
    int in_pipe[2];
    int signal_fd;
    // The session through a master, or NULL: then `pid` is the job's main process.
    struct mux *mux;
    pid_t pid;
    struct stream streams[2];
    int exited;
    int killed;
    siginfo_t exit_info;
    int64_t end_ns;
    // The remote session is known to be open (see session_open).
    int open;
    // Set to the signal to record when a session through a master is to be cut now.
    int cut;
};

// In .bss, like the output's scratch buffer: only a remote job through a master touches it.
static struct mux mux_session;

// Starts the job: through the master when one answers, else as a process. Records its end
// and exits if it cannot start, or if a stop came while it was being asked for.
static void start_job(struct supervision *s, char **job_argv, char **envp, const char *cwd, const char *mux_socket,
                      const char *mux_command, int out_fd, int err_fd) {
    int in_fd = s->hold_stdin ? s->in_pipe[0] : s->stdin_fd >= 0 ? s->stdin_fd : null_fd;
    if (mux_socket != NULL) {
        int stop = 0;
        switch (mux_open(&mux_session, mux_socket, mux_command, envp, in_fd, out_fd, err_fd, s->signal_fd, &stop)) {
        case MUX_OPENED:
            s->mux = &mux_session;
            return;
        case MUX_USE_SSH:
            break;
        case MUX_LOST:
            // As ssh ends when its master goes: the engine tells a lost connection by it.
            finish(JOBKIT_ENDED_EXIT, JOBKIT_STAGE_NONE, 255, now_ns());
        case MUX_STOPPED:
        default:
            finish(JOBKIT_ENDED_SIGNAL, JOBKIT_STAGE_NONE, stop, now_ns());
        }
    }
    struct spawn_error error = {0, JOBKIT_STAGE_NONE};
    s->pid = spawn_job(job_argv, envp, cwd, in_fd, out_fd, err_fd, &error);
    if (s->pid < 0) fail(JOBKIT_STAGE_SUPERVISOR, errno);
    if (error.stage != JOBKIT_STAGE_NONE) {
        int status;
        waitpid(s->pid, &status, 0);
        fail(error.stage, error.err);
    }
}

static void ended(struct supervision *s, int code, int status) {
    s->exit_info.si_code = code;
    s->exit_info.si_status = status;
    s->end_ns = now_ns();
}

// The master says how the command exited, then closes the socket once the session's channel
// is closed; a socket closed without it is a master gone.
static void on_master(struct supervision *s) {
    int open = mux_fill(s->mux) == 0;
    int status;
    if (mux_exit_status(s->mux, &status) && s->exit_info.si_code == 0) ended(s, CLD_EXITED, status);
    if (!open) {
        s->exited = 1;
        if (s->exit_info.si_code == 0) ended(s, CLD_EXITED, 255);
    }
}

// Whether the session of a remote job run by ssh is open: ssh reads its stdin only once it is,
// and the first thing in that stdin is the supervisor's hello (see supervise), so a hello
// still in the pipe means ssh is still connecting. Through a master it is open already. Once
// seen open it stays so (a stop line may be in the pipe then).
static int session_open(struct supervision *s) {
    int unread = 0;
    if (!s->open) s->open = s->mux != NULL || ioctl(s->in_pipe[0], FIONREAD, &unread) != 0 || unread == 0;
    return s->open;
}

// A stop signal. A remote job: ssh forwards no signal, but it forwards what its stdin says.
// A line asks the host's wrapper to send SIGTERM to the command's process group; the job then
// ends when the command does, or, once the stop's grace is over (SIGUSR1), when the session
// is cut and the wrapper kills the group. A job still connecting has no command to ask: the
// connection attempt is what is stopped.
static void on_stop(struct supervision *s, int signo) {
    if (signo == SIGUSR1) s->killed = 1;
    if (s->hold_stdin && signo != SIGUSR1) {
        if (!session_open(s)) {
            signal_group(s->pid, SIGTERM);
        } else if (s->in_pipe[1] >= 0) {
            if (s->ticks) write_all(s->in_pipe[1], "s\n", 2);
            else write_all(s->in_pipe[1], "\n", 1);
        }
    } else if (s->mux == NULL && signo == SIGUSR1) {
        kill_descendants(s->pid);
    } else if (s->mux == NULL) {
        // Its group, and whatever left the group (or the session) on the way.
        signal_group(s->pid, signo);
        if (!s->hold_stdin) signal_descendants(s->pid, signo);
    } else {
        s->cut = SIGKILL;
    }
}

// `job suspend` (SIGTSTP to this process) stops the job's every process with SIGSTOP, which
// nothing can catch or ignore; `job resume` (SIGCONT) continues them. Twice each: a process
// forked while the first round went through the tree is found by the second. A remote job's
// processes are on its computer, beyond reach of these signals: the engine does not ask.
static void on_suspend(struct supervision *s, int signo) {
    if (s->hold_stdin || s->mux != NULL || s->exited) return;
    int sent = signo == SIGTSTP ? SIGSTOP : SIGCONT;
    for (int round = 0; round < 2; round++) {
        kill(-s->pid, sent);
        signal_descendants(s->pid, sent);
    }
}

static void on_signals(struct supervision *s) {
    struct signalfd_siginfo si;
    int children = 0;
    while (read(s->signal_fd, &si, sizeof si) == sizeof si) {
        int signo = (int)si.ssi_signo;
        // A lane's signal for one of its jobs: taken only by the job it names.
        if (signo == JOBKIT_LANE_SIGNAL && (signo = lane_signal(&si)) == 0) continue;
        if (signo == SIGTERM || signo == SIGINT || signo == SIGHUP || signo == SIGUSR1) on_stop(s, signo);
        if (signo == SIGTSTP || signo == SIGCONT) on_suspend(s, signo);
        if (signo == SIGCHLD) children = 1;
    }
    // Processes the job left behind end as children of this one: reaped here, not left as
    // zombies for its life.
    if (children && !s->hold_stdin && s->mux == NULL) reap_orphans(s->pid);
    if (s->exited || s->mux != NULL) return;
    // Look without reaping: the zombie keeps the job's pid, and so its process group id, from
    // being reused while stragglers may still be signalled.
    siginfo_t info;
    memset(&info, 0, sizeof info);
    if (waitid(P_PID, (id_t)s->pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == s->pid) {
        s->exit_info = info;
        s->exited = 1;
        s->end_ns = now_ns();
    }
}

// Cutting the session (the master closes its channel) makes the host's wrapper kill the
// command's process group, as when a job's ssh is killed.
static void cut_session(struct supervision *s) {
    close(s->mux->fd);
    if (s->in_pipe[1] >= 0) close(s->in_pipe[1]);
    s->in_pipe[1] = -1;
    s->exited = 1;
    ended(s, CLD_KILLED, s->cut);
}

// Killed, and its main process is gone: whatever still holds its output is outside its
// process group (a daemon it left behind; for a remote job, the ssh master). Take what is in
// the pipes now and end: a stop must end. (A bounded take: something outside may go on
// writing for ever.)
static void take_what_is_left(struct supervision *s) {
    for (int i = 0; i < 2; i++) {
        for (int chunks = 0; chunks < 64 && s->streams[i].pipe_fd >= 0; chunks++) {
            if (take(&s->streams[i]) == -1) break;
        }
    }
}

// The follower's clock (--ticks): 50 ms after output, then 50, 100, 200 and 500 ms, then
// every second while none comes. A line is written only once the last one was read: a
// follower busy copying output, or a connection still being made, finds one waiting, not a
// pile of them.
static const int tick_ms[] = {50, 50, 100, 200, 500, 1000};

static int tick_timeout(struct supervision *s) {
    if (!s->ticks || s->exited || s->in_pipe[1] < 0) return -1;
    int64_t left = s->next_tick_ns - now_ns();
    return left <= 0 ? 0 : (int)(left / 1000000) + 1;
}

static void on_clock(struct supervision *s, int output) {
    if (!s->ticks || s->exited || s->in_pipe[1] < 0) return;
    int64_t now = now_ns();
    if (output) {
        s->idle_ticks = 0;
        int64_t soon = now + (int64_t)tick_ms[0] * 1000000;
        if (s->next_tick_ns > soon) s->next_tick_ns = soon;
    }
    if (now < s->next_tick_ns) return;
    int unread = 0;
    int last = (int)(sizeof tick_ms / sizeof tick_ms[0]) - 1;
    if (ioctl(s->in_pipe[0], FIONREAD, &unread) == 0 && unread == 0) {
        write_all(s->in_pipe[1], "\n", 1);
        if (s->idle_ticks < last) s->idle_ticks++;
    }
    s->next_tick_ns = now + (int64_t)tick_ms[s->idle_ticks] * 1000000;
}

// The events of the job until it has ended and let go of its output.
static void watch(struct supervision *s) {
    while (!s->exited || s->streams[0].pipe_fd >= 0 || s->streams[1].pipe_fd >= 0) {
        struct pollfd fds[4] = {
            {.fd = s->streams[0].pipe_fd, .events = POLLIN},
            {.fd = s->streams[1].pipe_fd, .events = POLLIN},
            {.fd = s->signal_fd, .events = POLLIN},
            {.fd = s->mux && !s->exited ? s->mux->fd : -1, .events = POLLIN},
        };
        if (poll(fds, 4, tick_timeout(s)) < 0) {
            if (errno == EINTR) continue;
            fail(JOBKIT_STAGE_SUPERVISOR, errno);
        }
        int output = 0;
        for (int i = 0; i < 2; i++) {
            if (s->streams[i].pipe_fd >= 0 && (fds[i].revents & (POLLIN | POLLHUP | POLLERR))) output |= take(&s->streams[i]) > 0;
        }
        on_clock(s, output);
        if (fds[3].revents & (POLLIN | POLLHUP | POLLERR)) on_master(s);
        if (fds[2].revents & POLLIN) on_signals(s);
        if (s->cut != 0 && s->mux != NULL && !s->exited) cut_session(s);
        if (s->killed && s->exited) {
            take_what_is_left(s);
            return;
        }
    }
}

// One job, from its start to its end: how it ended, when, and (for a lane, whose children's
// totals span its jobs) what its processes used.
static void supervise_one(const char *cwd, char **job_argv, char **envp, unsigned flags, const char *mux_socket,
                          const char *mux_command, int stdin_fd, int signal_fd, int *kind, int *status, int64_t *end_ns,
                          struct rusage *usage) {
    int hold_stdin = (flags & JOBKIT_REQUEST_HOLD_STDIN) != 0;
    environ = envp;  // execvpe looks PROGRAM up in the PATH of environ: the job's
    struct rusage before;
    memset(&before, 0, sizeof before);
    if (lane_request_fd >= 0) getrusage(RUSAGE_CHILDREN, &before);
    struct supervision s = {.hold_stdin = hold_stdin, .in_pipe = {-1, -1}, .pid = -1, .stdin_fd = stdin_fd,
                            .ticks = hold_stdin && (flags & JOBKIT_REQUEST_TICKS) != 0, .signal_fd = signal_fd};
    int out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1};
    if (channel_dir != NULL) {
        // A remote session's channel: its streams are its commands' to read (channel.c).
        if (open_channel(channel_dir, &s.in_pipe[0], &s.in_pipe[1], &out_pipe[1], &err_pipe[1]) != 0) {
            fail(JOBKIT_STAGE_SUPERVISOR, errno);
        }
    } else if (flags & JOBKIT_REQUEST_NULL_OUTPUT) {
        // Nothing to take: a session's shell, whose commands have output of their own.
        out_pipe[1] = open("/dev/null", O_WRONLY | O_CLOEXEC);
        err_pipe[1] = dup(out_pipe[1]);
        if (out_pipe[1] < 0 || err_pipe[1] < 0) fail(JOBKIT_STAGE_SUPERVISOR, errno);
    } else if (pipe2(out_pipe, O_CLOEXEC) < 0 || pipe2(err_pipe, O_CLOEXEC) < 0) {
        fail(JOBKIT_STAGE_SUPERVISOR, errno);
    }
    if (hold_stdin && channel_dir == NULL && pipe2(s.in_pipe, O_CLOEXEC) < 0) fail(JOBKIT_STAGE_SUPERVISOR, errno);

    // The job gets its own session and process group, so that stopping it reaches every
    // process it starts and no terminal signal meant for someone else reaches it; stdin is
    // /dev/null or the held pipe; signals are as a new program expects them.
    // With --merge-error its stderr is its stdout (2>&1): one stream, in the order written.
    int job_err = (flags & JOBKIT_REQUEST_MERGE_ERROR) ? out_pipe[1] : err_pipe[1];
    start_job(&s, job_argv, envp, cwd, mux_socket, mux_command, out_pipe[1], job_err);
    close(out_pipe[1]);
    close(err_pipe[1]);
    // The job has its stdin now; holding it here too would keep a pipe's reader alive after
    // the job let go of it.
    if (stdin_fd >= 0) close(stdin_fd);
    // The hello a remote job's wrapper reads first, before any stop line: until ssh has read
    // it, the session is not open (see session_open).
    if (hold_stdin) write_all(s.in_pipe[1], "\n", 1);
    s.next_tick_ns = now_ns() + (int64_t)tick_ms[0] * 1000000;

    // A session through a master has no process here: this one stands for it (its group is
    // this process alone, and it ends the session when signalled).
    job_slot.started = (struct jobkit_slot_started){
        .magic = JOBKIT_STARTED_MAGIC, .supervisor_pid = getpid(), .job_pid = s.mux ? getpid() : s.pid,
        .start_ns = now_ns()};
    (void)pwrite(slots_fd, &job_slot.started, sizeof job_slot.started, (off_t)(job_id * JOBKIT_SLOT_SIZE));

    s.streams[0] = (struct stream){.pipe_fd = out_pipe[0], .file_fd = -1, .name = "stdout", .kind = JOBKIT_STREAM_OUTPUT};
    s.streams[1] = (struct stream){.pipe_fd = err_pipe[0], .file_fd = -1, .name = "stderr", .kind = JOBKIT_STREAM_ERROR};
    if (out_pipe[0] >= 0) fcntl(out_pipe[0], F_SETFL, O_NONBLOCK);
    if (err_pipe[0] >= 0) fcntl(err_pipe[0], F_SETFL, O_NONBLOCK);
    watch(&s);

    // The job ends when its main process has exited and every process holding its output
    // has let go of it, as a shell pipeline does; the end time is the main process's.
    memset(usage, 0, sizeof *usage);
    if (s.mux == NULL) wait4(s.pid, NULL, 0, usage);
    if (lane_request_fd >= 0) {
        // What this job's processes used: the main one's largest resident set (a lane's
        // children's maximum spans its earlier jobs), and the CPU time of all it waited for.
        struct rusage after;
        if (getrusage(RUSAGE_CHILDREN, &after) == 0) {
            usage->ru_utime.tv_sec = after.ru_utime.tv_sec - before.ru_utime.tv_sec;
            usage->ru_utime.tv_usec = after.ru_utime.tv_usec - before.ru_utime.tv_usec;
            usage->ru_stime.tv_sec = after.ru_stime.tv_sec - before.ru_stime.tv_sec;
            usage->ru_stime.tv_usec = after.ru_stime.tv_usec - before.ru_stime.tv_usec;
        }
        for (int i = 0; i < 2; i++) {
            if (s.streams[i].pipe_fd >= 0) close(s.streams[i].pipe_fd);
            if (s.streams[i].file_fd >= 0) close(s.streams[i].file_fd);
        }
        if (s.in_pipe[0] >= 0) close(s.in_pipe[0]);
        if (s.in_pipe[1] >= 0) close(s.in_pipe[1]);
    }
    *kind = s.exit_info.si_code == CLD_EXITED ? JOBKIT_ENDED_EXIT : JOBKIT_ENDED_SIGNAL;
    *status = s.exit_info.si_status;
    *end_ns = s.end_ns;
}

_Noreturn void supervise(const char *dir, long long id, const char *cwd, char **job_argv, char **envp,
                         unsigned flags, const char *mux_socket, const char *mux_command, int stdin_fd) {
    int hold_stdin = (flags & JOBKIT_REQUEST_HOLD_STDIN) != 0;
    sigset_t handled;
    begin_supervising(dir, id, flags, &handled);
    // A local job's every process stays below this one (descendants.c). Not a remote job's:
    // its ssh may fork the computer's master, which outlives the job and is everyone's.
    if (!hold_stdin && become_subreaper() != 0) fail(JOBKIT_STAGE_SUPERVISOR, errno);
    int signal_fd = signalfd(-1, &handled, SFD_CLOEXEC | SFD_NONBLOCK);
    if (signal_fd < 0) fail(JOBKIT_STAGE_SUPERVISOR, errno);
    // A lane's jobs, one after another (lane.c); any other supervisor's one job.
    for (;;) {
        struct rusage usage;
        int kind, status;
        int64_t end_ns;
        supervise_one(cwd, job_argv, envp, flags, mux_socket, mux_command, stdin_fd, signal_fd, &kind, &status, &end_ns,
                      &usage);
        if (lane_request_fd < 0) finish((uint8_t)kind, JOBKIT_STAGE_NONE, status, end_ns);
        record_end((uint8_t)kind, JOBKIT_STAGE_NONE, status, end_ns, &usage);
        struct lane_job next;
        lane_next(&next, signal_fd);
        cwd = next.cwd;
        job_argv = next.argv;
        envp = next.envp;
        flags = next.flags;
        stdin_fd = -1;
        lane_begin();
    }
}
