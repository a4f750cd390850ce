/* Offsets and block sizes of the next I/O: sequential (with holes), random (uniform through the random
 * map, zoned, zipf/pareto/normal), strided zones. fio's rules (io_u.c get_next_offset /
 * get_next_buflen, backend.c limits), our own code. Static inline: this runs for every I/O and was
 * inlined into the loop when it lived in job.c. */
#ifndef IOL_OFFSETS_H
#define IOL_OFFSETS_H

#include <stdint.h>

#include "dist.h"
#include "jobstate.h"
#include "randmap.h"

/* The file starts over: sequential positions back to the region start, the random map emptied. */
static inline void file_reset(struct iol_job *j, struct iol_file *f)
{
    (void)j;
    f->last_pos[0] = f->last_pos[1] = f->last_pos[2] = f->base;
    f->tw_trim_start = f->tw_write_start = UINT64_MAX;
    f->tw_trim_len = 0;
    if (f->map)
        iol_map_reset(f);
}

/* fio's get_next_seq_offset: the next sequential position (relative to base), holes applied. */
static inline int seq_pos(struct iol_job *j, struct iol_file *f, int d, uint64_t *pos)
{
    const uint64_t hole = j->cfg.rw_hole; /* two's complement */
    const int back = (int64_t)hole < 0;
    if (f->last_pos[d] >= f->real_size)
        return 1;
    uint64_t end = f->size < f->real_size ? f->size : f->real_size;
    /* backwards from a region that does not start at 0: fio starts from the region LENGTH taken as
     * an absolute offset (a quirk kept for the same offsets) */
    if (back && f->base && f->last_pos[d] == f->base)
        f->last_pos[d] = end;
    uint64_t p = f->last_pos[d] - f->base; /* unsigned wrap-around as in fio */
    if (p && hole) {
        p += hole;
        if (p >= f->real_size)
            p = back ? end + hole : f->base; /* past either end: wrap (fio's values) */
    }
    *pos = p;
    return 0;
}

/* fio's last_block: how many blocks of ba a random offset of direction d is drawn from. */
static inline uint64_t last_block(const struct iol_job *j, const struct iol_file *f, int d)
{
    uint64_t max = f->size < f->real_size ? f->size : f->real_size;
    if (j->cfg.zonemode_strided && j->cfg.zone_range)
        max = j->cfg.zone_range;
    const struct iol_dir *dr = &j->dir[d];
    if (dr->bs_min > dr->ba) {
        if (max < dr->bs_min - dr->ba)
            return 0;
        max -= dr->bs_min - dr->ba;
    }
    return max / dr->ba;
}

/* A random position (relative to base) for direction d; 1 when there is none (map full). Uniform
 * offsets keep to free blocks of the random map; the others have no map (fio turns it off). */
static inline int rand_pos(struct iol_job *j, struct iol_file *f, int d, uint64_t *pos)
{
    const struct iol_config *c = &j->cfg;
    uint64_t lastb = last_block(j, f, d);
    if (!lastb)
        return 1;
    uint64_t ba = j->dir[d].ba, b;
    switch (c->rand_dist) {
    case DIST_ZONED:
    case DIST_ZONED_ABS: {
        unsigned v = (unsigned)iol_rng_below(&j->rng_zone, 100);
        uint64_t lo = c->zone_lo[d * IOL_ZONE_TABLE + v], hi = c->zone_hi[d * IOL_ZONE_TABLE + v];
        uint64_t first, n;
        if (c->rand_dist == DIST_ZONED) {
            first = lo * lastb / 100;
            n = lastb * (hi - lo) / 100;
        } else {
            first = lo / ba;
            if (hi / ba > lastb)
                return 1; /* zones past the end (the planner refuses those) */
            n = hi / ba - first;
        }
        b = first + (n ? iol_rng_below(&j->rng_off, n) : 0);
        break;
    }
    case DIST_ZIPF:
    case DIST_PARETO:
    case DIST_NORMAL:
        b = dist_next(&f->dist, (int)c->rand_dist, &j->rng_off);
        break;
    default:
        b = iol_rng_below(&j->rng_off, lastb);
        break;
    }
    if (f->map) {
        /* fio looks the block number (in units of this direction's ba) up in the map as it is, even
         * when the map's unit is another direction's smaller block: kept for the same blocks */
        if (f->used >= f->nblocks)
            return 1;
        if (b < f->nblocks && (f->map[b >> 6] & (1ull << (b & 63))))
            b = map_find_free(f, b);
    }
    *pos = b * ba;
    return 0;
}

