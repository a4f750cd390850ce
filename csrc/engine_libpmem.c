/* libpmem: persistent-memory I/O as fio's libpmem engine does it, without the PMDK library.
 *
 * Every file is mapped whole with MAP_SHARED_VALIDATE | MAP_SYNC. The kernel grants MAP_SYNC only on a
 * DAX mapping (a file system mounted with dax on persistent memory): then a store that has left the
 * CPU caches is persistent, with no msync. Where it refuses (EOPNOTSUPP or EINVAL: tmpfs, a file system
 * without dax) the file is mapped MAP_SHARED and lives in the page cache: the engine runs the same
 * copies and flushes, and adds msync(MS_SYNC) at each point fio would make the data durable, so the
 * job still means what it says; its numbers are page-cache numbers (the doctor says so: IOL-PMEM-001).
 *
 * Reads are memcpy. Writes, as fio maps its options onto pmem_memcpy():
 *   direct=0: temporal stores (memcpy), then every cache line written is flushed;
 *   direct=1: non-temporal stores (movnt) for copies of NT_MIN_BYTES or more, which bypass the caches
 *             (partial lines at the edges are copied and flushed);
 *   sync=1:   a drain (sfence) after every write (fio: no PMEM_F_MEM_NODRAIN);
 *   fsync/fdatasync: a drain.
 * The flush instruction is chosen once at init by CPUID: clwb (writes the line back and may keep it
 * cached), else clflushopt, else clflush; the drain is sfence. IOLAB_PMEM_NO_CLWB=1,
 * IOLAB_PMEM_NO_CLFLUSHOPT=1 and IOLAB_PMEM_NO_MOVNT=1 in the environment step down, as PMDK's
 * PMEM_NO_* variables do. What was chosen is reported by describe(). */
#define _GNU_SOURCE /* fallocate */
#include <stdlib.h>

#include "mapfile.h"

#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif
#ifndef MAP_SYNC
#define MAP_SYNC 0x80000
#endif

/* PMDK's default movnt threshold: shorter copies use temporal stores and flushes */
#define NT_MIN_BYTES 256u
#define CACHE_LINE 64u

enum pmem_flush { FLUSH_CLWB, FLUSH_CLFLUSHOPT, FLUSH_CLFLUSH };
enum pmem_nt { NT_NONE, NT_SSE2, NT_AVX };

struct pmem_file {
    struct iol_mapped_file map;
    int dax; /* MAP_SYNC granted */
};

struct pmem_state {
    unsigned nfiles;
    unsigned ndax;
    int use_nt;  /* direct=1 */
    int sync_io; /* sync=1: drain after every write */
    enum pmem_flush flush;
    enum pmem_nt nt;
    uintptr_t page;
    uint64_t mapped;
    int refused; /* errno of the MAP_SYNC attempt the kernel refused (0: none) */
    struct pmem_file files[];
};

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>

static int env_set(const char *name)
{
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

static enum pmem_flush pick_flush(void)
{
    unsigned a, b, c, d;
    int clwb = 0, clflushopt = 0;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        clwb = (b >> 24) & 1;
        clflushopt = (b >> 23) & 1;
    }
    if (clwb && !env_set("IOLAB_PMEM_NO_CLWB"))
        return FLUSH_CLWB;
    if (clflushopt && !env_set("IOLAB_PMEM_NO_CLFLUSHOPT"))
        return FLUSH_CLFLUSHOPT;
    return FLUSH_CLFLUSH; /* every x86-64 CPU has it (SSE2) */
}

static enum pmem_nt pick_nt(void)
{
    if (env_set("IOLAB_PMEM_NO_MOVNT"))
        return NT_NONE;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx") ? NT_AVX : NT_SSE2;
}

__attribute__((target("clwb"))) static void flush_clwb(char *p, size_t len)
{
    for (uintptr_t a = (uintptr_t)p & ~(uintptr_t)(CACHE_LINE - 1); a < (uintptr_t)p + len; a += CACHE_LINE)
        _mm_clwb((void *)a);
}

__attribute__((target("clflushopt"))) static void flush_clflushopt(char *p, size_t len)
{
    for (uintptr_t a = (uintptr_t)p & ~(uintptr_t)(CACHE_LINE - 1); a < (uintptr_t)p + len; a += CACHE_LINE)
        _mm_clflushopt((void *)a);
}

static void flush_clflush(char *p, size_t len)
{
    for (uintptr_t a = (uintptr_t)p & ~(uintptr_t)(CACHE_LINE - 1); a < (uintptr_t)p + len; a += CACHE_LINE)
        _mm_clflush((void *)a);
}

static inline void flush_range(enum pmem_flush how, char *p, size_t len)
{
    if (how == FLUSH_CLWB)
        flush_clwb(p, len);
    else if (how == FLUSH_CLFLUSHOPT)
        flush_clflushopt(p, len);
    else
        flush_clflush(p, len);
}

static inline void drain(void)
{
    _mm_sfence();
}

