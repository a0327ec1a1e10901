// A session through an ssh ControlMaster's socket: what `ssh -o ControlPath=SOCKET HOST
// COMMAND` does when a master answers (OpenSSH's PROTOCOL.mux, version 4), without starting
// ssh. A remote job through a master is then a connect and three messages instead of a
// program whose start-up (the dynamic loader, OpenSSL, the configuration) costs ~4 ms of CPU,
// more than everything else a remote job costs here together. The master is still the
// user's ssh, with their configuration, keys and known hosts; it checks the environment
// against its own SendEnv, as it does for an ssh that passes it on.
#include "supervisor.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

enum {
    MUX_MSG_HELLO = 0x00000001,
    MUX_C_NEW_SESSION = 0x10000002,
    MUX_S_EXIT_MESSAGE = 0x80000004,
    MUX_S_SESSION_OPENED = 0x80000006,
    MUX_VERSION = 4,
};

// A master drops a packet over 256 KiB: an environment that large goes the way ssh would
// send it (it sends only what SendEnv lets through).
enum { MUX_MAX_REQUEST = 200 * 1024 };

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

// The payload and length of the first whole packet read, if there is one: 1; 0 if none is
// whole yet; -1 for a length no packet has.
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

int mux_fill(struct mux *m) {
    if (m->have == sizeof m->in) return -1;  // a packet longer than any the protocol sends
    ssize_t n = read(m->fd, m->in + m->have, sizeof m->in - m->have);
    if (n < 0 && errno == EINTR) return 0;
    if (n <= 0) return -1;
    m->have += (size_t)n;
    return 0;
}

int mux_exit_status(struct mux *m, int *status) {
    const unsigned char *payload;
    uint32_t length;
    int found = 0;
    while (mux_packet(m, &payload, &length) == 1) {
        if (!found && length >= 12 && get_u32(payload) == MUX_S_EXIT_MESSAGE) {
            *status = (int)get_u32(payload + 8);
            found = 1;
        }
        mux_consume(m, length);
    }
    return found;
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

// The new-session request: no tty, X11 or agent forwarding, no subsystem, no escape
// character, no TERM; the command, then the whole environment (the master filters it).
static int session_request(struct growing *request, const char *command, char **envp) {
    int failed = put_u32(request, MUX_C_NEW_SESSION) || put_u32(request, 0) || put_string(request, "") ||
                 put_u32(request, 0) || put_u32(request, 0) || put_u32(request, 0) || put_u32(request, 0) ||
                 put_u32(request, 0xffffffffu) || put_string(request, "") || put_string(request, command);
    for (char **e = envp; !failed && *e != NULL; e++) failed = put_string(request, *e);
    return failed || request->len > MUX_MAX_REQUEST ? -1 : 0;
}

static void mux_close(struct mux *m) {
    if (m->fd >= 0) close(m->fd);
    m->fd = -1;
}

// Connects and says hello: 1 when the master answered as version 4, 0 when none did (no
// socket, a stale one, another protocol), -1 when a stop signal came first.
static int mux_hello(struct mux *m, const char *socket_path, int signal_fd, int *stop) {
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(socket_path) >= sizeof addr.sun_path) return 0;
    strcpy(addr.sun_path, socket_path);
    m->have = 0;
    m->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (m->fd >= 0 && connect(m->fd, (struct sockaddr *)&addr, sizeof addr) != 0) mux_close(m);
    struct growing hello = {0};
    int failed = m->fd < 0 || put_u32(&hello, MUX_MSG_HELLO) || put_u32(&hello, MUX_VERSION) || mux_send(m->fd, &hello);
    free(hello.data);
    const unsigned char *payload;
    uint32_t length;
    int got = failed ? 0 : mux_wait_packet(m, signal_fd, &payload, &length, stop);
    if (got > 0 && (length < 8 || get_u32(payload) != MUX_MSG_HELLO || get_u32(payload + 4) != MUX_VERSION)) got = 0;
    if (got <= 0) {
        mux_close(m);
        return got;
    }
    mux_consume(m, length);
    return 1;
}

// MUX_USE_SSH: the command did not start, and ssh is to run it: no master answered, or the
// master refused the session — as the server does beyond its MaxSessions per connection (10
// by default), when ssh too goes on to connect by itself; MUX_LOST: the master went away
// once asked, so the command may have started; MUX_STOPPED: a stop signal (`*stop`) came
// first; MUX_OPENED: the session is open, and the master's exit message will follow.
int mux_open(struct mux *m, const char *socket_path, const char *command, char **envp, int in_fd, int out_fd,
             int err_fd, int signal_fd, int *stop) {
    m->fd = -1;
    struct growing request = {0};
    if (session_request(&request, command, envp) != 0) {
        free(request.data);
        return MUX_USE_SSH;
    }
    int hello = mux_hello(m, socket_path, signal_fd, stop);
    if (hello <= 0) {
        free(request.data);
        return hello < 0 ? MUX_STOPPED : MUX_USE_SSH;
    }
    int failed = mux_send(m->fd, &request) || mux_send_fd(m->fd, in_fd) || mux_send_fd(m->fd, out_fd) ||
                 mux_send_fd(m->fd, err_fd);
    free(request.data);
    if (failed) {
        // The master takes the request only with its three descriptors: it ran nothing.
        mux_close(m);
        return MUX_USE_SSH;
    }
    const unsigned char *payload;
    uint32_t length;
    int got = mux_wait_packet(m, signal_fd, &payload, &length, stop);
    if (got < 0) return MUX_STOPPED;
    if (got == 0 || length < 8) return MUX_LOST;
    if (get_u32(payload) == MUX_S_SESSION_OPENED) {
        mux_consume(m, length);
        return MUX_OPENED;
    }
    // MUX_S_FAILURE, MUX_S_PERMISSION_DENIED: refused before the command was sent. Anything
    // else is not this protocol: ssh will say what it makes of it.
    mux_close(m);
    return MUX_USE_SSH;
}
