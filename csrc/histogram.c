#include "histogram.h"

void iol_hist_reset(struct iol_hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

uint64_t iol_hist_bucket_low(unsigned i)
{
    if (i < (1u << IOL_HIST_SUB_BITS))
        return i;
    if (i >= IOL_HIST_BUCKETS)
        i = IOL_HIST_BUCKETS - 1;
    unsigned group = (i >> IOL_HIST_SUB_BITS) - 1; /* k - S */
    uint64_t sub = i & ((1u << IOL_HIST_SUB_BITS) - 1);
    return ((1ull << IOL_HIST_SUB_BITS) + sub) << group;
}
