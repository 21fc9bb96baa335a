/* Listener and protocol sniffing on the single port.
 *
 * Happy path: accept -> a struct sniff with a handshake timer -> exact reads
 * into sniff->buf until classify() decides -> reading stops, the socket goes
 * to the gRPC server or a registered protocol, the sniff struct is freed once
 * its timer has closed.
 *
 * Failure modes: too many connections (close the oldest connection still
 * being sniffed to make room, else accept and close at once); EOF, a
 * read error, or no decision before the handshake timeout (close); an HTTP/1
 * request (write a short explanation, shut down our side, drain what the
 * client still sends for a bounded time so the reply is not lost to a RST,
 * then close); the new owner refuses the socket (close). */
#include "net/listener.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/h2_server.h"
#include "util/log.h"
#include "util/mem.h"

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define H2_PREFACE_LEN 24

static const char *const http1_tokens[] = {
    "GET ", "POST ", "PUT ", "HEAD ", "DELETE ", "OPTIONS ", "PATCH ", "CONNECT ", "TRACE ",
    "PRI ",
};

#define SNIFF_BUF 64
#define DRAIN_MAX (64 * 1024)

struct proto {
    uint8_t magic[LDG_LISTENER_MAX_MAGIC];
    size_t len;
    ldg_listener_accept_cb cb; /* NULL: the built-in HTTP/2 route */
    void *arg;
};

struct ldg_listener {
    uv_loop_t *loop;
    uv_tcp_t server;
    struct ldg_listener_opts opts;
    struct ldg_grpc_server *grpc;
    struct proto *protos; /* [0] is the HTTP/2 preface */
    size_t nprotos;
    struct sniff *sniffs; /* connections being sniffed (list) */
    size_t nsniffs;
    size_t live; /* sniff structs not yet freed */
    int port;
    int closing;
    int pending; /* handles still closing during ldg_listener_close */
    ldg_listener_close_cb close_cb;
    void *close_arg;
};

enum sniff_state { SNIFFING, DRAINING, CLOSING };

struct sniff {
    struct ldg_listener *l;
    struct sniff *prev, *next;
    uv_tcp_t *tcp;   /* owned until handed over */
    uv_timer_t timer; /* handshake timeout, then drain timeout */
    uv_write_t wreq;
    uv_shutdown_t sreq;
    enum sniff_state state;
    int pending; /* handles still closing */
    size_t want;  /* bytes the next read may take */
    size_t drained;
    uint8_t buf[SNIFF_BUF];
    size_t len;
    char resp[320]; /* HTTP/1 reply */
};

enum verdict { NEED_MORE, PROTO, HTTP1, REJECT };

/* Decide from the bytes so far. PROTO sets *proto; NEED_MORE sets *want. */
static enum verdict classify(const struct ldg_listener *l, const uint8_t *buf, size_t len,
                             const struct proto **proto, size_t *want)
{
    size_t need = SIZE_MAX;
    for (size_t i = 0; i < l->nprotos; i++) {
        const struct proto *p = &l->protos[(i + 1) % l->nprotos]; /* registered first */
        size_t n = len < p->len ? len : p->len;
        if (memcmp(buf, p->magic, n) != 0)
            continue;
        if (len >= p->len) {
            *proto = p;
            return PROTO;
        }
        if (p->len - len < need)
            need = p->len - len;
    }
    int http1_alive = 0;
    for (size_t i = 0; i < LDG_ARRAY_SIZE(http1_tokens); i++) {
        size_t tl = strlen(http1_tokens[i]);
        size_t n = len < tl ? len : tl;
        if (memcmp(buf, http1_tokens[i], n) != 0)
            continue;
        if (len >= tl) {
            if (need == SIZE_MAX)
                return HTTP1;
        } else if (tl - len < need) {
            need = tl - len;
        }
        http1_alive = 1;
    }
    if (need == SIZE_MAX)
        return http1_alive ? HTTP1 : REJECT;
    *want = need;
    return NEED_MORE;
}

/* ---- closing ---- */

static void sniff_unlink(struct sniff *s)
{
    struct ldg_listener *l = s->l;
    if (s->prev)
        s->prev->next = s->next;
    else
        l->sniffs = s->next;
    if (s->next)
        s->next->prev = s->prev;
    l->nsniffs--;
}

