// One request to a host through its ssh master, for the engine: what `ssh HOST COMMAND`
// does for a one-line answer, without an ssh process (whose start is most of such a
// request's cost: the detached jobs' start, check and clean, on every host at once).
#include "supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

// In .bss: a mux is a packet buffer's worth.
static struct mux ask_session;

int ask_master(const char *socket_path, const char *command) {
    signal(SIGPIPE, SIG_IGN);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    int out[2];
    if (null < 0 || pipe2(out, O_CLOEXEC) != 0) return ASK_LOST;
    int stop = 0;
    // The answer comes through a pipe of this process's, copied to stdout until the master
    // lets go of it: the master may still be writing it when the exit message comes.
    switch (mux_open(&ask_session, socket_path, command, environ, null, out[1], null, -1, &stop)) {
    case MUX_OPENED: break;
    case MUX_USE_SSH: return ASK_NO_MASTER;
    default: return ASK_LOST;
    }
    close(out[1]);
    int status = -1, open_socket = 1, open_pipe = 1;
    char buffer[4096];
    while (open_pipe || (open_socket && status < 0)) {
        struct pollfd fds[2] = {{.fd = open_pipe ? out[0] : -1, .events = POLLIN},
                                {.fd = open_socket && status < 0 ? ask_session.fd : -1, .events = POLLIN}};
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return ASK_LOST;
        }
        if (fds[0].revents) {
            ssize_t n = read(out[0], buffer, sizeof buffer);
            if (n > 0) {
                if (write_all(1, buffer, (size_t)n) != 0) return ASK_LOST;
            } else if (n == 0 || errno != EINTR) {
                open_pipe = 0;
            }
        }
        if (fds[1].revents) {
            open_socket = mux_fill(&ask_session) == 0;
            int code;
            if (mux_exit_status(&ask_session, &code)) status = code;
        }
    }
    return status < 0 ? ASK_LOST : status;
}
