/* Data verification: filling written blocks with fio's header and checksum, logging them, checking
 * them when they are read back (see verify.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "jobstate.h"
#include "verify.h"

/* fio's verify_header, byte for byte (little-endian host, as fio writes it). */
struct vhdr {
    uint16_t magic;
    uint16_t verify_type;
    uint32_t len;
    uint64_t rand_seed;
    uint64_t offset;
    uint32_t time_sec;
    uint32_t time_nsec;
    uint16_t thread;
    uint16_t numberio;
    uint32_t crc32;
};
_Static_assert(sizeof(struct vhdr) == IOL_VHDR_LEN, "fio's verify header is 40 bytes");

static const char *const kind_names[IOL_VFAIL_KINDS] = {
    "never written?", "bad magic header", "bad header length", "bad header offset", "bad header numberio",
    "bad header crc", "checksum mismatch", "pattern mismatch", "short read", "bad header rand_seed",
};

/* fio's size of struct vhdr_<type> (sha256 and sha512 reserve twice their digest). */
static uint32_t vhdr_len_of(uint32_t type)
{
    switch (type) {
    case IOL_V_MD5:
        return 16;
    case IOL_V_CRC32C:
    case IOL_V_CRC32C_INTEL:
    case IOL_V_XXHASH:
        return 4;
    case IOL_V_SHA1:
        return 20;
    case IOL_V_SHA256:
        return 64;
    case IOL_V_SHA512:
        return 128;
    default:
        return 0;
    }
}

static enum iol_csum csum_of(uint32_t type)
{
    switch (type) {
    case IOL_V_MD5:
        return IOL_CSUM_MD5;
    case IOL_V_CRC32C:
    case IOL_V_CRC32C_INTEL:
        return IOL_CSUM_CRC32C;
    case IOL_V_XXHASH:
        return IOL_CSUM_XXHASH;
    case IOL_V_SHA1:
        return IOL_CSUM_SHA1;
    case IOL_V_SHA256:
        return IOL_CSUM_SHA256;
    case IOL_V_SHA512:
        return IOL_CSUM_SHA512;
    default:
        return IOL_CSUM_NONE;
    }
}

const char *iol_vtype_name(uint32_t type)
{
    switch (type) {
    case IOL_V_HDR_ONLY:
        return "meta";
    case IOL_V_MD5:
        return "md5";
    case IOL_V_CRC32C:
        return "crc32c";
    case IOL_V_CRC32C_INTEL:
        return "crc32c-intel";
    case IOL_V_SHA256:
        return "sha256";
    case IOL_V_SHA512:
        return "sha512";
    case IOL_V_XXHASH:
        return "xxhash";
    case IOL_V_SHA1:
        return "sha1";
    case IOL_V_PATTERN:
    case IOL_V_PATTERN_NO_HDR:
        return "pattern";
    default:
        return "?";
    }
}

const char *iol_vfail_kind_name(uint32_t kind)
{
    return kind < IOL_VFAIL_KINDS ? kind_names[kind] : "?";
}