static void listener_maybe_free(struct ldg_listener *l);

static void sniff_handle_closed(struct sniff *s)
{
    if (--s->pending > 0)
        return;
    struct ldg_listener *l = s->l;
    ldg_free(s);
    l->live--;
    listener_maybe_free(l);
}

static void sniff_timer_close_cb(uv_handle_t *h)
{
    sniff_handle_closed(h->data);
}

static void sniff_tcp_close_cb(uv_handle_t *h)
{
    struct sniff *s = h->data;
    ldg_free(h);
    sniff_handle_closed(s);
}

static void sniff_close(struct sniff *s)
{
    if (s->state == CLOSING)
        return;
    s->state = CLOSING;
    sniff_unlink(s);
    s->pending = 2;
    uv_close((uv_handle_t *)s->tcp, sniff_tcp_close_cb);
    uv_close((uv_handle_t *)&s->timer, sniff_timer_close_cb);
}

/* The socket now belongs to someone else; only the timer is left. */
static void sniff_release(struct sniff *s)
{
    s->state = CLOSING;
    sniff_unlink(s);
    s->pending = 1;
    uv_close((uv_handle_t *)&s->timer, sniff_timer_close_cb);
}

static void sniff_timeout_cb(uv_timer_t *t)
{
    struct sniff *s = t->data;
    if (s->state == SNIFFING)
        LDG_LOG(LDG_LOG_DEBUG, "listener", "handshake timeout, closing len=%zu", s->len);
    sniff_close(s);
}

/* ---- HTTP/1 reply ---- */

static void drain_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char sink[4096]; /* contents never read */
    *buf = uv_buf_init(sink, sizeof sink);
}

static void drain_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct sniff *s = stream->data;
    if (nread < 0 || (s->drained += (size_t)nread) > DRAIN_MAX)
        sniff_close(s);
}

static void http1_shutdown_cb(uv_shutdown_t *req, int status)
{
    struct sniff *s = req->data;
    if (status < 0)
        sniff_close(s);
}

static void http1_write_cb(uv_write_t *req, int status)
{
    struct sniff *s = req->data;
    if (s->state == CLOSING)
        return;
    if (status < 0 || uv_shutdown(&s->sreq, (uv_stream_t *)s->tcp, http1_shutdown_cb) != 0)
        sniff_close(s);
}

static void http1_reply(struct sniff *s)
{
    int pri = s->len >= 3 && memcmp(s->buf, "PRI", 3) == 0;
    char *resp = s->resp;
    const char *body = pri ? "this port speaks gRPC over HTTP/2 with prior knowledge (h2c); "
                             "use a gRPC client\n"
                           : "this port speaks gRPC (HTTP/2); use a gRPC client\n";
    int n = snprintf(resp, sizeof s->resp,
                     "HTTP/1.1 %s\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     pri ? "505 HTTP Version Not Supported" : "400 Bad Request", strlen(body),
                     body);
    LDG_LOG(LDG_LOG_DEBUG, "listener", "HTTP/1 request refused status=%s", pri ? "505" : "400");
    s->state = DRAINING;
    s->wreq.data = s;
    s->sreq.data = s;
    uv_timer_start(&s->timer, sniff_timeout_cb, 2000, 0);
    uv_buf_t b = uv_buf_init(resp, (unsigned)n);
    if (uv_write(&s->wreq, (uv_stream_t *)s->tcp, &b, 1, http1_write_cb) != 0 ||
        uv_read_start((uv_stream_t *)s->tcp, drain_alloc_cb, drain_read_cb) != 0)
        sniff_close(s);
}

/* ---- sniffing ---- */

static void sniff_hand_over(struct sniff *s, const struct proto *p)
{
    struct ldg_listener *l = s->l;
    uv_tcp_t *tcp = s->tcp;
    uint8_t prefix[SNIFF_BUF];
    size_t n = s->len;
    memcpy(prefix, s->buf, n);
    if (!p->cb) {
        if (!l->grpc || ldg_grpc_server_accept(l->grpc, tcp, prefix, n) != 0) {
            sniff_close(s);
            return;
        }
        sniff_release(s);
        return;
    }
    sniff_release(s);
    tcp->data = NULL;
    p->cb(p->arg, tcp, prefix, n);
}

