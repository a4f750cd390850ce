/* iolab._core: the CPython binding of the C job loop (DESIGN.md section 3). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stddef.h>

#include "checksum.h"
#include "checksum_impl.h"
#include "job.h"

enum { STATE_READY = 0, STATE_RUNNING = 1, STATE_DONE = 2 };

typedef struct {
    PyObject_HEAD
    struct iol_job *job;
    int state;
    int has_trace;
    Py_buffer trace; /* test hook: held while set */
} JobObject;

static void job_release(JobObject *self)
{
    iol_job_destroy(self->job);
    self->job = NULL;
    if (self->has_trace) {
        PyBuffer_Release(&self->trace);
        self->has_trace = 0;
    }
    self->state = STATE_READY;
}

static void Job_dealloc(JobObject *self)
{
    job_release(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int parse_files(PyObject *files, struct iol_file_spec **out, Py_ssize_t *nout)
{
    PyObject *seq = PySequence_Fast(files, "files must be a list of (fd, region_offset, region_size[, file_size]) "
                                           "tuples");
    if (!seq)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n == 0) {
        PyErr_SetString(PyExc_ValueError, "files must not be empty: a job needs at least one file");
        goto fail_seq;
    }
    struct iol_file_spec *specs = PyMem_Calloc((size_t)n, sizeof(*specs));
    if (!specs) {
        PyErr_NoMemory();
        goto fail_seq;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        Py_ssize_t nv = PyTuple_Check(item) ? PyTuple_GET_SIZE(item) : 0;
        if (nv != 3 && nv != 4) {
            PyErr_Format(PyExc_TypeError,
                         "files[%zd] must be a tuple (fd, region_offset, region_size[, file_size]), got %.100s", i,
                         Py_TYPE(item)->tp_name);
            goto fail_specs;
        }
        static const char *const what[4] = {"fd", "region_offset", "region_size", "file_size"};
        long long v[4] = {0, 0, 0, 0};
        for (int k = 0; k < (int)nv; k++) {
            PyObject *o = PyTuple_GET_ITEM(item, k);
            if (!PyLong_Check(o)) {
                PyErr_Format(PyExc_TypeError, "files[%zd]: %s must be an int, got %.100s", i, what[k],
                             Py_TYPE(o)->tp_name);
                goto fail_specs;
            }
            int overflow = 0;
            v[k] = PyLong_AsLongLongAndOverflow(o, &overflow);
            if (v[k] == -1 && PyErr_Occurred())
                goto fail_specs;
            if (overflow || v[k] < 0 || (k == 0 && v[k] > INT32_MAX)) {
                PyErr_Format(PyExc_ValueError, "files[%zd]: %s %R is out of range", i, what[k], o);
                goto fail_specs;
            }
        }
        specs[i].fd = (int)v[0];
        specs[i].offset = (uint64_t)v[1];
        specs[i].size = (uint64_t)v[2];
        specs[i].file_size = (uint64_t)v[3];
    }
    Py_DECREF(seq);
    *out = specs;
    *nout = n;
    return 0;

fail_specs:
    PyMem_Free(specs);
fail_seq:
    Py_DECREF(seq);
    return -1;
}

static int Job_init(JobObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"config", "files", "engine_fds", NULL};
    Py_buffer cfg;
    PyObject *files;
    PyObject *efds_obj = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*O|O:Job", kwlist, &cfg, &files, &efds_obj))
        return -1;
    int efds[64];
    Py_ssize_t nefds = 0;
    if (efds_obj && efds_obj != Py_None) {
        PyObject *seq = PySequence_Fast(efds_obj, "engine_fds must be a list of file descriptors");
        if (!seq) {
            PyBuffer_Release(&cfg);
            return -1;
        }
        nefds = PySequence_Fast_GET_SIZE(seq);
        int bad = nefds > 64;
        for (Py_ssize_t i = 0; !bad && i < nefds; i++) {
            long v = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
            bad = (v == -1 && PyErr_Occurred()) || v < 0 || v > INT32_MAX;
            efds[i] = (int)v;
        }
        Py_DECREF(seq);
        if (bad) {
            PyErr_Clear();
            PyErr_SetString(PyExc_ValueError, "engine_fds: at most 64 file descriptors (ints >= 0)");
            PyBuffer_Release(&cfg);
            return -1;
        }
    }
    if (self->state == STATE_RUNNING) {
        PyBuffer_Release(&cfg);
        PyErr_SetString(PyExc_RuntimeError, "cannot re-initialize a running Job");
        return -1;
    }
    job_release(self);

    struct iol_file_spec *specs = NULL;
    Py_ssize_t n = 0;
    if (parse_files(files, &specs, &n) < 0) {
        PyBuffer_Release(&cfg);
        return -1;
    }
    char err[512] = "";
    struct iol_job *job = NULL;
    int r = iol_job_create_ex(&job, cfg.buf, (size_t)cfg.len, specs, (size_t)n, efds, (size_t)nefds, err,
                              sizeof(err));
    PyMem_Free(specs);
    PyBuffer_Release(&cfg);
    switch (r) {
    case IOL_OK:
        self->job = job;
        self->state = STATE_READY;
        return 0;
    case IOL_ENOMEM:
        PyErr_NoMemory();
        return -1;
    case IOL_EENGINE:
        PyErr_Format(PyExc_OSError, "engine setup failed: %s", err);
        return -1;
    default:
        PyErr_SetString(PyExc_ValueError, err);
        return -1;
    }
}

