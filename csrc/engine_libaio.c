/* libaio: Linux native AIO through the raw system calls io_setup, io_submit, io_getevents and
 * io_destroy (no libaio library).
 *
 * The kernel maps the completion ring into user space at the address of the context (a fixed ABI:
 * a header followed by io_event entries, the kernel moving tail, the reader moving head). Completions
 * already in the ring are taken from it directly, without a system call (the events a non-blocking
 * io_getevents would have returned; fio's userspace_reap does the same for its non-blocking reaps, so
 * that option changes nothing here); io_getevents is only called to wait. On a device that completes
 * inside io_submit (zram, a page-cache hit) that halves the system calls per I/O: fio makes an
 * io_submit and an io_getevents for each. If the ring cannot be read, io_getevents does everything.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/aio_abi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "engine.h"
#include "reap.h"

#define AIO_RING_MAGIC_VALUE 0xa10a10a1u

/* The kernel's completion ring header (fs/aio.c, struct aio_ring). */
struct laio_ring {
    unsigned id;
    unsigned nr; /* number of io_event slots */
    unsigned head;
    unsigned tail;
    unsigned magic;
    unsigned compat_features;
    unsigned incompat_features;
    unsigned header_length;
    struct io_event events[];
};

struct laio {
    aio_context_t ctx;
    struct laio_ring *ring; /* NULL if the ring cannot be read in user space */
    unsigned depth;
    struct iocb *iocbs;   /* one per I/O slot */
    struct iocb **queued; /* queued, not yet submitted, in order */
    unsigned nqueued;
    unsigned inkernel; /* submitted, completion not seen yet */
    struct io_event *events; /* io_getevents output */
    unsigned nevents, nextev;
    struct iol_io **failed; /* failed at submission: returned by the next reap() */
    unsigned nfailed;
    struct iol_poll *poll;
    unsigned want_max; /* block(): most events to take */
};

static long sys_io_setup(unsigned nr, aio_context_t *ctx)
{
    return syscall(SYS_io_setup, nr, ctx);
}

static long sys_io_destroy(aio_context_t ctx)
{
    return syscall(SYS_io_destroy, ctx);
}

static long sys_io_submit(aio_context_t ctx, long n, struct iocb **iocbs)
{
    return syscall(SYS_io_submit, ctx, n, iocbs);
}

static long sys_io_getevents(aio_context_t ctx, long min, long max, struct io_event *ev, struct timespec *ts)
{
    return syscall(SYS_io_getevents, ctx, min, max, ev, ts);
}

static void laio_cleanup(void *state)
{
    struct laio *a = state;
    if (!a)
        return;
    if (a->ctx)
        sys_io_destroy(a->ctx); /* waits for (or cancels) what is still in flight */
    free(a->iocbs);
    free(a->queued);
    free(a->events);
    free(a->failed);
    free(a);
}

static int laio_init(const struct iol_engine_env *env, void **state, char *err, size_t errlen)
{
    struct laio *a = calloc(1, sizeof(*a));
    if (!a)
        return ENOMEM;
    a->depth = env->depth;
    a->poll = env->poll;
    a->iocbs = calloc(env->depth, sizeof(*a->iocbs));
    a->queued = calloc(env->depth, sizeof(*a->queued));
    a->events = calloc(env->depth, sizeof(*a->events));
    a->failed = calloc(env->depth, sizeof(*a->failed));
    if (!a->iocbs || !a->queued || !a->events || !a->failed) {
        laio_cleanup(a);
        return ENOMEM;
    }
    if (sys_io_setup(env->depth, &a->ctx) < 0) {
        int e = errno;
        a->ctx = 0;
        if (e == EAGAIN)
            snprintf(err, errlen,
                     "io_setup(%u) failed: %s (the system-wide limit /proc/sys/fs/aio-max-nr is reached)",
                     env->depth, strerror(e));
        else
            snprintf(err, errlen, "io_setup(%u) failed: %s", env->depth, strerror(e));
        laio_cleanup(a);
        return e;
    }
    struct laio_ring *ring = (struct laio_ring *)(uintptr_t)a->ctx;
    if (ring->magic == AIO_RING_MAGIC_VALUE && ring->incompat_features == 0 && ring->nr > 0)
        a->ring = ring;
    *state = a;
    return 0;
}

