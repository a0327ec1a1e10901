// jobkit-supervisor: runs one job and records it in a directory, so that the job does
// not depend on the engine that started it (the role of containerd's shim or podman's
// conmon). It is C, not Swift, because it is started once per job: it must start in
// a fraction of a millisecond and use no memory worth mentioning.
//
// Usage: jobkit-supervisor [--hold-stdin] [--mux SOCKET COMMAND] DIR ID CWD PROGRAM [ARG...]
//   --hold-stdin: the job's stdin is a pipe that this process holds open for as long as it
//   lives, writing only a line when asked to stop (a remote job's ssh forwards both, and its
//   end of file, to the remote command's watcher, which then ends the remote process group;
//   see Signals); otherwise /dev/null.
//   --mux: run COMMAND through the ssh master listening at SOCKET, as ssh would through it
//   (see mux_open); PROGRAM (ssh) runs only if no master answers there.
//   fd 3 (optional): holds a lock on byte ID of DIR/locks; held until this process exits,
//   so that an engine can tell a live supervisor from a dead one without trusting a pid.
//   environment: the job's environment, passed on to PROGRAM unchanged.
//
// Or: jobkit-supervisor --zygote DIR, with fd 3 a stream socket to the engine. A fork server:
// for each request (see struct request) it forks a supervisor for one job, as if started
// with the first form, and answers with its pid and a pidfd. Forking this small process
// costs a fraction of starting a program, whose libc start-up alone (cpuid is a VM exit)
// costs more than a short job. The forked supervisors are independent of the zygote and of
// the engine; the zygote exits when the engine's end of the socket closes.
//
// Writes (format: Sources/JobModel/OutputFormat.swift), creating no file for a job that
// prints nothing, since creating inodes is most of the cost of a short job:
//   DIR/ID.stdout, DIR/ID.stderr  the job's two streams, byte for byte, once there is any
//   DIR/ID.index   one 24-byte record per chunk read: time, offset, length, stream
//   DIR/../slots   at ID*64, the job's slot: its pids once started (bytes 0-31), how it
//                  ended (bytes 32-63), each half written with one pwrite(2); DIR/slots
//                  instead where it exists (homes made before the slots moved out of DIR)
//
// Signals: SIGTERM, SIGINT and SIGHUP are passed on to the job's process group (followed
// by SIGCONT so that a stopped job can act on them); SIGUSR1 sends it SIGKILL, and then the
// job ends as soon as its main process has, even if something outside the group still
// holds its output. With --hold-stdin (a remote job), SIGTERM, SIGINT and SIGHUP write a
// line to the job's stdin instead, which the host's wrapper takes as "stop" (see
// RemoteCommand in JobKit), and SIGUSR1 cuts the connection.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

enum { STREAM_OUTPUT = 1, STREAM_ERROR = 2 };
enum { LOCK_FD = 3 };
enum { CHUNK = 1 << 20 };
enum { SLOT_SIZE = 64 };
enum { ENDED_EXIT = 1, ENDED_SIGNAL = 2, ENDED_ERROR = 3 };
enum { STAGE_NONE = 0, STAGE_CHDIR = 1, STAGE_EXEC = 2, STAGE_SUPERVISOR = 3 };
#define STARTED_MAGIC 0x4A4F4253u  // "SBOJ" little-endian: the first half is written
#define ENDED_MAGIC 0x454E4445u    // "EDNE": the second half is written

struct __attribute__((packed)) slot_started {
    uint32_t magic;
    int32_t supervisor_pid;
    int32_t job_pid;
    uint32_t reserved;
    int64_t start_ns;
    uint64_t reserved2;
};
struct __attribute__((packed)) slot_ended {
    uint32_t magic;
    uint8_t kind;
    uint8_t stage;
    uint16_t reserved;
    int32_t code;
    uint32_t reserved2;
    int64_t end_ns;
    uint64_t reserved3;
};
_Static_assert(sizeof(struct slot_started) == 32 && sizeof(struct slot_ended) == 32, "a slot is 64 bytes");

struct __attribute__((packed)) index_record {
    int64_t time_ns;
    uint64_t offset;
    uint32_t length;
    uint8_t stream;
    uint8_t reserved[3];
};
_Static_assert(sizeof(struct index_record) == 24, "index record is 24 bytes");