/* Copy the part of [dst, dst+len) before the first aligned address and after the last, with temporal
 * stores and flushes; return the aligned middle. */
static inline size_t copy_edges(enum pmem_flush how, char *dst, const char *src, size_t len, size_t align,
                                size_t *head)
{
    size_t h = (size_t)(-(uintptr_t)dst & (align - 1));
    if (h > len)
        h = len;
    size_t mid = (len - h) & ~(align - 1);
    size_t tail = len - h - mid;
    if (h) {
        memcpy(dst, src, h);
        flush_range(how, dst, h);
    }
    if (tail) {
        memcpy(dst + h + mid, src + h + mid, tail);
        flush_range(how, dst + h + mid, tail);
    }
    *head = h;
    return mid;
}

__attribute__((target("avx"))) static void copy_nt_avx(enum pmem_flush how, char *dst, const char *src, size_t len)
{
    size_t h, mid = copy_edges(how, dst, src, len, 32, &h);
    __m256i *d = (__m256i *)(void *)(dst + h);
    const char *s = src + h;
    for (size_t i = 0; i < mid; i += 128, s += 128, d += 4) {
        if (mid - i < 128) {
            for (size_t k = 0; k < mid - i; k += 32)
                _mm256_stream_si256(d + k / 32, _mm256_loadu_si256((const __m256i *)(const void *)(s + k)));
            break;
        }
        __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)s);
        __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(s + 32));
        __m256i c = _mm256_loadu_si256((const __m256i *)(const void *)(s + 64));
        __m256i e = _mm256_loadu_si256((const __m256i *)(const void *)(s + 96));
        _mm256_stream_si256(d, a);
        _mm256_stream_si256(d + 1, b);
        _mm256_stream_si256(d + 2, c);
        _mm256_stream_si256(d + 3, e);
    }
}

static void copy_nt_sse2(enum pmem_flush how, char *dst, const char *src, size_t len)
{
    size_t h, mid = copy_edges(how, dst, src, len, 16, &h);
    __m128i *d = (__m128i *)(void *)(dst + h);
    const char *s = src + h;
    for (size_t i = 0; i < mid; i += 16, s += 16, d++)
        _mm_stream_si128(d, _mm_loadu_si128((const __m128i *)(const void *)s));
}

static inline void pmem_write(const struct pmem_state *st, char *dst, const char *src, size_t len)
{
    if (st->use_nt && st->nt != NT_NONE && len >= NT_MIN_BYTES) {
        if (st->nt == NT_AVX)
            copy_nt_avx(st->flush, dst, src, len);
        else
            copy_nt_sse2(st->flush, dst, src, len);
        return;
    }
    memcpy(dst, src, len);
    flush_range(st->flush, dst, len);
}

static int arch_ok(char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    return 0;
}
#else
static enum pmem_flush pick_flush(void) { return FLUSH_CLFLUSH; }
static enum pmem_nt pick_nt(void) { return NT_NONE; }
static inline void drain(void) {}
static inline void pmem_write(const struct pmem_state *st, char *dst, const char *src, size_t len)
{
    (void)st;
    memcpy(dst, src, len);
}
static int arch_ok(char *err, size_t errlen)
{
    snprintf(err, errlen, "ioengine=libpmem: iolab implements the cache flushes for x86-64 only");
    return ENOTSUP;
}
#endif

static const char *flush_name(enum pmem_flush f)
{
    return f == FLUSH_CLWB ? "clwb" : f == FLUSH_CLFLUSHOPT ? "clflushopt" : "clflush";
}

static void pmem_unmap_all(struct pmem_state *s)
{
    for (unsigned i = 0; i < s->nfiles; i++)
        if (s->files[i].map.base)
            munmap(s->files[i].map.base, (size_t)s->files[i].map.len);
}

/* Map m whole: MAP_SYNC first, the page cache where the kernel refuses it. */
static int pmem_map(struct pmem_state *s, struct pmem_file *f, int prot)
{
    void *p = mmap(NULL, (size_t)f->map.len, prot, MAP_SHARED_VALIDATE | MAP_SYNC, f->map.fd, 0);
    if (p != MAP_FAILED) {
        f->dax = 1;
    } else {
        int er = errno;
        if (er != EOPNOTSUPP && er != EINVAL)
            return er;
        s->refused = er;
        p = mmap(NULL, (size_t)f->map.len, prot, MAP_SHARED, f->map.fd, 0);
        if (p == MAP_FAILED)
            return errno;
    }
    f->map.base = p;
    return 0;
}

