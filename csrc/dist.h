/* zipf, pareto and normal generators (fio's lib/zipf.c and lib/gauss.c shapes), for offsets and for
 * the choice of file (file_service_type). Setup in dist.c; the draw is static inline for the hot path. */
#ifndef IOL_DIST_H
#define IOL_DIST_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "jobstate.h"

#define FSERVICE_SHIFT 10                /* non-uniform file choice: 1024 ranges per file */
#define FIB_HASH 0x61C8864680B583EBull   /* golden-ratio multiplier: scatters hot ranges */

enum { DIST_UNIFORM = 0, DIST_ZIPF = 1, DIST_PARETO = 2, DIST_NORMAL = 3, DIST_ZONED = 4, DIST_ZONED_ABS = 5 };
enum { FST_RR = 0, FST_SEQ = 1, FST_RANDOM = 2, FST_ZIPF = 3, FST_PARETO = 4, FST_NORMAL = 5 };

/* kind: DIST_ZIPF, DIST_PARETO or DIST_NORMAL; center < 0: none */
void iol_dist_init(struct iol_dist *ds, int kind, uint64_t nranges, double val, double center, int hash,
                   struct iol_rng *r);

static inline double bits_to_double(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof(d));
    return d;
}

static inline double rng_unit(struct iol_rng *r)
{
    return (double)(iol_rng_next(r) >> 11) * 0x1.0p-53; /* [0, 1) */
}

static inline uint64_t dist_next(const struct iol_dist *ds, int kind, struct iol_rng *r)
{
    uint64_t n = ds->nranges, v;
    if (kind == DIST_ZIPF) {
        double u = rng_unit(r);
        double rz = u * ds->zetan;
        if (rz < 1.0) {
            v = 0;
        } else if (rz < 1.0 + pow(0.5, ds->theta)) {
            v = 1;
        } else {
            double alpha = 1.0 / (1.0 - ds->theta);
            double eta = (1.0 - pow(2.0 / (double)n, 1.0 - ds->theta)) / (1.0 - ds->zeta2 / ds->zetan);
            v = (uint64_t)((double)n * pow(eta * u - eta + 1.0, alpha));
        }
    } else if (kind == DIST_PARETO) {
        v = (uint64_t)((double)(n - 1) * pow(rng_unit(r), ds->pareto_pow));
    } else {
        /* fio's "normal": the mean of 12 uniform draws over [0, n], plus a uniform deviation */
        uint64_t sum = 0;
        for (int i = 0; i < 12; i++)
            sum += iol_rng_below(r, n + 1);
        sum = (sum + 11) / 12;
        if (ds->stddev) {
            int64_t dev = (int64_t)((double)ds->stddev * rng_unit(r)) - (int64_t)(ds->stddev / 2);
            while (dev + (int64_t)sum >= (int64_t)n)
                dev /= 2;
            sum = (uint64_t)((int64_t)sum + dev);
        }
        v = sum;
    }
    if (ds->hash)
        v *= FIB_HASH;
    return (v + ds->rand_off) % n;
}

#endif