struct stream {
    int pipe_fd;       // read end; -1 once at end of file
    int file_fd;       // the stream's data file; -1 until its first byte arrives
    const char *name;
    uint64_t offset;   // bytes written to file_fd so far
    uint8_t kind;
};

// The jobs directory, its slots file and /dev/null: opened once by the zygote, whose
// forked supervisors inherit them, or by a supervisor started on its own.
static int dir_fd = -1;
static int slots_fd = -1;
static int null_fd = -1;
static int index_fd = -1;
static long long job_id;
// In .bss, not allocated: its pages exist only once output is read into them, so a job that
// prints nothing costs no memory for it, and neither an mmap nor an munmap.
static char scratch[CHUNK];

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int write_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

// Sends `len` bytes in one message, with descriptor `fd` attached unless it is -1. The number
// of bytes sent, or -1.
static ssize_t send_with_fd(int sock, const void *data, size_t len, int fd) {
    struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } control;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (fd >= 0) {
        msg.msg_control = control.buf;
        msg.msg_controllen = sizeof control.buf;
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    ssize_t n;
    while ((n = sendmsg(sock, &msg, MSG_NOSIGNAL)) < 0 && errno == EINTR) {}
    return n;
}

static int open_output(const char *suffix, int extra_flags) {
    char name[64];
    snprintf(name, sizeof name, "%lld.%s", job_id, suffix);
    return openat(dir_fd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | extra_flags, 0600);
}

static _Noreturn void finish(uint8_t kind, uint8_t stage, int code, int64_t end_ns) {
    struct slot_ended ended = {.magic = ENDED_MAGIC, .kind = kind, .stage = stage, .code = code, .end_ns = end_ns};
    if (slots_fd >= 0) pwrite(slots_fd, &ended, sizeof ended, (off_t)(job_id * SLOT_SIZE + 32));
    _exit(0);
}

static _Noreturn void fail(uint8_t stage, int err) {
    finish(ENDED_ERROR, stage, err, now_ns());
}

static void record(const struct stream *s, uint64_t offset, uint32_t length) {
    struct index_record r = {.time_ns = now_ns(), .offset = offset, .length = length, .stream = s->kind};
    if (index_fd < 0) index_fd = open_output("index", O_APPEND);
    // The data is on disk before its record, so a reader that sees a record can read it.
    if (index_fd >= 0) write_all(index_fd, &r, sizeof r);
}

// Moves what the pipe holds into the stream's file; returns 0 at end of file, -1 when there
// was nothing to read after all.
static ssize_t drain_once(struct stream *s) {
    ssize_t n;
    if (s->file_fd < 0) {
        // The first read goes through memory: only data makes the file exist.
        n = read(s->pipe_fd, scratch, CHUNK);
        if (n <= 0) return n < 0 && (errno == EAGAIN || errno == EINTR) ? -1 : 0;
        // A job that writes gets a larger pipe, for fewer wake-ups and larger chunks; one
        // that does not is spared the call.
        fcntl(s->pipe_fd, F_SETPIPE_SZ, CHUNK);
        s->file_fd = open_output(s->name, 0);
        if (s->file_fd < 0 || pwrite(s->file_fd, scratch, (size_t)n, 0) != n) {
            // The disk refused it: the job goes on, its output is dropped (see below).
            return n;
        }
    } else {
        loff_t off = (loff_t)s->offset;
        n = splice(s->pipe_fd, NULL, s->file_fd, &off, CHUNK, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n < 0 && errno == EINVAL) {
            // The file system does not take splice: copy through memory instead.
            n = read(s->pipe_fd, scratch, CHUNK);
            if (n > 0 && pwrite(s->file_fd, scratch, (size_t)n, (off_t)s->offset) != n) n = -2;
        }
        if (n == -1 && (errno == EAGAIN || errno == EINTR)) return -1;
        if (n < 0) {
            // The disk refused the data (full, or gone). Keep the job running by reading and
            // dropping what it writes: stalling it on a full pipe would be worse.
            n = read(s->pipe_fd, scratch, CHUNK);
            return n < 0 ? -1 : n;
        }
        if (n == 0) return 0;
    }
    record(s, s->offset, (uint32_t)n);
    s->offset += (uint64_t)n;
    return n;
}

