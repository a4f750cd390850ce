/* io_uring through the raw system calls io_uring_setup, io_uring_enter and io_uring_register and the
 * rings mapped with mmap (no liburing).
 *
 * Ring setup, newest kernel features first, falling back when the kernel refuses them:
 *   1. single issuer + deferred task work (completions are posted when the job asks for them);
 *      the ring starts disabled and is enabled by the job's thread, which then is its only issuer;
 *   2. cooperative task work (no interrupting the job to post completions);
 *   3. plain.
 * With task work pending (IORING_SQ_TASKRUN) a non-blocking io_uring_enter posts the completions, so
 * busy-polling the completion ring works in every mode. Options: registerfiles (fixed file table),
 * fixedbufs (registered buffers, one per I/O slot), sqthread_poll[_cpu] (kernel submission thread),
 * hipri (IORING_SETUP_IOPOLL: the kernel polls the device; needs poll queues), nonvectored (auto:
 * IORING_OP_READ/WRITE if the kernel has them, else READV/WRITEV).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/io_uring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "clock.h"
#include "engine.h"
#include "reap.h"

#ifndef IORING_SETUP_SUBMIT_ALL
#define IORING_SETUP_SUBMIT_ALL (1U << 7)
#endif
#ifndef IORING_SETUP_COOP_TASKRUN
#define IORING_SETUP_COOP_TASKRUN (1U << 8)
#endif
#ifndef IORING_SETUP_TASKRUN_FLAG
#define IORING_SETUP_TASKRUN_FLAG (1U << 9)
#endif
#ifndef IORING_SETUP_SINGLE_ISSUER
#define IORING_SETUP_SINGLE_ISSUER (1U << 12)
#endif
#ifndef IORING_SETUP_DEFER_TASKRUN
#define IORING_SETUP_DEFER_TASKRUN (1U << 13)
#endif
#ifndef IORING_SQ_TASKRUN
#define IORING_SQ_TASKRUN (1U << 2)
#endif

#define UR_MAX_BUFFERS 16384u /* the kernel's limit on registered buffers */

struct ur {
    int fd;
    unsigned setup_flags;
    unsigned features;
    const char *taskrun; /* how completions get posted: "deferred", "cooperative", "interrupting" */
    /* submission ring */
    unsigned *sq_head, *sq_tail, *sq_mask, *sq_flags, *sq_array;
    unsigned sq_entries;
    struct io_uring_sqe *sqes;
    unsigned sq_local_tail; /* next entry to fill */
    /* completion ring */
    unsigned *cq_head, *cq_tail, *cq_mask;
    unsigned cq_entries;
    struct io_uring_cqe *cqes;
    /* mappings */
    void *sq_ring, *cq_ring;
    size_t sq_ring_sz, cq_ring_sz, sqes_sz;
    /* options */
    int fixed_files, fixed_bufs, vectored, sqpoll, iopoll, disabled;
    unsigned force_async, since_async; /* force_async=N: every N-th SQE skips the non-blocking try */
    unsigned submit_flags; /* io_uring_enter flags when submitting */
    struct iovec *iov; /* per I/O slot: vectored transfers */
    /* bookkeeping */
    struct iol_io **pending; /* in the ring, not yet handed to the kernel (for t_submit) */
    unsigned npending;
    unsigned inkernel; /* handed to the kernel, completion not seen yet */
    unsigned depth;
    struct iol_poll *poll;
};

static int sys_setup(unsigned entries, struct io_uring_params *p)
{
    return (int)syscall(SYS_io_uring_setup, entries, p);
}

static int sys_enter(int fd, unsigned to_submit, unsigned min_complete, unsigned flags)
{
    return (int)syscall(SYS_io_uring_enter, fd, to_submit, min_complete, flags, NULL, 0);
}

static int sys_register(int fd, unsigned op, const void *arg, unsigned nr)
{
    return (int)syscall(SYS_io_uring_register, fd, op, arg, nr);
}

static void ur_cleanup(void *state)
{
    struct ur *u = state;
    if (!u)
        return;
    if (u->sqes && u->sqes != MAP_FAILED)
        munmap(u->sqes, u->sqes_sz);
    if (u->cq_ring && u->cq_ring != MAP_FAILED && u->cq_ring != u->sq_ring)
        munmap(u->cq_ring, u->cq_ring_sz);
    if (u->sq_ring && u->sq_ring != MAP_FAILED)
        munmap(u->sq_ring, u->sq_ring_sz);
    if (u->fd >= 0)
        close(u->fd); /* the kernel cancels or waits for what is still in flight */
    free(u->iov);
    free(u->pending);
    free(u);
}

