/* Setup of the zipf, pareto and normal generators (the draw is in dist.h). */
#include <math.h>
#include <string.h>

#include "dist.h"

#define ZIPF_MAX_TERMS 10000000ull       /* zeta(n) summed over at most this many terms */

void iol_dist_init(struct iol_dist *ds, int kind, uint64_t nranges, double val, double center, int hash,
                   struct iol_rng *r)
{
    memset(ds, 0, sizeof(*ds));
    ds->nranges = nranges ? nranges : 1;
    ds->hash = hash;
    uint64_t n = ds->nranges;
    if (kind == DIST_ZIPF) {
        ds->theta = val;
        ds->zeta2 = 1.0 + pow(0.5, val);
        uint64_t terms = n < ZIPF_MAX_TERMS ? n : ZIPF_MAX_TERMS;
        for (uint64_t i = 1; i <= terms; i++)
            ds->zetan += pow(1.0 / (double)i, val);
    } else if (kind == DIST_PARETO) {
        ds->pareto_pow = log(val) / log(1.0 - val);
    } else if (val != 0.0) {
        ds->stddev = (uint64_t)ceil((double)n * val / 100.0);
        if (ds->stddev > n / 2)
            ds->stddev = n / 2;
    }
    if (kind == DIST_NORMAL) {
        /* the bell sits in the middle; a center moves it by (center - 0.5) of the range */
        int64_t shift = center < 0 ? 0 : (int64_t)((double)n * (center - 0.5));
        ds->rand_off = (uint64_t)(((shift % (int64_t)n) + (int64_t)n) % (int64_t)n);
    } else {
        ds->rand_off = center < 0 ? iol_rng_next(r) % n : (uint64_t)((double)n * center);
    }
}