static void sniff_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct sniff *s = h->data;
    *buf = uv_buf_init((char *)s->buf + s->len, (unsigned)s->want);
}

static void sniff_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct sniff *s = stream->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        sniff_close(s);
        return;
    }
    s->len += (size_t)nread;
    const struct proto *p = NULL;
    switch (classify(s->l, s->buf, s->len, &p, &s->want)) {
    case NEED_MORE:
        return;
    case PROTO:
        uv_read_stop(stream);
        sniff_hand_over(s, p);
        return;
    case HTTP1:
        uv_read_stop(stream);
        http1_reply(s);
        return;
    case REJECT:
        LDG_LOG(LDG_LOG_DEBUG, "listener", "unknown protocol, closing len=%zu", s->len);
        sniff_close(s);
        return;
    }
}

static void server_close_now_cb(uv_handle_t *h)
{
    ldg_free(h);
}

static void listener_connection_cb(uv_stream_t *server, int status)
{
    struct ldg_listener *l = server->data;
    if (status < 0 || l->closing)
        return;
    uv_tcp_t *tcp = ldg_malloc(sizeof *tcp);
    uv_tcp_init(l->loop, tcp);
    if (uv_accept(server, (uv_stream_t *)tcp) != 0) {
        uv_close((uv_handle_t *)tcp, server_close_now_cb);
        return;
    }
    size_t open = l->nsniffs + (l->grpc ? ldg_grpc_server_conn_count(l->grpc) : 0);
    if (open >= l->opts.max_conns && l->sniffs) {
        /* Connections that have not identified themselves yet (clients that
         * connect and send nothing) must not lock real clients out until
         * their handshake timeout: make room by closing the oldest one. */
        struct sniff *oldest = l->sniffs;
        while (oldest->next)
            oldest = oldest->next;
        LDG_LOG(LDG_LOG_DEBUG, "listener",
                "connection limit reached, closing the oldest unidentified connection "
                "max_conns=%zu len=%zu", l->opts.max_conns, oldest->len);
        sniff_close(oldest);
        open--;
    }
    if (open >= l->opts.max_conns) {
        LDG_LOG(LDG_LOG_WARN, "listener", "connection limit reached, refusing max_conns=%zu",
                l->opts.max_conns);
        uv_close((uv_handle_t *)tcp, server_close_now_cb);
        return;
    }
    uv_tcp_nodelay(tcp, 1);
    struct sniff *s = ldg_calloc(1, sizeof *s);
    s->l = l;
    s->tcp = tcp;
    tcp->data = s;
    s->want = 1;
    uv_timer_init(l->loop, &s->timer);
    s->timer.data = s;
    uv_timer_start(&s->timer, sniff_timeout_cb, l->opts.handshake_timeout_ms, 0);
    s->next = l->sniffs;
    if (l->sniffs)
        l->sniffs->prev = s;
    l->sniffs = s;
    l->nsniffs++;
    l->live++;
    const struct proto *unused;
    classify(l, s->buf, 0, &unused, &s->want);
    if (uv_read_start((uv_stream_t *)tcp, sniff_alloc_cb, sniff_read_cb) != 0)
        sniff_close(s);
}

/* ---- listener ---- */

int ldg_listener_parse_addr(const char *addr, struct sockaddr_storage *out)
{
    char host[64];
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || strlen(colon + 1) == 0 || strlen(colon + 1) > 5)
        return LDG_EINVAL;
    size_t hl = (size_t)(colon - addr);
    if (addr[0] == '[') {
        if (hl < 2 || addr[hl - 1] != ']')
            return LDG_EINVAL;
        addr++;
        hl -= 2;
    }
    if (hl >= sizeof host)
        return LDG_EINVAL;
    memcpy(host, addr, hl);
    host[hl] = 0;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535)
        return LDG_EINVAL;
    memset(out, 0, sizeof *out);
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)out) == 0)
        return 0;
    if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)out) == 0)
        return 0;
    return LDG_EINVAL;
}

