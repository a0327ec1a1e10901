// jobd's process, set up before anything runs: here, and not in JobKit, because a program that
// embeds JobKit keeps its own malloc policy.
#include "CJobdProcess.h"

#include <malloc.h>

static int prepared;

// At most two malloc arenas. glibc gives each thread that contends an arena of its own, and
// memory freed in one cannot be given back while a little of it stays in use: after a foreach
// of 100,000 children jobd kept 85 MB with the default, 33 MB with two (measured the same
// way, three runs each). Set before main, while this is the only thread: later, arenas made
// by threads already running would stay.
//
// And fixed thresholds instead of glibc's sliding ones: freeing a block that was mmapped (a
// dictionary's storage sized for a large family, say 26 MB) raises the mmap threshold to its
// size and the trim threshold to twice that, after which blocks that large come from the
// heap and up to 52 MB of free heap stays resident for good (seen: 82 MB after a 100,000-child
// foreach, 34 MB once malloc_trim ran). Blocks of 1 MB or more are mapped and given back when
// freed; the heap's free top is given back beyond 4 MB.
__attribute__((constructor)) static void limit_arenas(void) {
    prepared = mallopt(M_ARENA_MAX, 2) && mallopt(M_MMAP_THRESHOLD, 1 << 20) && mallopt(M_TRIM_THRESHOLD, 4 << 20);
}

int jobd_process_prepared(void) {
    return prepared;
}