// Opens what every supervisor needs (see dir_fd), unless it was inherited. 0 or -1.
static int open_shared(const char *dir) {
    if (dir_fd < 0) dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) return -1;
    if (slots_fd < 0) slots_fd = openat(dir_fd, "slots", O_WRONLY | O_CLOEXEC);
    if (slots_fd < 0 && errno == ENOENT) slots_fd = openat(dir_fd, "../slots", O_WRONLY | O_CLOEXEC);
    if (null_fd < 0) null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return slots_fd >= 0 && null_fd >= 0 ? 0 : -1;
}

// The signals a supervisor takes from its signalfd. They are blocked from the supervisor's
// birth (by whoever spawns it, and in the zygote that forks it), so that one sent before it
// is ready waits for it rather than kills it.
static void handled_signals(sigset_t *set) {
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
    sigaddset(set, SIGUSR1);
    sigaddset(set, SIGCHLD);
}

// Why a job could not start: what failed (STAGE_CHDIR or STAGE_EXEC) and errno.
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
    if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0) child_failed(error, STAGE_EXEC);
    if (chdir(cwd) != 0) child_failed(error, STAGE_CHDIR);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGPIPE, &dfl, NULL);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execvpe(argv[0], argv, envp);
    child_failed(error, STAGE_EXEC);
}

// ---- A session through an ssh ControlMaster's socket ----
// What `ssh -o ControlPath=SOCKET HOST COMMAND` does when a master answers (OpenSSH's
// PROTOCOL.mux, version 4), without starting ssh: a remote job through a master is then a
// connect and three messages instead of a program whose start-up (the dynamic loader,
// OpenSSL, the configuration) costs ~4 ms of CPU, more than everything else a remote job
// costs here together. The master is still the user's ssh, with their configuration, keys
// and known hosts; it checks the environment against its own SendEnv, as it does for an ssh
// that passes it on.
enum {
    MUX_MSG_HELLO = 0x00000001,
    MUX_C_NEW_SESSION = 0x10000002,
    MUX_S_EXIT_MESSAGE = 0x80000004,
    MUX_S_SESSION_OPENED = 0x80000006,
    MUX_VERSION = 4,
    MUX_MAX_PACKET = 256 * 1024,
};

struct mux {
    int fd;
    size_t have;                     // bytes in `in`
    unsigned char in[MUX_MAX_PACKET];  // what was read and not yet taken, whole packets first
};

struct growing {
    unsigned char *data;
    size_t len, cap;
};

static int grow_put(struct growing *b, const void *p, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        unsigned char *data = realloc(b->data, cap);
        if (data == NULL) return -1;
        b->data = data;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

static int put_u32(struct growing *b, uint32_t v) {
    unsigned char be[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8), (unsigned char)v};
    return grow_put(b, be, 4);
}

static int put_string(struct growing *b, const char *s) {
    size_t n = strlen(s);
    return put_u32(b, (uint32_t)n) || grow_put(b, s, n) ? -1 : 0;
}

static uint32_t get_u32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

// Sends one packet (its length first) on the blocking socket.
static int mux_send(int fd, struct growing *payload) {
    struct growing packet = {0};
    int rc = put_u32(&packet, (uint32_t)payload->len) || grow_put(&packet, payload->data, payload->len) ||
             write_all(fd, packet.data, packet.len) ? -1 : 0;
    free(packet.data);
    return rc;
}

// Passes a descriptor with one byte, as the master's mm_receive_fd takes it.
static int mux_send_fd(int sock, int fd) {
    char byte = 0;
    return send_with_fd(sock, &byte, 1, fd) == 1 ? 0 : -1;
}

// The payload and length of the first whole packet read, if there is one.
static int mux_packet(const struct mux *m, const unsigned char **payload, uint32_t *length) {
    if (m->have < 4) return 0;
    uint32_t n = get_u32(m->in);
    if (n > MUX_MAX_PACKET - 4) return -1;
    if (m->have < 4 + (size_t)n) return 0;
    *payload = m->in + 4;
    *length = n;
    return 1;
}

static void mux_consume(struct mux *m, uint32_t length) {
    size_t used = 4 + (size_t)length;
    memmove(m->in, m->in + used, m->have - used);
    m->have -= used;
}

