// One command run in a session's shell (job invoke --session): the shell is a long-lived
// `sh -i` under a supervisor of its own, reading lines from the FIFO `in` in the session's
// directory; this process stands for the command, as a supervisor stands for a job.
//
// Nothing the command prints can be taken for a frame, because nothing is framed in band:
// the command's text goes to a file of its own (ID.cmd), its stdout and stderr to FIFOs of
// its own (ID.out, ID.err) that only this process reads, and its status to a third (ID.status).
// The shell is asked, with one line, to dot-source the file with those redirections; once
// both FIFOs are let go of (the command and whatever it left holding them have ended, or the
// shell abandoned the command on an error or an interrupt), a second line asks it for `$?`,
// which is then the command's status however it ended. One line at a time: an interactive
// shell that abandons a command also drops whatever input it had read ahead.
//
// An interactive shell, because of what it does when a command goes wrong: a syntax error,
// an unset variable under `set -u` or a SIGINT ends the command and not the shell, whose
// state (directory, variables, functions, options) stays for the next one.
//
// Stop (SIGTERM from the engine): SIGINT to the shell and to the command's processes (which
// abandons a builtin loop too), SIGTERM to the processes a moment later; SIGUSR1: SIGKILL to
// them, and to the shell itself if it still has not finished the command shortly after (the
// session is then broken, but the stop ends). The command's processes are those below the
// shell, or left with the session's supervisor (its subreaper), that were not there before
// the command began, and their descendants.
#include "supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

// How long after SIGINT the command's processes get SIGTERM, and how long after SIGKILL a
// shell still busy with the command is killed itself (ms).
enum { TERM_AFTER_MS = 500, SHELL_KILL_AFTER_MS = 2000, SESSION_END_WAIT_MS = 5000 };

struct session_command {
    const char *dir;
    pid_t shell;
    pid_t session_supervisor;
    int shell_fd;       // pidfd of the shell
    int supervisor_fd;  // pidfd of the session's supervisor
    int signal_fd;
    int status_fd;
    struct stream streams[2];
    int reported;       // the line asking for $? was written
    int64_t term_at;    // when to send SIGTERM to the command's processes (0: no)
    int64_t kill_shell_at;
    int stopped_by;     // the first stop signal
};

static char path_buf[4][4096];

static const char *path_of(int which, const char *dir, const char *suffix) {
    snprintf(path_buf[which], sizeof path_buf[which], "%s/%lld.%s", dir, job_id, suffix);
    return path_buf[which];
}