static int check_init(JobObject *self)
{
    if (!self->job) {
        PyErr_SetString(PyExc_RuntimeError, "Job is not initialized");
        return -1;
    }
    return 0;
}

static PyObject *Job_run(JobObject *self, PyObject *Py_UNUSED(ignored))
{
    if (check_init(self) < 0)
        return NULL;
    if (self->state != STATE_READY) {
        PyErr_SetString(PyExc_RuntimeError, "Job.run() can only be called once");
        return NULL;
    }
    self->state = STATE_RUNNING;
    struct iol_job *job = self->job;
    Py_BEGIN_ALLOW_THREADS
    iol_job_run(job);
    Py_END_ALLOW_THREADS
    self->state = STATE_DONE;
    Py_RETURN_NONE;
}

static PyObject *Job_stop(JobObject *self, PyObject *Py_UNUSED(ignored))
{
    if (check_init(self) < 0)
        return NULL;
    iol_job_stop(self->job);
    Py_RETURN_NONE;
}

static PyObject *Job_progress(JobObject *self, PyObject *Py_UNUSED(ignored))
{
    if (check_init(self) < 0)
        return NULL;
    uint64_t p[7];
    iol_job_progress(self->job, p);
    return Py_BuildValue("(KKKKiKK)", (unsigned long long)p[0], (unsigned long long)p[1], (unsigned long long)p[2],
                         (unsigned long long)p[3], (int)p[4], (unsigned long long)p[5], (unsigned long long)p[6]);
}

/* H = {"count", "min", "max", "sum", "sumsq", "buckets"} */
static PyObject *hist_dict(const struct iol_hist *h)
{
    PyObject *buckets = h ? PyBytes_FromStringAndSize((const char *)h->buckets, sizeof(h->buckets))
                          : PyBytes_FromStringAndSize(NULL, sizeof(uint64_t) * IOL_HIST_BUCKETS);
    if (!buckets)
        return NULL;
    if (!h)
        memset(PyBytes_AS_STRING(buckets), 0, sizeof(uint64_t) * IOL_HIST_BUCKETS);
    unsigned long long count = h ? h->count : 0;
    PyObject *d =
        Py_BuildValue("{s:K,s:K,s:K,s:K,s:d,s:N}", "count", count, "min",
                      (unsigned long long)(count ? h->min : 0), "max", (unsigned long long)(count ? h->max : 0), "sum",
                      (unsigned long long)(count ? h->sum : 0), "sumsq", count ? (double)h->sumsq : 0.0, "buckets",
                      buckets);
    return d;
}

static PyObject *ddir_dict(const struct iol_job *j, int d)
{
    const struct iol_dstat *s = &j->ds[d];
    int sync_engine = j->eng_sync && !j->rated; /* rate limited: slat/clat/lat are measured apart */
    PyObject *lat = hist_dict(&s->lat);
    PyObject *clat = hist_dict(sync_engine ? &s->lat : &s->clat); /* synchronous: clat == lat */
    PyObject *slat = hist_dict(sync_engine ? NULL : &s->slat);    /* synchronous: no slat */
    if (!lat || !clat || !slat) {
        Py_XDECREF(lat);
        Py_XDECREF(clat);
        Py_XDECREF(slat);
        return NULL;
    }
    /* fdatasyncs: part of the sync latencies, but not of fio's sync total_ios */
    return Py_BuildValue("{s:K,s:K,s:K,s:i,s:N,s:N,s:N,s:K,s:K}", "ios", (unsigned long long)s->ios, "bytes",
                         (unsigned long long)s->bytes, "short_ios", (unsigned long long)s->short_ios, "dropped", 0,
                         "clat", clat, "lat", lat, "slat", slat, "err_ios", (unsigned long long)j->err_ios[d],
                         "datasync_ios", (unsigned long long)(d == IOL_DDIR_SYNC ? j->datasyncs : 0));
}

