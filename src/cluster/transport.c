/* Raft peer transport on the shared port (see transport.h).
 *
 * Happy path, inbound: listener hands a socket after "LDGR" -> struct in_conn
 * reads exactly the rest of the preamble -> checks -> writes the accept
 * byte -> on write completion the stream goes to libraft's accept cb.
 * Outbound: getaddrinfo -> connect -> write preamble -> read exactly one
 * byte -> 0x01 -> the stream goes to libraft's connect cb.
 *
 * Failure modes: bad preamble, timeout, EOF: the socket is closed and the
 * reason logged (inbound) or the connect cb gets RAFT_NOCONNECTION
 * (outbound; libraft retries after its retry delay, so a dead peer costs
 * one attempt per delay). close cancels everything pending (connect cbs
 * get RAFT_CANCELED) and fires its cb once every handle has closed. */
#include "cluster/transport.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "net/listener.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/mem.h"

#define DEFAULT_TIMEOUT_MS 5000
#define OFF_VERSION LDG_PREAMBLE_MAGIC_LEN
#define OFF_CLUSTER (OFF_VERSION + 1)
#define OFF_NODE (OFF_CLUSTER + LDG_CLUSTER_ID_LEN)
#define OFF_ADDR (OFF_NODE + 8)
#define OFF_NONCE (OFF_ADDR + LDG_PREAMBLE_ADDR_LEN)
#define OFF_HMAC (OFF_NONCE + LDG_PREAMBLE_NONCE_LEN)

struct tp;

struct in_conn {
    struct tp *tp;
    struct in_conn *prev, *next;
    uv_tcp_t *tcp;     /* from the listener (ldg_malloc) */
    uv_timer_t timer;
    uv_write_t wreq;
    uint8_t buf[LDG_PREAMBLE_LEN];
    size_t got;
    int pending;       /* handles closing */
    bool done;         /* finished (handed over or closing) */
    bool handed;       /* tcp belongs to libraft */
};

struct out_conn {
    struct tp *tp;
    struct out_conn *prev, *next;
    struct raft_uv_connect *req;
    raft_uv_connect_cb cb;
    uv_getaddrinfo_t gai;
    uv_connect_t creq;
    uv_write_t wreq;
    uv_tcp_t *tcp;     /* raft_malloc'd, NULL until created */
    uv_timer_t timer;
    uint8_t pre[LDG_PREAMBLE_LEN];
    uint8_t ack;
    char host[LDG_PREAMBLE_ADDR_LEN];
    char port[8];
    raft_id id;
    int pending;       /* handles closing + getaddrinfo in flight */
    bool gai_running;
    bool done;         /* cb fired */
};

struct tp {
    struct raft_uv_transport *t;
    uv_loop_t *loop;
    struct ldg_listener *listener;
    bool registered;
    raft_id id;
    char address[LDG_PREAMBLE_ADDR_LEN];
    raft_uv_accept_cb accept_cb;
    struct ldg_transport_opts o;
    uint8_t *secret;
    struct in_conn *ins;
    struct out_conn *outs;
    bool closing;
    bool close_deferred;               /* defer handle is closing */
    uv_idle_t defer;                   /* closed only to defer close_cb */
    raft_uv_transport_close_cb close_cb;
};

/* ---- preamble ---- */

static void preamble_hmac(const uint8_t *p, const uint8_t *secret, size_t secret_len,
                          uint8_t out[LDG_PREAMBLE_HMAC_LEN])
{
    if (secret == NULL) {
        memset(out, 0, LDG_PREAMBLE_HMAC_LEN);
        return;
    }
    unsigned len = LDG_PREAMBLE_HMAC_LEN;
    HMAC(EVP_sha256(), secret, (int)secret_len, p, OFF_HMAC, out, &len);
}

int ldg_preamble_build(uint8_t out[LDG_PREAMBLE_LEN], const uint8_t cluster_id[LDG_CLUSTER_ID_LEN],
                       uint64_t node_id, const char *address, const uint8_t *secret,
                       size_t secret_len)
{
    size_t alen = strlen(address);
    if (alen >= LDG_PREAMBLE_ADDR_LEN)
        return LDG_EINVAL;
    memset(out, 0, LDG_PREAMBLE_LEN);
    memcpy(out, LDG_PREAMBLE_MAGIC, LDG_PREAMBLE_MAGIC_LEN);
    out[OFF_VERSION] = LDG_PREAMBLE_VERSION;
    memcpy(out + OFF_CLUSTER, cluster_id, LDG_CLUSTER_ID_LEN);
    ldg_put_u64be(out + OFF_NODE, node_id);
    memcpy(out + OFF_ADDR, address, alen);
    if (RAND_bytes(out + OFF_NONCE, LDG_PREAMBLE_NONCE_LEN) != 1)
        return LDG_EIO;
    preamble_hmac(out, secret, secret_len, out + OFF_HMAC);
    return 0;
}

