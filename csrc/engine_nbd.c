/* nbd: the NBD protocol's transmission phase over raw sockets, on connections Python has already taken
 * through the handshake (iolab/nbd/client.py): the job's file 0 is the first connection, the engine's
 * extra fds (nbd_conns > 1) are more connections to the same export.
 *
 * Asynchronous: queue() writes the request header into the I/O slot's own 28 bytes and puts the slot on
 * its connection's send list; commit() sends everything listed with one sendmsg per connection (header
 * and write payload as an iovec, never copied); reap() reads simple replies: one recv of the 16-byte
 * header, then a read's payload straight into the I/O buffer. The cookie is the slot index, so a reply
 * finds its I/O in O(1). Slot i always goes to connection i % nconn.
 *
 * Sockets stay blocking; every call that must not wait passes MSG_DONTWAIT. When nothing is left to send
 * and one connection has replies due, reap() waits in a blocking recv (one system call, as a synchronous
 * engine would); otherwise it waits in poll() for replies and for room to send, so a large write never
 * blocks while the server waits for us to read its replies. Nothing here allocates after init().
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "clock.h"
#include "engine.h"

#define NBD_REQUEST_MAGIC 0x25609513u
#define NBD_SIMPLE_REPLY_MAGIC 0x67446698u
#define NBD_STRUCTURED_REPLY_MAGIC 0x668e33efu
#define NBD_CMD_READ 0
#define NBD_CMD_WRITE 1
#define NBD_CMD_FLUSH 3
#define NBD_CMD_TRIM 4
#define NBD_REQ_LEN 28
#define NBD_REPLY_LEN 16
#define NBD_MAX_CONNS 64
#define NBD_MAX_PAYLOAD (32ull << 20) /* servers must accept requests up to this size (proto.md) */
#define SEND_IOV_MAX 64 /* iovecs per sendmsg: up to 32 requests with payloads */

struct nbd_slot {
    unsigned char hdr[NBD_REQ_LEN];
    uint8_t awaiting; /* sent (at least partly), reply not read yet */
};

struct nbd_conn {
    int fd;
    /* send list: slot indexes in order; ring of depth entries */
    uint16_t *sendq;
    unsigned sq_head, sq_len;
    uint64_t sent_part; /* bytes of the head request (header + payload) already sent */
    unsigned awaiting;  /* requests sent (or partly sent) whose reply is due */
    uint16_t last_sent; /* slot of the request sent last */
    /* the reply being read */
    unsigned char rhdr[NBD_REPLY_LEN];
    unsigned rgot;          /* header bytes read */
    struct iol_io *rio;     /* read whose payload is being received, or NULL */
    uint64_t rpayload_got;
};

struct nbd_state {
    struct iol_io *ios;
    struct nbd_slot *slots;
    unsigned depth;
    unsigned nconn;
    struct nbd_conn conns[NBD_MAX_CONNS];
    uint16_t *sendq_mem;
    struct pollfd pfds[NBD_MAX_CONNS];
    unsigned queued_total; /* requests on send lists, not fully sent */
    int conn_error;        /* errno of a broken connection (the job ends) */
    char info[160];
};

static inline void put_be16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static inline void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static inline void put_be64(unsigned char *p, uint64_t v)
{
    put_be32(p, (uint32_t)(v >> 32));
    put_be32(p + 4, (uint32_t)v);
}

static inline uint32_t get_be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline uint64_t get_be64(const unsigned char *p)
{
    return ((uint64_t)get_be32(p) << 32) | get_be32(p + 4);
}

static void nbd_cleanup(void *state)
{
    struct nbd_state *s = state;
    if (!s)
        return;
    free(s->slots);
    free(s->sendq_mem);
    free(s); /* the sockets belong to the caller */
}