static inline void prep_iocb(struct iocb *cb, struct iol_io *io)
{
    memset(cb, 0, sizeof(*cb));
    cb->aio_data = (uint64_t)(uintptr_t)io;
    cb->aio_fildes = (uint32_t)io->fd;
    switch (io->op) {
    case IOL_OP_READ:
    case IOL_OP_WRITE:
        cb->aio_lio_opcode = io->op == IOL_OP_READ ? IOCB_CMD_PREAD : IOCB_CMD_PWRITE;
        cb->aio_buf = (uint64_t)(uintptr_t)iol_io_rest_buf(io);
        cb->aio_nbytes = iol_io_rest_len(io);
        cb->aio_offset = (int64_t)iol_io_rest_off(io);
        break;
    case IOL_OP_FSYNC:
        cb->aio_lio_opcode = IOCB_CMD_FSYNC;
        break;
    default:
        cb->aio_lio_opcode = IOCB_CMD_FDSYNC;
        break;
    }
}

static int laio_queue(void *state, struct iol_io *io)
{
    struct laio *a = state;
    if (io->op == IOL_OP_TRIM) { /* no asynchronous discard here: done now, as fio's libaio does */
        iol_io_trim(io);
        return IOL_Q_COMPLETED;
    }
    struct iocb *cb = &a->iocbs[io->index];
    prep_iocb(cb, io);
    a->queued[a->nqueued++] = cb;
    return IOL_Q_QUEUED;
}

/* Submit everything queued. Returns how many the kernel took, or a negative errno value. An iocb the
 * kernel refuses fails its I/O (returned by the next reap); EAGAIN leaves the rest queued. */
static int laio_commit(void *state)
{
    struct laio *a = state;
    unsigned off = 0, taken = 0;
    while (off < a->nqueued) {
        long r = sys_io_submit(a->ctx, (long)(a->nqueued - off), a->queued + off);
        if (r > 0) {
            uint64_t t = iol_now_ns();
            for (long i = 0; i < r; i++) {
                struct iol_io *io = (struct iol_io *)(uintptr_t)a->queued[off + (unsigned)i]->aio_data;
                if (!io->short_count) /* a continued short transfer keeps its first submit time */
                    io->t_submit = t;
            }
            off += (unsigned)r;
            taken += (unsigned)r;
            a->inkernel += (unsigned)r;
            continue;
        }
        int e = r < 0 ? errno : EAGAIN;
        if (e == EINTR)
            continue;
        if (e == EAGAIN)
            break; /* out of kernel resources for now: the rest goes with the next submit or reap */
        /* the first iocb was refused: fail that I/O and go on with the others */
        struct iol_io *io = (struct iol_io *)(uintptr_t)a->queued[off]->aio_data;
        io->error = e;
        io->error_offset = iol_io_rest_off(io);
        a->failed[a->nfailed++] = io;
        off++;
    }
    if (off < a->nqueued)
        memmove(a->queued, a->queued + off, (a->nqueued - off) * sizeof(*a->queued));
    a->nqueued -= off;
    return (int)taken;
}

static inline unsigned ring_avail(const struct laio_ring *ring)
{
    unsigned head = __atomic_load_n(&ring->head, __ATOMIC_RELAXED);
    unsigned tail = __atomic_load_n(&ring->tail, __ATOMIC_ACQUIRE);
    return tail >= head ? tail - head : ring->nr - head + tail;
}

/* Completions known to be ready without a system call (0 if the ring cannot be read). */
static inline unsigned laio_ready(void *ctx)
{
    struct laio *a = ctx;
    return a->ring ? ring_avail(a->ring) : 0;
}

