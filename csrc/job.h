/* One benchmark job: the loop that generates offsets, drives an engine and keeps statistics (job.c and
 * the files it names).
 *
 * All state lives in struct iol_job (no globals). iol_job_run() runs on one thread; iol_job_stop()
 * and iol_job_progress() may be called from any other thread at any time.
 */
#ifndef IOL_JOB_H
#define IOL_JOB_H

#include <stddef.h>
#include <stdint.h>

#include "jobstate.h"

/* A caller's view of one file. */
struct iol_file_spec {
    int fd;
    uint64_t offset; /* region start */
    uint64_t size;   /* region length */
    /* fio's real_file_size: the size the file had when the job's setup was done (other jobs may
     * grow it later); 0: the file's size when the job is created */
    uint64_t file_size;
};

enum iol_create_status {
    IOL_OK = 0,
    IOL_EINVAL = 1, /* bad config or files: err says why */
    IOL_ENOMEM = 2,
    IOL_EENGINE = 3, /* engine init failed: err says why */
};

/* Validates cfg (cfg_len bytes) and files, allocates everything the run needs. */
int iol_job_create(struct iol_job **out, const void *cfg, size_t cfg_len, const struct iol_file_spec *files,
                   size_t nfiles, char *err, size_t errlen);
/* The same, with descriptors the engine gets besides the files (nbd: more connections to the export). */
int iol_job_create_ex(struct iol_job **out, const void *cfg, size_t cfg_len, const struct iol_file_spec *files,
                      size_t nfiles, const int *engine_fds, size_t nengine_fds, char *err, size_t errlen);
void iol_job_destroy(struct iol_job *job);
void iol_job_run(struct iol_job *job);
void iol_job_stop(struct iol_job *job);
/* out: read_ios, write_ios, read_bytes, write_bytes, phase, trim_ios, trim_bytes */
void iol_job_progress(struct iol_job *job, uint64_t out[7]);
/* One line on how the engine was set up (flags the kernel accepted, fallbacks); "" if none. */
const char *iol_job_engine_info(struct iol_job *job);
/* Record up to cap I/Os of the measured phase into buf (NULL disables). Call before run. */
void iol_job_set_trace(struct iol_job *job, struct iol_trace_rec *buf, size_t cap);

#endif
