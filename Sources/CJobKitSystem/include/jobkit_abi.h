#ifndef JOBKIT_ABI_H
#define JOBKIT_ABI_H

// What the supervisor (Supervisor/, C) writes and the engine (JobKit, Swift, through this
// header) reads: the one definition of each layout, flag and magic number. Every field is
// at its natural alignment, so C and Swift agree on the layout without packing; the
// _Static_asserts pin the sizes. Native byte order: both sides run on the same machine.

#include <stdint.h>

// ---- Slots: HOME/slots, JOBKIT_SLOT_SIZE bytes at id * JOBKIT_SLOT_SIZE ----
// The first half is written once the job started; at its end the whole slot is written again
// with one pwrite(2), the first half unchanged but for the usage fields that only the end
// knows. Each half has its magic first in memory, so that a half not written reads as zeros.

enum { JOBKIT_SLOT_SIZE = 64 };
#define JOBKIT_STARTED_MAGIC 0x4A4F4253u  // "SBOJ" little-endian
#define JOBKIT_ENDED_MAGIC 0x454E4445u    // "EDNE"

// How a job ended (jobkit_slot_ended.kind); for JOBKIT_ENDED_ERROR, `stage` says what failed
// and `code` is its errno.
enum { JOBKIT_ENDED_EXIT = 1, JOBKIT_ENDED_SIGNAL = 2, JOBKIT_ENDED_ERROR = 3 };
// JOBKIT_STAGE_SESSION: a session's command whose shell could not take it or tell its status.
enum {
    JOBKIT_STAGE_NONE = 0,
    JOBKIT_STAGE_CHDIR = 1,
    JOBKIT_STAGE_EXEC = 2,
    JOBKIT_STAGE_SUPERVISOR = 3,
    JOBKIT_STAGE_SESSION = 4
};

struct jobkit_slot_started {
    uint32_t magic;
    int32_t supervisor_pid;
    // The job's process group (a session through a master: the supervisor's own).
    int32_t job_pid;
    // Written with the end: the largest resident set of the job's processes (KiB), 0 when
    // unknown (no process ran here: a session through an ssh master, or an older supervisor).
    uint32_t max_rss_kib;
    int64_t start_ns;
    // Written with the end: the user and system CPU time of the job's processes, in µs.
    uint64_t cpu_usec;
};

struct jobkit_slot_ended {
    uint32_t magic;
    uint8_t kind;
    uint8_t stage;
    // Which run of the job this end is (1, or more for a job retried in place; 0 from an
    // older supervisor, meaning 1): the engine tells an earlier attempt's end from the
    // current one's by it.
    uint16_t attempt;
    // The exit status, the signal, or the errno.
    int32_t code;
    // Output the job wrote that could not be stored (the disk was full), and the errno
    // that said why (the first one): never dropped without a word.
    int32_t lost_errno;
    int64_t end_ns;
    uint64_t lost_bytes;
};

struct jobkit_slot {
    struct jobkit_slot_started started;
    struct jobkit_slot_ended ended;
};

_Static_assert(sizeof(struct jobkit_slot_started) == 32, "the started half of a slot is 32 bytes");
_Static_assert(sizeof(struct jobkit_slot_ended) == 32, "the ended half of a slot is 32 bytes");
_Static_assert(sizeof(struct jobkit_slot) == JOBKIT_SLOT_SIZE, "a slot is 64 bytes");

// ---- Output: HOME/jobs/ID.stdout, ID.stderr (the bytes) and ID.index (these records) ----
// One record per chunk read, in the order read; the data is written before its record.

enum { JOBKIT_STREAM_OUTPUT = 1, JOBKIT_STREAM_ERROR = 2 };

struct jobkit_index_record {
    int64_t time_ns;
    // Where the chunk starts in its stream's file.
    uint64_t offset;
    uint32_t length;
    uint8_t stream;
    uint8_t reserved[3];
};

_Static_assert(sizeof(struct jobkit_index_record) == 24, "an index record is 24 bytes");

