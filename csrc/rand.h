/* Seeded PRNG: splitmix64 to expand seeds, xoshiro256** for the streams. Per-job state only. */
#ifndef IOL_RAND_H
#define IOL_RAND_H

#include <stdint.h>
#include <string.h>

struct iol_rng {
    uint64_t s[4];
};

static inline uint64_t iol_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Stream `stream` of base seed `seed`: distinct streams give unrelated sequences. */
static inline void iol_rng_seed(struct iol_rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * 0xD1B54A32D192ED03ull);
    for (int i = 0; i < 4; i++)
        r->s[i] = iol_splitmix64(&x);
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3]))
        r->s[0] = 1; /* xoshiro must not start from all zeros */
}

static inline uint64_t iol_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t iol_rng_next(struct iol_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = iol_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = iol_rotl(s[3], 45);
    return result;
}

/* Uniform-ish in [0, n) without division (multiply-shift; bias < n / 2^64). */
static inline uint64_t iol_rng_below(struct iol_rng *r, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)iol_rng_next(r) * n) >> 64);
}

/* Fill len bytes at buf from the stream. */
static inline void iol_rng_fill(struct iol_rng *r, void *buf, uint64_t len)
{
    unsigned char *p = buf;
    while (len >= 8) {
        uint64_t v = iol_rng_next(r);
        memcpy(p, &v, 8);
        p += 8;
        len -= 8;
    }
    if (len) {
        uint64_t v = iol_rng_next(r);
        memcpy(p, &v, len);
    }
}

#endif