int iol_verify_init(struct iol_job *j, uint64_t log_cap, char *err, size_t errlen)
{
    const struct iol_config *c = &j->cfg;
    struct iol_verify *v = &j->vfy;
    v->type = c->verify;
    if (!v->type)
        return 0;
    switch (v->type) {
    case IOL_V_HDR_ONLY:
    case IOL_V_MD5:
    case IOL_V_CRC32C:
    case IOL_V_CRC32C_INTEL:
    case IOL_V_SHA256:
    case IOL_V_SHA512:
    case IOL_V_XXHASH:
    case IOL_V_SHA1:
    case IOL_V_PATTERN:
    case IOL_V_PATTERN_NO_HDR:
        break;
    default:
        snprintf(err, errlen, "verify type %u is not implemented", v->type);
        return EINVAL;
    }
    v->flags = c->verify_flags;
    v->csum = csum_of(v->type);
    if (v->csum != IOL_CSUM_NONE && iol_csum_len(v->csum) == 0) {
        snprintf(err, errlen, "verify=%s: no checksum implementation in this build", iol_vtype_name(v->type));
        return EINVAL;
    }
    v->vhdr_len = vhdr_len_of(v->type);
    v->hdr_size = v->type == IOL_V_PATTERN_NO_HDR ? 0 : IOL_VHDR_LEN + v->vhdr_len;
    v->interval = c->verify_interval;
    v->voffset = c->verify_offset;
    v->thread = (uint16_t)c->verify_thread;
    if (c->verify_pattern_len > IOL_VPATTERN_MAX || c->verify_fmt_n > IOL_VFMT_MAX) {
        snprintf(err, errlen, "verify_pattern: %u bytes, %u formats (at most %u and %u)", c->verify_pattern_len,
                 c->verify_fmt_n, IOL_VPATTERN_MAX, IOL_VFMT_MAX);
        return EINVAL;
    }
    v->pattern_len = c->verify_pattern_len;
    memcpy(v->pattern, c->verify_pattern, v->pattern_len);
    v->fmt_n = c->verify_fmt_n;
    for (unsigned i = 0; i < v->fmt_n; i++) {
        v->fmt_off[i] = c->verify_fmt_off[i];
        if (v->fmt_off[i] >= v->pattern_len) {
            snprintf(err, errlen, "verify_pattern: format at byte %u is past the pattern's %u bytes", v->fmt_off[i],
                     v->pattern_len);
            return EINVAL;
        }
    }
    if ((v->type == IOL_V_PATTERN || v->type == IOL_V_PATTERN_NO_HDR) && !v->pattern_len) {
        snprintf(err, errlen, "verify=pattern needs verify_pattern");
        return EINVAL;
    }
    /* every block size must hold whole chunks, each bigger than its header */
    for (int d = 0; d < 2; d++) {
        if (!j->dir[d].enabled)
            continue;
        uint64_t lo = j->dir[d].bs_min, hi = j->dir[d].bs_max;
        for (unsigned i = 0; i < j->dir[d].nsplit; i++)
            if (j->dir[d].split_bs[i] % (v->interval ? v->interval : 1)) {
                snprintf(err, errlen, "verify_interval %llu does not divide block size %llu",
                         (unsigned long long)v->interval, (unsigned long long)j->dir[d].split_bs[i]);
                return EINVAL;
            }
        if (!v->interval || lo % v->interval || hi % v->interval || j->dir[d].bs_gran % v->interval) {
            snprintf(err, errlen, "verify_interval %llu must divide every %s block size (%llu..%llu)",
                     (unsigned long long)v->interval, d ? "write" : "read", (unsigned long long)lo,
                     (unsigned long long)hi);
            return EINVAL;
        }
    }
    if (v->interval <= v->hdr_size || v->interval > UINT32_MAX) {
        snprintf(err, errlen, "verify_interval %llu: too small for the %u-byte verify header",
                 (unsigned long long)v->interval, v->hdr_size);
        return EINVAL;
    }
    if (v->voffset && v->voffset + v->hdr_size > v->interval) {
        snprintf(err, errlen, "verify_offset %llu: the %u-byte header does not fit in the %llu-byte chunk",
                 (unsigned long long)v->voffset, v->hdr_size, (unsigned long long)v->interval);
        return EINVAL;
    }
    iol_rng_seed(&v->seeds, c->seed, RNG_STREAM_VERIFY);
    /* fio sorts the log by offset unless the job keeps a random map (then it reads back in write order) */
    v->sorted = !(c->random && !c->norandommap);
    v->read_job = !(c->ddir_mask & 2);
    /* verify_only writes nothing: the blocks it reads may come from fio or another seed; fio too takes
     * the seed from the header there (its check needs rw=rw), and with verify_backlog, where a block
     * read back may have been written again since */
    v->check_seed = !v->read_job && !(v->flags & IOL_VF_ONLY) && !v->pattern_len && !c->verify_backlog;
    if (!v->read_job && (v->flags & (IOL_VF_DO_VERIFY | IOL_VF_ONLY))) {
        v->cap = log_cap;
        v->log = calloc(log_cap ? log_cap : 1, sizeof(*v->log));
        if (!v->log)
            return ENOMEM;
    }
    v->slot_verify = calloc(j->depth, 1);
    v->slot_numberio = calloc(j->depth, sizeof(uint32_t));
    v->slot_write = calloc(j->depth, sizeof(uint32_t));
    v->slot_seed = calloc(j->depth, sizeof(uint64_t));
    if (!v->slot_verify || !v->slot_numberio || !v->slot_write || !v->slot_seed)
        return ENOMEM;
    if (v->flags & IOL_VF_DUMP) {
        v->dump_len = j->buflen;
        v->regen = malloc(j->buflen);
        v->dump = malloc((size_t)IOL_VDUMP_MAX * 2 * j->buflen);
        if (!v->regen || !v->dump)
            return ENOMEM;
    }
    if (v->pattern_len) {
        if (posix_memalign((void **)&v->scratch, 4096, j->buflen)) {
            v->scratch = NULL;
            return ENOMEM;
        }
        memset(v->scratch, 0, j->buflen);
    }
    return 0;
}

