/* The random map of a file: one bit per unit used this pass, and a summary bit per map word that is
 * full, so a free unit is found in a few word scans. Used by the offset generator (offsets.h). */
#ifndef IOL_RANDMAP_H
#define IOL_RANDMAP_H

#include <stdint.h>

#include "jobstate.h"

/* All units free again (units past the end of the region count as used). */
void iol_map_reset(struct iol_file *f);

static inline void map_mark(struct iol_file *f, uint64_t u)
{
    uint64_t w = u >> 6, bit = 1ull << (u & 63);
    if (f->map[w] & bit)
        return;
    f->map[w] |= bit;
    f->used++;
    if (f->map[w] == ~0ull)
        f->summary[w >> 6] |= 1ull << (w & 63);
}

/* First free unit at or after u, wrapping around. The map must not be full. */
static inline uint64_t map_find_free(const struct iol_file *f, uint64_t u)
{
    uint64_t w = u >> 6;
    uint64_t bits = ~f->map[w] & (~0ull << (u & 63));
    if (LIKELY(bits))
        return (w << 6) + (uint64_t)__builtin_ctzll(bits);
    uint64_t from = w + 1; /* map word to search from */
    for (int round = 0; round < 2; round++, from = 0) {
        uint64_t sw = from >> 6;
        if (sw >= f->summary_words)
            continue;
        uint64_t sfree = ~f->summary[sw] & (~0ull << (from & 63));
        while (!sfree && ++sw < f->summary_words)
            sfree = ~f->summary[sw];
        if (sfree) {
            w = (sw << 6) + (uint64_t)__builtin_ctzll(sfree);
            return (w << 6) + (uint64_t)__builtin_ctzll(~f->map[w]);
        }
    }
    return 0; /* not reached while the map has a free unit */
}

#endif
