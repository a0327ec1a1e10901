#define _GNU_SOURCE
#include "CJobKitSystem.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

// A spawn of `path` with stdio on /dev/null (but stdin_fd and stdout_fd, if >= 0) and
// `flags`, `mask` and `defaults` as its signal attributes; `lock_fd` (if >= 0) becomes fd 3;
// with `close_others`, no other descriptor goes along.
static int spawn_quiet(const char *path, char *const argv[], char *const envp[], short flags, const sigset_t *mask,
                       const sigset_t *defaults, int lock_fd, int close_others, int stdin_fd, int stdout_fd,
                       pid_t *pid) {
    posix_spawnattr_t attr;
    posix_spawn_file_actions_t actions;
    int rc = posix_spawnattr_init(&attr);
    if (rc != 0) return rc;
    rc = posix_spawn_file_actions_init(&actions);
    if (rc != 0) {
        posix_spawnattr_destroy(&attr);
        return rc;
    }
    posix_spawnattr_setflags(&attr, flags | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setsigmask(&attr, mask);
    posix_spawnattr_setsigdefault(&attr, defaults);
    if (stdin_fd >= 0) {
        posix_spawn_file_actions_adddup2(&actions, stdin_fd, 0);
    } else {
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    }
    if (stdout_fd >= 0) {
        posix_spawn_file_actions_adddup2(&actions, stdout_fd, 1);
    } else {
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    }
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    if (lock_fd >= 0) posix_spawn_file_actions_adddup2(&actions, lock_fd, 3);
    // The engine's own descriptors (its database above all) must not leak into jobs.
    if (close_others) posix_spawn_file_actions_addclosefrom_np(&actions, lock_fd >= 0 ? 4 : 3);
    rc = posix_spawn(pid, path, &actions, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    return rc;
}

int jobkit_spawn_supervisor(const char *path, char *const argv[], char *const envp[], int lock_fd, int stdin_fd, pid_t *pid) {
    sigset_t blocked, defaults;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGTERM);
    sigaddset(&blocked, SIGINT);
    sigaddset(&blocked, SIGHUP);
    sigaddset(&blocked, SIGUSR1);
    sigaddset(&blocked, SIGCHLD);
    sigaddset(&blocked, SIGTSTP);
    sigaddset(&blocked, SIGCONT);
    sigfillset(&defaults);
    sigdelset(&defaults, SIGKILL);
    sigdelset(&defaults, SIGSTOP);
    // A new session: the supervisor must not get the terminal's SIGINT/SIGHUP meant for
    // the program that embeds the engine. Blocking from birth means a stop that arrives
    // before the supervisor is ready waits for it instead of killing it.
    return spawn_quiet(path, argv, envp, POSIX_SPAWN_SETSID, &blocked, &defaults, lock_fd, 1, stdin_fd, -1, pid);
}

int jobkit_spawn_plain(const char *path, char *const argv[], char *const envp[], int stdout_fd, pid_t *pid) {
    // A new program gets no blocked signals and SIGPIPE at its default, whatever the calling
    // thread has (a daemon's threads block the signals its handler thread takes): an ssh
    // master started with SIGTERM blocked could not be stopped.
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    return spawn_quiet(path, argv, envp, 0, &none, &defaults, -1, 0, -1, stdout_fd, pid);
}

int jobkit_pidfd_open(pid_t pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

int jobkit_pidfd_reap(int pidfd) {
    siginfo_t info;
    return waitid((idtype_t)P_PIDFD, (id_t)pidfd, &info, WEXITED | WNOHANG);
}

int jobkit_pidfd_signal(int pidfd, int signal) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, signal, NULL, 0);
}

int jobkit_inotify_init(void) {
    return inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
}

int jobkit_inotify_add_watch(int fd, const char *path, uint32_t mask) {
    return inotify_add_watch(fd, path, mask);
}

const uint32_t jobkit_in_modify = IN_MODIFY;
const uint32_t jobkit_in_q_overflow = IN_Q_OVERFLOW;