static PyObject *counts7(const uint64_t v[7])
{
    return Py_BuildValue("[KKKKKKK]", (unsigned long long)v[0], (unsigned long long)v[1], (unsigned long long)v[2],
                         (unsigned long long)v[3], (unsigned long long)v[4], (unsigned long long)v[5],
                         (unsigned long long)v[6]);
}

/* I/O left out of the statistics (ramp, drained): {"read": {"ios", "bytes"}, "write": {...}, "trim": {...},
 * "syncs": n} */
static PyObject *uncounted_dict(const uint64_t ios[IOL_DDIR_COUNT], const uint64_t bytes[IOL_DDIR_COUNT])
{
    return Py_BuildValue("{s:{s:K,s:K},s:{s:K,s:K},s:{s:K,s:K},s:K}", "read", "ios",
                         (unsigned long long)ios[IOL_DDIR_READ], "bytes", (unsigned long long)bytes[IOL_DDIR_READ],
                         "write", "ios", (unsigned long long)ios[IOL_DDIR_WRITE], "bytes",
                         (unsigned long long)bytes[IOL_DDIR_WRITE], "trim", "ios", (unsigned long long)ios[IOL_DDIR_TRIM],
                         "bytes", (unsigned long long)bytes[IOL_DDIR_TRIM], "syncs",
                         (unsigned long long)ios[IOL_DDIR_SYNC]);
}

static PyObject *depth_dict(const struct iol_job *j)
{
    const struct iol_depths *d = &j->depths;
    return Py_BuildValue("{s:N,s:N,s:N,s:K,s:I,s:I,s:I,s:I,s:I}", "level", counts7(d->level), "submit",
                         counts7(d->submit), "complete", counts7(d->complete), "max_inflight",
                         (unsigned long long)d->max_inflight, "iodepth", j->depth, "batch_submit", j->batch_submit,
                         "batch_complete_min", j->batch_min, "batch_complete_max", j->batch_max, "iodepth_low",
                         j->depth_low);
}

static PyObject *poll_dict(const struct iol_poll *p)
{
    static const char *const modes[] = {"off", "on", "adaptive"};
    return Py_BuildValue("{s:s,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:I,s:I}", "mode",
                         p->mode <= IOL_POLL_ADAPTIVE ? modes[p->mode] : "?", "waits", (unsigned long long)p->waits,
                         "hits", (unsigned long long)p->hits, "misses", (unsigned long long)p->misses, "poll_ns",
                         (unsigned long long)p->poll_ns, "block_ns", (unsigned long long)p->block_ns, "window_ns",
                         (unsigned long long)(p->mode == IOL_POLL_OFF ? 0 : p->ns), "window_sum_ns",
                         (unsigned long long)p->window_sum, "max_ns", (unsigned long long)p->max_ns, "sleeps",
                         (unsigned long long)p->sleeps, "grows", (unsigned long long)p->grows, "shrinks",
                         (unsigned long long)p->shrinks, "grow", p->grow, "shrink", p->shrink);
}

/* The statistics of a series: {"read": {"bw": (n, min, max, mean, m2), "iops": (...)}, "write": ...}. */
static PyObject *sample_stats(const struct iol_sampler *sp)
{
    static const char *const names[IOL_DDIR_IO] = {"read", "write", "trim"};
    PyObject *out = PyDict_New();
    for (int d = 0; out && d < IOL_DDIR_IO; d++) {
        const struct iol_rstat *b = &sp->bw[d], *o = &sp->iops[d];
        PyObject *v = Py_BuildValue("{s:(Kdddd),s:(Kdddd)}", "bw", (unsigned long long)b->n, b->min, b->max,
                                    b->mean, b->m2, "iops", (unsigned long long)o->n, o->min, o->max, o->mean,
                                    o->m2);
        if (!v || PyDict_SetItemString(out, names[d], v) < 0)
            Py_CLEAR(out);
        Py_XDECREF(v);
    }
    return out;
}

/* A sample series as a list of (t_ns, read_ios, read_bytes, write_ios, write_bytes, trim_ios, trim_bytes). */
static PyObject *samples_list(const struct iol_sampler *sp)
{
    PyObject *samples = PyList_New(sp->n);
    if (!samples)
        return NULL;
    for (uint32_t i = 0; i < sp->n; i++) {
        const struct iol_sample *s = &sp->buf[i];
        PyObject *t = Py_BuildValue("(KKKKKKK)", (unsigned long long)s->t_ns, (unsigned long long)s->ios[0],
                                    (unsigned long long)s->bytes[0], (unsigned long long)s->ios[1],
                                    (unsigned long long)s->bytes[1], (unsigned long long)s->ios[2],
                                    (unsigned long long)s->bytes[2]);
        if (!t) {
            Py_DECREF(samples);
            return NULL;
        }
        PyList_SET_ITEM(samples, i, t);
    }
    return samples;
}

