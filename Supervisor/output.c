// A job's output: each stream's bytes to its file, and a record per chunk to the index
// (layouts: jobkit_abi.h). No file exists before its first byte: creating inodes is most of
// the cost of a short job.
#include "supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

static int index_fd = -1;
// In .bss, not allocated: its pages exist only once output is read into them, so a job that
// prints nothing costs no memory for it, and neither an mmap nor an munmap.
static char scratch[CHUNK];

static int open_output(const char *suffix, int extra_flags) {
    char name[64];
    snprintf(name, sizeof name, "%lld.%s", job_id, suffix);
    return openat(dir_fd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | extra_flags, 0600);
}

static void record(const struct stream *s, uint64_t offset, uint32_t length) {
    struct jobkit_index_record r = {.time_ns = now_ns(), .offset = offset, .length = length, .stream = s->kind};
    if (index_fd < 0) index_fd = open_output("index", O_APPEND);
    // The data is on disk before its record, so a reader that sees a record can read it.
    if (index_fd >= 0) write_all(index_fd, &r, sizeof r);
}

// The first read of a stream goes through memory: only data makes the file exist.
static ssize_t drain_first(struct stream *s) {
    ssize_t n = read(s->pipe_fd, scratch, CHUNK);
    if (n <= 0) return n < 0 && (errno == EAGAIN || errno == EINTR) ? -1 : 0;
    // A job that writes gets a larger pipe, for fewer wake-ups and larger chunks; one that
    // does not is spared the call.
    fcntl(s->pipe_fd, F_SETPIPE_SZ, CHUNK);
    s->file_fd = open_output(s->name, 0);
    if (s->file_fd < 0 || pwrite(s->file_fd, scratch, (size_t)n, 0) != n) {
        // The disk refused it: the job goes on, its output is dropped (see drain_more).
        return n;
    }
    record(s, s->offset, (uint32_t)n);
    s->offset += (uint64_t)n;
    return n;
}

static ssize_t drain_more(struct stream *s) {
    loff_t off = (loff_t)s->offset;
    ssize_t n = splice(s->pipe_fd, NULL, s->file_fd, &off, CHUNK, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
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
    record(s, s->offset, (uint32_t)n);
    s->offset += (uint64_t)n;
    return n;
}

ssize_t take(struct stream *s) {
    ssize_t n = s->file_fd < 0 ? drain_first(s) : drain_more(s);
    if (n == 0) {
        close(s->pipe_fd);
        s->pipe_fd = -1;
    }
    return n;
}