static int map_rings(struct ur *u, const struct io_uring_params *p)
{
    u->sq_ring_sz = p->sq_off.array + p->sq_entries * sizeof(unsigned);
    u->cq_ring_sz = p->cq_off.cqes + p->cq_entries * sizeof(struct io_uring_cqe);
    if (p->features & IORING_FEAT_SINGLE_MMAP) {
        if (u->cq_ring_sz > u->sq_ring_sz)
            u->sq_ring_sz = u->cq_ring_sz;
        u->cq_ring_sz = u->sq_ring_sz;
    }
    u->sq_ring = mmap(NULL, u->sq_ring_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, u->fd,
                      IORING_OFF_SQ_RING);
    if (u->sq_ring == MAP_FAILED)
        return errno;
    if (p->features & IORING_FEAT_SINGLE_MMAP) {
        u->cq_ring = u->sq_ring;
    } else {
        u->cq_ring = mmap(NULL, u->cq_ring_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, u->fd,
                          IORING_OFF_CQ_RING);
        if (u->cq_ring == MAP_FAILED)
            return errno;
    }
    u->sqes_sz = p->sq_entries * sizeof(struct io_uring_sqe);
    u->sqes = mmap(NULL, u->sqes_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, u->fd, IORING_OFF_SQES);
    if (u->sqes == MAP_FAILED)
        return errno;
    char *sq = u->sq_ring, *cq = u->cq_ring;
    u->sq_head = (unsigned *)(sq + p->sq_off.head);
    u->sq_tail = (unsigned *)(sq + p->sq_off.tail);
    u->sq_mask = (unsigned *)(sq + p->sq_off.ring_mask);
    u->sq_flags = (unsigned *)(sq + p->sq_off.flags);
    u->sq_array = (unsigned *)(sq + p->sq_off.array);
    u->sq_entries = p->sq_entries;
    u->cq_head = (unsigned *)(cq + p->cq_off.head);
    u->cq_tail = (unsigned *)(cq + p->cq_off.tail);
    u->cq_mask = (unsigned *)(cq + p->cq_off.ring_mask);
    u->cq_entries = p->cq_entries;
    u->cqes = (struct io_uring_cqe *)(cq + p->cq_off.cqes);
    for (unsigned i = 0; i < u->sq_entries; i++)
        u->sq_array[i] = i; /* submission order is ring order */
    u->sq_local_tail = *u->sq_tail;
    return 0;
}

static int op_supported(int fd, unsigned op)
{
    size_t len = sizeof(struct io_uring_probe) + 256 * sizeof(struct io_uring_probe_op);
    struct io_uring_probe *probe = calloc(1, len);
    if (!probe)
        return 0;
    int ok = sys_register(fd, IORING_REGISTER_PROBE, probe, 256) == 0 && op <= probe->last_op &&
             (probe->ops[op].flags & IO_URING_OP_SUPPORTED);
    free(probe);
    return ok;
}

