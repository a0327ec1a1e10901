// A job's output: each stream's bytes to its file, and a record per chunk to the index
// (layouts: jobkit_abi.h). No file exists before its first byte: creating inodes is most of
// the cost of a short job.
#include "supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static int index_fd = -1;
// The index's length as far as whole records go: a record half-written (the disk filled up
// in the middle of it) is cut off again, so that the index never holds a broken record.
static off_t index_length = 0;

uint64_t lost_bytes = 0;
int lost_errno = 0;
int append_output = 0;

uint32_t output_records(void) {
    // With nothing written, a retry's index is its earlier attempts', not looked at here.
    if (index_fd < 0 && append_output) return 0;
    return (uint32_t)(index_length / (off_t)sizeof(struct jobkit_index_record)) + 1;
}

void reset_output(void) {
    if (index_fd >= 0) close(index_fd);
    index_fd = -1;
    index_length = 0;
    lost_bytes = 0;
    lost_errno = 0;
}

static void lose(ssize_t n, int err) {
    if (n <= 0) return;
    lost_bytes += (uint64_t)n;
    if (lost_errno == 0) lost_errno = err ? err : EIO;
}
// In .bss, not allocated: its pages exist only once output is read into them, so a job that
// prints nothing costs no memory for it, and neither an mmap nor an munmap.
static char scratch[CHUNK];

static int open_output(const char *suffix, int extra_flags) {
    char name[64];
    snprintf(name, sizeof name, "%lld.%s", job_id, suffix);
    int truncate = append_output ? 0 : O_TRUNC;
    return openat(dir_fd, name, O_WRONLY | O_CREAT | O_CLOEXEC | truncate | extra_flags, 0600);
}

// Where a file that earlier attempts wrote ends: a new attempt's output goes after it.
static off_t file_end(int fd) {
    struct stat info;
    return append_output && fstat(fd, &info) == 0 ? info.st_size : 0;
}

// The data is on disk before its record, so a reader that sees a record can read it; data
// whose record cannot be written is lost (it is in the file, but no reader will look).
static void record(const struct stream *s, uint64_t offset, uint32_t length) {
    struct jobkit_index_record r = {.time_ns = now_ns(), .offset = offset, .length = length, .stream = s->kind};
    if (index_fd < 0) {
        index_fd = open_output("index", O_APPEND);
        // After an earlier attempt's records, whole ones only (one cut short stays cut).
        off_t end = index_fd >= 0 ? file_end(index_fd) : 0;
        index_length = end - end % (off_t)sizeof r;
        if (end != index_length) (void)ftruncate(index_fd, index_length);
    }
    if (index_fd < 0) {
        lose((ssize_t)length, errno);
        return;
    }
    ssize_t n = write(index_fd, &r, sizeof r);
    while (n < 0 && errno == EINTR) n = write(index_fd, &r, sizeof r);
    if (n == (ssize_t)sizeof r) {
        index_length += (off_t)sizeof r;
        return;
    }
    int err = n < 0 ? errno : ENOSPC;
    if (n > 0) (void)ftruncate(index_fd, index_length);
    if (index_length == 0) {
        // No index without a record: the engine takes a job that recorded nothing to have no files.
        char name[64];
        snprintf(name, sizeof name, "%lld.index", job_id);
        unlinkat(dir_fd, name, 0);
        close(index_fd);
        index_fd = -1;
    }
    lose((ssize_t)length, err);
}

// Bytes of the stream from memory to its file (made now if this is its first data), and
// their record.
static ssize_t store(struct stream *s, const char *data, ssize_t n) {
    if (s->file_fd < 0) {
        s->file_fd = open_output(s->name, 0);
        if (s->file_fd >= 0) s->offset = (uint64_t)file_end(s->file_fd);
    }
    ssize_t written = s->file_fd < 0 ? -1 : pwrite(s->file_fd, data, (size_t)n, (off_t)s->offset);
    if (written != n) {
        // The disk refused it: the job goes on, and what it wrote is counted as lost (the
        // file, if made, is left empty, and the next read tries again). One that earlier
        // attempts wrote stays as it is.
        lose(n, written < 0 ? errno : ENOSPC);
        if (s->file_fd >= 0 && s->offset > 0) {
            if (written > 0) (void)ftruncate(s->file_fd, (off_t)s->offset);
            close(s->file_fd);
            s->file_fd = -1;
        } else if (s->file_fd >= 0) {
            char name[64];
            snprintf(name, sizeof name, "%lld.%s", job_id, s->name);
            unlinkat(dir_fd, name, 0);
            close(s->file_fd);
            s->file_fd = -1;
        }
        return n;
    }
    record(s, s->offset, (uint32_t)n);
    s->offset += (uint64_t)n;
    return n;
}

void put(struct stream *s, const char *data, size_t n) {
    if (n > 0) (void)store(s, data, (ssize_t)n);
}

// The first read of a stream goes through memory: only data makes the file exist.
static ssize_t drain_first(struct stream *s) {
    ssize_t n = read(s->pipe_fd, scratch, CHUNK);
    if (n <= 0) return n < 0 && (errno == EAGAIN || errno == EINTR) ? -1 : 0;
    // A job that writes gets a larger pipe, for fewer wake-ups and larger chunks; one that
    // does not is spared the call.
    fcntl(s->pipe_fd, F_SETPIPE_SZ, CHUNK);
    return store(s, scratch, n);
}

static ssize_t drain_more(struct stream *s) {
    loff_t off = (loff_t)s->offset;
    ssize_t n = splice(s->pipe_fd, NULL, s->file_fd, &off, CHUNK, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n < 0 && errno == EINVAL) {
        // The file system does not take splice: copy through memory instead.
        n = read(s->pipe_fd, scratch, CHUNK);
        if (n < 0) return errno == EAGAIN || errno == EINTR ? -1 : 0;
        ssize_t written = n > 0 ? pwrite(s->file_fd, scratch, (size_t)n, (off_t)s->offset) : 0;
        if (written != n) {
            lose(n, written < 0 ? errno : ENOSPC);
            return n;
        }
    } else if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return -1;
        // The disk refused the data (full, or gone). Keep the job running by reading and
        // counting what it writes as lost: stalling it on a full pipe would be worse.
        int err = errno;
        n = read(s->pipe_fd, scratch, CHUNK);
        if (n <= 0) return n == 0 ? 0 : -1;
        lose(n, err);
        return n;
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
