/* Data verification (verify=): fio's block format, the log of what was written, the checks.
 *
 * A written block carries, every verify_interval bytes, fio's 40-byte header (magic 0xacca, the verify
 * type in fio's numbering, the chunk length, the seed of the chunk's random payload, the chunk's offset,
 * the time, the job number, the write's number, and a crc32c of the header's first 36 bytes), followed
 * by the checksum of the rest of the chunk in fio's layout (struct vhdr_* of fio's verify.h). The rest
 * is random data from the seed, or verify_pattern. So a block written by iolab reads back correctly in
 * fio, and the other way round (see docs/fio-differences.md for the limits).
 *
 * The job logs every write (file, offset, length, number) in a log allocated at job creation; the
 * verify phase (after the writes), verify_backlog batches and verify_only runs read the logged blocks
 * back through the job's engine and check them when the read completes. Read-only jobs with verify=
 * check every block they read. Nothing here allocates after iol_verify_init().
 */
#ifndef IOL_VERIFY_H
#define IOL_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include "checksum.h"
#include "rand.h"

/* fio's verify types (enum in fio's verify.h); the numbers are written into every header. */
enum iol_vtype {
    IOL_V_NONE = 0,
    IOL_V_HDR_ONLY = 1, /* verify=meta */
    IOL_V_MD5 = 2,
    IOL_V_CRC32C = 5,
    IOL_V_CRC32C_INTEL = 6,
    IOL_V_SHA256 = 9,
    IOL_V_SHA512 = 10,
    IOL_V_XXHASH = 15,
    IOL_V_SHA1 = 16,
    IOL_V_PATTERN = 17,        /* verify_pattern without verify=: header, then the pattern */
    IOL_V_PATTERN_NO_HDR = 18, /* verify=pattern: the pattern only, no header */
};

#define IOL_VHDR_MAGIC 0xacca
#define IOL_VHDR_LEN 40u       /* sizeof(struct verify_header) in fio */
#define IOL_VHDR_CRC_SPAN 36u  /* the header crc covers the bytes before it */
#define IOL_VPATTERN_MAX 512u  /* fio's MAX_PATTERN_SIZE */
#define IOL_VFMT_MAX 4u        /* %o formats in one pattern */
#define IOL_VFAIL_MAX 16u      /* failures kept in detail (all are counted) */
#define IOL_VLOG_MAX (1ull << 26) /* logged writes at most (32 bytes each) */

/* config verify_flags bits */
#define IOL_VF_DO_VERIFY 1u      /* a write job reads back what it wrote (do_verify) */
#define IOL_VF_ONLY 2u           /* verify_only: the writes are not issued, only read back */
#define IOL_VF_FATAL 4u          /* verify_fatal: stop at the first bad chunk */
#define IOL_VF_CHECK_NUMBERIO 8u /* fio checks the write number (fixed bs, not time_based, not verify_only) */
#define IOL_VF_DUMP 16u          /* verify_dump: keep the bad chunks' data (IOL_VDUMP_MAX of them) */
#define IOL_VDUMP_MAX 4u

/* What a failed check found (the JSON's "kind"). */
enum iol_vfail_kind {
    IOL_VFAIL_NEVER_WRITTEN = 0, /* no header and only zeros: never written? */
    IOL_VFAIL_MAGIC = 1,         /* no header magic: corrupted, or not written with verify */
    IOL_VFAIL_LENGTH = 2,
    IOL_VFAIL_OFFSET = 3,        /* a block of another offset: misdirected or lost write */
    IOL_VFAIL_NUMBERIO = 4,      /* an older write of this block: lost write */
    IOL_VFAIL_HDR_CRC = 5,
    IOL_VFAIL_CHECKSUM = 6,      /* the data does not match its checksum: corrupted */
    IOL_VFAIL_PATTERN = 7,       /* a byte differs from verify_pattern */
    IOL_VFAIL_SHORT = 8,         /* the read returned less than the block (end of file) */
    IOL_VFAIL_SEED = 9,          /* a valid block written with another seed: stale (lost write) */
    IOL_VFAIL_KINDS = 10,
};

struct iol_vfail {
    uint32_t kind;
    uint32_t file;
    uint64_t offset;     /* the failing chunk */
    uint64_t len;        /* its length */
    uint64_t req_offset; /* the block read */
    uint64_t req_len;
    uint64_t expected; /* header field: what it should be (kinds MAGIC..HDR_CRC); pattern: the byte */
    uint64_t received; /* what was read */
    uint64_t bad_byte; /* pattern: offset of the first bad byte in the chunk */
    uint32_t media_type; /* the verify type the header names (0 if none) */
    uint32_t csum_len;
    uint32_t dumped; /* verify_dump: bit 0 the chunk as read is kept, bit 1 as written */
    uint8_t csum_expected[IOL_CSUM_MAX_LEN * 2];
    uint8_t csum_received[IOL_CSUM_MAX_LEN * 2];
};