void iol_verify_free(struct iol_job *j)
{
    struct iol_verify *v = &j->vfy;
    free(v->log);
    free(v->slot_verify);
    free(v->slot_numberio);
    free(v->slot_write);
    free(v->slot_seed);
    free(v->scratch);
    free(v->regen);
    free(v->dump);
}

static inline uint64_t chunk_len(const struct iol_verify *v, uint64_t len)
{
    return v->interval <= len ? v->interval : len;
}

/* verify_pattern over len bytes, repeated from the buffer start, with the I/O's offset pasted where the
 * pattern has %o (8 little-endian bytes, cut at the pattern's end), as fio fills it. */
static void fill_pattern(const struct iol_verify *v, uint8_t *buf, uint64_t len, uint64_t offset)
{
    uint64_t n = v->pattern_len < len ? v->pattern_len : len;
    memcpy(buf, v->pattern, n);
    for (unsigned i = 0; i < v->fmt_n; i++) {
        uint64_t at = v->fmt_off[i];
        if (at >= n)
            continue;
        uint64_t k = n - at < 8 ? n - at : 8;
        memcpy(buf + at, &offset, k);
    }
    while (n < len) { /* double the filled part */
        uint64_t k = n < len - n ? n : len - n;
        memcpy(buf + n, buf, k);
        n += k;
    }
}

static void swap_bytes(uint8_t *a, uint8_t *b, uint32_t len)
{
    uint8_t tmp[IOL_VHDR_LEN + 128];
    memcpy(tmp, a, len);
    memcpy(a, b, len);
    memcpy(b, tmp, len);
}

/* A block as written: payload (random from seed, or the pattern), then a header and checksum per chunk,
 * each header swapped to verify_offset when `swap`. */
static void fill_block(const struct iol_verify *v, uint8_t *buf, uint64_t len, uint64_t offset, uint64_t seed,
                       uint32_t numberio, uint64_t t, int swap)
{
    if (v->pattern_len) {
        fill_pattern(v, buf, len, offset);
    } else {
        /* fio's random payload: from a seed of its own, kept in the header */
        struct iol_rng r;
        iol_rng_seed(&r, seed, 0);
        iol_rng_fill(&r, buf, len);
    }
    if (v->hdr_size) {
        uint64_t inc = chunk_len(v, len);
        uint64_t k = 0;
        for (uint64_t p = 0; p + inc <= len; p += inc, k++) {
            uint8_t *c = buf + p;
            struct vhdr h = {
                .magic = IOL_VHDR_MAGIC,
                .verify_type = (uint16_t)v->type,
                .len = (uint32_t)inc,
                .rand_seed = seed,
                .offset = offset + k * v->interval,
                .time_sec = (uint32_t)(t / 1000000000ull),
                .time_nsec = (uint32_t)(t % 1000000000ull),
                .thread = v->thread,
                .numberio = (uint16_t)numberio,
            };
            h.crc32 = iol_crc32c(&h, IOL_VHDR_CRC_SPAN);
            memcpy(c, &h, sizeof(h));
            if (v->csum != IOL_CSUM_NONE) {
                uint8_t *vh = c + IOL_VHDR_LEN;
                size_t dl = iol_csum_len(v->csum);
                memset(vh + dl, 0, v->vhdr_len - dl);
                iol_csum_compute(v->csum, c + v->hdr_size, inc - v->hdr_size, vh);
            }
            if (v->voffset && swap)
                swap_bytes(c, c + v->voffset, v->hdr_size);
        }
    }
}