static int ur_init(const struct iol_engine_env *env, void **state, char *err, size_t errlen)
{
    const struct iol_config *c = env->cfg;
    struct ur *u = calloc(1, sizeof(*u));
    if (!u)
        return ENOMEM;
    u->fd = -1;
    u->depth = env->depth;
    u->poll = env->poll;
    u->force_async = env->cfg->force_async;
    u->sqpoll = !!(c->engine_flags & IOL_EF_SQTHREAD_POLL);
    u->iopoll = !!(c->engine_flags & IOL_EF_HIPRI);
    u->pending = calloc(env->depth, sizeof(*u->pending));
    u->iov = calloc(env->depth, sizeof(*u->iov));
    if (!u->pending || !u->iov) {
        ur_cleanup(u);
        return ENOMEM;
    }

    unsigned base = IORING_SETUP_CQSIZE;
    if (u->sqpoll) {
        base |= IORING_SETUP_SQPOLL;
        if (c->engine_flags & IOL_EF_SQTHREAD_CPU)
            base |= IORING_SETUP_SQ_AFF;
    }
    if (u->iopoll)
        base |= IORING_SETUP_IOPOLL;
    const struct {
        unsigned flags;
        const char *taskrun;
    } tries[] = {
        {IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
             IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_R_DISABLED,
         "deferred"},
        {IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG, "cooperative"},
        {IORING_SETUP_SUBMIT_ALL, "interrupting"},
        {0, "interrupting"},
    };
    struct io_uring_params p;
    int e = EINVAL;
    for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
        if (u->sqpoll && (tries[i].flags & (IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN)))
            continue; /* the submission thread runs the task work */
        memset(&p, 0, sizeof(p));
        p.flags = base | tries[i].flags;
        p.cq_entries = 2 * env->depth;
        if (base & IORING_SETUP_SQ_AFF)
            p.sq_thread_cpu = c->sqthread_poll_cpu;
        u->fd = sys_setup(env->depth, &p);
        if (u->fd >= 0) {
            u->setup_flags = p.flags;
            u->taskrun = u->sqpoll ? "by the submission thread" : tries[i].taskrun;
            break;
        }
        e = errno;
        if (e != EINVAL)
            break;
    }
    if (u->fd < 0) {
        if (e == ENOSYS)
            snprintf(err, errlen, "io_uring_setup: this kernel has no io_uring (%s)", strerror(e));
        else if (e == EPERM)
            snprintf(err, errlen,
                     "io_uring_setup: %s (io_uring is disabled or restricted: see /proc/sys/kernel/io_uring_disabled)",
                     strerror(e));
        else
            snprintf(err, errlen, "io_uring_setup(%u entries, flags 0x%x) failed: %s", env->depth, base, strerror(e));
        ur_cleanup(u);
        return e;
    }
    u->features = p.features;
    /* submitting also posts the completions waiting as task work (one system call for both) */
    u->submit_flags = IORING_ENTER_GETEVENTS;
    u->disabled = !!(u->setup_flags & IORING_SETUP_R_DISABLED);
    e = map_rings(u, &p);
    if (e) {
        snprintf(err, errlen, "mapping the io_uring rings failed: %s", strerror(e));
        ur_cleanup(u);
        return e;
    }

    if ((c->engine_flags & IOL_EF_REGISTERFILES) || u->sqpoll) {
        int *fds = calloc(env->nfiles, sizeof(int));
        if (!fds) {
            ur_cleanup(u);
            return ENOMEM;
        }
        for (unsigned i = 0; i < env->nfiles; i++)
            fds[i] = env->files[i].fd;
        int r = sys_register(u->fd, IORING_REGISTER_FILES, fds, env->nfiles);
        e = errno;
        free(fds);
        if (r < 0) {
            snprintf(err, errlen, "registering %u file(s) with io_uring failed: %s", env->nfiles, strerror(e));
            ur_cleanup(u);
            return e;
        }
        u->fixed_files = 1;
    }
    if (c->engine_flags & IOL_EF_FIXEDBUFS) {
        if (env->depth > UR_MAX_BUFFERS) {
            snprintf(err, errlen, "fixedbufs: iodepth %u is above the %u buffers io_uring can register", env->depth,
                     UR_MAX_BUFFERS);
            ur_cleanup(u);
            return EINVAL;
        }
        struct iovec *iov = calloc(env->depth, sizeof(*iov));
        if (!iov) {
            ur_cleanup(u);
            return ENOMEM;
        }
        for (unsigned i = 0; i < env->depth; i++) {
            iov[i].iov_base = (char *)env->bufmem + (size_t)i * env->slot_len;
            iov[i].iov_len = env->slot_len;
        }
        int r = sys_register(u->fd, IORING_REGISTER_BUFFERS, iov, env->depth);
        e = errno;
        free(iov);
        if (r < 0) {
            if (e == ENOMEM)
                snprintf(err, errlen,
                         "fixedbufs: registering %u buffers of %zu bytes failed: %s (locked memory limit, "
                         "ulimit -l)",
                         env->depth, env->slot_len, strerror(e));
            else
                snprintf(err, errlen, "fixedbufs: registering %u buffers failed: %s", env->depth, strerror(e));
            ur_cleanup(u);
            return e;
        }
        u->fixed_bufs = 1;
    }
    if (c->engine_flags & IOL_EF_VECTORED)
        u->vectored = 1;
    else if (c->engine_flags & IOL_EF_NONVECTORED)
        u->vectored = 0;
    else
        u->vectored = !op_supported(u->fd, IORING_OP_READ);
    *state = u;
    return 0;
}

static int ur_start(void *state, char *err, size_t errlen)
{
    struct ur *u = state;
    if (u->disabled) {
        /* enabled from the job's thread: with a single issuer, that thread is the issuer */
        if (sys_register(u->fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0) < 0) {
            int e = errno;
            snprintf(err, errlen, "enabling the io_uring failed: %s", strerror(e));
            return e;
        }
        u->disabled = 0;
    }
    return 0;
}