static int nbd_init(const struct iol_engine_env *env, void **state, char *err, size_t errlen)
{
    if (env->nfiles != 1) {
        snprintf(err, errlen, "the nbd engine runs on one export, got %u files", env->nfiles);
        return EINVAL;
    }
    unsigned nconn = 1 + env->nengine_fds;
    if (nconn > NBD_MAX_CONNS) {
        snprintf(err, errlen, "at most %d connections per job", NBD_MAX_CONNS);
        return EINVAL;
    }
    if (env->cfg->max_bs > NBD_MAX_PAYLOAD) {
        snprintf(err, errlen,
                 "block size %llu is over 32 MiB, the largest request an NBD server must accept (use bs<=32m)",
                 (unsigned long long)env->cfg->max_bs);
        return EINVAL;
    }
    if (env->depth > 65535) {
        snprintf(err, errlen, "iodepth %u too large for NBD cookies of this engine", env->depth);
        return EINVAL;
    }
    struct nbd_state *s = calloc(1, sizeof(*s));
    if (!s)
        return ENOMEM;
    s->ios = env->ios;
    s->depth = env->depth;
    s->nconn = nconn;
    s->slots = calloc(env->depth, sizeof(*s->slots));
    s->sendq_mem = calloc((size_t)env->depth * nconn, sizeof(uint16_t));
    if (!s->slots || !s->sendq_mem) {
        nbd_cleanup(s);
        return ENOMEM;
    }
    for (unsigned c = 0; c < nconn; c++) {
        struct nbd_conn *k = &s->conns[c];
        k->fd = c == 0 ? env->files[0].fd : env->engine_fds[c - 1];
        k->sendq = s->sendq_mem + (size_t)c * env->depth;
        int type = 0;
        socklen_t tl = sizeof(type);
        if (getsockopt(k->fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_STREAM) {
            snprintf(err, errlen, "connection %u (fd %d) is not a stream socket", c, k->fd);
            nbd_cleanup(s);
            return EINVAL;
        }
        s->pfds[c].fd = k->fd;
    }
    for (unsigned i = 0; i < env->depth; i++) {
        put_be32(s->slots[i].hdr, NBD_REQUEST_MAGIC);
        put_be64(s->slots[i].hdr + 8, i); /* the cookie is the slot */
    }
    snprintf(s->info, sizeof(s->info), "nbd: %u connection%s, depth %u, simple replies", nconn,
             nconn == 1 ? "" : "s", env->depth);
    *state = s;
    return 0;
}

static int nbd_queue(void *state, struct iol_io *io)
{
    struct nbd_state *s = state;
    struct nbd_slot *sl = &s->slots[io->index];
    uint16_t type;
    uint64_t off = io->offset, len = io->len;
    switch (io->op) {
    case IOL_OP_READ:
        type = NBD_CMD_READ;
        break;
    case IOL_OP_WRITE:
        type = NBD_CMD_WRITE;
        break;
    case IOL_OP_TRIM: /* asynchronous like reads and writes: no payload either way */
        type = NBD_CMD_TRIM;
        break;
    case IOL_OP_FSYNC:
    case IOL_OP_FDATASYNC: /* the server's flush covers every write it has completed */
        type = NBD_CMD_FLUSH;
        off = 0;
        len = 0;
        break;
    default: /* an operation this engine does not know is failed, never sent as another */
        io->error = EOPNOTSUPP;
        io->error_offset = io->offset;
        return IOL_Q_COMPLETED;
    }
    put_be16(sl->hdr + 4, 0);
    put_be16(sl->hdr + 6, type);
    put_be64(sl->hdr + 16, off);
    put_be32(sl->hdr + 24, (uint32_t)len);
    struct nbd_conn *k = &s->conns[s->nconn == 1 ? 0 : io->index % s->nconn];
    unsigned pos = k->sq_head + k->sq_len;
    if (pos >= s->depth)
        pos -= s->depth;
    k->sendq[pos] = io->index;
    k->sq_len++;
    k->awaiting++;
    sl->awaiting = 1;
    s->queued_total++;
    return IOL_Q_QUEUED;
}

static inline uint64_t req_bytes(const struct iol_io *io)
{
    return NBD_REQ_LEN + (io->op == IOL_OP_WRITE ? io->len : 0);
}

/* Send what connection k has listed, without waiting. Returns requests fully sent, or -errno. */
static int send_conn(struct nbd_state *s, struct nbd_conn *k)
{
    int total = 0;
    while (k->sq_len) {
        struct iovec iov[SEND_IOV_MAX];
        unsigned niov = 0, nreq = 0, pos = k->sq_head;
        uint64_t skip = k->sent_part;
        while (nreq < k->sq_len && niov + 2 <= SEND_IOV_MAX) {
            struct iol_io *io = &s->ios[k->sendq[pos]];
            unsigned char *hdr = s->slots[io->index].hdr;
            if (skip < NBD_REQ_LEN) {
                iov[niov].iov_base = hdr + skip;
                iov[niov].iov_len = NBD_REQ_LEN - skip;
                niov++;
                skip = 0;
            } else {
                skip -= NBD_REQ_LEN;
            }
            if (io->op == IOL_OP_WRITE) {
                iov[niov].iov_base = (char *)io->buf + skip;
                iov[niov].iov_len = io->len - skip;
                niov++;
            }
            skip = 0;
            nreq++;
            if (++pos == s->depth)
                pos = 0;
        }
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = niov};
        ssize_t r = sendmsg(k->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return total;
            return -errno;
        }
        /* account the bytes sent over the listed requests */
        uint64_t left = (uint64_t)r + k->sent_part;
        uint64_t now = 0;
        while (k->sq_len) {
            struct iol_io *io = &s->ios[k->sendq[k->sq_head]];
            uint64_t need = req_bytes(io);
            if (left < need)
                break;
            left -= need;
            if (!now)
                now = iol_now_ns();
            io->t_submit = now;
            k->last_sent = io->index;
            if (++k->sq_head == s->depth)
                k->sq_head = 0;
            k->sq_len--;
            s->queued_total--;
            total++;
        }
        k->sent_part = left;
        if (left)
            return total; /* the socket buffer is full */
    }
    return total;
}