void iol_verify_fill(struct iol_job *j, struct iol_io *io)
{
    struct iol_verify *v = &j->vfy;
    uint64_t seed = v->pattern_len ? 0 : iol_rng_next(&v->seeds);
    uint32_t numberio = v->numberio++;
    fill_block(v, io->buf, io->len, io->offset, seed, numberio, v->hdr_size ? iol_now_ns() : 0, 1);
    if (v->log) {
        if (v->tail >= v->cap) {
            v->log_full = 1;
            return;
        }
        struct iol_vlog *e = &v->log[v->tail];
        e->offset = io->offset;
        e->seed = seed;
        e->len = (uint32_t)io->len;
        e->file = io->file;
        e->numberio = numberio;
        e->seq = (uint32_t)v->tail;
        e->state = IOL_VLOG_INFLIGHT;
        v->slot_write[io->index] = (uint32_t)(++v->tail);
        v->backlog_count++;
    }
}

static int all_zero(const uint8_t *p, uint64_t len)
{
    for (uint64_t i = 0; i < len; i++)
        if (p[i])
            return 0;
    return 1;
}

/* verify_dump: keep the chunk as read (and, for a data failure, as it was written: regenerated from the
 * header, as fio does) for the runner to write to files. */
static void keep_dump(struct iol_job *j, const struct iol_io *io, const uint8_t *c, uint64_t p, uint64_t inc,
                      int with_expected)
{
    struct iol_verify *v = &j->vfy;
    uint32_t i = v->nfails - 1;
    if (!v->dump || i >= IOL_VDUMP_MAX || inc > v->dump_len)
        return;
    struct iol_vfail *f = &v->fails[i];
    uint8_t *slot = v->dump + (size_t)i * 2 * v->dump_len;
    memcpy(slot, c, inc);
    f->dumped = 1;
    if (!with_expected)
        return;
    struct vhdr h;
    memcpy(&h, c, sizeof(h));
    uint64_t seed = v->hdr_size ? h.rand_seed : 0;
    uint32_t nr = v->hdr_size ? h.numberio : 0;
    uint64_t t = v->hdr_size ? (uint64_t)h.time_sec * 1000000000ull + h.time_nsec : 0;
    fill_block(v, v->regen, io->len, io->offset, seed, nr, t, 0);
    memcpy(slot + v->dump_len, v->regen + p, inc);
    f->dumped |= 2;
}

static struct iol_vfail *record(struct iol_job *j, uint32_t kind, const struct iol_io *io, uint64_t chunk_off,
                                uint64_t len)
{
    struct iol_verify *v = &j->vfy;
    v->failures++;
    if (v->nfails >= IOL_VFAIL_MAX)
        return NULL; /* counted, not kept in detail */
    struct iol_vfail *f = &v->fails[v->nfails++];
    memset(f, 0, sizeof(*f));
    f->kind = kind;
    f->file = io->file;
    f->offset = chunk_off;
    f->len = len;
    f->req_offset = io->offset;
    f->req_len = io->len;
    return f;
}

/* The message the job's error carries: the first failure ("of file N" is named by the runner). */
static void set_message(struct iol_job *j, uint32_t kind, const struct iol_io *io, uint64_t off, uint64_t len,
                        uint64_t expected, uint64_t received)
{
    if (j->vfy.failures > 1)
        return;
    char *msg = j->vfy.msg;
    const size_t msglen = sizeof(j->vfy.msg);
    const char *what = kind_names[kind];
    switch (kind) {
    case IOL_VFAIL_NEVER_WRITTEN:
        snprintf(msg, msglen,
                 "verify: only zeros at offset %llu of file %u, length %llu: never written?",
                 (unsigned long long)off, io->file, (unsigned long long)len);
        break;
    case IOL_VFAIL_CHECKSUM:
    case IOL_VFAIL_PATTERN:
        snprintf(msg, msglen,
                 "%s: verify failed at offset %llu of file %u, length %llu: data corrupted",
                 iol_vtype_name(j->vfy.type), (unsigned long long)off, io->file, (unsigned long long)len);
        break;
    case IOL_VFAIL_SHORT:
        snprintf(msg, msglen,
                 "verify: short read at offset %llu of file %u: %llu of %llu bytes", (unsigned long long)off,
                 io->file, (unsigned long long)received, (unsigned long long)expected);
        break;
    case IOL_VFAIL_LENGTH:
    case IOL_VFAIL_OFFSET:
    case IOL_VFAIL_NUMBERIO:
    case IOL_VFAIL_SEED:
        snprintf(msg, msglen, "verify: %s %llu, wanted %llu at offset %llu of file %u, length %llu: corrupted",
                 what, (unsigned long long)received, (unsigned long long)expected, (unsigned long long)off, io->file,
                 (unsigned long long)len);
        break;
    default:
        snprintf(msg, msglen,
                 "verify: %s %llx, wanted %llx at offset %llu of file %u, length %llu: corrupted", what,
                 (unsigned long long)received, (unsigned long long)expected, (unsigned long long)off, io->file,
                 (unsigned long long)len);
        break;
    }
    j->vfy.fail_offset = off;
}