static inline void prep_sqe(struct ur *u, struct io_uring_sqe *sqe, struct iol_io *io)
{
    memset(sqe, 0, sizeof(*sqe));
    sqe->user_data = (uint64_t)(uintptr_t)io;
    if (u->fixed_files) {
        sqe->fd = (int)io->file;
        sqe->flags = IOSQE_FIXED_FILE;
    } else {
        sqe->fd = io->fd;
    }
    switch (io->op) {
    case IOL_OP_READ:
    case IOL_OP_WRITE: {
        int rd = io->op == IOL_OP_READ;
        void *buf = iol_io_rest_buf(io);
        uint64_t len = iol_io_rest_len(io);
        sqe->off = iol_io_rest_off(io);
        if (u->fixed_bufs) {
            sqe->opcode = rd ? IORING_OP_READ_FIXED : IORING_OP_WRITE_FIXED;
            sqe->addr = (uint64_t)(uintptr_t)buf;
            sqe->len = (uint32_t)len;
            sqe->buf_index = io->index;
        } else if (u->vectored) {
            struct iovec *iov = &u->iov[io->index];
            iov->iov_base = buf;
            iov->iov_len = len;
            sqe->opcode = rd ? IORING_OP_READV : IORING_OP_WRITEV;
            sqe->addr = (uint64_t)(uintptr_t)iov;
            sqe->len = 1;
        } else {
            sqe->opcode = rd ? IORING_OP_READ : IORING_OP_WRITE;
            sqe->addr = (uint64_t)(uintptr_t)buf;
            sqe->len = (uint32_t)len;
        }
        break;
    }
    case IOL_OP_FSYNC:
        sqe->opcode = IORING_OP_FSYNC;
        break;
    default:
        sqe->opcode = IORING_OP_FSYNC;
        sqe->fsync_flags = IORING_FSYNC_DATASYNC;
        break;
    }
    /* IOSQE_ASYNC goes straight to io-wq, and such work may run on several workers at once (work punted
     * after a failed non-blocking try is started by one worker at a time unless it blocks) */
    if (u->force_async && ++u->since_async == u->force_async) {
        u->since_async = 0;
        sqe->flags |= IOSQE_ASYNC;
    }
}

static int ur_submit(struct ur *u);

static int ur_queue(void *state, struct iol_io *io)
{
    struct ur *u = state;
    if (io->op == IOL_OP_TRIM) { /* done now, as fio's io_uring engine does (it sends no discards) */
        iol_io_trim(io);
        return IOL_Q_COMPLETED;
    }
    /* The ring holds at least iodepth entries and no more are ever pending, so it is only full when a
     * submission thread has not taken the entries yet: wait for it to make room. */
    for (int tries = 0; u->sq_local_tail - __atomic_load_n(u->sq_head, __ATOMIC_ACQUIRE) >= u->sq_entries;
         tries++) {
        ur_submit(u);
        if (u->sq_local_tail - __atomic_load_n(u->sq_head, __ATOMIC_ACQUIRE) < u->sq_entries)
            break;
        if (u->sqpoll)
            sys_enter(u->fd, 0, 0, IORING_ENTER_SQ_WAIT);
        else if (tries > 1000)
            break; /* cannot happen without a submission thread: the kernel takes what it is given */
    }
    struct io_uring_sqe *sqe = &u->sqes[u->sq_local_tail & *u->sq_mask];
    prep_sqe(u, sqe, io);
    u->sq_local_tail++;
    u->pending[u->npending++] = io;
    return IOL_Q_QUEUED;
}

/* Hand the filled entries to the kernel; returns how many it took or a negative errno value. */
static int ur_submit(struct ur *u)
{
    unsigned n = u->npending;
    if (!n)
        return 0;
    __atomic_store_n(u->sq_tail, u->sq_local_tail, __ATOMIC_RELEASE);
    unsigned done;
    if (u->sqpoll) {
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        if (__atomic_load_n(u->sq_flags, __ATOMIC_RELAXED) & IORING_SQ_NEED_WAKEUP)
            sys_enter(u->fd, 0, 0, IORING_ENTER_SQ_WAKEUP);
        done = n;
    } else {
        /* entries left in the ring by an earlier partial submit come first */
        unsigned in_ring = u->sq_local_tail - __atomic_load_n(u->sq_head, __ATOMIC_ACQUIRE);
        for (;;) {
            int r = sys_enter(u->fd, in_ring, 0, u->submit_flags);
            if (r >= 0) {
                done = (unsigned)r > n ? n : (unsigned)r;
                break;
            }
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EBUSY) {
                done = 0;
                break;
            }
            return -errno;
        }
    }
    uint64_t t = iol_now_ns();
    for (unsigned i = 0; i < done; i++)
        if (!u->pending[i]->short_count) /* a continued short transfer keeps its first submit time */
            u->pending[i]->t_submit = t;
    if (done < n)
        memmove(u->pending, u->pending + done, (n - done) * sizeof(*u->pending));
    u->npending = n - done;
    u->inkernel += done;
    return (int)done;
}