// Writes one line to the shell's input; -1 when no shell reads it any more.
static int tell_shell(const struct session_command *c, const char *line) {
    char in[4096];
    snprintf(in, sizeof in, "%s/in", c->dir);
    int fd = open(in, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = write_all(fd, line, strlen(line));
    close(fd);
    return rc;
}

static void remove_files(const struct session_command *c) {
    const char *suffixes[] = {"cmd", "out", "err", "status"};
    for (int i = 0; i < 4; i++) unlink(path_of(0, c->dir, suffixes[i]));
}

// The shell ended while the command was its: the command's status is the shell's, which its
// supervisor records in the session's slot (`slot_file`, index `session_id`) as it exits.
static _Noreturn void shell_ended(struct session_command *c, const char *slot_file, long long session_id) {
    for (int i = 0; i < 2; i++) {
        for (int chunks = 0; chunks < 64 && c->streams[i].pipe_fd >= 0; chunks++) {
            if (take(&c->streams[i]) == -1) break;
        }
    }
    struct pollfd gone = {.fd = c->supervisor_fd, .events = POLLIN};
    if (c->supervisor_fd >= 0) (void)poll(&gone, 1, SESSION_END_WAIT_MS);
    struct jobkit_slot slot;
    memset(&slot, 0, sizeof slot);
    int fd = open(slot_file, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        (void)pread(fd, &slot, sizeof slot, (off_t)(session_id * JOBKIT_SLOT_SIZE));
        close(fd);
    }
    remove_files(c);
    if (c->stopped_by != 0) finish(JOBKIT_ENDED_SIGNAL, JOBKIT_STAGE_NONE, SIGKILL, now_ns());
    if (slot.ended.magic == JOBKIT_ENDED_MAGIC && slot.ended.kind == JOBKIT_ENDED_EXIT) {
        finish(JOBKIT_ENDED_EXIT, JOBKIT_STAGE_NONE, slot.ended.code, slot.ended.end_ns);
    }
    if (slot.ended.magic == JOBKIT_ENDED_MAGIC && slot.ended.kind == JOBKIT_ENDED_SIGNAL) {
        finish(JOBKIT_ENDED_SIGNAL, JOBKIT_STAGE_NONE, slot.ended.code, slot.ended.end_ns);
    }
    finish(JOBKIT_ENDED_ERROR, JOBKIT_STAGE_SESSION, ESRCH, now_ns());
}

static void on_signal(struct session_command *c, int signo) {
    if (signo == SIGTSTP || signo == SIGCONT) {
        int sent = signo == SIGTSTP ? SIGSTOP : SIGCONT;
        // The shell too: the command may be the shell's own work (a loop of builtins).
        kill(c->shell, sent);
        signal_command(c->shell, c->session_supervisor, sent);
        return;
    }
    if (signo == SIGCHLD) return;
    if (c->stopped_by == 0) c->stopped_by = signo;
    if (signo == SIGUSR1) {
        signal_command(c->shell, c->session_supervisor, SIGKILL);
        kill(c->shell, SIGINT);
        if (c->kill_shell_at == 0) c->kill_shell_at = now_ms() + SHELL_KILL_AFTER_MS;
        return;
    }
    // An interactive shell takes SIGINT as "abandon the command", and so do most programs.
    kill(c->shell, SIGINT);
    signal_command(c->shell, c->session_supervisor, SIGINT);
    if (c->term_at == 0) c->term_at = now_ms() + TERM_AFTER_MS;
}

static int timeout_ms(const struct session_command *c) {
    int64_t next = 0;
    if (c->term_at != 0) next = c->term_at;
    if (c->kill_shell_at != 0 && (next == 0 || c->kill_shell_at < next)) next = c->kill_shell_at;
    if (next == 0) return -1;
    int64_t left = next - now_ms();
    return left < 0 ? 0 : (int)(left > 60000 ? 60000 : left);
}

static void on_timers(struct session_command *c) {
    int64_t now = now_ms();
    if (c->term_at != 0 && now >= c->term_at) {
        c->term_at = 0;
        signal_command(c->shell, c->session_supervisor, SIGTERM);
    }
    if (c->kill_shell_at != 0 && now >= c->kill_shell_at) {
        c->kill_shell_at = 0;
        kill(c->shell, SIGKILL);
    }
}

// Reads the status line; 1 with `*code` once it came.
static int read_status(struct session_command *c, int *code) {
    char line[32];
    ssize_t n = read(c->status_fd, line, sizeof line - 1);
    if (n <= 0) return 0;
    line[n] = 0;
    char *end = NULL;
    long value = strtol(line, &end, 10);
    if (end == line || value < 0 || value > 255) return 0;
    *code = (int)value;
    return 1;
}

// The command's events until the shell has told its status (or ended).
static _Noreturn void watch_command(struct session_command *c, const char *slot_file, long long session_id) {
    char line[64];
    for (;;) {
        struct pollfd p[5] = {
            {.fd = c->streams[0].pipe_fd, .events = POLLIN},
            {.fd = c->streams[1].pipe_fd, .events = POLLIN},
            {.fd = c->status_fd, .events = POLLIN},
            {.fd = c->signal_fd, .events = POLLIN},
            {.fd = c->shell_fd, .events = POLLIN},
        };
        if (poll(p, 5, timeout_ms(c)) < 0) {
            if (errno == EINTR) continue;
            fail(JOBKIT_STAGE_SUPERVISOR, errno);
        }
        for (int i = 0; i < 2; i++) {
            if (c->streams[i].pipe_fd >= 0 && (p[i].revents & (POLLIN | POLLHUP | POLLERR))) take(&c->streams[i]);
        }
        if (p[3].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(c->signal_fd, &si, sizeof si) == sizeof si) on_signal(c, (int)si.ssi_signo);
        }
        on_timers(c);
        if (p[2].revents & (POLLIN | POLLHUP)) {
            int code;
            int got = read_status(c, &code);
            remove_files(c);
            // Let go of with no status in it: the shell could not write one.
            if (!got) finish(JOBKIT_ENDED_ERROR, JOBKIT_STAGE_SESSION, EIO, now_ns());
            if (c->stopped_by != 0 && code > 128) finish(JOBKIT_ENDED_SIGNAL, JOBKIT_STAGE_NONE, code - 128, now_ns());
            finish(JOBKIT_ENDED_EXIT, JOBKIT_STAGE_NONE, code, now_ns());
        }
        if (p[4].revents & POLLIN) shell_ended(c, slot_file, session_id);
        if (!c->reported && c->streams[0].pipe_fd < 0 && c->streams[1].pipe_fd < 0) {
            // Both let go of: the shell is done with the command (or is about to be, if the
            // command closed them itself), and `$?` is its status until the next line.
            snprintf(line, sizeof line, "_jobkit_report %lld $?\n", job_id);
            if (tell_shell(c, line) != 0) shell_ended(c, slot_file, session_id);
            c->reported = 1;
        }
    }
}