static int header_fail(struct iol_job *j, const struct iol_io *io, uint32_t kind, uint64_t off, uint64_t len,
                       uint64_t expected, uint64_t received, uint32_t media)
{
    struct iol_vfail *f = record(j, kind, io, off, len);
    if (f) {
        f->expected = expected;
        f->received = received;
        f->media_type = media;
        if (kind != IOL_VFAIL_SHORT)
            keep_dump(j, io, (const uint8_t *)io->buf + (off - io->offset), off - io->offset, len, 0);
    }
    set_message(j, kind, io, off, len, expected, received);
    return EILSEQ;
}

/* Compare a chunk's data part with the expected pattern (scratch holds the block's). */
static int check_pattern(struct iol_job *j, const struct iol_io *io, const uint8_t *c, uint64_t p, uint64_t inc,
                         uint64_t off)
{
    struct iol_verify *v = &j->vfy;
    const uint8_t *want = v->scratch + p + v->hdr_size;
    const uint8_t *got = c + v->hdr_size;
    uint64_t n = inc - v->hdr_size;
    if (memcmp(want, got, n) == 0)
        return 0;
    uint64_t i = 0;
    while (want[i] == got[i])
        i++;
    /* a chunk of zeros where the pattern is not: the block was never written */
    uint32_t kind = (!v->hdr_size && all_zero(c, inc) && !all_zero(want, n)) ? IOL_VFAIL_NEVER_WRITTEN
                                                                              : IOL_VFAIL_PATTERN;
    struct iol_vfail *f = record(j, kind, io, off, inc);
    if (f) {
        f->expected = want[i];
        f->received = got[i];
        f->bad_byte = i;
        keep_dump(j, io, c, p, inc, 1);
    }
    set_message(j, kind, io, off, inc, want[i], got[i]);
    return EILSEQ;
}