static int ur_commit(void *state)
{
    return ur_submit(state);
}

static inline unsigned cq_avail(const struct ur *u)
{
    return __atomic_load_n(u->cq_tail, __ATOMIC_ACQUIRE) - *u->cq_head;
}

/* Completions ready now; posts completions waiting as task work (a cheap non-blocking enter). */
static inline unsigned ur_ready(void *ctx)
{
    struct ur *u = ctx;
    unsigned avail = cq_avail(u);
    if (avail)
        return avail;
    if (u->iopoll ||
        ((u->setup_flags & IORING_SETUP_TASKRUN_FLAG) &&
         (__atomic_load_n(u->sq_flags, __ATOMIC_RELAXED) & IORING_SQ_TASKRUN))) {
        sys_enter(u->fd, 0, 0, IORING_ENTER_GETEVENTS);
        avail = cq_avail(u);
    }
    return avail;
}

static inline int ur_block(void *ctx, unsigned need)
{
    struct ur *u = ctx;
    for (;;) {
        int r = sys_enter(u->fd, 0, need, IORING_ENTER_GETEVENTS);
        if (r >= 0)
            return 0;
        if (errno != EINTR)
            return -errno;
    }
}

static inline uint64_t ur_clock(void *ctx)
{
    (void)ctx;
    return iol_now_ns();
}

/* Take up to max completions from the ring. */
static unsigned cq_take(struct ur *u, unsigned max, struct iol_io **out)
{
    unsigned head = *u->cq_head;
    unsigned tail = __atomic_load_n(u->cq_tail, __ATOMIC_ACQUIRE);
    unsigned n = 0;
    while (head != tail && n < max) {
        const struct io_uring_cqe *cqe = &u->cqes[head & *u->cq_mask];
        struct iol_io *io = (struct iol_io *)(uintptr_t)cqe->user_data;
        int res = cqe->res;
        head++;
        u->inkernel--;
        if (res == -EAGAIN && io->op <= IOL_OP_WRITE) {
            ur_queue(u, io); /* the kernel asked for a retry */
            continue;
        }
        if (iol_io_result(io, res))
            out[n++] = io;
        else
            ur_queue(u, io); /* short transfer: submit the rest */
    }
    __atomic_store_n(u->cq_head, head, __ATOMIC_RELEASE);
    return n;
}

static inline unsigned ur_queued(void *ctx)
{
    return ((struct ur *)ctx)->npending;
}

static inline int ur_stalled(void *ctx)
{
    struct ur *u = ctx;
    return u->npending && !u->inkernel;
}

static inline unsigned ur_take(void *ctx, unsigned need, unsigned max, struct iol_io **out)
{
    struct ur *u = ctx;
    unsigned n = cq_take(u, max, out);
    if (n < need && ur_ready(u)) /* completions that only needed posting are not a wait */
        n += cq_take(u, max - n, out + n);
    return n;
}

static const struct iol_reap_ops ur_reap_ops = {
    .queued = ur_queued,
    .submit = ur_commit,
    .stalled = ur_stalled,
    .take = ur_take,
    .prepare_wait = NULL,
    .ready = ur_ready,
    .block = ur_block,
    .now = ur_clock,
};

static int ur_reap(void *state, unsigned min, unsigned max, struct iol_io **out)
{
    struct ur *u = state;
    return iol_reap_loop(&ur_reap_ops, u, u->poll, min, max, out);
}

static void ur_describe(void *state, char *buf, size_t len)
{
    struct ur *u = state;
    snprintf(buf, len, "io_uring: %u entries, completions posted %s, %s, %s files, %s buffers%s%s", u->sq_entries,
             u->taskrun, u->vectored ? "vectored" : "non-vectored", u->fixed_files ? "registered" : "plain",
             u->fixed_bufs ? "registered" : "plain", u->sqpoll ? ", submission thread" : "",
             u->iopoll ? ", polled completions (IOPOLL)" : "");
}

const struct iol_engine iol_engine_io_uring = {
    .name = "io_uring",
    .flags = 0,
    .init = ur_init,
    .start = ur_start,
    .queue = ur_queue,
    .commit = ur_commit,
    .reap = ur_reap,
    .describe = ur_describe,
    .cleanup = ur_cleanup,
};