// Reads what the socket has, once poll said it has something. -1 at end of file or on an
// error.
static int mux_fill(struct mux *m) {
    if (m->have == sizeof m->in) return -1;  // a packet longer than any the protocol sends
    ssize_t n = read(m->fd, m->in + m->have, sizeof m->in - m->have);
    if (n < 0 && errno == EINTR) return 0;
    if (n <= 0) return -1;
    m->have += (size_t)n;
    return 0;
}

// Waits for the next whole packet; a stop signal (TERM, INT, HUP, USR1) ends the wait.
// 1: a packet; 0: the socket closed or broke; -1: `*stop` is the signal that came.
static int mux_wait_packet(struct mux *m, int signal_fd, const unsigned char **payload, uint32_t *length, int *stop) {
    for (;;) {
        int got = mux_packet(m, payload, length);
        if (got != 0) return got > 0 ? 1 : 0;
        struct pollfd fds[2] = {{.fd = m->fd, .events = POLLIN}, {.fd = signal_fd, .events = POLLIN}};
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return 0;
        }
        if (fds[1].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(signal_fd, &si, sizeof si) == sizeof si) {
                if (si.ssi_signo != SIGCHLD) *stop = (int)si.ssi_signo;
            }
            if (*stop) return -1;
        }
        if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) && mux_fill(m) < 0) return 0;
    }
}

enum { MUX_OPENED = 0, MUX_USE_SSH = 1, MUX_LOST = 2, MUX_STOPPED = 3 };

