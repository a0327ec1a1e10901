// A remote session's channel: its own supervisor's side (open_channel), and one command run
// through it (run_on_channel, job invoke --session on another computer).
//
// A remote session is one ssh channel, kept by the session's supervisor through the host's
// master, whose stdin, stdout and stderr are the FIFOs `in`, `out` and `err` in the session's
// directory here. On the host, the session's script (RemoteSession in JobKit) keeps the shell
// and reads the channel's stdin a line at a time: `r ID NONCE TEXT` runs a command, `s ID`
// and `k ID` stop it (soft, then hard), an empty line ends the session. A command therefore
// costs no new channel, no login shell and no program start on the host.
//
// The command's stdout and stderr come back on the channel's own two streams, each between
// two markers made of a nonce this process draws for the command (16 random bytes, as hex):
// NONCE+ before its first byte and NONCE- after its last, the stdout one followed by the
// command's status and a newline. Nothing the command prints can be taken for a marker, as
// it cannot know the nonce; bytes before the begin marker are an earlier command's that its
// supervisor did not live to take, and are dropped. The markers are written only once the
// command's streams are let go of (the command and whatever it left holding them have ended),
// as a pipeline's end, so what comes between them is the command's whole output.
#include "supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <unistd.h>

const char *channel_dir = NULL;

enum { NONCE_LEN = 32, MARK_LEN = NONCE_LEN + 1, STATUS_MAX = 15 };
// How long a command whose stop's grace is over may take to end (its processes killed on the
// host, and the shell too if it does not give the command up) before it is ended here.
enum { KILL_WAIT_MS = 5000 };
enum { READ_SIZE = 64 * 1024 };

int open_channel(const char *dir, int *in_read, int *in_write, int *out, int *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/in", dir);
    // Non-blocking, or the open would wait for a writer. The writer kept here (and the
    // commands' supervisors while they write) are the only ones: the channel's stdin ends
    // when they have all gone, and with it the session on the host.
    *in_read = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    *in_write = *in_read < 0 ? -1 : open(path, O_WRONLY | O_CLOEXEC);
    if (*in_write >= 0) fcntl(*in_read, F_SETFL, 0);
    // Read and write, so that the channel's streams have a reader while no command reads
    // them (its output waits in the FIFO), and end only when the channel does.
    snprintf(path, sizeof path, "%s/out", dir);
    *out = open(path, O_RDWR | O_CLOEXEC);
    snprintf(path, sizeof path, "%s/err", dir);
    *err = open(path, O_RDWR | O_CLOEXEC);
    if (*out >= 0) fcntl(*out, F_SETPIPE_SZ, CHUNK);
    if (*err >= 0) fcntl(*err, F_SETPIPE_SZ, CHUNK);
    return *in_read >= 0 && *in_write >= 0 && *out >= 0 && *err >= 0 ? 0 : -1;
}

// One of the channel's streams, as far as this command goes.
struct framed {
    int fd;
    enum { SEEKING, DATA, STATUS, DONE, CUT } state;
    size_t held;                 // bytes at the start of buf that may begin a marker
    char status[STATUS_MAX + 1];  // what follows the end marker, up to its newline
    size_t status_len;
    struct stream out;
    char buf[READ_SIZE + MARK_LEN];
};

static char begin_mark[MARK_LEN], end_mark[MARK_LEN];

// How many of the last bytes of `p` are the first of `mark` (fewer than all of it): what
// must wait for the next read to tell. Output that cannot begin a marker is stored at once.
static size_t partial(const char *p, size_t len, const char *mark) {
    size_t most = len < MARK_LEN - 1 ? len : MARK_LEN - 1;
    for (size_t k = most; k > 0; k--) {
        if (memcmp(p + len - k, mark, k) == 0) return k;
    }
    return 0;
}

static void keep(struct framed *f, const char *p, size_t k) {
    memmove(f->buf, p, k);
    f->held = k;
}

