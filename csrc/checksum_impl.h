/* The algorithm functions behind iol_csum_compute(), shared between the checksum*.c files and
 * exposed to the test hook _core.checksum(). Not for the verify code: that calls checksum.h only. */
#ifndef IOL_CHECKSUM_IMPL_H
#define IOL_CHECKSUM_IMPL_H

#include <stddef.h>
#include <stdint.h>

/* Standard digests, big-endian as the specifications print them (MD5: its own little-endian). */
void iol_md5(const void *buf, size_t len, uint8_t out[16]);
void iol_sha1(const void *buf, size_t len, uint8_t out[20]);
void iol_sha256(const void *buf, size_t len, uint8_t out[32]);
void iol_sha512(const void *buf, size_t len, uint8_t out[64]);

/* The bytes fio 3.33 stores in its verify header for the same data (see checksum_digest.c). */
void iol_sha1_fio(const void *buf, size_t len, uint8_t out[20]);
void iol_sha256_fio(const void *buf, size_t len, uint8_t out[64]);
void iol_sha512_fio(const void *buf, size_t len, uint8_t out[128]);

/* CRC32C by table and by the SSE4.2 instruction (the latter only where iol_crc32c_hw() is 1). Both
 * start from ~0 and, like fio, do not invert the result. */
uint32_t iol_crc32c_table(const void *buf, size_t len);
uint32_t iol_crc32c_sse42(const void *buf, size_t len);

uint32_t iol_xxh32(const void *buf, size_t len, uint32_t seed);

#endif
