/* The random map: resetting it (the per-I/O parts are static inline in randmap.h). */
#include <string.h>

#include "randmap.h"

void iol_map_reset(struct iol_file *f)
{
    memset(f->map, 0, f->map_words * sizeof(uint64_t));
    memset(f->summary, 0, f->summary_words * sizeof(uint64_t));
    unsigned tail = (unsigned)(f->nblocks & 63);
    if (tail) /* units past the end of the region count as used */
        f->map[f->map_words - 1] = ~0ull << tail;
    unsigned stail = (unsigned)(f->map_words & 63);
    if (stail)
        f->summary[f->summary_words - 1] = ~0ull << stail;
    f->used = 0;
}