// Takes what the stream has: its bytes up to the end marker are the command's output. The
// bytes read; 0 at the channel's end, -1 when there was nothing.
static ssize_t take_framed(struct framed *f) {
    ssize_t n = read(f->fd, f->buf + f->held, READ_SIZE);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return -1;
    if (n <= 0) {
        // The channel ended before the command's end: what came is all there is.
        if (f->state == DATA) put(&f->out, f->buf, f->held);
        f->held = 0;
        if (f->state != DONE) f->state = CUT;
        return 0;
    }
    char *p = f->buf;
    size_t len = f->held + (size_t)n;
    f->held = 0;
    while (len > 0) {
        if (f->state == SEEKING || f->state == DATA) {
            const char *mark = f->state == SEEKING ? begin_mark : end_mark;
            char *m = memmem(p, len, mark, MARK_LEN);
            if (m == NULL) {
                size_t k = partial(p, len, mark);
                if (f->state == DATA) put(&f->out, p, len - k);
                keep(f, p + len - k, k);
                return n;
            }
            if (f->state == DATA) put(&f->out, p, (size_t)(m - p));
            len -= (size_t)(m + MARK_LEN - p);
            p = m + MARK_LEN;
            f->state = f->state == SEEKING ? DATA : STATUS;
        } else if (f->state == STATUS) {
            char *nl = memchr(p, '\n', len);
            size_t k = nl ? (size_t)(nl - p) : len;
            for (size_t i = 0; i < k && f->status_len < STATUS_MAX; i++) f->status[f->status_len++] = p[i];
            if (nl != NULL) f->state = DONE;
            return n;
        } else {
            return n;
        }
    }
    return n;
}

// Writes a whole line to the channel's stdin, waiting for room if need be: 0, or -1 when
// no one reads it any more.
static int send_line(int fd, const char *line, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, line, len);
        if (n > 0) {
            line += n;
            len -= (size_t)n;
        } else if (n < 0 && errno == EAGAIN) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            if (poll(&p, 1, -1) < 0 && errno != EINTR) return -1;
        } else if (n < 0 && errno != EINTR) {
            return -1;
        }
    }
    return 0;
}