/* verify=: what was read back and checked, and the first failures in detail. */
static PyObject *verify_dict(const struct iol_job *j)
{
    const struct iol_verify *v = &j->vfy;
    PyObject *fails = PyList_New(0);
    if (!fails)
        return NULL;
    for (uint32_t i = 0; i < v->nfails; i++) {
        const struct iol_vfail *f = &v->fails[i];
        /* verify_dump: the chunk as read and as written (empty when not kept) */
        const char *dump = v->dump ? (const char *)v->dump + (size_t)i * 2 * v->dump_len : "";
        Py_ssize_t got_len = (f->dumped & 1) ? (Py_ssize_t)f->len : 0;
        Py_ssize_t want_len = (f->dumped & 2) ? (Py_ssize_t)f->len : 0;
        PyObject *d = Py_BuildValue(
            "{s:s,s:I,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:I,s:y#,s:y#,s:y#,s:y#}", "kind", iol_vfail_kind_name(f->kind), "file",
            f->file, "offset", (unsigned long long)f->offset, "length", (unsigned long long)f->len, "block_offset",
            (unsigned long long)f->req_offset, "block_length", (unsigned long long)f->req_len, "expected",
            (unsigned long long)f->expected, "received", (unsigned long long)f->received, "bad_byte",
            (unsigned long long)f->bad_byte, "media_type", f->media_type, "csum_expected",
            (const char *)f->csum_expected, (Py_ssize_t)f->csum_len, "csum_received", (const char *)f->csum_received,
            (Py_ssize_t)f->csum_len, "dump_received", dump, got_len, "dump_expected",
            (f->dumped & 2) ? dump + v->dump_len : "", want_len);
        if (!d || PyList_Append(fails, d) < 0) {
            Py_XDECREF(d);
            Py_DECREF(fails);
            return NULL;
        }
        Py_DECREF(d);
    }
    return Py_BuildValue("{s:s,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:O,s:N}", "type", iol_vtype_name(v->type), "written",
                         (unsigned long long)v->tail, "reads", (unsigned long long)v->reads, "bytes",
                         (unsigned long long)v->bytes, "chunks", (unsigned long long)v->chunks, "failures",
                         (unsigned long long)v->failures, "not_read", (unsigned long long)(v->tail - v->head),
                         "phase_ns", (unsigned long long)v->phase_ns, "log_full", v->log_full ? Py_True : Py_False,
                         "failed", fails);
}