int jobkit_flock(int fd, int operation) {
    return flock(fd, operation);
}

int jobkit_lock_byte(int fd, long long offset) {
    struct flock lock = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = offset, .l_len = 1, .l_pid = 0};
    return fcntl(fd, F_OFD_SETLKW, &lock);
}

int jobkit_byte_is_locked(int fd, long long offset) {
    struct flock lock = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = offset, .l_len = 1, .l_pid = 0};
    if (fcntl(fd, F_OFD_GETLK, &lock) != 0) return -1;
    return lock.l_type != F_UNLCK;
}

void jobkit_release_free_memory(void) {
    malloc_trim(0);
}

int jobkit_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}

int jobkit_spawn_actions_close_from(void *actions, int fd) {
    return posix_spawn_file_actions_addclosefrom_np((posix_spawn_file_actions_t *)actions, fd);
}

int jobkit_socketpair(int fds[2]) {
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0 ? 0 : errno;
}

// A supervisor's request as the fork server and lanes read it (jobkit_abi.h), its strings after it.
static struct jobkit_zygote_request request_header(int64_t id, uint32_t length, uint32_t argc, uint32_t envc, uint32_t flags,
                                                   uint32_t attempt) {
    return (struct jobkit_zygote_request){
        .magic = JOBKIT_ZYGOTE_MAGIC, .length = length, .job_id = id, .argc = argc, .envc = envc, .flags = flags, .attempt = attempt};
}

int jobkit_zygote_send(int control, int64_t id, const char *strings, uint32_t length, uint32_t argc, uint32_t envc,
                       uint32_t flags, uint32_t attempt, int lock_fd, int stdin_fd, int lane_request, int lane_report) {
    int fds[3] = {lock_fd, stdin_fd, -1};
    int count = stdin_fd >= 0 ? 2 : 1;
    if (stdin_fd >= 0) flags |= JOBKIT_REQUEST_STDIN;
    if (stdin_fd < 0 && lane_request >= 0 && lane_report >= 0) {
        fds[1] = lane_request;
        fds[2] = lane_report;
        count = 3;
        flags |= JOBKIT_REQUEST_LANE;
    }
    struct jobkit_zygote_request req = request_header(id, length, argc, envc, flags, attempt);
    struct iovec iov[2] = {{.iov_base = &req, .iov_len = sizeof req}, {.iov_base = (void *)strings, .iov_len = length}};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(3 * sizeof(int))];
    } out;
    memset(&out, 0, sizeof out);
    struct msghdr msg = {
        .msg_iov = iov, .msg_iovlen = 2, .msg_control = out.buf, .msg_controllen = CMSG_SPACE(count * sizeof(int))};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(count * sizeof(int));
    memcpy(CMSG_DATA(c), fds, count * sizeof(int));
    ssize_t sent;
    while ((sent = sendmsg(control, &msg, MSG_NOSIGNAL)) < 0 && errno == EINTR) {}
    if (sent < 0) return errno;
    // The descriptor went with the first byte; the rest, if the kernel took only part, follows.
    size_t total = sizeof req + length, done = (size_t)sent;
    while (done < total) {
        const char *base = done < sizeof req ? (const char *)&req + done : strings + (done - sizeof req);
        size_t left = done < sizeof req ? sizeof req - done : total - done;
        ssize_t n = send(control, base, left, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return n < 0 ? errno : EPIPE;
        done += (size_t)n;
    }
    return 0;
}

