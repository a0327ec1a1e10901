// What every supervisor shares: the descriptors it opens once, plain I/O, and its end.
#include "supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int dir_fd = -1;
int slots_fd = -1;
int null_fd = -1;
long long job_id;
unsigned job_attempt = 1;
struct jobkit_slot job_slot;

int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t now_ms(void) {
    return now_ns() / 1000000;
}

int pidfd_of(pid_t pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

int write_all(int fd, const void *buf, size_t len) {
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

int read_all(int fd, void *buf, size_t len) {
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

ssize_t send_with_fd(int sock, const void *data, size_t len, int fd) {
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

int open_shared(const char *dir) {
    if (dir_fd < 0) dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) return -1;
    // Beside the jobs directory, not in it: receive streams watch that directory for writes,
    // and every job's start and end would wake them for nothing.
    if (slots_fd < 0) slots_fd = openat(dir_fd, "../slots", O_WRONLY | O_CLOEXEC);
    if (null_fd < 0) null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return slots_fd >= 0 && null_fd >= 0 ? 0 : -1;
}

void handled_signals(sigset_t *set) {
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
    sigaddset(set, SIGUSR1);
    sigaddset(set, SIGCHLD);
    sigaddset(set, SIGTSTP);
    sigaddset(set, SIGCONT);
    sigaddset(set, JOBKIT_LANE_SIGNAL);
}

void begin_supervising(const char *dir, long long id, unsigned flags, sigset_t *handled) {
    append_output = (flags & JOBKIT_REQUEST_APPEND) != 0;
    job_id = id;
    setsid();  // a no-op when spawned with POSIX_SPAWN_SETSID; needed when forked
    // The lock must not leak into the job: a straggler holding it would make a dead
    // supervisor look alive.
    fcntl(LOCK_FD, F_SETFD, FD_CLOEXEC);
    handled_signals(handled);
    sigprocmask(SIG_SETMASK, handled, NULL);
    signal(SIGPIPE, SIG_IGN);
    // Nowhere to record anything without them: the engine then sees no status.
    if (open_shared(dir) != 0) _exit(70);
}

void record_end(uint8_t kind, uint8_t stage, int code, int64_t end_ns, const struct rusage *usage) {
    job_slot.ended = (struct jobkit_slot_ended){
        .magic = JOBKIT_ENDED_MAGIC, .kind = kind, .stage = stage, .attempt = (uint16_t)job_attempt, .code = code,
        .end_ns = end_ns, .lost_bytes = lost_bytes, .lost_errno = lost_errno};
    if (job_slot.started.magic == JOBKIT_STARTED_MAGIC && usage != NULL && usage->ru_maxrss > 0) {
        job_slot.started.max_rss_kib = (uint32_t)usage->ru_maxrss;
        job_slot.started.cpu_usec = (uint64_t)(usage->ru_utime.tv_sec + usage->ru_stime.tv_sec) * 1000000u +
                                    (uint64_t)(usage->ru_utime.tv_usec + usage->ru_stime.tv_usec);
    }
    // One write for both halves. Should it fail there is nothing left to tell it with: the
    // engine then reads a supervisor gone without a word.
    if (slots_fd >= 0) (void)pwrite(slots_fd, &job_slot, sizeof job_slot, (off_t)(job_id * JOBKIT_SLOT_SIZE));
}

_Noreturn void finish(uint8_t kind, uint8_t stage, int code, int64_t end_ns) {
    // Every process of the job this one waited for (the job, and what it left behind and
    // was reaped here as a subreaper): their CPU time, and the largest resident set of any.
    struct rusage usage;
    int measured = job_slot.started.magic == JOBKIT_STARTED_MAGIC && getrusage(RUSAGE_CHILDREN, &usage) == 0;
    record_end(kind, stage, code, end_ns, measured ? &usage : NULL);
    _exit(0);
}

_Noreturn void fail(uint8_t stage, int err) {
    finish(JOBKIT_ENDED_ERROR, stage, err, now_ns());
}

int split_request(char *strings, uint32_t length, uint32_t argc, uint32_t envc, char **words) {
    size_t count = 0, want = 1 + (size_t)argc + envc;
    for (char *p = strings; p < strings + length && count < want; p += strlen(p) + 1) words[count++] = p;
    if (count != want) return -1;
    // argv's NULL goes after its last word: the environment moves one place on for it.
    memmove(words + 2 + argc, words + 1 + argc, sizeof(char *) * envc);
    words[1 + argc] = NULL;
    words[2 + argc + envc] = NULL;
    return 0;
}