/* A block size for direction d at absolute offset off: fio draws again until the block fits before
 * the end of the region (0 if not even the smallest fits). */
static inline uint64_t pick_bs(struct iol_job *j, const struct iol_file *f, int d, uint64_t off)
{
    const struct iol_dir *dr = &j->dir[d];
    if (dr->bs_min == dr->bs_max)
        return dr->bs_min;
    const uint64_t limit = f->start + f->size;
    if (off + dr->bs_min > limit)
        return 0;
    for (int tries = 0; tries < 1000; tries++) {
        uint64_t len;
        if (dr->nsplit) {
            uint32_t r = (uint32_t)iol_rng_below(&j->rng_bs, 100);
            unsigned i = 0;
            while (i + 1 < dr->nsplit && r >= dr->split_cum[i])
                i++;
            /* the drawn entry, or a later one that fits (fio's scan) */
            while (i + 1 < dr->nsplit && off + dr->split_bs[i] > limit)
                i++;
            len = dr->split_bs[i];
        } else {
            /* fio's draw: min + max * u, down to a multiple of min, at most max (so the largest
             * size comes up about min/max more often than the others) */
            len = dr->bs_min + (uint64_t)((double)dr->bs_max * rng_unit(&j->rng_bs));
            len -= len % dr->bs_min;
            if (len > dr->bs_max)
                len = dr->bs_max;
        }
        if (off + len <= limit)
            return len;
    }
    return dr->bs_min;
}

/* Mark the units of a random I/O in the map; the block shrinks to the free units that follow its
 * start (fio: a block never covers units already done this pass). */
static inline uint64_t map_take(struct iol_job *j, struct iol_file *f, int d, uint64_t pos, uint64_t len)
{
    /* fio marks in units of this direction's smallest block (another quirk kept as is) */
    uint64_t bs = j->dir[d].bs_min;
    uint64_t u = j->unit_pow2 && bs == j->unit ? pos >> j->unit_shift : pos / bs;
    uint64_t want = (len + bs - 1) / bs, got = 0;
    while (got < want && u + got < f->nblocks && !(f->map[(u + got) >> 6] & (1ull << ((u + got) & 63)))) {
        map_mark(f, u + got);
        got++;
    }
    if (got && got * bs < len)
        len = got * bs;
    return len;
}

/* fio's setup_strided_zone_mode: after zone_size bytes, move to the next zone. */
static inline void strided_zone(struct iol_job *j, struct iol_file *f, int d)
{
    const struct iol_config *c = &j->cfg;
    if (j->zone_bytes >= c->zone_size) {
        j->zone_bytes = 0;
        f->base += c->zone_range + c->zone_skip;
        if (f->base >= f->real_size)
            f->base = f->start;
        f->last_pos[d] = f->base;
    }
    if (f->last_pos[d] >= f->base + c->zone_range)
        f->last_pos[d] = f->base;
    if (j->zone_bytes % c->zone_range == 0)
        file_reset(j, f);
}

/* Offset (absolute) and length of the next I/O of direction d on f; 0 when f has none left. */
static inline int fill_io(struct iol_job *j, struct iol_file *f, int d, uint64_t *offp, uint64_t *lenp)
{
    const struct iol_config *c = &j->cfg;
    if (UNLIKELY(c->zonemode_strided))
        strided_zone(j, f, d);
    int hit = 0;
    if (j->rw_seq_nr && !--j->seq_nr_left) {
        hit = 1;
        j->seq_nr_left = j->rw_seq_nr;
    }
    uint64_t pos;
    int random = 0;
    if (hit && c->random) {
        /* trims: always random (the plan refuses percentage_random for them) */
        const uint32_t perc = d < 2 ? c->perc_rand[d] : 100;
        if (perc >= 100 || iol_rng_below(&j->rng_seq, 100) < perc) {
            if (rand_pos(j, f, d, &pos))
                return 0;
            random = 1;
        } else if (seq_pos(j, f, d, &pos) && rand_pos(j, f, d, &pos)) {
            return 0;
        }
    } else if (seq_pos(j, f, d, &pos) && (!c->random || rand_pos(j, f, d, &pos))) {
        return 0;
    }
    if (pos >= f->size)
        return 0;
    uint64_t off = f->base + pos;
    if (off >= f->real_size)
        return 0;
    uint64_t len = pick_bs(j, f, d, off);
    if (!len || off + len > f->real_size)
        return 0;
    if (random && f->map)
        len = map_take(j, f, d, off - f->base, len);
    j->zone_bytes += len;
    f->last_pos[d] = off + len;
    *offp = off;
    *lenp = len;
    return 1;
}

#endif