_Noreturn void run_on_channel(const char *jobs_dir, long long id, char **args, unsigned flags) {
    // args: the session's channel directory, its supervisor's pid, and the command's text
    // as printf escapes (which travel through every shell and `read -r` as they are).
    sigset_t handled;
    begin_supervising(jobs_dir, id, flags, &handled);
    const char *dir = args[0];
    pid_t session_supervisor = (pid_t)atoi(args[1]);
    const char *text = args[2];
    int signal_fd = signalfd(-1, &handled, SFD_CLOEXEC | SFD_NONBLOCK);
    if (signal_fd < 0) fail(JOBKIT_STAGE_SUPERVISOR, errno);

    unsigned char random[NONCE_LEN / 2];
    if (getrandom(random, sizeof random, 0) != (ssize_t)sizeof random) fail(JOBKIT_STAGE_SUPERVISOR, errno);
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < NONCE_LEN / 2; i++) {
        begin_mark[2 * i] = end_mark[2 * i] = hex[random[i] >> 4];
        begin_mark[2 * i + 1] = end_mark[2 * i + 1] = hex[random[i] & 15];
    }
    begin_mark[NONCE_LEN] = '+';
    end_mark[NONCE_LEN] = '-';

    static struct framed streams[2];
    const char *names[2] = {"out", "err"};
    char path[4096];
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        streams[i].fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        if (streams[i].fd < 0) finish(JOBKIT_ENDED_ERROR, JOBKIT_STAGE_SESSION, errno, now_ns());
        streams[i].state = SEEKING;
        streams[i].out = (struct stream){.pipe_fd = -1, .file_fd = -1, .name = i == 0 ? "stdout" : "stderr",
                                         .kind = i == 0 ? JOBKIT_STREAM_OUTPUT : JOBKIT_STREAM_ERROR};
    }
    // No reader of the channel's stdin: the session's channel has ended.
    snprintf(path, sizeof path, "%s/in", dir);
    int in_fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (in_fd < 0) finish(JOBKIT_ENDED_ERROR, JOBKIT_STAGE_SESSION, errno, now_ns());
    int supervisor_fd = session_supervisor > 0 ? pidfd_of(session_supervisor) : -1;
    if (supervisor_fd < 0) finish(JOBKIT_ENDED_ERROR, JOBKIT_STAGE_SESSION, ESRCH, now_ns());

    size_t text_len = strlen(text);
    char *request = malloc(text_len + 96);
    if (request == NULL) fail(JOBKIT_STAGE_SUPERVISOR, ENOMEM);
    int head = snprintf(request, 96, "r %lld %.*s ", id, NONCE_LEN, begin_mark);
    memcpy(request + head, text, text_len);
    request[head + (int)text_len] = '\n';

    job_slot.started = (struct jobkit_slot_started){
        .magic = JOBKIT_STARTED_MAGIC, .supervisor_pid = getpid(), .job_pid = getpid(), .start_ns = now_ns()};
    (void)pwrite(slots_fd, &job_slot.started, sizeof job_slot.started, (off_t)(job_id * JOBKIT_SLOT_SIZE));
    if (send_line(in_fd, request, (size_t)head + text_len + 1) != 0) {
        finish(JOBKIT_ENDED_ERROR, JOBKIT_STAGE_SESSION, EPIPE, now_ns());
    }
    free(request);

    int stopped_by = 0, softened = 0;
    int64_t kill_by = 0;
    char line[64];
    for (;;) {
        int done = 0, cut = 0;
        for (int i = 0; i < 2; i++) {
            done += streams[i].state == DONE;
            cut += streams[i].state == CUT;
        }
        if (done + cut == 2) break;
        int timeout = -1;
        if (kill_by != 0) {
            int64_t left = kill_by - now_ms();
            timeout = left < 0 ? 0 : (int)left;
        }
        struct pollfd p[4] = {
            {.fd = streams[0].state < DONE ? streams[0].fd : -1, .events = POLLIN},
            {.fd = streams[1].state < DONE ? streams[1].fd : -1, .events = POLLIN},
            {.fd = signal_fd, .events = POLLIN},
            {.fd = supervisor_fd, .events = POLLIN},
        };
        if (poll(p, 4, timeout) < 0) {
            if (errno == EINTR) continue;
            fail(JOBKIT_STAGE_SUPERVISOR, errno);
        }
        for (int i = 0; i < 2; i++) {
            if (p[i].revents & (POLLIN | POLLHUP | POLLERR)) take_framed(&streams[i]);
        }
        if (p[2].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(signal_fd, &si, sizeof si) == sizeof si) {
                int signo = (int)si.ssi_signo;
                if (signo != SIGTERM && signo != SIGINT && signo != SIGHUP && signo != SIGUSR1) continue;
                if (stopped_by == 0) stopped_by = signo;
                if (signo == SIGUSR1 && kill_by == 0) {
                    snprintf(line, sizeof line, "k %lld\n", id);
                    (void)send_line(in_fd, line, strlen(line));
                    kill_by = now_ms() + KILL_WAIT_MS;
                } else if (signo != SIGUSR1 && !softened) {
                    snprintf(line, sizeof line, "s %lld\n", id);
                    (void)send_line(in_fd, line, strlen(line));
                    softened = 1;
                }
            }
        }
        if (p[3].revents & POLLIN) {
            // The session's supervisor is gone, and with it the channel: what came is all
            // there is (the command's end too, if it ended the shell).
            for (int i = 0; i < 2; i++) {
                for (int chunks = 0; chunks < 64 && streams[i].state < DONE && take_framed(&streams[i]) > 0; chunks++) {}
            }
            if (streams[0].state != DONE || streams[1].state != DONE) {
                finish(JOBKIT_ENDED_ERROR, JOBKIT_STAGE_SESSION, ESRCH, now_ns());
            }
            supervisor_fd = -1;
        }
        if (kill_by != 0 && now_ms() >= kill_by) finish(JOBKIT_ENDED_SIGNAL, JOBKIT_STAGE_NONE, SIGKILL, now_ns());
    }
    if (streams[0].state != DONE || streams[1].state != DONE) finish(JOBKIT_ENDED_ERROR, JOBKIT_STAGE_SESSION, EPIPE, now_ns());
    streams[0].status[streams[0].status_len] = 0;
    char *end = NULL;
    long code = strtol(streams[0].status, &end, 10);
    // No status after the marker: the shell could not tell one.
    if (end == streams[0].status || *end != 0 || code < 0 || code > 255) finish(JOBKIT_ENDED_ERROR, JOBKIT_STAGE_SESSION, EIO, now_ns());
    if (stopped_by != 0 && code > 128) finish(JOBKIT_ENDED_SIGNAL, JOBKIT_STAGE_NONE, (int)code - 128, now_ns());
    finish(JOBKIT_ENDED_EXIT, JOBKIT_STAGE_NONE, (int)code, now_ns());
}
