/* I/O errors, continue_on_error, rate_min, and the job's error message. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "errors.h"

static void record_error(struct iol_job *j, const struct iol_io *io)
{
    static const char *const opname[] = {"read", "write", "fsync", "fdatasync", "trim"};
    char ebuf[128];
    j->error = io->error;
    j->error_offset = io->error_offset;
    j->error_ddir = io->ddir;
    const char *what = strerror_r(io->error, ebuf, sizeof(ebuf));
    if (j->lat_exceeded)
        snprintf(j->error_msg, sizeof(j->error_msg),
                 "latency of %llu ns exceeds max_latency (%llu ns): %s of %llu bytes at offset %llu of file %u",
                 (unsigned long long)j->lat_exceeded, (unsigned long long)j->cfg.max_latency_ns[io->ddir],
                 opname[io->op], (unsigned long long)io->len, (unsigned long long)io->offset, io->file);
    else if (io->ddir == IOL_DDIR_SYNC)
        snprintf(j->error_msg, sizeof(j->error_msg), "%s of file %u (fd %d): %s", opname[io->op], io->file,
                 io->fd, what);
    else if (io->eof)
        snprintf(j->error_msg, sizeof(j->error_msg),
                 "%s of %llu bytes at offset %llu of file %u (fd %d): end of file or device at offset %llu",
                 opname[io->op], (unsigned long long)io->len, (unsigned long long)io->offset, io->file, io->fd,
                 (unsigned long long)io->error_offset);
    else
        snprintf(j->error_msg, sizeof(j->error_msg), "%s of %llu bytes at offset %llu of file %u (fd %d): %s",
                 opname[io->op], (unsigned long long)io->len, (unsigned long long)io->offset, io->file, io->fd,
                 what);
}

/* fio's continue_on_error: does this error let the job go on? Errors of a type continue_on_error names
 * (read; write, which includes syncs; verify for EILSEQ) pass when they are in the ignore_error list of
 * the direction, or, without a list, when they are EIO or EILSEQ. */
static int error_passes(const struct iol_job *j, int ddir, int err)
{
    int type = err == EILSEQ ? 2 : ddir == IOL_DDIR_READ ? 0 : 1;
    if (!(j->cfg.coe_mask & (1u << type)))
        return 0;
    unsigned n = type < 2 ? j->cfg.ignore_error_n[type] : 0;
    if (!n)
        return err == EIO || err == EILSEQ;
    for (unsigned i = 0; i < n; i++)
        if ((int)j->cfg.ignore_error[type * IOL_IGNORE_ERROR_MAX + i] == err)
            return 1;
    return 0;
}

/* An I/O ended with io->error. Count it when continue_on_error covers its type (as fio, the fatal one
 * too); 1 when it ends the job (recorded as the job's error), 0 when the job goes on. `issued_only`: the
 * I/O failed, it is counted as issued but not as done (a failed transfer; a max_latency violation was
 * accounted as done already). */
int iol_io_error(struct iol_job *j, struct iol_io *io, int issued_only)
{
    int type = io->error == EILSEQ ? 2 : io->ddir == IOL_DDIR_READ ? 0 : 1;
    if (j->cfg.coe_mask & (1u << type)) {
        if (!j->total_err++)
            j->first_error = io->error;
    }
    if (error_passes(j, io->ddir, io->error)) {
        j->err_ios[io->ddir] += issued_only;
        j->lat_exceeded = 0;
        return 0;
    }
    j->err_ios[io->ddir] += issued_only;
    record_error(j, io);
    return 1;
}

/* rate_min / rate_iops_min as fio checks them: not in the first 2 s of the job; then every rate_cycle
 * the rate since the previous check must reach the minimum. 1 (with the job's error set) if it did not. */
int iol_check_min_rate(struct iol_job *j, uint64_t t)
{
    const struct iol_config *c = &j->cfg;
    if (t - j->t_start < 2000000000ull)
        return 0;
    for (int d = 0; d < 2; d++) {
        if (!c->rate_min_bps[d] && !c->rate_min_iops[d])
            continue;
        if (!j->ds[d].ios)
            continue;
        if (j->rmin_bytes[d] || j->rmin_ios[d]) {
            uint64_t spent_ms = (t - j->rmin_t[d]) / 1000000ull;
            if (spent_ms == 0 || spent_ms * 1000000ull < c->rate_cycle_ns)
                continue;
            const char *name = d ? "write" : "read";
            if (c->rate_min_bps[d]) {
                uint64_t got = (j->ds[d].bytes - j->rmin_bytes[d]) * 1000 / spent_ms;
                if (got < c->rate_min_bps[d]) {
                    j->error = EIO;
                    snprintf(j->error_msg, sizeof(j->error_msg), "%s rate_min=%lluB/s not met, got %lluB/s", name,
                             (unsigned long long)c->rate_min_bps[d], (unsigned long long)got);
                    return 1;
                }
            } else {
                uint64_t got = (j->ds[d].ios - j->rmin_ios[d]) * 1000 / spent_ms;
                if (got < c->rate_min_iops[d]) {
                    j->error = EIO;
                    snprintf(j->error_msg, sizeof(j->error_msg), "%s rate_iops_min=%llu not met, got %llu IOPS",
                             name, (unsigned long long)c->rate_min_iops[d], (unsigned long long)got);
                    return 1;
                }
            }
        }
        j->rmin_bytes[d] = j->ds[d].bytes;
        j->rmin_ios[d] = j->ds[d].ios;
        j->rmin_t[d] = t;
    }
    return 0;
}

void iol_engine_error(struct iol_job *j, const char *what, int err)
{
    j->engine_failed = 1;
    if (j->error)
        return;
    char ebuf[128];
    j->error = err;
    j->error_ddir = -1;
    snprintf(j->error_msg, sizeof(j->error_msg), "%s: %s failed: %s", j->eng->name, what,
             strerror_r(err, ebuf, sizeof(ebuf)));
}