int jobkit_zygote_receive(int control, int64_t *id, pid_t *pid, int *error, int *pidfd) {
    struct jobkit_zygote_answer a;
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } in;
    struct iovec aiov = {.iov_base = &a, .iov_len = sizeof a};
    struct msghdr amsg = {.msg_iov = &aiov, .msg_iovlen = 1, .msg_control = in.buf, .msg_controllen = sizeof in.buf};
    ssize_t got;
    while ((got = recvmsg(control, &amsg, MSG_CMSG_CLOEXEC | MSG_WAITALL)) < 0 && errno == EINTR) {}
    *pidfd = -1;
    for (struct cmsghdr *h = CMSG_FIRSTHDR(&amsg); h != NULL; h = CMSG_NXTHDR(&amsg, h)) {
        if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS) memcpy(pidfd, CMSG_DATA(h), sizeof(int));
    }
    if (got != sizeof a) {
        if (*pidfd >= 0) close(*pidfd);
        *pidfd = -1;
        return got < 0 ? errno : EPIPE;
    }
    *id = a.job_id;
    *pid = a.pid;
    *error = a.pid > 0 ? 0 : (a.error != 0 ? a.error : EAGAIN);
    return 0;
}

int jobkit_epoll_create(void) {
    return epoll_create1(EPOLL_CLOEXEC);
}

int jobkit_epoll_add(int epoll, int fd, uint64_t tag) {
    struct epoll_event event = {.events = EPOLLIN, .data.u64 = tag};
    return epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event);
}

int jobkit_epoll_del(int epoll, int fd) {
    return epoll_ctl(epoll, EPOLL_CTL_DEL, fd, NULL);
}

int jobkit_epoll_wait(int epoll, uint64_t *tags, int max) {
    struct epoll_event events[64];
    if (max > 64) max = 64;
    int n = epoll_wait(epoll, events, max, -1);
    for (int i = 0; i < n; i++) tags[i] = events[i].data.u64;
    return n;
}

int jobkit_eventfd(void) {
    return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

int jobkit_unix_socket_answers(const char *path) {
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof addr.sun_path) return 0;
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    int ok = connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0;
    close(fd);
    return ok;
}

int jobkit_return_freed_memory(void) {
    return malloc_trim(0);
}

int jobkit_lane_send(int request, int64_t id, const char *strings, uint32_t length, uint32_t argc, uint32_t envc,
                     uint32_t flags, uint32_t attempt) {
    struct jobkit_zygote_request req = request_header(id, length, argc, envc, flags, attempt);
    struct iovec iov[2] = {{.iov_base = &req, .iov_len = sizeof req}, {.iov_base = (void *)strings, .iov_len = length}};
    // The lane is idle and its pipe empty: all of it fits, or none (EAGAIN), or the lane is gone.
    if (sizeof req + length > 65536) return E2BIG;
    ssize_t n;
    while ((n = writev(request, iov, 2)) < 0 && errno == EINTR) {}
    if (n < 0) return errno;
    return (size_t)n == sizeof req + length ? 0 : EPIPE;
}

int jobkit_lane_signal(void) {
    return JOBKIT_LANE_SIGNAL;
}

int jobkit_pidfd_sigqueue(int pidfd, int signal, uint64_t value) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    info.si_signo = signal;
    info.si_code = SI_QUEUE;
    info.si_pid = getpid();
    info.si_uid = getuid();
    info.si_value.sival_ptr = (void *)(uintptr_t)value;
    return (int)syscall(SYS_pidfd_send_signal, pidfd, signal, &info, 0);
}

int jobkit_lane_read_reports(int report, int64_t *ids, uint32_t *records, int capacity) {
    struct jobkit_lane_report got[64];
    int max = capacity < 64 ? capacity : 64;
    ssize_t n;
    while ((n = read(report, got, sizeof got[0] * (size_t)max)) < 0 && errno == EINTR) {}
    if (n < 0) return errno == EAGAIN ? 0 : -1;
    if (n == 0) return -1;
    int count = 0;
    for (ssize_t i = 0; i < n / (ssize_t)sizeof got[0]; i++) {
        if (got[i].kind != JOBKIT_LANE_ENDED && got[i].kind != JOBKIT_LANE_RETIRED) continue;
        records[count] = got[i].records;
        ids[count++] = got[i].kind == JOBKIT_LANE_RETIRED ? -got[i].job_id : got[i].job_id;
    }
    return count;
}