static PyObject *Job_raw_result(JobObject *self, PyObject *Py_UNUSED(ignored))
{
    if (check_init(self) < 0)
        return NULL;
    if (self->state != STATE_DONE) {
        PyErr_SetString(PyExc_RuntimeError,
                        self->state == STATE_RUNNING ? "Job.result(): run() has not returned yet"
                                                     : "Job.result(): run() has not been called");
        return NULL;
    }
    const struct iol_job *j = self->job;
    static const char *const ddir_names[IOL_DDIR_COUNT] = {"read", "write", "trim", "sync"};

    PyObject *ddirs = PyDict_New();
    if (!ddirs)
        return NULL;
    for (int d = 0; d < IOL_DDIR_COUNT; d++) {
        PyObject *v = ddir_dict(j, d);
        if (!v || PyDict_SetItemString(ddirs, ddir_names[d], v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(ddirs);
            return NULL;
        }
        Py_DECREF(v);
    }
    PyObject *samples = samples_list(&j->smp[0]);
    if (!samples) {
        Py_DECREF(ddirs);
        return NULL;
    }
    PyObject *depth = depth_dict(j);
    PyObject *poll = poll_dict(&j->poll);
    PyObject *rate = Py_BuildValue("{s:O,s:K,s:K,s:K,s:K,s:K,s:K}", "rated", j->rated ? Py_True : Py_False,
                                   "sleeps", (unsigned long long)j->sleeps, "sleep_ns", (unsigned long long)j->sleep_ns,
                                   "think_pauses", (unsigned long long)j->think_pauses, "lag_max_ns",
                                   (unsigned long long)j->lag_max, "lag_sum_ns", (unsigned long long)j->lag_sum,
                                   "scheduled", (unsigned long long)j->lag_n);
    PyObject *cpus = PyList_New(0);
    for (int c = 0; cpus && c < 64; c++) {
        if (!(j->cpu_mask >> c & 1))
            continue;
        PyObject *v = PyLong_FromLong(c);
        if (!v || PyList_Append(cpus, v) < 0) {
            Py_XDECREF(v);
            Py_CLEAR(cpus);
            break;
        }
        Py_DECREF(v);
    }
    PyObject *ramp = uncounted_dict(j->ramp_ios, j->ramp_bytes);
    PyObject *drained = uncounted_dict(j->drained_ios, j->drained_bytes);
    if (!depth || !poll || !rate || !cpus || !ramp || !drained) {
        Py_XDECREF(ramp);
        Py_XDECREF(drained);
        Py_XDECREF(depth);
        Py_XDECREF(poll);
        Py_XDECREF(rate);
        Py_XDECREF(cpus);
        Py_DECREF(samples);
        Py_DECREF(ddirs);
        return NULL;
    }
    const char *edir = j->error_ddir >= 0 ? ddir_names[j->error_ddir] : "";
    PyObject *res = Py_BuildValue("{s:K,s:O,s:O,s:i,s:s,s:K,s:s,s:K,s:K,s:K,s:K,s:K,s:i,s:i,s:N,s:N,s:s,s:s,s:l,s:N,s:N,s:N,s:N,s:N,s:N}",
                         "runtime_ns", (unsigned long long)j->runtime_ns, "ramp_done",
                         j->ramp_done ? Py_True : Py_False, "stopped", j->stopped ? Py_True : Py_False, "error",
                         j->error, "error_msg", j->error_msg, "error_offset", (unsigned long long)j->error_offset,
                         "error_ddir", edir, "usr_ns", (unsigned long long)j->usr_ns, "sys_ns",
                         (unsigned long long)j->sys_ns, "ctx", (unsigned long long)j->ctx, "majf",
                         (unsigned long long)j->majf, "minf", (unsigned long long)j->minf, "hist_sub_bits",
                         IOL_HIST_SUB_BITS, "hist_buckets", (int)IOL_HIST_BUCKETS, "ddir", ddirs, "samples",
                         samples, "engine", j->eng ? j->eng->name : "", "engine_info",
                         iol_job_engine_info(self->job), "tid", j->tid, "depth", depth, "poll", poll, "rate",
                         rate, "cpus", cpus, "ramp", ramp, "drained", drained);
    if (!res)
        return NULL;
    /* continue_on_error: every error counted, and the first one */
    PyObject *total_err = PyLong_FromUnsignedLongLong(j->total_err);
    PyObject *first_error = PyLong_FromLong(j->first_error);
    /* end_fsync calls: out of the statistics (as fio), but the device saw them (the device check) */
    PyObject *end_syncs = PyLong_FromUnsignedLongLong(j->end_syncs);
    if (!total_err || !first_error || !end_syncs || PyDict_SetItemString(res, "total_err", total_err) < 0 ||
        PyDict_SetItemString(res, "first_error", first_error) < 0 ||
        PyDict_SetItemString(res, "end_syncs", end_syncs) < 0) {
        Py_XDECREF(total_err);
        Py_XDECREF(first_error);
        Py_XDECREF(end_syncs);
        Py_DECREF(res);
        return NULL;
    }
    Py_DECREF(total_err);
    Py_DECREF(first_error);
    Py_DECREF(end_syncs);
    if (j->vfy.type) {
        PyObject *vd = verify_dict(j);
        if (!vd || PyDict_SetItemString(res, "verify", vd) < 0) {
            Py_XDECREF(vd);
            Py_DECREF(res);
            return NULL;
        }
        Py_DECREF(vd);
    }
    /* iopsavgtime differs from bwavgtime: the IOPS series at its own interval */
    static const char *const keys[2][2] = {{"samples", "sample_stats"}, {"iops_samples", "iops_sample_stats"}};
    for (unsigned k = 0; k < j->nsmp; k++) {
        PyObject *series = k ? samples_list(&j->smp[k]) : NULL;
        PyObject *st = sample_stats(&j->smp[k]);
        if ((k && (!series || PyDict_SetItemString(res, keys[k][0], series) < 0)) || !st ||
            PyDict_SetItemString(res, keys[k][1], st) < 0) {
            Py_XDECREF(series);
            Py_XDECREF(st);
            Py_DECREF(res);
            return NULL;
        }
        Py_XDECREF(series);
        Py_DECREF(st);
    }
    return res;
}

static PyObject *Job_thread_id(JobObject *self, PyObject *Py_UNUSED(ignored))
{
    if (check_init(self) < 0)
        return NULL;
    /* written by run() before its first I/O; 0 until then (read racily on purpose: informational) */
    return PyLong_FromLong(__atomic_load_n(&self->job->tid, __ATOMIC_RELAXED));
}

static PyObject *Job_set_trace(JobObject *self, PyObject *arg)
{
    if (check_init(self) < 0)
        return NULL;
    if (self->state != STATE_READY) {
        PyErr_SetString(PyExc_RuntimeError, "Job._set_trace() must be called before run()");
        return NULL;
    }
    if (self->has_trace) {
        iol_job_set_trace(self->job, NULL, 0);
        PyBuffer_Release(&self->trace);
        self->has_trace = 0;
    }
    if (arg == Py_None)
        Py_RETURN_NONE;
    if (PyObject_GetBuffer(arg, &self->trace, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    if (((uintptr_t)self->trace.buf) % _Alignof(struct iol_trace_rec)) {
        PyBuffer_Release(&self->trace);
        PyErr_SetString(PyExc_ValueError, "trace buffer is not 8-byte aligned");
        return NULL;
    }
    self->has_trace = 1;
    iol_job_set_trace(self->job, self->trace.buf, (size_t)self->trace.len / sizeof(struct iol_trace_rec));
    Py_RETURN_NONE;
}

/* The typed result: the raw mapping handed to the one declaration of its shape
 * (iolab.analysis.core_result.CoreResult.from_core), so that every reader gets the same typed object. */
static PyObject *Job_result(JobObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *raw = Job_raw_result(self, NULL);
    if (!raw)
        return NULL;
    PyObject *decl = PyImport_ImportModule("iolab.analysis.core_result");
    PyObject *cls = decl ? PyObject_GetAttrString(decl, "CoreResult") : NULL;
    PyObject *typed = cls ? PyObject_CallMethod(cls, "from_core", "O", raw) : NULL;
    Py_XDECREF(cls);
    Py_XDECREF(decl);
    Py_DECREF(raw);
    return typed;
}

static PyObject *Job_trace_count(JobObject *self, PyObject *Py_UNUSED(ignored))
{
    if (check_init(self) < 0)
        return NULL;
    return PyLong_FromSize_t(self->job->trace_n);
}

static PyMethodDef Job_methods[] = {
    {"run", (PyCFunction)Job_run, METH_NOARGS,
     "run()\n--\n\nRun the job to the end (or until stop() or an error). Releases the GIL; call once."},
    {"stop", (PyCFunction)Job_stop, METH_NOARGS,
     "stop()\n--\n\nAsk a running job to stop (thread-safe); run() returns soon after with valid results."},
    {"progress", (PyCFunction)Job_progress, METH_NOARGS,
     "progress()\n--\n\n(read_ios, write_ios, read_bytes, write_bytes, phase, trim_ios, trim_bytes); phase 0 setup, 1 ramp, "
     "2 measuring, 3 done. Counters restart at 0 when the ramp ends."},
    {"result", (PyCFunction)Job_result, METH_NOARGS,
     "result()\n--\n\nThe typed result (iolab.analysis.core_result.CoreResult), after run() returned."},
    {"raw_result", (PyCFunction)Job_raw_result, METH_NOARGS,
     "raw_result()\n--\n\nThe same result as a plain dict (DESIGN.md section 3), after run() returned."},
    {"thread_id", (PyCFunction)Job_thread_id, METH_NOARGS,
     "thread_id()\n--\n\nKernel thread id of the thread inside run() (0 before run() started)."},
    {"_set_trace", (PyCFunction)Job_set_trace, METH_O,
     "_set_trace(buffer)\n--\n\nTest hook: record each counted I/O of the measured phase into a writable, "
     "8-byte aligned buffer of 32-byte records (struct '=QIHBxQQ': offset, len, file, ddir, first and last 8 "
     "bytes of the data) until it is full. None removes it. Call before run()."},
    {"_trace_count", (PyCFunction)Job_trace_count, METH_NOARGS,
     "_trace_count()\n--\n\nNumber of records the test hook wrote."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject JobType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "iolab._core.Job",
    .tp_basicsize = sizeof(JobObject),
    .tp_dealloc = (destructor)Job_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Job(config: bytes, files: list[tuple[int, int, int]])\n--\n\n"
              "One benchmark job: config is iolab.engine.config.pack_config() output, files is a list of "
              "(fd, region_offset, region_size) with fds opened (and O_DIRECT set) by the caller, who also "
              "closes them after the job is done.",
    .tp_methods = Job_methods,
    .tp_init = (initproc)Job_init,
    .tp_new = PyType_GenericNew,
};

static PyObject *core_config_layout(PyObject *Py_UNUSED(mod), PyObject *Py_UNUSED(ignored))
{
    PyObject *list = PyList_New(0);
    if (!list)
        return NULL;
#define IOL_LAYOUT_ITEM(name)                                                                                    \
    do {                                                                                                         \
        PyObject *t = Py_BuildValue("(snn)", #name, (Py_ssize_t)offsetof(struct iol_config, name),              \
                                    (Py_ssize_t)sizeof(((struct iol_config *)0)->name));                         \
        if (!t || PyList_Append(list, t) < 0) {                                                                  \
            Py_XDECREF(t);                                                                                       \
            Py_DECREF(list);                                                                                     \
            return NULL;                                                                                         \
        }                                                                                                        \
        Py_DECREF(t);                                                                                            \
    } while (0);
    IOL_CONFIG_FIELD_LIST(IOL_LAYOUT_ITEM)
#undef IOL_LAYOUT_ITEM
    return list;
}

static PyObject *core_hist_index(PyObject *Py_UNUSED(mod), PyObject *arg)
{
    unsigned long long v = PyLong_AsUnsignedLongLong(arg);
    if (v == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    return PyLong_FromUnsignedLong(iol_hist_index((uint64_t)v));
}

static PyObject *core_poll_simulate(PyObject *Py_UNUSED(mod), PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"mode", "max_ns", "grow", "shrink", "arrivals", "tick_ns", "wake_ns", NULL};
    unsigned int mode, grow, shrink;
    unsigned long long max_ns, tick_ns = 100, wake_ns = 5000;
    PyObject *arrivals;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "IKIIO|KK:_poll_simulate", kwlist, &mode, &max_ns, &grow, &shrink,
                                     &arrivals, &tick_ns, &wake_ns))
        return NULL;
    if (mode > IOL_POLL_ADAPTIVE) {
        PyErr_SetString(PyExc_ValueError, "mode must be 0 (off), 1 (on) or 2 (adaptive)");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(arrivals, "arrivals must be a sequence of ints (ns)");
    if (!seq)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    uint64_t *arr = PyMem_Calloc((size_t)n + 1, sizeof(uint64_t));
    uint64_t *out = PyMem_Calloc(4 * (size_t)n + 1, sizeof(uint64_t));
    PyObject *result = NULL;
    if (!arr || !out) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned long long v = PyLong_AsUnsignedLongLong(PySequence_Fast_GET_ITEM(seq, i));
        if (v == (unsigned long long)-1 && PyErr_Occurred())
            goto done;
        arr[i] = v;
    }
    struct iol_poll p;
    iol_poll_init(&p, mode, max_ns, grow, shrink);
    iol_poll_simulate(&p, arr, (size_t)n, tick_ns, wake_ns, out);
    PyObject *steps = PyList_New(n);
    if (!steps)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *t = Py_BuildValue("(KKKK)", (unsigned long long)out[4 * i], (unsigned long long)out[4 * i + 1],
                                    (unsigned long long)out[4 * i + 2], (unsigned long long)out[4 * i + 3]);
        if (!t) {
            Py_DECREF(steps);
            goto done;
        }
        PyList_SET_ITEM(steps, i, t);
    }
    PyObject *stats = poll_dict(&p);
    if (!stats) {
        Py_DECREF(steps);
        goto done;
    }
    result = Py_BuildValue("(NN)", steps, stats);
done:
    PyMem_Free(arr);
    PyMem_Free(out);
    Py_DECREF(seq);
    return result;
}

/* Test hook: one checksum by name. The verify kinds give the bytes fio stores in its header; the
 * -std kinds the standard digests; crc32c-table / crc32c-sse42 one CRC32C path each. */
static PyObject *core_checksum(PyObject *self, PyObject *args)
{
    (void)self;
    const char *kind;
    Py_buffer data;
    if (!PyArg_ParseTuple(args, "sy*:checksum", &kind, &data))
        return NULL;
    static const struct {
        const char *name;
        enum iol_csum kind;
    } verify_kinds[] = {
        {"crc32c", IOL_CSUM_CRC32C}, {"md5", IOL_CSUM_MD5},       {"sha1", IOL_CSUM_SHA1},
        {"sha256", IOL_CSUM_SHA256}, {"sha512", IOL_CSUM_SHA512}, {"xxhash", IOL_CSUM_XXHASH},
    };
    uint8_t out[IOL_CSUM_MAX_LEN];
    size_t out_len = 0;
    uint32_t word;
    for (size_t i = 0; i < sizeof verify_kinds / sizeof verify_kinds[0]; i++) {
        if (strcmp(kind, verify_kinds[i].name) == 0) {
            out_len = iol_csum_len(verify_kinds[i].kind);
            iol_csum_compute(verify_kinds[i].kind, data.buf, (size_t)data.len, out);
            goto done;
        }
    }
    if (strcmp(kind, "sha1-std") == 0) {
        iol_sha1(data.buf, (size_t)data.len, out);
        out_len = 20;
    } else if (strcmp(kind, "sha256-std") == 0) {
        iol_sha256(data.buf, (size_t)data.len, out);
        out_len = 32;
    } else if (strcmp(kind, "sha512-std") == 0) {
        iol_sha512(data.buf, (size_t)data.len, out);
        out_len = 64;
    } else if (strcmp(kind, "crc32c-table") == 0 ||
               (strcmp(kind, "crc32c-sse42") == 0 && iol_crc32c_hw())) {
        word = kind[7] == 't' ? iol_crc32c_table(data.buf, (size_t)data.len)
                              : iol_crc32c_sse42(data.buf, (size_t)data.len);
        memcpy(out, &word, sizeof word);
        out_len = sizeof word;
    } else {
        PyBuffer_Release(&data);
        PyErr_Format(PyExc_ValueError, "checksum: unknown or unavailable kind %s", kind);
        return NULL;
    }
done:
    PyBuffer_Release(&data);
    return PyBytes_FromStringAndSize((const char *)out, (Py_ssize_t)out_len);
}

static PyObject *core_crc32c_hw(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyBool_FromLong(iol_crc32c_hw());
}

static PyMethodDef core_methods[] = {
    {"checksum", core_checksum, METH_VARARGS,
     "checksum(kind, data, /)\n--\n\nTest hook: the checksum of data. kind: crc32c, md5, sha1, sha256, sha512, "
     "xxhash (the bytes fio stores in its verify header), sha1-std, sha256-std, sha512-std (standard digests), "
     "crc32c-table, crc32c-sse42 (one CRC32C path; the latter only where crc32c_hw())."},
    {"crc32c_hw", core_crc32c_hw, METH_NOARGS,
     "crc32c_hw()\n--\n\nTrue when crc32c runs on the SSE4.2 crc32 instruction."},
    {"_poll_simulate", (PyCFunction)(void (*)(void))core_poll_simulate, METH_VARARGS | METH_KEYWORDS,
     "_poll_simulate(mode, max_ns, grow, shrink, arrivals, tick_ns=100, wake_ns=5000)\n--\n\n"
     "Test hook: run the C completion-wait (poll, then block, then adjust the window) against a scripted clock. "
     "Wait i's completion arrives arrivals[i] ns after the wait starts; each clock read costs tick_ns, a "
     "blocking wakeup wake_ns. Returns ([(window_before, block_ns, window_after, hit)], poll counters)."},
    {"config_layout", core_config_layout, METH_NOARGS,
     "config_layout()\n--\n\n[(field name, offsetof, sizeof)] of struct iol_config, in field order."},
    {"hist_index", core_hist_index, METH_O,
     "hist_index(v, /)\n--\n\nThe histogram bucket of value v (0 <= v < 2**64)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef core_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "iolab._core",
    .m_doc = "The C core of iolab: engines, job loop, histograms (see docs/DESIGN.md).",
    .m_size = -1,
    .m_methods = core_methods,
};

PyMODINIT_FUNC PyInit__core(void)
{
    if (PyType_Ready(&JobType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&core_module);
    if (!m)
        return NULL;
    if (PyModule_AddObjectRef(m, "Job", (PyObject *)&JobType) < 0)
        goto fail;
    PyObject *magic = PyLong_FromUnsignedLong(IOL_CONFIG_MAGIC);
    if (!magic || PyModule_AddObjectRef(m, "CONFIG_MAGIC", magic) < 0) {
        Py_XDECREF(magic);
        goto fail;
    }
    Py_DECREF(magic);
    if (PyModule_AddIntConstant(m, "HIST_SUB_BITS", IOL_HIST_SUB_BITS) < 0 ||
        PyModule_AddIntConstant(m, "HIST_BUCKETS", IOL_HIST_BUCKETS) < 0 ||
        PyModule_AddIntConstant(m, "CONFIG_SIZE", (long)sizeof(struct iol_config)) < 0 ||
        PyModule_AddIntConstant(m, "_TRACE_RECORD_SIZE", (long)sizeof(struct iol_trace_rec)) < 0)
        goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