/* One logged write. */
struct iol_vlog {
    uint64_t offset;
    uint64_t seed;  /* the payload seed written into the block's header */
    uint32_t len;
    uint32_t file;
    uint32_t numberio;
    uint32_t seq;   /* order of issue (overlap resolution) */
    uint32_t state; /* IOL_VLOG_* */
};

#define IOL_VLOG_INFLIGHT 1u /* the write has not completed: not to be read back yet */
#define IOL_VLOG_DROPPED 2u  /* the write failed, or a later write replaced it */

struct iol_verify {
    uint32_t type;      /* enum iol_vtype; 0: no verification */
    uint32_t flags;     /* IOL_VF_* */
    enum iol_csum csum; /* checksum of the data part (NONE for meta and the patterns) */
    uint32_t vhdr_len;  /* bytes of fio's vhdr_* after the header */
    uint32_t hdr_size;  /* header + vhdr (0 for verify=pattern) */
    uint64_t interval;  /* chunk length (verify_interval) */
    uint64_t voffset;   /* verify_offset: the header is swapped to this offset in the chunk */
    uint16_t thread;    /* fio's thread number written into the header */
    uint8_t pattern[IOL_VPATTERN_MAX];
    uint32_t pattern_len;
    uint32_t fmt_n;
    uint32_t fmt_off[IOL_VFMT_MAX];
    int sorted;         /* the verify phase reads in (file, offset) order, later writes replacing earlier */
    struct iol_rng seeds; /* one seed per written block (fio's verify_state) */

    /* the log */
    struct iol_vlog *log;
    uint64_t cap, head, tail; /* entries [head, tail) not yet read back */
    uint32_t numberio;        /* writes issued (fio's io_issues[write], 16 bits in the header) */
    uint32_t *slot_write;     /* per I/O slot: log index + 1 of the write in flight, 0 if none */
    uint64_t backlog_left;    /* verify_backlog: reads still to issue in the current batch */
    uint64_t backlog_count;   /* writes logged since the last batch started */

    int phase;   /* the verify phase is running: the loop reads logged blocks */
    int read_job;          /* a read-only job with verify=: every read is checked */
    uint8_t *slot_verify;  /* per I/O slot: 1 when the read in it is to be checked */
    uint32_t *slot_numberio; /* per I/O slot: the logged write number of the block read (bit 31: known) */
    uint64_t *slot_seed;     /* per I/O slot: the seed the block read was written with (check_seed jobs) */
    int check_seed;          /* the blocks read back were written by this run: their seeds are known */
    uint8_t *scratch;      /* expected data (patterns), one block */
    uint8_t *regen;        /* verify_dump: a block regenerated from its header, as written */
    uint8_t *dump;         /* verify_dump: per kept failure, the chunk read then as written (dump_len each) */
    uint64_t dump_len;
    int log_full;          /* a write could not be logged (should not happen: the plan sizes the log) */
    int last_ddir;         /* of the last I/O prepared (verify_backlog starts no batch after a read) */
    uint64_t fail_offset;  /* the first failure: where, and the job's error message for it */
    char msg[256];

    /* outcome */
    uint64_t reads, bytes, chunks, failures;
    uint64_t phase_ns; /* the verify phase's wall time (fio reports it as the read runtime) */
    uint32_t nfails;
    struct iol_vfail fails[IOL_VFAIL_MAX];
};

struct iol_job;
struct iol_io;

/* Set up from the config (the plan checked the values; C checks what would break memory safety).
 * log_cap: writes the log must hold. 0 or an errno value with a message in err. */
int iol_verify_init(struct iol_job *j, uint64_t log_cap, char *err, size_t errlen);
void iol_verify_free(struct iol_job *j);
/* A write is about to be issued: fill its buffer (payload and headers) and log it. */
void iol_verify_fill(struct iol_job *j, struct iol_io *io);
/* A checked read completed: 0 when the data is good, else EILSEQ (the failure is recorded, the job's
 * error message set). */
int iol_verify_check(struct iol_job *j, struct iol_io *io);
/* Order the log for the verify phase (fio's io piece tree: by file and offset, later writes replacing
 * overlapping earlier ones) when the job calls for it. */
void iol_verify_prepare_phase(struct iol_job *j);
const char *iol_vtype_name(uint32_t type);
const char *iol_vfail_kind_name(uint32_t kind);

#endif
