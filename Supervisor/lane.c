// A foreach's lane (JOBKIT_REQUEST_LANE): a supervisor that runs one job, then the next one
// the engine asks of it on its request pipe, and so on, instead of exiting after the first.
// A foreach of short commands then costs a vfork each, as xargs does, rather than the fork
// of a supervisor, its exit and the engine's ask of the fork server.
//
// Each job is what a supervisor's one job is: its own session, files, slot and lock byte
// (the first job's lock comes from the engine as LOCK_FD, the later ones the lane takes on
// its own description of the locks file), and its end in its slot before the lane says so on
// its report pipe (jobkit_lane_report). Signals for a job come as JOBKIT_LANE_SIGNAL with the
// job's id in their value, so that one meant for a job that has ended is not taken by the
// next. The lane runs one job's processes at a time: a job that leaves processes behind ends
// its lane (they stay below it until they end, as below any supervisor), and so does a
// closed request pipe, an engine gone (its end of the report pipe closed: a job asked of a
// lane the engine no longer hears from is not started, for the next engine to start), or
// anything unexpected; the engine then learns it from the lane's pidfd.
#include "supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

int lane_request_fd = -1;
int lane_report_fd = -1;
// The lane's own description of the locks file, for its jobs after the first.
static int locks_fd = -1;
// Whether the lock in hand is the first job's, on LOCK_FD.
static int first_lock = 1;
// The current request's strings and their words: its job's argv and envp point into them.
static char *strings;
static char **words;

static void release_lock(void) {
    if (first_lock) {
        close(LOCK_FD);
        first_lock = 0;
        return;
    }
    struct flock lock = {.l_type = F_UNLCK, .l_whence = SEEK_SET, .l_start = job_id, .l_len = 1};
    (void)fcntl(locks_fd, F_OFD_SETLK, &lock);
}

// Whether any process is still this one's child: waitid without waiting says ECHILD when
// none is (zombies are reaped first: they are gone for good).
static int has_children(void) {
    while (waitpid(-1, NULL, WNOHANG) > 0) {}
    siginfo_t info;
    memset(&info, 0, sizeof info);
    return waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) == 0;
}

// Waits for the next request, letting signals for no job go meanwhile. A request comes
// before any signal for its job (the engine writes it first), so those seen while none is
// waiting are for jobs that ended.
static void wait_for_request(int signal_fd) {
    for (;;) {
        struct pollfd fds[2] = {{.fd = lane_request_fd, .events = POLLIN}, {.fd = signal_fd, .events = POLLIN}};
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            _exit(0);
        }
        if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) return;
        struct signalfd_siginfo si;
        while (read(signal_fd, &si, sizeof si) == sizeof si) {}
        while (waitpid(-1, NULL, WNOHANG) > 0) {}
    }
}

void lane_next(struct lane_job *next, int signal_fd) {
    release_lock();
    int left = has_children();
    // Said with the end, so that the engine asks nothing more of a lane that is going.
    struct jobkit_lane_report r = {
        .job_id = job_id, .kind = left ? JOBKIT_LANE_RETIRED : JOBKIT_LANE_ENDED, .records = output_records()};
    // Refused (EPIPE) once the engine has gone: the next one reads the slot.
    (void)write_all(lane_report_fd, &r, sizeof r);
    if (left) _exit(0);
    reset_output();
    wait_for_request(signal_fd);
    struct jobkit_zygote_request req;
    if (read_all(lane_request_fd, &req, sizeof req) != 0 || req.magic != JOBKIT_ZYGOTE_MAGIC ||
        req.length > JOBKIT_ZYGOTE_MAX_STRINGS || req.argc < 1) {
        _exit(0);
    }
    free(strings);
    free(words);
    strings = malloc(req.length + 1);
    words = malloc(sizeof(char *) * ((size_t)req.argc + req.envc + 3));
    if (strings == NULL || words == NULL || read_all(lane_request_fd, strings, req.length) != 0) _exit(0);
    strings[req.length] = 0;
    if (split_request(strings, req.length, req.argc, req.envc, words) != 0) _exit(0);
    job_id = req.job_id;
    job_attempt = req.attempt == 0 ? 1 : req.attempt;
    append_output = (req.flags & JOBKIT_REQUEST_APPEND) != 0;
    memset(&job_slot, 0, sizeof job_slot);
    *next = (struct lane_job){.cwd = words[0], .argv = words + 1, .envp = words + 2 + req.argc, .flags = req.flags};
}

void lane_begin(void) {
    if (locks_fd < 0) locks_fd = openat(dir_fd, "locks", O_RDWR | O_CLOEXEC);
    struct flock lock = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = job_id, .l_len = 1};
    if (locks_fd < 0 || fcntl(locks_fd, F_OFD_SETLK, &lock) != 0) _exit(0);
    // Taken before this look, so that an engine that comes after the one that asked finds
    // either a job that started or a lane that is gone.
    struct pollfd p = {.fd = lane_report_fd, .events = POLLOUT};
    if (poll(&p, 1, 0) < 0 || (p.revents & (POLLERR | POLLHUP))) _exit(0);
}

int lane_signal(const void *siginfo) {
    const struct signalfd_siginfo *si = siginfo;
    if (si->ssi_code != SI_QUEUE || (long long)(si->ssi_ptr >> 8) != job_id) return 0;
    return (int)(si->ssi_ptr & 0xff);
}