/* Check a full preamble; on failure |why| says what was wrong. */
static bool preamble_check(struct tp *tp, const uint8_t *p, raft_id *id, char *addr,
                           const char **why)
{
    if (p[OFF_VERSION] != LDG_PREAMBLE_VERSION) {
        *why = "unsupported preamble version";
        return false;
    }
    if (memcmp(p + OFF_CLUSTER, tp->o.cluster_id, LDG_CLUSTER_ID_LEN) != 0) {
        *why = "different cluster id (a node of another cluster; see the runbook's "
               "split-brain warning)";
        return false;
    }
    uint8_t mac[LDG_PREAMBLE_HMAC_LEN];
    preamble_hmac(p, tp->secret, tp->o.secret_len, mac);
    if (CRYPTO_memcmp(mac, p + OFF_HMAC, sizeof mac) != 0) {
        *why = tp->secret ? "bad HMAC (different or missing cluster secret)"
                          : "peer sent an HMAC but no cluster secret is configured here";
        return false;
    }
    *id = ldg_get_u64be(p + OFF_NODE);
    if (*id == 0) {
        *why = "node id 0";
        return false;
    }
    memcpy(addr, p + OFF_ADDR, LDG_PREAMBLE_ADDR_LEN);
    if (addr[LDG_PREAMBLE_ADDR_LEN - 1] != '\0' || addr[0] == '\0') {
        *why = "bad sender address";
        return false;
    }
    return true;
}

static void tp_defer_closed_cb(uv_handle_t *h)
{
    struct tp *tp = h->data;
    raft_uv_transport_close_cb cb = tp->close_cb;
    tp->close_cb = NULL;
    cb(tp->t);
}

/* libraft's uv backend expects the transport's close callback later, never
 * from inside close() itself (its own TCP transport fires it from a handle's
 * close callback); a synchronous call lets the backend finish closing twice
 * and free the raft address twice (seen under ASan in test_libraft_bugs).
 * Closing a fresh handle defers the callback by one loop turn. */
static void tp_maybe_closed(struct tp *tp)
{
    if (!tp->closing || tp->ins != NULL || tp->outs != NULL || tp->close_cb == NULL ||
        tp->close_deferred)
        return;
    tp->close_deferred = true;
    uv_idle_init(tp->loop, &tp->defer);
    tp->defer.data = tp;
    uv_close((uv_handle_t *)&tp->defer, tp_defer_closed_cb);
}

/* ---- inbound ---- */

static void in_release(struct in_conn *c)
{
    if (--c->pending > 0)
        return;
    struct tp *tp = c->tp;
    if (c->prev)
        c->prev->next = c->next;
    else
        tp->ins = c->next;
    if (c->next)
        c->next->prev = c->prev;
    ldg_free(c);
    tp_maybe_closed(tp);
}

static void in_tcp_closed_cb(uv_handle_t *h)
{
    struct in_conn *c = h->data;
    ldg_free(h);
    in_release(c);
}

static void in_timer_closed_cb(uv_handle_t *h)
{
    in_release(h->data);
}

/* Close everything we still own. */
static void in_close(struct in_conn *c)
{
    if (c->done)
        return;
    c->done = true;
    if (!c->handed) {
        c->pending++;
        c->tcp->data = c;
        uv_close((uv_handle_t *)c->tcp, in_tcp_closed_cb);
    }
    uv_close((uv_handle_t *)&c->timer, in_timer_closed_cb);
}

static void in_reject(struct in_conn *c, const char *why)
{
    LDG_LOG(LDG_LOG_WARN, "raft", "refusing peer connection: %s", why);
    in_close(c);
}

static void in_timer_cb(uv_timer_t *t)
{
    in_reject(t->data, "preamble not received in time");
}

