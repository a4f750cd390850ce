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

/* fio's 32-bit taus88 generator (lib/rand.c), for the choices that must come out as fio's do. */
struct iol_taus88 {
    uint32_t s1, s2, s3;
};

static inline uint32_t iol_taus88_next(struct iol_taus88 *t)
{
    t->s1 = ((t->s1 & 4294967294u) << 12) ^ (((t->s1 << 13) ^ t->s1) >> 19);
    t->s2 = ((t->s2 & 4294967288u) << 4) ^ (((t->s2 << 2) ^ t->s2) >> 25);
    t->s3 = ((t->s3 & 4294967280u) << 17) ^ (((t->s3 << 3) ^ t->s3) >> 11);
    return t->s1 ^ t->s2 ^ t->s3;
}

/* fio's seeding: each word from the one before, kept above the generator's minimum, then 6 draws.
 * 53 is fio's "(2^31) + (2^17) + (2^7)" as C reads it (^ is xor). */
static inline void iol_taus88_seed(struct iol_taus88 *t, uint32_t seed)
{
    uint32_t s1 = (53u * 69069u) ^ seed;
    t->s1 = s1 < 1 ? s1 + 1 : s1;
    uint32_t s2 = (t->s1 * 69069u) ^ seed;
    t->s2 = s2 < 7 ? s2 + 7 : s2;
    uint32_t s3 = (t->s2 * 69069u) ^ seed;
    t->s3 = s3 < 15 ? s3 + 15 : s3;
    for (int i = 0; i < 6; i++)
        (void)iol_taus88_next(t);
}

/* fio's rand_between(start, end) on a 32-bit state: start + floor((end - start + 1) * r / 2^32) */
static inline uint32_t iol_taus88_between(struct iol_taus88 *t, uint32_t start, uint32_t end)
{
    uint32_t r = iol_taus88_next(t);
    return start + (uint32_t)((double)(end - start + 1) * (r / (1.0 * (1ull << 32))));
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