int ldg_listener_new(uv_loop_t *loop, const char *addr, const struct ldg_listener_opts *opts,
                     struct ldg_grpc_server *grpc, struct ldg_listener **out,
                     struct ldg_err *err)
{
    struct sockaddr_storage ss;
    if (ldg_listener_parse_addr(addr, &ss) != 0)
        return ldg_err_set(err, LDG_EINVAL, "listen address %s: expected ip:port", addr);
    struct ldg_listener *l = ldg_calloc(1, sizeof *l);
    l->loop = loop;
    l->grpc = grpc;
    l->opts.handshake_timeout_ms = opts && opts->handshake_timeout_ms ? opts->handshake_timeout_ms
                                                                      : 10000;
    l->opts.max_conns = opts && opts->max_conns ? opts->max_conns : 1024;
    l->protos = ldg_calloc(1, sizeof *l->protos);
    memcpy(l->protos[0].magic, h2_preface, H2_PREFACE_LEN);
    l->protos[0].len = H2_PREFACE_LEN;
    l->nprotos = 1;
    uv_tcp_init(loop, &l->server);
    l->server.data = l;
    int rv = uv_tcp_bind(&l->server, (struct sockaddr *)&ss, 0);
    if (rv == 0)
        rv = uv_listen((uv_stream_t *)&l->server, 511, listener_connection_cb);
    if (rv != 0) {
        ldg_err_set(err, ldg_err_from_uv(rv), "listen on %s: %s", addr, uv_strerror(rv));
        ldg_listener_close(l, NULL, NULL);
        return ldg_err_from_uv(rv);
    }
    struct sockaddr_storage bound;
    int blen = sizeof bound;
    uv_tcp_getsockname(&l->server, (struct sockaddr *)&bound, &blen);
    l->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                : ((struct sockaddr_in *)&bound)->sin_port);
    LDG_LOG(LDG_LOG_INFO, "listener", "listening addr=%s port=%d", addr, l->port);
    *out = l;
    return 0;
}

int ldg_listener_add_protocol(struct ldg_listener *l, const uint8_t *magic, size_t magic_len,
                              ldg_listener_accept_cb cb, void *arg)
{
    if (magic_len == 0 || magic_len > LDG_LISTENER_MAX_MAGIC || !cb)
        return LDG_EINVAL;
    for (size_t i = 0; i < l->nprotos; i++)
        if (l->protos[i].len == magic_len && memcmp(l->protos[i].magic, magic, magic_len) == 0)
            return LDG_EEXIST;
    l->protos = ldg_realloc(l->protos, (l->nprotos + 1) * sizeof *l->protos);
    struct proto *p = &l->protos[l->nprotos++];
    memcpy(p->magic, magic, magic_len);
    p->len = magic_len;
    p->cb = cb;
    p->arg = arg;
    return 0;
}

int ldg_listener_remove_protocol(struct ldg_listener *l, const uint8_t *magic,
                                 size_t magic_len)
{
    /* protos[0] is the built-in HTTP/2 preface: never removed. */
    for (size_t i = 1; i < l->nprotos; i++) {
        if (l->protos[i].len == magic_len && memcmp(l->protos[i].magic, magic, magic_len) == 0) {
            memmove(&l->protos[i], &l->protos[i + 1], (l->nprotos - i - 1) * sizeof *l->protos);
            l->nprotos--;
            return 0;
        }
    }
    return LDG_ENOTFOUND;
}

int ldg_listener_port(const struct ldg_listener *l)
{
    return l->port;
}

static void listener_maybe_free(struct ldg_listener *l)
{
    if (!l->closing || l->pending > 0 || l->live > 0)
        return;
    ldg_listener_close_cb cb = l->close_cb;
    void *arg = l->close_arg;
    ldg_free(l->protos);
    ldg_free(l);
    if (cb)
        cb(arg);
}

static void listener_server_close_cb(uv_handle_t *h)
{
    struct ldg_listener *l = h->data;
    l->pending--;
    listener_maybe_free(l);
}

void ldg_listener_close(struct ldg_listener *l, ldg_listener_close_cb cb, void *arg)
{
    l->closing = 1;
    l->close_cb = cb;
    l->close_arg = arg;
    l->pending = 1;
    uv_close((uv_handle_t *)&l->server, listener_server_close_cb);
    while (l->sniffs)
        sniff_close(l->sniffs);
}