static void in_write_cb(uv_write_t *w, int status)
{
    struct in_conn *c = w->data;
    if (c->done)
        return; /* transport closed meanwhile; tcp already closing */
    if (status != 0) {
        in_reject(c, "could not send the accept byte");
        return;
    }
    struct tp *tp = c->tp;
    raft_id id = ldg_get_u64be(c->buf + OFF_NODE);
    char addr[LDG_PREAMBLE_ADDR_LEN];
    memcpy(addr, c->buf + OFF_ADDR, sizeof addr);
    uv_tcp_t *tcp = c->tcp;
    c->handed = true;
    in_close(c); /* timer only */
    tcp->data = NULL;
    LDG_LOG(LDG_LOG_DEBUG, "raft", "peer connection accepted peer=%" PRIu64 " addr=%s",
            (uint64_t)id, addr);
    tp->accept_cb(tp->t, id, addr, (uv_stream_t *)tcp);
}

static void in_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct in_conn *c = h->data;
    *buf = uv_buf_init((char *)c->buf + c->got, (unsigned)(LDG_PREAMBLE_LEN - c->got));
}

static void in_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct in_conn *c = s->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        in_reject(c, nread == UV_EOF ? "connection closed inside the preamble"
                                     : "read error inside the preamble");
        return;
    }
    c->got += (size_t)nread;
    if (c->got < LDG_PREAMBLE_LEN)
        return;
    uv_read_stop(s);
    raft_id id;
    char addr[LDG_PREAMBLE_ADDR_LEN];
    const char *why = NULL;
    if (c->tp->closing) {
        in_reject(c, "transport closing");
        return;
    }
    if (!preamble_check(c->tp, c->buf, &id, addr, &why)) {
        in_reject(c, why);
        return;
    }
    static const uint8_t accept = LDG_PREAMBLE_ACCEPT;
    uv_buf_t b = uv_buf_init((char *)&accept, 1);
    c->wreq.data = c;
    int rv = uv_write(&c->wreq, s, &b, 1, in_write_cb);
    if (rv != 0)
        in_reject(c, uv_strerror(rv));
}

static void tp_accept(void *arg, uv_tcp_t *tcp, const uint8_t *prefix, size_t n)
{
    struct tp *tp = arg;
    struct in_conn *c = ldg_calloc(1, sizeof *c);
    c->tp = tp;
    c->tcp = tcp;
    tcp->data = c;
    memcpy(c->buf, prefix, n);
    c->got = n;
    c->pending = 1; /* the timer */
    c->next = tp->ins;
    if (tp->ins)
        tp->ins->prev = c;
    tp->ins = c;
    uv_timer_init(tp->loop, &c->timer);
    c->timer.data = c;
    uv_timer_start(&c->timer, in_timer_cb, tp->o.handshake_timeout_ms, 0);
    if (tp->closing) {
        in_reject(c, "transport closing");
        return;
    }
    int rv = uv_read_start((uv_stream_t *)tcp, in_alloc_cb, in_read_cb);
    if (rv != 0)
        in_reject(c, uv_strerror(rv));
}

/* ---- outbound ---- */

static void out_release(struct out_conn *c)
{
    if (--c->pending > 0)
        return;
    struct tp *tp = c->tp;
    if (c->prev)
        c->prev->next = c->next;
    else
        tp->outs = c->next;
    if (c->next)
        c->next->prev = c->prev;
    ldg_free(c);
    tp_maybe_closed(tp);
}

static void out_tcp_closed_cb(uv_handle_t *h)
{
    struct out_conn *c = h->data;
    raft_free(h);
    out_release(c);
}

static void out_timer_closed_cb(uv_handle_t *h)
{
    out_release(h->data);
}

/* Finish: |ok| hands the stream over, else it is closed. Fires the cb. */
static void out_finish(struct out_conn *c, int status)
{
    if (c->done)
        return;
    c->done = true;
    uv_tcp_t *handed = NULL;
    if (c->tcp != NULL) {
        if (status == 0) {
            uv_read_stop((uv_stream_t *)c->tcp);
            handed = c->tcp;
            handed->data = NULL;
        } else {
            c->pending++;
            c->tcp->data = c;
            uv_close((uv_handle_t *)c->tcp, out_tcp_closed_cb);
        }
        c->tcp = NULL;
    }
    if (c->gai_running)
        uv_cancel((uv_req_t *)&c->gai);
    uv_close((uv_handle_t *)&c->timer, out_timer_closed_cb);
    if (status != 0 && status != RAFT_CANCELED)
        LDG_LOG(LDG_LOG_DEBUG, "raft", "connect to peer=%" PRIu64 " %s:%s failed",
                (uint64_t)c->id, c->host, c->port);
    c->cb(c->req, (uv_stream_t *)handed, status);
}