// Opens a session running `command` through the master at `socket`, with these descriptors
// as its stdin, stdout and stderr. MUX_USE_SSH: the command did not start, and ssh is to run
// it: no master answered, or the master refused the session — as the server does beyond its
// MaxSessions per connection (10 by default), when ssh too goes on to connect by itself;
// MUX_LOST: the master went away once asked, so the command may have started; MUX_STOPPED:
// a stop signal (`*stop`) came first.
static int mux_open(struct mux *m, const char *socket_path, const char *command, char **envp, int in_fd, int out_fd,
                    int err_fd, int signal_fd, int *stop) {
    // want_tty, want_x11, want_agent, subsystem: none; no escape character; no TERM.
    struct growing request = {0};
    int failed = put_u32(&request, MUX_C_NEW_SESSION) || put_u32(&request, 0) || put_string(&request, "") ||
                 put_u32(&request, 0) || put_u32(&request, 0) || put_u32(&request, 0) || put_u32(&request, 0) ||
                 put_u32(&request, 0xffffffffu) || put_string(&request, "") || put_string(&request, command);
    for (char **e = envp; !failed && *e != NULL; e++) failed = put_string(&request, *e);
    // ssh sends only what SendEnv lets through; this sends all and lets the master (which
    // checks SendEnv too) filter it. A master drops a packet over 256 KiB: an environment
    // that large goes the way ssh would send it.
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (failed || request.len > 200 * 1024 || strlen(socket_path) >= sizeof addr.sun_path) {
        free(request.data);
        return MUX_USE_SSH;
    }
    strcpy(addr.sun_path, socket_path);
    m->have = 0;
    m->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (m->fd >= 0 && connect(m->fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        close(m->fd);
        m->fd = -1;
    }
    struct growing hello = {0};
    failed = m->fd < 0 || put_u32(&hello, MUX_MSG_HELLO) || put_u32(&hello, MUX_VERSION) || mux_send(m->fd, &hello);
    free(hello.data);
    const unsigned char *payload;
    uint32_t length;
    int got = failed ? 0 : mux_wait_packet(m, signal_fd, &payload, &length, stop);
    if (got > 0 && (length < 8 || get_u32(payload) != MUX_MSG_HELLO || get_u32(payload + 4) != MUX_VERSION)) got = 0;
    if (got <= 0) {
        if (m->fd >= 0) close(m->fd);
        m->fd = -1;
        free(request.data);
        return got < 0 ? MUX_STOPPED : MUX_USE_SSH;
    }
    mux_consume(m, length);

    failed = mux_send(m->fd, &request) || mux_send_fd(m->fd, in_fd) || mux_send_fd(m->fd, out_fd) ||
             mux_send_fd(m->fd, err_fd);
    free(request.data);
    if (failed) {
        // The master takes the request only with its three descriptors: it ran nothing.
        close(m->fd);
        m->fd = -1;
        return MUX_USE_SSH;
    }
    got = mux_wait_packet(m, signal_fd, &payload, &length, stop);
    if (got < 0) return MUX_STOPPED;
    if (got == 0 || length < 8) return MUX_LOST;
    uint32_t type = get_u32(payload);
    if (type == MUX_S_SESSION_OPENED) {
        mux_consume(m, length);
        return MUX_OPENED;
    }
    close(m->fd);
    m->fd = -1;
    // MUX_S_FAILURE, MUX_S_PERMISSION_DENIED: refused before the command was sent. Anything
    // else is not this protocol: ssh will say what it makes of it.
    return MUX_USE_SSH;
}

// Sends `signo` to the job's process group, and SIGCONT after it unless it is SIGKILL, so
// that a stopped job can act on it.
static void signal_group(pid_t pid, int signo) {
    kill(-pid, signo);
    if (signo != SIGKILL) kill(-pid, SIGCONT);
}

// drain_once, and at end of file the pipe is closed (pipe_fd -1). Returns what drain_once did.
static ssize_t take(struct stream *s) {
    ssize_t n = drain_once(s);
    if (n == 0) {
        close(s->pipe_fd);
        s->pipe_fd = -1;
    }
    return n;
}

// In .bss, like `scratch`: only a remote job through a master touches it.
static struct mux mux_session;

// Runs job `id` (argv, in cwd, with envp) and records it; never returns. With `mux_socket`,
// the job is `mux_command` run through the ssh master at that socket (see mux_open), and
// argv (ssh itself) runs only when no master answers there.
static _Noreturn void supervise(const char *dir, long long id, const char *cwd, char **job_argv, char **envp,
                                int hold_stdin, const char *mux_socket, const char *mux_command) {
    job_id = id;
    environ = envp;  // execvpe looks PROGRAM up in the PATH of environ: the job's
    setsid();        // a no-op when spawned with POSIX_SPAWN_SETSID; needed when forked

    // The lock must not leak into the job: a straggler holding it would make a dead
    // supervisor look alive.
    fcntl(LOCK_FD, F_SETFD, FD_CLOEXEC);

    sigset_t handled;
    handled_signals(&handled);
    sigprocmask(SIG_SETMASK, &handled, NULL);
    signal(SIGPIPE, SIG_IGN);

    // Nowhere to record anything without them: the engine then sees no status.
    if (open_shared(dir) != 0) _exit(70);

    int out_pipe[2], err_pipe[2], in_pipe[2] = {-1, -1};
    if (pipe2(out_pipe, O_CLOEXEC) < 0 || pipe2(err_pipe, O_CLOEXEC) < 0) fail(STAGE_SUPERVISOR, errno);
    if (hold_stdin && pipe2(in_pipe, O_CLOEXEC) < 0) fail(STAGE_SUPERVISOR, errno);

    int signal_fd = signalfd(-1, &handled, SFD_CLOEXEC | SFD_NONBLOCK);
    if (signal_fd < 0) fail(STAGE_SUPERVISOR, errno);

    // The job gets its own session and process group, so that stopping it reaches every
    // process it starts and no terminal signal meant for someone else reaches it; stdin is
    // /dev/null or the held pipe; signals are as a new program expects them.
    int in_fd = hold_stdin ? in_pipe[0] : null_fd;
    struct mux *mux = NULL;
    pid_t pid = -1;
    if (mux_socket != NULL) {
        int stop = 0;
        switch (mux_open(&mux_session, mux_socket, mux_command, envp, in_fd, out_pipe[1], err_pipe[1], signal_fd,
                         &stop)) {
        case MUX_OPENED:
            mux = &mux_session;
            break;
        case MUX_USE_SSH:
            break;
        case MUX_LOST:
            // As ssh ends when its master goes: the engine tells a lost connection by it.
            finish(ENDED_EXIT, STAGE_NONE, 255, now_ns());
        case MUX_STOPPED:
        default:
            finish(ENDED_SIGNAL, STAGE_NONE, stop, now_ns());
        }
    }
    if (mux == NULL) {
        struct spawn_error error = {0, STAGE_NONE};
        pid = spawn_job(job_argv, envp, cwd, in_fd, out_pipe[1], err_pipe[1], &error);
        if (pid < 0) fail(STAGE_SUPERVISOR, errno);
        if (error.stage != STAGE_NONE) {
            int status;
            waitpid(pid, &status, 0);
            fail(error.stage, error.err);
        }
    }
    close(out_pipe[1]);
    close(err_pipe[1]);
    // in_pipe[1] stays open until the job ends. in_pipe[0] too, only to see whether a stop's
    // line has been read (below).

    // A session through a master has no process here: this one stands for it (its group is
    // this process alone, and it ends the session when signalled).
    struct slot_started started = {
        .magic = STARTED_MAGIC, .supervisor_pid = getpid(), .job_pid = mux ? getpid() : pid, .start_ns = now_ns()};
    pwrite(slots_fd, &started, sizeof started, (off_t)(job_id * SLOT_SIZE));

    struct stream streams[2] = {
        {.pipe_fd = out_pipe[0], .file_fd = -1, .name = "stdout", .kind = STREAM_OUTPUT},
        {.pipe_fd = err_pipe[0], .file_fd = -1, .name = "stderr", .kind = STREAM_ERROR},
    };
    fcntl(out_pipe[0], F_SETFL, O_NONBLOCK);
    fcntl(err_pipe[0], F_SETFL, O_NONBLOCK);

    int exited = 0;
    int killed = 0;
    siginfo_t exit_info;
    memset(&exit_info, 0, sizeof exit_info);
    int64_t end_ns = 0;
    // When a remote job's stop line was written (0: none pending). ssh reads its stdin only
    // once the session is open: a line still unread a moment later went nowhere, because the
    // job is still connecting, and then the connection attempt is what is stopped.
    int64_t stop_line_ns = 0;
    const int64_t stop_line_wait_ns = 250 * 1000000LL;
    // Set to the signal to record when a session through a master is to be cut now.
    int cut = 0;

    while (!exited || streams[0].pipe_fd >= 0 || streams[1].pipe_fd >= 0) {
        struct pollfd fds[4] = {
            {.fd = streams[0].pipe_fd, .events = POLLIN},
            {.fd = streams[1].pipe_fd, .events = POLLIN},
            {.fd = signal_fd, .events = POLLIN},
            {.fd = mux && !exited ? mux->fd : -1, .events = POLLIN},
        };
        int timeout = -1;
        if (stop_line_ns != 0) {
            int64_t left = stop_line_ns + stop_line_wait_ns - now_ns();
            timeout = left > 0 ? (int)(left / 1000000) + 1 : 0;
        }
        if (poll(fds, 4, timeout) < 0) {
            if (errno == EINTR) continue;
            fail(STAGE_SUPERVISOR, errno);
        }
        for (int i = 0; i < 2; i++) {
            if (streams[i].pipe_fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            take(&streams[i]);
        }
        if (fds[3].revents & (POLLIN | POLLHUP | POLLERR)) {
            // The master says how the command exited, then closes the socket once the
            // session's channel is closed; a socket closed without it is a master gone.
            int open = mux_fill(mux) == 0;
            const unsigned char *payload;
            uint32_t length;
            while (mux_packet(mux, &payload, &length) == 1) {
                if (length >= 12 && get_u32(payload) == MUX_S_EXIT_MESSAGE && exit_info.si_code == 0) {
                    exit_info.si_code = CLD_EXITED;
                    exit_info.si_status = (int)get_u32(payload + 8);
                    end_ns = now_ns();
                }
                mux_consume(mux, length);
            }
            if (!open) {
                exited = 1;
                if (exit_info.si_code == 0) {
                    exit_info.si_code = CLD_EXITED;
                    exit_info.si_status = 255;
                    end_ns = now_ns();
                }
            }
        }
        if (fds[2].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(signal_fd, &si, sizeof si) == sizeof si) {
                int signo = (int)si.ssi_signo;
                if (signo != SIGTERM && signo != SIGINT && signo != SIGHUP && signo != SIGUSR1) continue;
                if (signo == SIGUSR1) killed = 1;
                if (hold_stdin && signo != SIGUSR1) {
                    // A remote job: ssh forwards no signal, but it forwards what its stdin
                    // says. A line asks the host's wrapper to send SIGTERM to the command's
                    // process group; the job then ends when the command does, or, once the
                    // stop's grace is over (SIGUSR1), when the session is cut and the wrapper
                    // kills the group.
                    if (in_pipe[1] >= 0 && write_all(in_pipe[1], "\n", 1) == 0 && stop_line_ns == 0) {
                        stop_line_ns = now_ns();
                    }
                } else if (mux == NULL) {
                    signal_group(pid, signo == SIGUSR1 ? SIGKILL : signo);
                } else {
                    cut = SIGKILL;
                }
            }
            if (!exited && mux == NULL) {
                // Look without reaping: the zombie keeps the job's pid, and so its process
                // group id, from being reused while stragglers may still be signalled.
                siginfo_t info;
                memset(&info, 0, sizeof info);
                if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid) {
                    exit_info = info;
                    exited = 1;
                    end_ns = now_ns();
                }
            }
        }
        if (stop_line_ns != 0 && now_ns() >= stop_line_ns + stop_line_wait_ns) {
            stop_line_ns = 0;
            int unread = 0;
            if (ioctl(in_pipe[0], FIONREAD, &unread) == 0 && unread > 0) {
                if (mux == NULL) {
                    signal_group(pid, SIGTERM);
                } else {
                    cut = SIGTERM;
                }
            }
        }
        if (cut != 0 && mux != NULL && !exited) {
            // Cutting the session (the master closes its channel) makes the host's wrapper
            // kill the command's process group, as when a job's ssh is killed.
            close(mux->fd);
            if (in_pipe[1] >= 0) close(in_pipe[1]);
            in_pipe[1] = -1;
            exited = 1;
            exit_info.si_code = CLD_KILLED;
            exit_info.si_status = cut;
            end_ns = now_ns();
        }
        if (killed && exited) {
            // Killed, and its main process is gone: whatever still holds its output is outside
            // its process group (a daemon it left behind; for a remote job, the ssh master).
            // Take what is in the pipes now and end: a stop must end.
            // (A bounded take: something outside may go on writing for ever.)
            for (int i = 0; i < 2; i++) {
                for (int chunks = 0; chunks < 64 && streams[i].pipe_fd >= 0; chunks++) {
                    if (take(&streams[i]) == -1) break;
                }
            }
            break;
        }
    }

    // The job ends when its main process has exited and every process holding its output
    // has let go of it, as a shell pipeline does; the end time is the main process's.
    if (mux == NULL) waitpid(pid, NULL, 0);
    if (exit_info.si_code == CLD_EXITED) finish(ENDED_EXIT, STAGE_NONE, exit_info.si_status, end_ns);
    finish(ENDED_SIGNAL, STAGE_NONE, exit_info.si_status, end_ns);
}