static inline uint64_t laio_clock(void *ctx)
{
    (void)ctx;
    return iol_now_ns();
}

/* Block in io_getevents for at least need events (up to want_max); they go to a->events. */
static inline int laio_block(void *ctx, unsigned need)
{
    struct laio *a = ctx;
    unsigned max = a->want_max < need ? need : a->want_max;
    for (;;) {
        long r = sys_io_getevents(a->ctx, (long)need, (long)max, a->events, NULL);
        if (r >= 0) {
            a->nevents = (unsigned)r;
            a->nextev = 0;
            return 0;
        }
        if (errno != EINTR)
            return -errno;
    }
}

/* One completion event: 1 if the I/O is finished and stored in out, 0 if its remainder was queued. */
static inline int take_event(struct laio *a, const struct io_event *ev, struct iol_io **out)
{
    struct iol_io *io = (struct iol_io *)(uintptr_t)ev->data;
    a->inkernel--;
    if (iol_io_result(io, (long long)ev->res)) {
        *out = io;
        return 1;
    }
    laio_queue(a, io); /* short transfer: submit the rest */
    return 0;
}

/* Take up to max events from the ring in user space. */
static unsigned ring_take(struct laio *a, unsigned max, struct iol_io **out)
{
    struct laio_ring *ring = a->ring;
    unsigned head = __atomic_load_n(&ring->head, __ATOMIC_RELAXED);
    unsigned tail = __atomic_load_n(&ring->tail, __ATOMIC_ACQUIRE);
    unsigned n = 0;
    while (head != tail && n < max) {
        n += (unsigned)take_event(a, &ring->events[head], &out[n]);
        if (++head == ring->nr)
            head = 0;
    }
    __atomic_store_n(&ring->head, head, __ATOMIC_RELEASE);
    return n;
}

static inline unsigned laio_queued(void *ctx)
{
    return ((struct laio *)ctx)->nqueued;
}

static inline int laio_stalled(void *ctx)
{
    struct laio *a = ctx;
    return a->nqueued && !a->inkernel && !a->nfailed;
}

/* Ready now: I/Os that failed at submission, events io_getevents returned that are not handed out yet,
 * then completions already in the ring, taken in user space (the same events a non-blocking
 * io_getevents would return, without the system call). */
static inline unsigned laio_take(void *ctx, unsigned need, unsigned max, struct iol_io **out)
{
    struct laio *a = ctx;
    (void)need;
    unsigned n = 0;
    while (a->nfailed && n < max)
        out[n++] = a->failed[--a->nfailed];
    while (a->nextev < a->nevents && n < max)
        n += (unsigned)take_event(a, &a->events[a->nextev++], &out[n]);
    if (n < max && a->ring)
        n += ring_take(a, max - n, out + n);
    return n;
}

static inline void laio_prepare_wait(void *ctx, unsigned room)
{
    ((struct laio *)ctx)->want_max = room;
}

static const struct iol_reap_ops laio_reap_ops = {
    .queued = laio_queued,
    .submit = laio_commit,
    .stalled = laio_stalled,
    .take = laio_take,
    .prepare_wait = laio_prepare_wait,
    .ready = laio_ready,
    .block = laio_block,
    .now = laio_clock,
};

static int laio_reap(void *state, unsigned min, unsigned max, struct iol_io **out)
{
    struct laio *a = state;
    return iol_reap_loop(&laio_reap_ops, a, a->poll, min, max, out);
}

static void laio_describe(void *state, char *buf, size_t len)
{
    struct laio *a = state;
    snprintf(buf, len, "libaio: depth %u, completions %s", a->depth,
             a->ring ? "read from the ring in user space, io_getevents to wait"
                     : "by io_getevents (ring not readable)");
}

const struct iol_engine iol_engine_libaio = {
    .name = "libaio",
    .flags = 0,
    .init = laio_init,
    .start = NULL,
    .queue = laio_queue,
    .commit = laio_commit,
    .reap = laio_reap,
    .describe = laio_describe,
    .cleanup = laio_cleanup,
};
