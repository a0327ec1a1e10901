#ifndef CJOBKITSYSTEM_H
#define CJOBKITSYSTEM_H

#include <sys/types.h>
#include <stdint.h>

#include "jobkit_abi.h"

/// Spawns `path` in a new session with every signal at its default and SIGTERM, SIGINT,
/// SIGHUP, SIGUSR1 and SIGCHLD blocked (the supervisor reads them from a signalfd), stdin
/// on `stdin_fd` (if >= 0, else /dev/null), stdout and stderr on /dev/null, `lock_fd` (if
/// >= 0) as fd 3, and no other descriptor. Returns 0 or an errno.
int jobkit_spawn_supervisor(const char *path, char *const argv[], char *const envp[], int lock_fd, int stdin_fd, pid_t *pid);

/// Asks a supervisor zygote (`jobkit-supervisor --zygote`, its socket `control`) to fork a
/// supervisor for job `id`. `strings` holds `length` bytes: the NUL-terminated cwd, `argc`
/// arguments and `envc` environment entries. `flags`: JOBKIT_REQUEST_HOLD_STDIN,
/// JOBKIT_REQUEST_MUX, … (see jobkit_abi.h); `attempt`: which run of the job this is. `lock_fd` goes along, and `stdin_fd` too when it is
/// >= 0 (the job's stdin; JOBKIT_REQUEST_STDIN is then set). The answer is read by `jobkit_zygote_receive`;
/// answers come in the order of the requests. Returns 0 or an errno (EPIPE: the zygote is gone).
/// With `lane_request` and `lane_report` (>= 0, and no stdin), the supervisor is a foreach's
/// lane (JOBKIT_REQUEST_LANE): it reads its next jobs from the one and reports their ends on
/// the other.
int jobkit_zygote_send(int control, int64_t id, const char *strings, uint32_t length, uint32_t argc, uint32_t envc,
                       uint32_t flags, uint32_t attempt, int lock_fd, int stdin_fd, int lane_request, int lane_report);

/// Asks an idle lane (its request pipe, non-blocking) to run job `id`: a request as the
/// zygote's, without descriptors. 0, or an errno (EAGAIN or EPIPE: not that lane; E2BIG: too
/// large for its pipe at once).
int jobkit_lane_send(int request, int64_t id, const char *strings, uint32_t length, uint32_t argc, uint32_t envc,
                     uint32_t flags, uint32_t attempt);

/// JOBKIT_LANE_SIGNAL, the signal that carries a lane's job's signal in its value.
int jobkit_lane_signal(void);

/// pidfd_send_signal with sigqueue's value: `value` reaches the process as si_value.
int jobkit_pidfd_sigqueue(int pidfd, int signal, uint64_t value);

/// Reads a lane's report pipe (non-blocking): the ids of the jobs it says ended, at most
/// `capacity` (negated for the last job of a lane that is going), with each one's index
/// records plus one in `records` (0: not known); their count, 0 when there is nothing yet, -1
/// at end of file (the lane is gone).
int jobkit_lane_read_reports(int report, int64_t *ids, uint32_t *records, int capacity);

/// Reads the zygote's next answer: the job it is about, and the supervisor's pid (> 0) with a
/// pidfd for it (or -1), or an errno in `error`. Returns 0 or an errno (EPIPE: the zygote is gone).
int jobkit_zygote_receive(int control, int64_t *id, pid_t *pid, int *error, int *pidfd);

/// pipe2(fds, O_CLOEXEC): a pipe that no concurrently spawned process inherits.
int jobkit_pipe_cloexec(int fds[2]);

/// Adds "close every descriptor from `fd` on" to `actions` (a posix_spawn_file_actions_t *,
/// glibc's posix_spawn_file_actions_addclosefrom_np, which Swift's Glibc module does not
/// show). Returns 0 or an errno.
int jobkit_spawn_actions_close_from(void *actions, int fd);

/// malloc_trim(0): gives the heap memory freed since back to the system.
void jobkit_release_free_memory(void);

/// A connected pair of stream sockets, close-on-exec.
int jobkit_socketpair(int fds[2]);

/// posix_spawn with stdio on /dev/null (stdout on `stdout_fd` if it is >= 0), no signal
/// blocked and SIGPIPE at its default: for helper programs (ssh masters, requests to a
/// host), and the baseline the benchmarks compare against.
int jobkit_spawn_plain(const char *path, char *const argv[], char *const envp[], int stdout_fd, pid_t *pid);

/// pidfd_open(2); -1 and errno on failure.
int jobkit_pidfd_open(pid_t pid);

/// Reaps the process behind `pidfd` if it is a child of this process and has exited.
/// Returns 0 when reaped, -1 with errno (ECHILD when it is not ours) otherwise.
int jobkit_pidfd_reap(int pidfd);

/// pidfd_send_signal(2): signals exactly the process behind `pidfd`. 0 or -1 and errno.
int jobkit_pidfd_signal(int pidfd, int signal);

/// epoll and eventfd, which Swift's Glibc module does not export. Each registration carries
/// a 64-bit tag; `jobkit_epoll_wait` returns the tags of the ready descriptors.
int jobkit_epoll_create(void);
int jobkit_epoll_add(int epoll, int fd, uint64_t tag);
int jobkit_epoll_del(int epoll, int fd);
int jobkit_epoll_wait(int epoll, uint64_t *tags, int max);
int jobkit_eventfd(void);

/// inotify, which Swift's Glibc module does not export.
int jobkit_inotify_init(void);
int jobkit_inotify_add_watch(int fd, const char *path, uint32_t mask);
extern const uint32_t jobkit_in_modify;
extern const uint32_t jobkit_in_q_overflow;

/// flock(2) without Swift's name clash with struct flock.
int jobkit_flock(int fd, int operation);

/// Takes a write lock on byte `offset` of `fd` as an open-file-description lock: it belongs to
/// the description, so it passes to a spawned process with the descriptor and is released
/// only when the last descriptor for it closes. Waits for it. 0 or -1 and errno.
int jobkit_lock_byte(int fd, long long offset);

/// 1 if another open file description holds a lock on byte `offset` of `fd`, 0 if none
/// does, -1 and errno on error.
int jobkit_byte_is_locked(int fd, long long offset);

/// 1 if something accepts connections on the Unix socket at `path`, 0 if not (no such file,
/// or a socket left by a process that died).
int jobkit_unix_socket_answers(const char *path);

/// glibc's malloc_trim(0): the pages the allocator has free go back to the system.
int jobkit_return_freed_memory(void);

#endif