int iol_verify_check(struct iol_job *j, struct iol_io *io)
{
    struct iol_verify *v = &j->vfy;
    uint8_t *buf = io->buf;
    v->reads++;
    v->bytes += io->done;
    if (io->done < io->len)
        return header_fail(j, io, IOL_VFAIL_SHORT, io->offset, io->len, io->len, io->done, 0);
    uint32_t want_nr = v->slot_numberio[io->index];
    int check_nr = (v->flags & IOL_VF_CHECK_NUMBERIO) && (want_nr & 0x80000000u);
    if (v->pattern_len)
        fill_pattern(v, v->scratch, io->len, io->offset);
    uint64_t inc = chunk_len(v, io->len);
    uint64_t k = 0;
    int ret = 0;
    for (uint64_t p = 0; p + inc <= io->len; p += inc, k++) {
        if (ret && (v->flags & IOL_VF_FATAL))
            break;
        uint8_t *c = buf + p;
        uint64_t off = io->offset + p;
        v->chunks++;
        if (v->hdr_size && v->voffset)
            swap_bytes(c, c + v->voffset, v->hdr_size);
        if (v->type == IOL_V_PATTERN_NO_HDR) {
            if (check_pattern(j, io, c, p, inc, off))
                ret = EILSEQ;
            continue;
        }
        struct vhdr h;
        memcpy(&h, c, sizeof(h));
        /* fio's header checks, in its order; a bad header ends the check of the block */
        if (h.magic != IOL_VHDR_MAGIC) {
            uint32_t kind = all_zero(c, inc) ? IOL_VFAIL_NEVER_WRITTEN : IOL_VFAIL_MAGIC;
            return header_fail(j, io, kind, off, inc, IOL_VHDR_MAGIC, h.magic, 0);
        }
        if (h.len != inc)
            return header_fail(j, io, IOL_VFAIL_LENGTH, off, inc, inc, h.len, h.verify_type);
        uint64_t want_off = io->offset + k * v->interval;
        if (h.offset != want_off)
            return header_fail(j, io, IOL_VFAIL_OFFSET, off, inc, want_off, h.offset, h.verify_type);
        if (check_nr && h.numberio != (uint16_t)want_nr)
            return header_fail(j, io, IOL_VFAIL_NUMBERIO, off, inc, (uint16_t)want_nr, h.numberio, h.verify_type);
        uint32_t crc = iol_crc32c(&h, IOL_VHDR_CRC_SPAN);
        if (crc != h.crc32)
            return header_fail(j, io, IOL_VFAIL_HDR_CRC, off, inc, crc, h.crc32, h.verify_type);
        if (v->csum != IOL_CSUM_NONE) {
            uint8_t got[IOL_CSUM_MAX_LEN];
            size_t dl = iol_csum_len(v->csum);
            iol_csum_compute(v->csum, c + v->hdr_size, inc - v->hdr_size, got);
            if (memcmp(got, c + IOL_VHDR_LEN, dl) != 0) {
                struct iol_vfail *f = record(j, IOL_VFAIL_CHECKSUM, io, off, inc);
                if (f) {
                    f->media_type = h.verify_type;
                    f->csum_len = (uint32_t)dl;
                    memcpy(f->csum_expected, c + IOL_VHDR_LEN, dl);
                    memcpy(f->csum_received, got, dl);
                    keep_dump(j, io, c, p, inc, 1);
                }
                set_message(j, IOL_VFAIL_CHECKSUM, io, off, inc, 0, 0);
                ret = EILSEQ;
                continue;
            }
        } else if (v->pattern_len && check_pattern(j, io, c, p, inc, off)) {
            ret = EILSEQ; /* meta with verify_pattern, or the pattern after a header */
            continue;
        }
        /* fio's rand_seed check, which fio makes only for rw=rw/randrw jobs without verify_backlog
         * (where its replay of the seeds is in step). iolab logs each block's seed, so it checks every
         * block this run wrote, after fio's other checks (so it reports what fio reports, and more): a
         * valid block of an earlier run, left in place by a lost write, fails here. */
        if (v->check_seed && h.rand_seed != v->slot_seed[io->index])
            return header_fail(j, io, IOL_VFAIL_SEED, off, inc, v->slot_seed[io->index], h.rand_seed,
                               h.verify_type);
    }
    return ret;
}

/* fio's io piece tree: the verify phase reads by file and offset; a write that overlaps an earlier one
 * replaces it. Heapsort in place (no allocation), then the replaced entries are dropped. */
static int vlog_less(const struct iol_vlog *a, const struct iol_vlog *b)
{
    if (a->file != b->file)
        return a->file < b->file;
    if (a->offset != b->offset)
        return a->offset < b->offset;
    return a->seq < b->seq;
}

static void sift_down(struct iol_vlog *a, uint64_t root, uint64_t n)
{
    for (;;) {
        uint64_t child = 2 * root + 1;
        if (child >= n)
            return;
        if (child + 1 < n && vlog_less(&a[child], &a[child + 1]))
            child++;
        if (!vlog_less(&a[root], &a[child]))
            return;
        struct iol_vlog t = a[root];
        a[root] = a[child];
        a[child] = t;
        root = child;
    }
}

void iol_verify_prepare_phase(struct iol_job *j)
{
    struct iol_verify *v = &j->vfy;
    if (!v->log || !v->sorted)
        return;
    struct iol_vlog *a = v->log + v->head;
    uint64_t n = v->tail - v->head;
    if (n < 2)
        return;
    for (uint64_t i = n / 2; i-- > 0;)
        sift_down(a, i, n);
    for (uint64_t end = n - 1; end > 0; end--) {
        struct iol_vlog t = a[0];
        a[0] = a[end];
        a[end] = t;
        sift_down(a, 0, end);
    }
    /* an entry is replaced when a later write overlaps it; in offset order the overlapping entries of a
     * file are neighbours, so look ahead while the next ones start inside it, and back over the ones
     * whose end reaches into it */
    for (uint64_t i = 0; i < n; i++) {
        uint64_t end = a[i].offset + a[i].len;
        for (uint64_t k = i + 1; k < n && a[k].file == a[i].file && a[k].offset < end; k++) {
            if (a[k].seq > a[i].seq)
                a[i].state |= IOL_VLOG_DROPPED;
            else
                a[k].state |= IOL_VLOG_DROPPED;
        }
    }
}