static void out_timer_cb(uv_timer_t *t)
{
    out_finish(t->data, RAFT_NOCONNECTION);
}

static void out_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct out_conn *c = h->data;
    *buf = uv_buf_init((char *)&c->ack, 1);
}

static void out_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct out_conn *c = s->data;
    if (nread == 0)
        return;
    if (nread < 0 || c->ack != LDG_PREAMBLE_ACCEPT) {
        if (nread > 0)
            LDG_LOG(LDG_LOG_WARN, "raft", "peer %s:%s answered 0x%02x to our preamble",
                    c->host, c->port, c->ack);
        else
            LDG_LOG(LDG_LOG_DEBUG, "raft",
                    "peer %s:%s closed the connection: it refused our preamble (see its log)",
                    c->host, c->port);
        out_finish(c, RAFT_NOCONNECTION);
        return;
    }
    out_finish(c, 0);
}

static void out_write_cb(uv_write_t *w, int status)
{
    struct out_conn *c = w->data;
    if (c->done)
        return;
    if (status != 0) {
        out_finish(c, RAFT_NOCONNECTION);
        return;
    }
    if (uv_read_start((uv_stream_t *)c->tcp, out_alloc_cb, out_read_cb) != 0)
        out_finish(c, RAFT_NOCONNECTION);
}

static void out_connect_cb(uv_connect_t *req, int status)
{
    struct out_conn *c = req->data;
    if (c->done)
        return;
    if (status != 0) {
        out_finish(c, RAFT_NOCONNECTION);
        return;
    }
    uv_buf_t b = uv_buf_init((char *)c->pre, sizeof c->pre);
    c->wreq.data = c;
    if (uv_write(&c->wreq, (uv_stream_t *)c->tcp, &b, 1, out_write_cb) != 0)
        out_finish(c, RAFT_NOCONNECTION);
}

static void out_gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct out_conn *c = req->data;
    c->gai_running = false;
    if (c->done || status != 0) {
        if (res)
            uv_freeaddrinfo(res);
        out_finish(c, c->tp->closing ? RAFT_CANCELED : RAFT_NOCONNECTION);
        out_release(c); /* the getaddrinfo reference */
        return;
    }
    c->tcp = raft_malloc(sizeof *c->tcp);
    if (c->tcp == NULL) {
        uv_freeaddrinfo(res);
        out_finish(c, RAFT_NOMEM);
        out_release(c);
        return;
    }
    uv_tcp_init(c->tp->loop, c->tcp);
    c->tcp->data = c;
    uv_tcp_nodelay(c->tcp, 1);
    c->creq.data = c;
    int rv = uv_tcp_connect(&c->creq, c->tcp, res->ai_addr, out_connect_cb);
    uv_freeaddrinfo(res);
    if (rv != 0)
        out_finish(c, RAFT_NOCONNECTION);
    out_release(c);
}

/* Split "host:port" / "[v6]:port" into |host| and |port|. */
static int split_addr(const char *addr, char *host, size_t hlen, char *port, size_t plen)
{
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || colon == addr || strlen(colon + 1) == 0 || strlen(colon + 1) >= plen)
        return LDG_EINVAL;
    const char *h = addr;
    size_t n = (size_t)(colon - addr);
    if (h[0] == '[' && n >= 2 && h[n - 1] == ']') {
        h++;
        n -= 2;
    }
    if (n == 0 || n >= hlen)
        return LDG_EINVAL;
    memcpy(host, h, n);
    host[n] = '\0';
    strcpy(port, colon + 1);
    return 0;
}

