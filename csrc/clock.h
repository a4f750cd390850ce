/* The clock every part of the core uses: CLOCK_MONOTONIC in nanoseconds (vDSO, no system call). */
#ifndef IOL_CLOCK_H
#define IOL_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t iol_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#endif
