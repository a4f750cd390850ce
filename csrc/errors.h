/* I/O errors and the checks that can fail a job: continue_on_error / ignore_error, max_latency, rate_min,
 * engine failures. The messages go into the job's error_msg. */
#ifndef IOL_ERRORS_H
#define IOL_ERRORS_H

#include <errno.h>
#include <stdint.h>

#include "jobstate.h"

/* An I/O ended with io->error: 1 when it ends the job (recorded as its error), 0 when the job goes on. */
int iol_io_error(struct iol_job *j, struct iol_io *io, int issued_only);
/* rate_min / rate_iops_min: 1 (with the job's error set) if the minimum was not met. */
int iol_check_min_rate(struct iol_job *j, uint64_t t);
/* Submitting or reaping failed: the job ends with that error. */
void iol_engine_error(struct iol_job *j, const char *what, int err);

/* max_latency and rate_min, after an I/O was accounted. Nonzero when the job must end. */
static inline int completion_checks(struct iol_job *j, struct iol_io *io, uint64_t t)
{
    if (io->ddir < 2 && j->cfg.max_latency_ns[io->ddir] && t - io->t_issue > j->cfg.max_latency_ns[io->ddir]) {
        j->lat_exceeded = t - io->t_issue;
        io->error = ETIMEDOUT;
        io->error_offset = io->offset;
        int end = iol_io_error(j, io, 0);
        io->error = 0;
        if (end)
            return 1;
    }
    return iol_check_min_rate(j, t);
}

#endif