static int nbd_commit(void *state)
{
    struct nbd_state *s = state;
    int total = 0;
    for (unsigned c = 0; c < s->nconn && s->queued_total; c++) {
        int r = send_conn(s, &s->conns[c]);
        if (r < 0)
            return r;
        total += r;
    }
    return total;
}

/* NBD's error values are Linux errno values (EPERM, EIO, ENOMEM, EINVAL, ENOSPC, EOVERFLOW, ENOTSUP,
 * ESHUTDOWN); anything else is reported as EIO. */
static inline int nbd_errno(uint32_t e)
{
    switch (e) {
    case EPERM:
    case EIO:
    case ENOMEM:
    case EINVAL:
    case ENOSPC:
    case EOVERFLOW:
    case ENOTSUP:
    case ESHUTDOWN:
        return (int)e;
    default:
        return EIO;
    }
}

/* Read replies on k into out (at most max). wait: block until one reply is complete. Returns how many
 * I/Os completed, or -errno (the connection is broken or the server broke the protocol). */
static int recv_conn(struct nbd_state *s, struct nbd_conn *k, unsigned max, struct iol_io **out, int wait)
{
    unsigned n = 0;
    const int flags = wait ? MSG_WAITALL : MSG_DONTWAIT;
    while (n < max && k->awaiting) {
        if (!k->rio && !k->rgot && k->awaiting == 1 && !k->sq_len && s->slots[k->last_sent].awaiting &&
            s->ios[k->last_sent].op == IOL_OP_READ) {
            /* the one request in flight is a read: its reply is the only thing that can come, so header
             * and payload are taken by one call (an error reply has no payload: nothing more follows) */
            struct iol_io *io = &s->ios[k->last_sent];
            struct iovec iov[2] = {{k->rhdr, NBD_REPLY_LEN}, {io->buf, io->len}};
            struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
            ssize_t r = recvmsg(k->fd, &mh, wait ? 0 : MSG_DONTWAIT);
            if (r <= 0) {
                if (r < 0 && errno == EINTR)
                    continue;
                if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                    return (int)n;
                return r == 0 ? -ECONNRESET : -errno;
            }
            if ((size_t)r < NBD_REPLY_LEN) {
                k->rgot = (unsigned)r; /* the rest of the header comes by the general path */
                continue;
            }
            uint32_t magic = get_be32(k->rhdr);
            uint64_t cookie = get_be64(k->rhdr + 8);
            if (magic != NBD_SIMPLE_REPLY_MAGIC || cookie != io->index)
                return -EPROTO;
            uint32_t e = get_be32(k->rhdr + 4);
            if (e) {
                if ((size_t)r > NBD_REPLY_LEN)
                    return -EPROTO; /* bytes after an error reply */
                io->error = nbd_errno(e);
                io->error_offset = io->offset;
            } else if ((uint64_t)r - NBD_REPLY_LEN < io->len) {
                k->rio = io; /* the rest of the payload by the general path */
                k->rpayload_got = (uint64_t)r - NBD_REPLY_LEN;
                continue;
            } else {
                io->done = io->len;
            }
            s->slots[io->index].awaiting = 0;
            k->awaiting--;
            out[n++] = io;
            if (wait)
                return (int)n;
            continue;
        }
        if (!k->rio) {
            ssize_t r = recv(k->fd, k->rhdr + k->rgot, NBD_REPLY_LEN - k->rgot, flags);
            if (r <= 0) {
                if (r < 0 && errno == EINTR)
                    continue;
                if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                    return (int)n;
                return r == 0 ? -ECONNRESET : -errno;
            }
            k->rgot += (unsigned)r;
            if (k->rgot < NBD_REPLY_LEN)
                continue;
            k->rgot = 0;
            uint32_t magic = get_be32(k->rhdr);
            uint64_t cookie = get_be64(k->rhdr + 8);
            if (magic != NBD_SIMPLE_REPLY_MAGIC || cookie >= s->depth || !s->slots[cookie].awaiting)
                return -EPROTO;
            struct iol_io *io = &s->ios[cookie];
            uint32_t e = get_be32(k->rhdr + 4);
            if (e) {
                io->error = nbd_errno(e);
                io->error_offset = io->offset;
            } else if (io->op == IOL_OP_READ) {
                k->rio = io;
                k->rpayload_got = 0;
                continue;
            } else {
                io->done = io->len;
            }
            s->slots[cookie].awaiting = 0;
            k->awaiting--;
            out[n++] = io;
            if (wait)
                return (int)n;
            continue;
        }
        struct iol_io *io = k->rio;
        ssize_t r = recv(k->fd, (char *)io->buf + k->rpayload_got, io->len - k->rpayload_got, flags);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return (int)n;
            return r == 0 ? -ECONNRESET : -errno;
        }
        k->rpayload_got += (uint64_t)r;
        if (k->rpayload_got < io->len)
            continue;
        io->done = io->len;
        k->rio = NULL;
        s->slots[io->index].awaiting = 0;
        k->awaiting--;
        out[n++] = io;
        if (wait)
            return (int)n;
    }
    return (int)n;
}

