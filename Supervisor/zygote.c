// jobkit-supervisor --zygote DIR, with fd 3 a stream socket to the engine: a fork server.
// For each request (jobkit_zygote_request, in jobkit_abi.h) it forks a supervisor for one
// job, as if started with the first form, and answers with its pid and a pidfd. Forking this
// small process costs a fraction of starting a program, whose libc start-up alone (cpuid is
// a VM exit) costs more than a short job. The forked supervisors are independent of the
// zygote and of the engine; the zygote exits when the engine's end of the socket closes.
#include "supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

enum { CONTROL_FD = 3, EXIT_BROKEN = 70 };
// A session's command's arguments (session.c).
enum { SESSION_ARGS = 6, CHANNEL_ARGS = 3 };

static void answer(int64_t id, pid_t pid, int error, int pidfd) {
    struct jobkit_zygote_answer a = {.job_id = id, .pid = pid, .error = error};
    send_with_fd(CONTROL_FD, &a, sizeof a, pidfd);
}

// Reads the next request header and the lock descriptor with it: 1, 0 when the engine has
// gone, -1 on an error (a request not of this protocol too).
static int receive_request(struct jobkit_zygote_request *req, int *lock_fd, int *stdin_fd, int lane_fds[2]) {
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(4 * sizeof(int))];
    } control_buf;
    struct iovec iov = {.iov_base = req, .iov_len = sizeof *req};
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control_buf.buf, .msg_controllen = sizeof control_buf.buf};
    ssize_t got;
    while ((got = recvmsg(CONTROL_FD, &msg, MSG_CMSG_CLOEXEC | MSG_WAITALL)) < 0 && errno == EINTR) {}
    if (got <= 0) return got == 0 ? 0 : -1;
    *lock_fd = -1;
    *stdin_fd = -1;
    lane_fds[0] = lane_fds[1] = -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        int fds[4] = {-1, -1, -1, -1};
        memcpy(fds, CMSG_DATA(c), (count > 4 ? 4 : count) * sizeof(int));
        // The lock, then the job's stdin (REQUEST_STDIN) or a lane's two pipes (REQUEST_LANE).
        *lock_fd = fds[0];
        if (got > 0 && (req->flags & JOBKIT_REQUEST_LANE)) {
            lane_fds[0] = fds[1];
            lane_fds[1] = fds[2];
        } else {
            *stdin_fd = fds[1];
        }
    }
    if (got != (ssize_t)sizeof *req || req->magic != JOBKIT_ZYGOTE_MAGIC || req->length > JOBKIT_ZYGOTE_MAX_STRINGS) {
        return -1;
    }
    return 1;
}

// Forks job `req`'s supervisor from the request's strings (cwd, argv, envp) and answers.
static void fork_supervisor(const char *dir, const struct jobkit_zygote_request *req, char **words, int lock_fd,
                            int stdin_fd, const int lane_fds[2], int child_fd) {
    char *cwd = words[0];
    char **job_argv = words + 1;
    char **envp = words + 2 + req->argc;
    uint32_t mux_words = (req->flags & JOBKIT_REQUEST_MUX) ? 2 : 0;
    pid_t pid = fork();
    if (pid == 0) {
        close(CONTROL_FD);
        close(child_fd);
        if (lock_fd >= 0 && lock_fd != LOCK_FD) {
            dup2(lock_fd, LOCK_FD);
            close(lock_fd);
        }
        job_attempt = req->attempt == 0 ? 1 : req->attempt;
        if (lane_fds[0] >= 0 && lane_fds[1] >= 0) {
            lane_request_fd = lane_fds[0];
            lane_report_fd = lane_fds[1];
        }
        if (req->flags & JOBKIT_REQUEST_SESSION) run_in_session(dir, (long long)req->job_id, job_argv, req->flags);
        if (req->flags & JOBKIT_REQUEST_CHANNEL) run_on_channel(dir, (long long)req->job_id, job_argv, req->flags);
        // The signals a supervisor handles stay blocked, as they are in the zygote: a stop
        // sent the moment the engine learns this pid waits in the signalfd that supervise()
        // makes, instead of killing a supervisor not ready for it.
        supervise(dir, (long long)req->job_id, cwd, job_argv + mux_words, envp, req->flags, mux_words ? job_argv[0] : NULL,
                  mux_words ? job_argv[1] : NULL, stdin_fd);
    }
    int error = pid < 0 ? errno : 0;
    int pidfd = pid > 0 ? pidfd_of(pid) : -1;
    answer(req->job_id, pid, error, pidfd);
    if (pidfd >= 0) close(pidfd);
}

// Serves one request whose header came: 0, or -1 when the socket broke.
static int serve(const char *dir, const struct jobkit_zygote_request *req, int lock_fd, int stdin_fd,
                 const int lane_fds[2], int child_fd) {
    char *strings = malloc(req->length + 1);
    char **words = malloc(sizeof(char *) * ((size_t)req->argc + req->envc + 3));
    int rc = strings == NULL || words == NULL || read_all(CONTROL_FD, strings, req->length) < 0 ? -1 : 0;
    if (rc == 0) {
        strings[req->length] = 0;
        uint32_t mux_words = (req->flags & JOBKIT_REQUEST_MUX) ? 2 : 0;
        uint32_t least = (req->flags & JOBKIT_REQUEST_SESSION)   ? SESSION_ARGS - 1
                         : (req->flags & JOBKIT_REQUEST_CHANNEL) ? CHANNEL_ARGS - 1
                                                                 : mux_words;
        if (split_request(strings, req->length, req->argc, req->envc, words) != 0 || req->argc <= least) {
            answer(req->job_id, -1, EINVAL, -1);
        } else {
            fork_supervisor(dir, req, words, lock_fd, stdin_fd, lane_fds, child_fd);
        }
    }
    free(strings);
    free(words);
    return rc;
}

int zygote(const char *dir) {
    fcntl(CONTROL_FD, F_SETFD, FD_CLOEXEC);
    signal(SIGPIPE, SIG_IGN);
    if (open_shared(dir) != 0) return EXIT_BROKEN;
    // Blocked here too, so that the supervisors forked from here are born with them blocked.
    sigset_t blocked;
    handled_signals(&blocked);
    sigprocmask(SIG_BLOCK, &blocked, NULL);
    sigset_t children;
    sigemptyset(&children);
    sigaddset(&children, SIGCHLD);
    int child_fd = signalfd(-1, &children, SFD_CLOEXEC | SFD_NONBLOCK);
    if (child_fd < 0) return EXIT_BROKEN;

    for (;;) {
        struct pollfd fds[2] = {{.fd = CONTROL_FD, .events = POLLIN}, {.fd = child_fd, .events = POLLIN}};
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return EXIT_BROKEN;
        }
        if (fds[1].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(child_fd, &si, sizeof si) == sizeof si) {}
            while (waitpid(-1, NULL, WNOHANG) > 0) {}
        }
        if (!(fds[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        struct jobkit_zygote_request req;
        int lock_fd = -1, stdin_fd = -1, lane_fds[2] = {-1, -1};
        int got = receive_request(&req, &lock_fd, &stdin_fd, lane_fds);
        if (got == 0) return 0;  // the engine has gone: so do we; our supervisors stay
        int served = got > 0 ? serve(dir, &req, lock_fd, stdin_fd, lane_fds, child_fd) : -1;
        if (lock_fd >= 0) close(lock_fd);
        if (stdin_fd >= 0) close(stdin_fd);
        for (int i = 0; i < 2; i++) {
            if (lane_fds[i] >= 0) close(lane_fds[i]);
        }
        if (served < 0) return EXIT_BROKEN;
    }
}