static int tp_connect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
                      const char *address, raft_uv_connect_cb cb)
{
    struct tp *tp = t->impl;
    if (tp->closing)
        return RAFT_CANCELED;
    struct out_conn *c = ldg_calloc(1, sizeof *c);
    c->tp = tp;
    c->req = req;
    c->cb = cb;
    c->id = id;
    if (split_addr(address, c->host, sizeof c->host, c->port, sizeof c->port) != 0 ||
        ldg_preamble_build(c->pre, tp->o.cluster_id, tp->id, tp->address, tp->secret,
                           tp->o.secret_len) != 0) {
        snprintf(t->errmsg, sizeof t->errmsg, "bad peer address %s", address);
        ldg_free(c);
        return RAFT_INVALID;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    c->gai.data = c;
    int rv = uv_getaddrinfo(tp->loop, &c->gai, out_gai_cb, c->host, c->port, &hints);
    if (rv != 0) {
        snprintf(t->errmsg, sizeof t->errmsg, "resolve %s: %s", address, uv_strerror(rv));
        ldg_free(c);
        return RAFT_NOCONNECTION;
    }
    c->gai_running = true;
    c->pending = 2; /* getaddrinfo + timer */
    uv_timer_init(tp->loop, &c->timer);
    c->timer.data = c;
    uv_timer_start(&c->timer, out_timer_cb, tp->o.connect_timeout_ms, 0);
    c->next = tp->outs;
    if (tp->outs)
        tp->outs->prev = c;
    tp->outs = c;
    return 0;
}

/* ---- lifecycle ---- */

static int tp_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
    struct tp *tp = t->impl;
    if (strlen(address) >= sizeof tp->address) {
        snprintf(t->errmsg, sizeof t->errmsg, "address too long");
        return RAFT_INVALID;
    }
    tp->id = id;
    strcpy(tp->address, address);
    return 0;
}

static int tp_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    struct tp *tp = t->impl;
    if (tp->listener == NULL) {
        snprintf(t->errmsg, sizeof t->errmsg, "no listener");
        return RAFT_IOERR;
    }
    int rv = ldg_listener_add_protocol(tp->listener, (const uint8_t *)LDG_PREAMBLE_MAGIC,
                                       LDG_PREAMBLE_MAGIC_LEN, tp_accept, tp);
    if (rv != 0) {
        snprintf(t->errmsg, sizeof t->errmsg, "register on listener: %s", ldg_strerror(rv));
        return RAFT_IOERR;
    }
    tp->registered = true;
    tp->accept_cb = cb;
    return 0;
}

void ldg_transport_detach_listener(struct raft_uv_transport *t)
{
    struct tp *tp = t->impl;
    if (tp->registered)
        ldg_listener_remove_protocol(tp->listener, (const uint8_t *)LDG_PREAMBLE_MAGIC,
                                     LDG_PREAMBLE_MAGIC_LEN);
    tp->registered = false;
    tp->listener = NULL;
}

static void tp_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
    struct tp *tp = t->impl;
    tp->closing = true;
    tp->close_cb = cb;
    ldg_transport_detach_listener(t);
    for (struct in_conn *c = tp->ins; c != NULL; c = c->next)
        in_close(c);
    for (struct out_conn *c = tp->outs; c != NULL; c = c->next)
        out_finish(c, RAFT_CANCELED);
    tp_maybe_closed(tp);
}

int ldg_transport_init(struct raft_uv_transport *t, uv_loop_t *loop,
                       struct ldg_listener *listener, const struct ldg_transport_opts *o)
{
    memset(t, 0, sizeof *t);
    struct tp *tp = ldg_calloc(1, sizeof *tp);
    tp->t = t;
    tp->loop = loop;
    tp->listener = listener;
    tp->o = *o;
    if (o->secret != NULL) {
        tp->secret = ldg_memdup(o->secret, o->secret_len);
        tp->o.secret = tp->secret;
    }
    if (tp->o.handshake_timeout_ms == 0)
        tp->o.handshake_timeout_ms = DEFAULT_TIMEOUT_MS;
    if (tp->o.connect_timeout_ms == 0)
        tp->o.connect_timeout_ms = DEFAULT_TIMEOUT_MS;
    t->impl = tp;
    t->init = tp_init;
    t->listen = tp_listen;
    t->connect = tp_connect;
    t->close = tp_close;
    return 0;
}

void ldg_transport_free(struct raft_uv_transport *t)
{
    struct tp *tp = t->impl;
    if (tp == NULL)
        return;
    if (tp->secret) {
        OPENSSL_cleanse(tp->secret, tp->o.secret_len);
        ldg_free(tp->secret);
    }
    ldg_free(tp);
    t->impl = NULL;
}
