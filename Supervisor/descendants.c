// The job's processes beyond its process group. The supervisor is a child subreaper
// (PR_SET_CHILD_SUBREAPER, as tini and containerd's shim are): every process the job leaves
// behind — double-forked, in a session or a group of its own — is re-parented to it rather
// than to init, so the tree below the supervisor is all of the job's processes, and a stop
// can reach each one. The tree is read from /proc/PID/task/TID/children.
#include "supervisor.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

// In .bss: touched only when a job has descendants to walk.
enum { MAX_WALK = 1 << 16 };
static pid_t found[MAX_WALK];

int become_subreaper(void) {
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
}

// Appends the children of `pid` (of all its threads) to found[*count].
static void add_children(pid_t pid, size_t *count) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *tasks = opendir(path);
    if (tasks == NULL) return;
    struct dirent *task;
    while ((task = readdir(tasks)) != NULL) {
        if (task->d_name[0] == '.') continue;
        char file[96];
        snprintf(file, sizeof file, "/proc/%d/task/%s/children", (int)pid, task->d_name);
        FILE *children = fopen(file, "re");
        if (children == NULL) continue;
        int child;
        while (*count < MAX_WALK && fscanf(children, "%d", &child) == 1) found[(*count)++] = (pid_t)child;
        fclose(children);
    }
    closedir(tasks);
}

// Every descendant of this process, breadth first, into found[]; how many.
static size_t walk(void) {
    size_t count = 0;
    add_children(getpid(), &count);
    for (size_t next = 0; next < count; next++) add_children(found[next], &count);
    return count;
}

// `pid`'s /proc/PID/stat read into `buf`, from the parenthesis that ends its command name
// (which may hold anything; field 3, the state, follows it), or NULL when it is gone.
static char *read_stat(pid_t pid, char *buf, size_t size) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *file = fopen(path, "re");
    if (file == NULL) return NULL;
    size_t n = fread(buf, 1, size - 1, file);
    fclose(file);
    buf[n] = 0;
    return strrchr(buf, ')');
}

// Whether `pid` is a zombie (or gone): nothing left to signal.
static int is_dead(pid_t pid) {
    char stat[256];
    char *close = read_stat(pid, stat, sizeof stat);
    return close == NULL || close[1] == 0 || close[2] == 'Z' || close[2] == 'X';
}

int signal_descendants(pid_t group, int signo) {
    int living = 0;
    size_t count = walk();
    for (size_t i = 0; i < count; i++) {
        if (is_dead(found[i])) continue;
        living++;
        // The group had it already.
        if (getpgid(found[i]) == group) continue;
        kill(found[i], signo);
        if (signo != SIGKILL && signo != SIGSTOP) kill(found[i], SIGCONT);
    }
    return living;
}

void kill_descendants(pid_t group) {
    // Each round kills what the last one found, and what it forked meanwhile; bounded, for
    // something that forks as fast as it is killed.
    for (int round = 0; round < 200; round++) {
        kill(-group, SIGKILL);
        if (signal_descendants(group, SIGKILL) == 0) return;
        reap_orphans(group);
        usleep(round < 10 ? 1000 : 10000);
    }
}

void reap_orphans(pid_t main_pid) {
    size_t count = 0;
    add_children(getpid(), &count);
    for (size_t i = 0; i < count; i++) {
        // The job's main process stays a zombie until the end: its pid, and so its group's
        // id, must not be reused while stragglers may still be signalled.
        if (found[i] != main_pid) waitpid(found[i], NULL, WNOHANG);
    }
}

// ---- A session's command: the processes below the shell that the command started ----

// The processes below the shell and the session's supervisor when the command began, by pid
// and start time (a pid may be reused): an earlier command's background work, not this one's.
enum { MAX_EXISTING = 4096 };
static struct {
    pid_t pid;
    unsigned long long start;
} existing[MAX_EXISTING];
static size_t existing_count;

// A process's start time (clock ticks since boot), 0 when it is gone.
static unsigned long long start_time(pid_t pid) {
    char stat[512];
    char *p = read_stat(pid, stat, sizeof stat);
    // Field 22 (starttime).
    for (int field = 2; p != NULL && field < 22; field++) p = strchr(p + 1, ' ');
    return p == NULL ? 0 : strtoull(p + 1, NULL, 10);
}

static int existed(pid_t pid) {
    unsigned long long start = 0;
    for (size_t i = 0; i < existing_count; i++) {
        if (existing[i].pid != pid) continue;
        if (start == 0) start = start_time(pid);
        if (existing[i].start == start) return 1;
    }
    return 0;
}

// The direct children of the shell and of the session's supervisor (but the shell).
static size_t roots(pid_t shell, pid_t session_supervisor) {
    size_t count = 0;
    add_children(shell, &count);
    if (session_supervisor > 0) add_children(session_supervisor, &count);
    size_t kept = 0;
    for (size_t i = 0; i < count; i++) {
        if (found[i] != shell) found[kept++] = found[i];
    }
    return kept;
}

void remember_existing(pid_t shell, pid_t session_supervisor) {
    size_t count = roots(shell, session_supervisor);
    existing_count = 0;
    for (size_t i = 0; i < count && existing_count < MAX_EXISTING; i++) {
        existing[existing_count].pid = found[i];
        existing[existing_count].start = start_time(found[i]);
        existing_count++;
    }
}

int signal_command(pid_t shell, pid_t session_supervisor, int signo) {
    size_t count = roots(shell, session_supervisor);
    size_t kept = 0;
    for (size_t i = 0; i < count; i++) {
        if (!existed(found[i])) found[kept++] = found[i];
    }
    count = kept;
    for (size_t next = 0; next < count; next++) add_children(found[next], &count);
    int living = 0;
    for (size_t i = 0; i < count; i++) {
        if (is_dead(found[i])) continue;
        living++;
        kill(found[i], signo);
        if (signo != SIGKILL && signo != SIGSTOP && signo != SIGCONT) kill(found[i], SIGCONT);
    }
    return living;
}