_Noreturn void run_in_session(const char *jobs_dir, long long id, char **args, unsigned flags) {
    // args: the session's directory, the shell's pid, its supervisor's pid, the session
    // slots file and the session's id (for the shell's end), and the command's text.
    sigset_t handled;
    begin_supervising(jobs_dir, id, flags, &handled);

    struct session_command c = {.dir = args[0], .shell = (pid_t)atoi(args[1]), .session_supervisor = (pid_t)atoi(args[2])};
    const char *slot_file = args[3];
    long long session_id = atoll(args[4]);
    const char *command = args[5];
    c.shell_fd = c.shell > 0 ? pidfd_of(c.shell) : -1;
    c.supervisor_fd = c.session_supervisor > 0 ? pidfd_of(c.session_supervisor) : -1;
    if (c.shell_fd < 0) finish(JOBKIT_ENDED_ERROR, JOBKIT_STAGE_SESSION, ESRCH, now_ns());
    c.signal_fd = signalfd(-1, &handled, SFD_CLOEXEC | SFD_NONBLOCK);
    if (c.signal_fd < 0) fail(JOBKIT_STAGE_SUPERVISOR, errno);

    remove_files(&c);
    int cmd_fd = open(path_of(0, c.dir, "cmd"), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (cmd_fd < 0 || write_all(cmd_fd, command, strlen(command)) != 0) fail(JOBKIT_STAGE_SUPERVISOR, errno);
    close(cmd_fd);
    const char *names[3] = {"out", "err", "status"};
    int fds[3];
    for (int i = 0; i < 3; i++) {
        const char *path = path_of(i, c.dir, names[i]);
        if (mkfifo(path, 0600) != 0) fail(JOBKIT_STAGE_SUPERVISOR, errno);
        // Non-blocking, so that the open does not wait for the shell; a FIFO that never had
        // a writer polls as nothing at all, not as its end.
        fds[i] = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        if (fds[i] < 0) fail(JOBKIT_STAGE_SUPERVISOR, errno);
    }
    c.status_fd = fds[2];
    c.streams[0] = (struct stream){.pipe_fd = fds[0], .file_fd = -1, .name = "stdout", .kind = JOBKIT_STREAM_OUTPUT};
    c.streams[1] = (struct stream){.pipe_fd = fds[1], .file_fd = -1, .name = "stderr", .kind = JOBKIT_STREAM_ERROR};
    // What runs below the shell now is not the command's (an earlier command's background work).
    remember_existing(c.shell, c.session_supervisor);

    job_slot.started = (struct jobkit_slot_started){
        .magic = JOBKIT_STARTED_MAGIC, .supervisor_pid = getpid(), .job_pid = getpid(), .start_ns = now_ns()};
    (void)pwrite(slots_fd, &job_slot.started, sizeof job_slot.started, (off_t)(job_id * JOBKIT_SLOT_SIZE));

    char line[64];
    snprintf(line, sizeof line, "_jobkit_run %lld\n", job_id);
    if (tell_shell(&c, line) != 0) shell_ended(&c, slot_file, session_id);
    watch_command(&c, slot_file, session_id);
}