// A request from the engine: this header, then `length` bytes of NUL-terminated strings
// (cwd, the argc arguments, the envc environment entries), with the job's lock descriptor
// attached as SCM_RIGHTS. The answer: struct answer, with a pidfd of the new supervisor
// attached when pid > 0.
struct request {
    uint32_t magic;
    uint32_t length;
    int64_t job_id;
    uint32_t argc;
    uint32_t envc;
    uint32_t flags;  // REQUEST_HOLD_STDIN, REQUEST_MUX (the first two arguments: socket and command)
    uint32_t reserved;
};
struct answer {
    int64_t job_id;
    int32_t pid;
    int32_t error;
};
#define REQUEST_MAGIC 0x5A594732u
#define REQUEST_HOLD_STDIN 1u
#define REQUEST_MUX 2u

static int read_all(int fd, void *buf, size_t len) {
    char *p = buf;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void answer(int control, int64_t id, pid_t pid, int error, int pidfd) {
    struct answer a = {.job_id = id, .pid = pid, .error = error};
    send_with_fd(control, &a, sizeof a, pidfd);
}

static int zygote(const char *dir) {
    const int control = 3;
    fcntl(control, F_SETFD, FD_CLOEXEC);
    signal(SIGPIPE, SIG_IGN);
    if (open_shared(dir) != 0) return 70;
    // Blocked here too, so that the supervisors forked from here are born with them blocked.
    sigset_t blocked;
    handled_signals(&blocked);
    sigprocmask(SIG_BLOCK, &blocked, NULL);
    sigset_t children;
    sigemptyset(&children);
    sigaddset(&children, SIGCHLD);
    int child_fd = signalfd(-1, &children, SFD_CLOEXEC | SFD_NONBLOCK);
    if (child_fd < 0) return 70;

    for (;;) {
        struct pollfd fds[2] = {{.fd = control, .events = POLLIN}, {.fd = child_fd, .events = POLLIN}};
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return 70;
        }
        if (fds[1].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(child_fd, &si, sizeof si) == sizeof si) {}
            while (waitpid(-1, NULL, WNOHANG) > 0) {}
        }
        if (!(fds[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;

        struct request req;
        int lock_fd = -1;
        union {
            struct cmsghdr align;
            char buf[CMSG_SPACE(sizeof(int))];
        } control_buf;
        struct iovec iov = {.iov_base = &req, .iov_len = sizeof req};
        struct msghdr msg = {
            .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control_buf.buf, .msg_controllen = sizeof control_buf.buf};
        ssize_t got = recvmsg(control, &msg, MSG_CMSG_CLOEXEC | MSG_WAITALL);
        if (got == 0) return 0;  // the engine has gone: so do we; our supervisors stay
        if (got < 0) {
            if (errno == EINTR) continue;
            return 70;
        }
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) memcpy(&lock_fd, CMSG_DATA(c), sizeof(int));
        }
        if (got != sizeof req || req.magic != REQUEST_MAGIC || req.length > (64u << 20)) return 70;
        char *strings = malloc(req.length + 1);
        char **words = malloc(sizeof(char *) * ((size_t)req.argc + req.envc + 3));
        if (strings == NULL || words == NULL || read_all(control, strings, req.length) < 0) return 70;
        strings[req.length] = 0;
        // Split the strings: cwd, argv (NULL-terminated), envp (NULL-terminated).
        size_t count = 0, want = 1 + req.argc + req.envc;
        for (char *p = strings; p < strings + req.length && count < want; p += strlen(p) + 1) words[count++] = p;
        uint32_t mux_words = (req.flags & REQUEST_MUX) ? 2 : 0;
        if (count != want || req.argc <= mux_words) {
            answer(control, req.job_id, -1, EINVAL, -1);
        } else {
            char *cwd = words[0];
            char **job_argv = words + 1;
            char **envp = words + 2 + req.argc;
            memmove(envp, words + 1 + req.argc, sizeof(char *) * req.envc);
            job_argv[req.argc] = NULL;
            envp[req.envc] = NULL;
            pid_t pid = fork();
            if (pid == 0) {
                close(control);
                close(child_fd);
                if (lock_fd >= 0 && lock_fd != LOCK_FD) {
                    dup2(lock_fd, LOCK_FD);
                    close(lock_fd);
                }
                // The signals a supervisor handles stay blocked, as they are in the zygote: a
                // stop sent the moment the engine learns this pid waits in the signalfd that
                // supervise() makes, instead of killing a supervisor not ready for it.
                supervise(dir, (long long)req.job_id, cwd, job_argv + mux_words, envp,
                          (req.flags & REQUEST_HOLD_STDIN) != 0, mux_words ? job_argv[0] : NULL,
                          mux_words ? job_argv[1] : NULL);
            }
            int error = pid < 0 ? errno : 0;
            int pidfd = pid > 0 ? (int)syscall(SYS_pidfd_open, pid, 0) : -1;
            answer(control, req.job_id, pid, error, pidfd);
            if (pidfd >= 0) close(pidfd);
        }
        if (lock_fd >= 0) close(lock_fd);
        free(strings);
        free(words);
    }
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--zygote") == 0) return zygote(argv[2]);
    int hold_stdin = 0;
    const char *mux_socket = NULL, *mux_command = NULL;
    for (;;) {
        if (argc > 1 && strcmp(argv[1], "--hold-stdin") == 0) {
            hold_stdin = 1;
            argv++;
            argc--;
        } else if (argc > 3 && strcmp(argv[1], "--mux") == 0) {
            mux_socket = argv[2];
            mux_command = argv[3];
            argv += 3;
            argc -= 3;
        } else {
            break;
        }
    }
    if (argc < 5) {
        static const char usage[] =
            "usage: jobkit-supervisor [--hold-stdin] [--mux SOCKET COMMAND] DIR ID CWD PROGRAM [ARG...]\n"
            "       jobkit-supervisor --zygote DIR\n";
        write_all(2, usage, sizeof usage - 1);
        return 64;
    }
    long long id = strtoll(argv[2], NULL, 10);
    if (id <= 0) return 64;
    supervise(argv[1], id, argv[3], argv + 4, environ, hold_stdin, mux_socket, mux_command);
}
