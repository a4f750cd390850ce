/* Checksums for data verification (verify=).
 *
 * One function per algorithm family behind one entry point, so the verify code (verify.c) never
 * names an algorithm. Digests are written in the byte order fio stores them in its block header
 * (struct vhdr_* of fio's verify.h), so a block written by one tool can be checked by the other.
 * Every function is pure: no globals, no allocation, safe in the hot loop of any thread.
 */
#ifndef IOL_CHECKSUM_H
#define IOL_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

enum iol_csum {
    IOL_CSUM_NONE = 0,
    IOL_CSUM_CRC32C = 1, /* Castagnoli; SSE4.2 when the CPU has it, else a table (same value) */
    IOL_CSUM_MD5 = 2,
    IOL_CSUM_SHA1 = 3,
    IOL_CSUM_SHA256 = 4,
    IOL_CSUM_SHA512 = 5,
    IOL_CSUM_XXHASH = 6, /* XXH32, seed 1 as fio's verify uses it */
    IOL_CSUM_COUNT = 7,
};

/* Largest digest any algorithm writes: fio's sha512 header field (128 bytes, see below). */
#define IOL_CSUM_MAX_LEN 128

/* Bytes of the digest of `kind` as fio stores it (0 for IOL_CSUM_NONE or an unknown kind): crc32c 4,
 * xxhash 4, md5 16, sha1 20, sha256 64, sha512 128 -- the sizes of fio's struct vhdr_*.
 *
 * fio 3.33 quirks reproduced so its headers and ours compare equal (checksum_digest.c has the detail):
 * sha1 is the state words in host order (each 4-byte group reversed from the printed digest on
 * little-endian); sha256 appends the bit length little-endian and keeps 8 state low bytes plus 56 bytes
 * of the last block, not a SHA-256 digest; sha512 is never finalized and holds data bytes only
 * (the last len % 128 bytes of the data, then bytes len % 128..127 of its first 128). */
size_t iol_csum_len(enum iol_csum kind);

/* Checksum len bytes at buf into out (iol_csum_len(kind) bytes). Returns 0, or EINVAL for an unknown
 * kind (out untouched). */
int iol_csum_compute(enum iol_csum kind, const void *buf, size_t len, uint8_t *out);

/* CRC32C of buf, the same value fio's fio_crc32c() gives (same initial value and final step): fio's
 * verify header carries one over its leading bytes. */
uint32_t iol_crc32c(const void *buf, size_t len);

/* 1 when crc32c runs on the SSE4.2 instruction (reported as verify=crc32c-intel's backend). */
int iol_crc32c_hw(void);

#endif
