/* Log-linear latency histogram (DESIGN.md, "Histogram").
 *
 * S = IOL_HIST_SUB_BITS sub-bucket bits. Values below 2^S have their own bucket; above, the value's
 * power of two k = floor(log2 v) selects a group of 2^S buckets, each 2^(k-S) wide, so the relative
 * error is at most 2^-S. Values >= 2^40 (ns, about 18 minutes) all land in the last bucket.
 */
#ifndef IOL_HISTOGRAM_H
#define IOL_HISTOGRAM_H

#include <stdint.h>
#include <string.h>

#define IOL_HIST_SUB_BITS 7
#define IOL_HIST_MAX_LOG2 40 /* k is clamped below this */
#define IOL_HIST_BUCKETS ((1u << IOL_HIST_SUB_BITS) + (IOL_HIST_MAX_LOG2 - IOL_HIST_SUB_BITS) * (1u << IOL_HIST_SUB_BITS))

struct iol_hist {
    uint64_t count;
    uint64_t min; /* UINT64_MAX while empty */
    uint64_t max;
    uint64_t sum;
    unsigned __int128 sumsq; /* exact; reported as a float */
    uint64_t buckets[IOL_HIST_BUCKETS];
};

static inline unsigned iol_hist_index(uint64_t v)
{
    if (v < (1u << IOL_HIST_SUB_BITS))
        return (unsigned)v;
    unsigned k = 63u - (unsigned)__builtin_clzll(v);
    if (__builtin_expect(k >= IOL_HIST_MAX_LOG2, 0))
        return IOL_HIST_BUCKETS - 1;
    /* 2^S + (k - S) * 2^S + ((v >> (k - S)) - 2^S) == (k - S) * 2^S + (v >> (k - S)) */
    return ((k - IOL_HIST_SUB_BITS) << IOL_HIST_SUB_BITS) + (unsigned)(v >> (k - IOL_HIST_SUB_BITS));
}

static inline void iol_hist_add(struct iol_hist *h, uint64_t v)
{
    h->count++;
    h->sum += v;
    h->sumsq += (unsigned __int128)v * v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
    h->buckets[iol_hist_index(v)]++;
}

void iol_hist_reset(struct iol_hist *h);
/* Smallest value that maps to bucket i (for tests and reporting). */
uint64_t iol_hist_bucket_low(unsigned i);

#endif