static int nbd_reap(void *state, unsigned min, unsigned max, struct iol_io **out)
{
    struct nbd_state *s = state;
    unsigned n = 0;
    int r = 0;
    if (s->conn_error)
        return -s->conn_error;
    for (;;) {
        if (s->queued_total && (r = nbd_commit(s)) < 0)
            break;
        unsigned busy = 0, last = 0;
        for (unsigned c = 0; c < s->nconn && n < max; c++) {
            struct nbd_conn *k = &s->conns[c];
            if (!k->awaiting)
                continue;
            if ((r = recv_conn(s, k, max - n, out + n, 0)) < 0)
                break;
            n += (unsigned)r;
            if (k->awaiting) {
                busy++;
                last = c;
            }
        }
        if (r < 0)
            break;
        if (n >= min || n >= max || !busy)
            return (int)n; /* enough, or nothing in flight to wait for */
        if (!s->queued_total && busy == 1) {
            /* only replies are due, on one connection: wait in recv itself */
            if ((r = recv_conn(s, &s->conns[last], max - n, out + n, 1)) < 0)
                break;
            n += (unsigned)r;
            continue;
        }
        for (unsigned c = 0; c < s->nconn; c++) {
            const struct nbd_conn *k = &s->conns[c];
            short ev = 0;
            if (k->awaiting > k->sq_len || k->rio)
                ev |= POLLIN; /* some request went out: its reply can come */
            if (k->sq_len)
                ev |= POLLOUT;
            s->pfds[c].events = ev;
            s->pfds[c].revents = 0;
        }
        if (poll(s->pfds, s->nconn, -1) < 0 && errno != EINTR) {
            r = -errno;
            break;
        }
    }
    /* the connection is gone or out of step: nothing in flight will complete */
    s->conn_error = -r;
    return r;
}

static void nbd_describe(void *state, char *buf, size_t len)
{
    struct nbd_state *s = state;
    snprintf(buf, len, "%s", s->info);
}

const struct iol_engine iol_engine_nbd = {
    .name = "nbd",
    .flags = 0,
    .init = nbd_init,
    .start = NULL,
    .queue = nbd_queue,
    .commit = nbd_commit,
    .reap = nbd_reap,
    .describe = nbd_describe,
    .cleanup = nbd_cleanup,
};