// ---- The zygote (jobkit-supervisor --zygote): requests and answers on its socket ----
// A request is this header, then `length` bytes of NUL-terminated strings (cwd, the argc
// arguments, the envc environment entries), with the job's lock descriptor attached as
// SCM_RIGHTS. With JOBKIT_REQUEST_MUX the first two arguments are the master's socket and
// the remote command. The answer: jobkit_zygote_answer, with a pidfd of the new supervisor
// attached when pid > 0. Answers come in the order of the requests.

#define JOBKIT_ZYGOTE_MAGIC 0x5A594732u
// With JOBKIT_REQUEST_STDIN a second descriptor comes after the lock: the job's stdin
// (`job start --stdin`), instead of /dev/null. With JOBKIT_REQUEST_APPEND the job's output
// goes after what its earlier attempts wrote, instead of starting its files anew. With
// JOBKIT_REQUEST_SESSION the arguments are a session's command's (see session.c) rather than
// a program's; with JOBKIT_REQUEST_NULL_OUTPUT the job's stdout and stderr are /dev/null (a
// session's shell, whose commands each have their own). JOBKIT_REQUEST_TICKS (with HOLD_STDIN)
// makes the held stdin a detached job's follower's clock too (see supervise.c).
enum {
    JOBKIT_REQUEST_HOLD_STDIN = 1,
    JOBKIT_REQUEST_MUX = 2,
    JOBKIT_REQUEST_MERGE_ERROR = 4,
    JOBKIT_REQUEST_STDIN = 8,
    JOBKIT_REQUEST_APPEND = 16,
    JOBKIT_REQUEST_SESSION = 32,
    JOBKIT_REQUEST_NULL_OUTPUT = 64,
    JOBKIT_REQUEST_TICKS = 128,
    // A lane of a foreach (see lane.c): two more descriptors come after the lock, the read end
    // of the lane's request pipe and the write end of its report pipe. The supervisor runs
    // this job, then, instead of exiting, the next ones the engine writes to the request pipe
    // (each a header and strings as here, no descriptor), one at a time.
    JOBKIT_REQUEST_LANE = 256,
    // A remote session's command (see channel.c): the arguments are the session's channel
    // directory, its supervisor's pid and the command's text as printf escapes.
    JOBKIT_REQUEST_CHANNEL = 512
};
// What a lane says on its report pipe: one record per job, once it has ended and its slot
// says how. A lane that exits (after an error, or when its job left processes behind) says
// nothing more: its pidfd tells.
struct jobkit_lane_report {
    int64_t job_id;
    uint32_t kind;  // JOBKIT_LANE_ENDED, or JOBKIT_LANE_RETIRED: ended, and the lane takes no more
    // The records in the job's index, plus one (0: not known, look at the file), so that the
    // engine need not.
    uint32_t records;
};
enum { JOBKIT_LANE_ENDED = 1, JOBKIT_LANE_RETIRED = 2 };
_Static_assert(sizeof(struct jobkit_lane_report) == 16, "a lane report is 16 bytes");
// A signal for one job of a lane: sent with sigqueue's value (job id << 8) | signal number,
// so that one meant for a job that ended is not taken by the next. SIGRTMIN + 4, counted at
// run time (glibc keeps the first RT signals for itself).
#define JOBKIT_LANE_SIGNAL (SIGRTMIN + 4)
// The largest request's strings the zygote takes.
enum { JOBKIT_ZYGOTE_MAX_STRINGS = 64 << 20 };

struct jobkit_zygote_request {
    uint32_t magic;
    uint32_t length;
    int64_t job_id;
    uint32_t argc;
    uint32_t envc;
    uint32_t flags;
    // The run of the job this is (see jobkit_slot_ended.attempt); 0 means 1.
    uint32_t attempt;
};

struct jobkit_zygote_answer {
    int64_t job_id;
    int32_t pid;
    int32_t error;
};

_Static_assert(sizeof(struct jobkit_zygote_request) == 32, "a zygote request header is 32 bytes");
_Static_assert(sizeof(struct jobkit_zygote_answer) == 16, "a zygote answer is 16 bytes");

#endif