static int pmem_init(const struct iol_engine_env *env, void **state, char *err, size_t errlen)
{
    const struct iol_config *cfg = env->cfg;
    if (arch_ok(err, errlen))
        return ENOTSUP;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uint64_t min_bs = iol_map_min_bs(cfg);
    if ((min_bs & (page - 1)) && (cfg->fsync_blocks || cfg->fdatasync_blocks)) {
        snprintf(err, errlen,
                 "ioengine=libpmem: with fsync or fdatasync the block size must be a multiple of the page "
                 "size (%lu bytes), as in fio; the smallest is %llu",
                 (unsigned long)page, (unsigned long long)min_bs);
        return EINVAL;
    }
    struct pmem_state *s = calloc(1, sizeof(*s) + env->nfiles * sizeof(s->files[0]));
    if (!s) {
        snprintf(err, errlen, "ioengine=libpmem: out of memory");
        return ENOMEM;
    }
    s->page = page;
    s->use_nt = cfg->direct != 0;
    s->sync_io = (cfg->engine_flags & IOL_EF_SYNC_IO) != 0;
    s->flush = pick_flush();
    s->nt = pick_nt();
    int prot = iol_map_prot(cfg);
    for (unsigned i = 0; i < env->nfiles; i++) {
        struct pmem_file *f = &s->files[i];
        int is_block = 0;
        f->map.fd = env->files[i].fd;
        s->nfiles = i + 1;
        int er = iol_map_size(f->map.fd, &f->map.len, &is_block);
        if (!er && is_block)
            er = ENODEV;
        if (!er && (cfg->ddir_mask & 2))
            er = iol_map_allocate(f->map.fd, f->map.len);
        if (!er && f->map.len)
            er = pmem_map(s, f, prot);
        if (er) {
            snprintf(err, errlen, "ioengine=libpmem: file %u: cannot map it (%llu bytes): %s", i,
                     (unsigned long long)f->map.len,
                     er == ENODEV ? "not a regular file (fio's libpmem maps files; dev-dax is not supported)"
                                  : strerror(er));
            pmem_unmap_all(s);
            free(s);
            return er;
        }
        s->ndax += f->dax;
        s->mapped += f->map.len;
    }
    *state = s;
    return 0;
}

static int pmem_queue(void *state, struct iol_io *io)
{
    struct pmem_state *s = state;
    struct pmem_file *f = &s->files[io->file];
    iol_map_clear(io);

    if (io->op == IOL_OP_FSYNC || io->op == IOL_OP_FDATASYNC) {
        drain();
        if (!f->dax && f->map.base && msync(f->map.base, (size_t)f->map.len, MS_SYNC) < 0) {
            io->error = errno;
            io->error_offset = 0;
        }
        return IOL_Q_COMPLETED;
    }
    if (__builtin_expect(io->op != IOL_OP_READ && io->op != IOL_OP_WRITE, 0)) {
        /* trims are refused at plan time (the spec does not say trim): never write for them */
        io->error = EINVAL;
        io->error_offset = io->offset;
        return IOL_Q_COMPLETED;
    }
    char *p = iol_map_at(&f->map, io);
    if (__builtin_expect(p == NULL, 0))
        return IOL_Q_COMPLETED;
    if (io->op == IOL_OP_READ) {
        memcpy(io->buf, p, (size_t)io->len);
    } else {
        pmem_write(s, p, io->buf, (size_t)io->len);
        if (s->sync_io) {
            drain();
            if (!f->dax) {
                int er = iol_map_msync(p, io->len, MS_SYNC, s->page);
                if (er) {
                    io->error = er;
                    io->error_offset = io->offset;
                }
            }
        }
    }
    io->done = io->len;
    return IOL_Q_COMPLETED;
}

static void pmem_describe(void *state, char *buf, size_t len)
{
    const struct pmem_state *s = state;
    char mode[160];
    if (s->ndax == s->nfiles)
        snprintf(mode, sizeof(mode), "mode=dax (MAP_SYNC)");
    else
        snprintf(mode, sizeof(mode), "mode=page-cache (MAP_SYNC refused: %s; msync at sync points) on %u of %u file(s)",
                 s->refused ? strerror(s->refused) : "not tried", s->nfiles - s->ndax, s->nfiles);
    const char *copy = !s->use_nt ? "temporal+flush (direct=0)"
                       : s->nt == NT_AVX  ? "movnt avx for writes >= 256 bytes (direct=1)"
                       : s->nt == NT_SSE2 ? "movnt sse2 for writes >= 256 bytes (direct=1)"
                                          : "temporal+flush (movnt disabled)";
    snprintf(buf, len, "libpmem: %s, flush=%s+sfence, copy=%s, drain=%s, %llu bytes mapped", mode,
             flush_name(s->flush), copy, s->sync_io ? "every write (sync=1)" : "at fsync",
             (unsigned long long)s->mapped);
}

static void pmem_cleanup(void *state)
{
    struct pmem_state *s = state;
    if (!s)
        return;
    pmem_unmap_all(s);
    free(s);
}

const struct iol_engine iol_engine_libpmem = {
    .name = "libpmem",
    .flags = IOL_ENGINE_SYNC,
    .init = pmem_init,
    .start = NULL,
    .queue = pmem_queue,
    .commit = NULL,
    .reap = NULL,
    .describe = pmem_describe,
    .cleanup = pmem_cleanup,
};
