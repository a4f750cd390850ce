/* Which file the next I/O goes to (file_service_type) and the passes over the files (loops, time_based
 * wrap-around, cache drops, re-seeding). next_file() runs for every I/O: static inline. */
#ifndef IOL_FILES_H
#define IOL_FILES_H

#include <stdint.h>

#include "dist.h"
#include "jobstate.h"

/* The streams that choose the I/O pattern (offsets, directions, sizes, files). */
void iol_seed_pattern(struct iol_job *j);
/* Drop a file's cached pages when the job starts over on it (invalidate=1). */
void iol_drop_cache(struct iol_job *j, struct iol_file *f);
/* A new pass: every file from its region start. */
void iol_start_pass(struct iol_job *j);
/* fio's keep_running: start another pass, or 0 when the job is done. */
int iol_next_pass(struct iol_job *j);

/* fio's __get_next_file: the file for the next I/O, NULL when every file is done. */
static inline unsigned next_file(struct iol_job *j)
{
    const struct iol_config *c = &j->cfg;
    if (j->files_done >= j->nfiles)
        return UINT32_MAX;
    if (j->fst_have && !j->files[j->fst_cur].done) {
        if (c->fst_mode == FST_SEQ)
            return j->fst_cur;
        if (j->fst_left) {
            j->fst_left--;
            return j->fst_cur;
        }
    }
    unsigned fi;
    if (c->fst_mode == FST_RR || c->fst_mode == FST_SEQ) {
        do {
            fi = j->cur_file;
            if (++j->cur_file == j->nfiles)
                j->cur_file = 0;
        } while (j->files[fi].done);
    } else {
        do {
            if (c->fst_mode == FST_RANDOM)
                fi = (unsigned)iol_rng_below(&j->rng_file, j->nfiles);
            else
                fi = (unsigned)(dist_next(&j->fst_dist, (int)c->fst_mode - FST_ZIPF + DIST_ZIPF, &j->rng_file) >>
                                FSERVICE_SHIFT);
        } while (fi >= j->nfiles || j->files[fi].done);
    }
    j->fst_have = 1;
    j->fst_cur = fi;
    j->fst_left = c->fst_nr ? c->fst_nr - 1 : 0;
    return fi;
}

#endif
