/* Metrics HTTP endpoint: a pure request->response core and its libuv glue.
 *
 * Happy path: accept -> read until the header block is complete ->
 * ldg_metrics_http_handle builds the response -> write -> shutdown (FIN) ->
 * drain whatever the client still sends until EOF -> close.
 *
 * Failure modes: garbage gets 400 as soon as the request line is invalid;
 * a header block over 8 KiB gets 431; a client that sends nothing for the
 * read timeout (or never closes after our FIN) is closed; past
 * LDG_METRICS_HTTP_MAX_CONNS open connections, new ones are closed at once;
 * read/write errors close the connection. Closing the server closes every
 * connection and frees everything in the last close callback. */
#include "net/metrics_http.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/log.h"
#include "util/mem.h"
#include "util/metrics.h"

#define MAX_METHOD 16  /* longest method token we wait for */
#define LINGER_MS 2000 /* drain time after our FIN */

/* ---- the pure core ---- */

static int is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

struct request {
    const char *method;
    size_t method_len;
    const char *target;
    size_t target_len;
};

enum { PARSE_BAD = -1, PARSE_PARTIAL = 0 };

/* Parse "METHOD SP TARGET SP HTTP/1.d (CR)LF" from the |n| bytes at |p|.
 * Returns the line's length including its terminator, PARSE_PARTIAL when the
 * bytes so far are a valid prefix, or PARSE_BAD. */
static long parse_request_line(const char *p, size_t n, struct request *r)
{
    const unsigned char *u = (const unsigned char *)p;
    size_t i = 0;
    while (i < n && is_tchar(u[i]))
        i++;
    if (i > MAX_METHOD)
        return PARSE_BAD;
    if (i == n)
        return PARSE_PARTIAL;
    if (i == 0 || u[i] != ' ')
        return PARSE_BAD;
    r->method = p;
    r->method_len = i;

    size_t t = ++i;
    while (i < n && u[i] > 0x20 && u[i] < 0x7f)
        i++;
    if (i == n)
        return PARSE_PARTIAL;
    if (i == t || u[i] != ' ')
        return PARSE_BAD;
    r->target = p + t;
    r->target_len = i - t;

    static const char version[] = "HTTP/1.";
    size_t v = ++i;
    for (; i < n && i - v < sizeof version - 1; i++)
        if (u[i] != (unsigned char)version[i - v])
            return PARSE_BAD;
    if (i == n)
        return PARSE_PARTIAL;
    if (u[i] < '0' || u[i] > '9')
        return PARSE_BAD;
    if (++i == n)
        return PARSE_PARTIAL;
    if (u[i] == '\r') {
        if (++i == n)
            return PARSE_PARTIAL;
    }
    if (u[i] != '\n')
        return PARSE_BAD;
    return (long)(i + 1);
}

/* Validate header lines from |p| up to and including the empty line that ends
 * them. Returns 0 or PARSE_BAD. */
static int check_headers(const char *p, size_t n)
{
    const unsigned char *u = (const unsigned char *)p;
    size_t i = 0;
    for (;;) {
        size_t eol = i;
        while (eol < n && u[eol] != '\n')
            eol++;
        if (eol == n)
            return PARSE_BAD;
        size_t end = (eol > i && u[eol - 1] == '\r') ? eol - 1 : eol;
        if (end == i)
            return 0; /* the empty line */
        size_t k = i;
        while (k < end && is_tchar(u[k]))
            k++;
        if (k == i || k == end || u[k] != ':')
            return PARSE_BAD;
        for (k++; k < end; k++)
            if ((u[k] < 0x20 && u[k] != '\t') || u[k] == 0x7f)
                return PARSE_BAD;
        i = eol + 1;
    }
}

/* Offset just past the blank line ending the header block, or 0. */
static size_t header_end(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\n')
            continue;
        if (i + 1 < n && p[i + 1] == '\n')
            return i + 2;
        if (i + 2 < n && p[i + 1] == '\r' && p[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

static const char *status_text(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

static void respond(struct ldg_buf *out, int status, const char *content_type,
                    const char *extra_headers, const void *body, size_t body_len, int head)
{
    ldg_buf_printf(out,
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                   "Connection: close\r\n%s\r\n",
                   status, status_text(status), content_type, body_len,
                   extra_headers ? extra_headers : "");
    if (!head)
        ldg_buf_append(out, body, body_len);
}

static void respond_text(struct ldg_buf *out, int status, const char *extra, const char *body,
                         int head)
{
    respond(out, status, "text/plain; charset=utf-8", extra, body, strlen(body), head);
}

static int target_is(const struct request *r, const char *path)
{
    size_t n = r->target_len;
    const char *q = memchr(r->target, '?', n);
    if (q != NULL)
        n = (size_t)(q - r->target);
    return n == strlen(path) && memcmp(r->target, path, n) == 0;
}

static int method_is(const struct request *r, const char *m)
{
    return r->method_len == strlen(m) && memcmp(r->method, m, r->method_len) == 0;
}

static void serve_readyz(struct ldg_buf *out, ldg_ready_fn ready, void *ready_arg, int head)
{
    char reason[256] = "";
    int ok = ready ? ready(ready_arg, reason, sizeof reason) : 1;
    reason[sizeof reason - 1] = '\0';
    /* Keep it one printable line whatever the callback wrote. */
    for (char *c = reason; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = ' ';
    char body[300];
    snprintf(body, sizeof body, "%s\n", reason[0] ? reason : (ok ? "ready" : "not ready"));
    respond_text(out, ok ? 200 : 503, NULL, body, head);
}

int ldg_metrics_http_handle(const char *req, size_t len, ldg_ready_fn ready, void *ready_arg,
                            struct ldg_buf *out)
{
    struct request r;
    long line = parse_request_line(req, len, &r);
    if (line == PARSE_BAD) {
        respond_text(out, 400, NULL, "bad request\n", 0);
        return LDG_METRICS_HTTP_RESPONDED;
    }
    size_t end = line > 0 ? header_end(req + line - 1, len - (size_t)line + 1) : 0;
    if (end == 0 || (size_t)line - 1 + end > LDG_METRICS_HTTP_MAX_HEADER) {
        if (len < LDG_METRICS_HTTP_MAX_HEADER)
            return LDG_METRICS_HTTP_NEED_MORE;
        if (line > 0)
            respond_text(out, 431, NULL, "request headers too large\n", 0);
        else
            respond_text(out, 400, NULL, "bad request\n", 0);
        return LDG_METRICS_HTTP_RESPONDED;
    }
    end += (size_t)line - 1;
    if (check_headers(req + line, end - (size_t)line) != 0) {
        respond_text(out, 400, NULL, "bad request\n", 0);
        return LDG_METRICS_HTTP_RESPONDED;
    }

    int head = method_is(&r, "HEAD");
    int get = head || method_is(&r, "GET");
    int known = target_is(&r, "/metrics") || target_is(&r, "/healthz") ||
                target_is(&r, "/readyz");
    if (!known) {
        respond_text(out, 404, NULL, "not found\n", head);
    } else if (!get) {
        respond_text(out, 405, "Allow: GET, HEAD\r\n", "method not allowed\n", 0);
    } else if (target_is(&r, "/metrics")) {
        struct ldg_buf body;
        ldg_buf_init(&body);
        ldg_metrics_render(&body);
        respond(out, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, body.data,
                body.len, head);
        ldg_buf_close(&body);
    } else if (target_is(&r, "/healthz")) {
        respond_text(out, 200, NULL, "ok\n", head);
    } else {
        serve_readyz(out, ready, ready_arg, head);
    }
    return LDG_METRICS_HTTP_RESPONDED;
}

/* ---- the libuv server ---- */

enum conn_state { CONN_READING, CONN_WRITING, CONN_DRAINING, CONN_CLOSING };

struct conn {
    struct ldg_metrics_http *srv;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t write_req;
    uv_shutdown_t shutdown_req;
    enum conn_state state;
    int handles;             /* open uv handles (tcp, timer) */
    struct ldg_buf in;       /* request bytes so far */
    struct ldg_buf out;      /* response being written */
    struct conn *prev, *next; /* srv->conns, while not closing */
    char rbuf[4096];         /* read buffer handed to libuv */
};

struct ldg_metrics_http {
    uv_loop_t *loop;
    uv_tcp_t tcp;                  /* listener */
    ldg_ready_fn ready;
    void *ready_arg;
    unsigned timeout_ms;
    int port;
    struct conn *conns;            /* open connections */
    size_t nconns;                 /* allocated connections, closing included */
    int closing;
    int listener_open;
    ldg_metrics_http_close_cb close_cb;
    void *close_arg;
};

static void server_maybe_free(struct ldg_metrics_http *h)
{
    if (!h->closing || h->listener_open || h->nconns > 0)
        return;
    ldg_metrics_http_close_cb cb = h->close_cb;
    void *arg = h->close_arg;
    ldg_free(h);
    if (cb)
        cb(arg);
}

static void conn_closed_cb(uv_handle_t *handle)
{
    struct conn *c = handle->data;
    if (--c->handles > 0)
        return;
    struct ldg_metrics_http *h = c->srv;
    ldg_buf_close(&c->in);
    ldg_buf_close(&c->out);
    ldg_free(c);
    h->nconns--;
    server_maybe_free(h);
}

static void conn_close(struct conn *c)
{
    if (c->state == CONN_CLOSING)
        return;
    c->state = CONN_CLOSING;
    if (c->prev)
        c->prev->next = c->next;
    else
        c->srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    uv_close((uv_handle_t *)&c->tcp, conn_closed_cb);
    uv_close((uv_handle_t *)&c->timer, conn_closed_cb);
}

static void conn_timer_cb(uv_timer_t *t)
{
    conn_close(t->data);
}

static void conn_shutdown_cb(uv_shutdown_t *req, int status)
{
    struct conn *c = req->data;
    if (status < 0 || c->state == CONN_CLOSING) {
        conn_close(c);
        return;
    }
    /* Our FIN is out; read until the client closes so no RST eats the reply. */
    c->state = CONN_DRAINING;
    unsigned linger = c->srv->timeout_ms < LINGER_MS ? c->srv->timeout_ms : LINGER_MS;
    uv_timer_start(&c->timer, conn_timer_cb, linger, 0);
}

static void conn_write_cb(uv_write_t *req, int status)
{
    struct conn *c = req->data;
    if (status < 0 || c->state == CONN_CLOSING) {
        conn_close(c);
        return;
    }
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, conn_shutdown_cb) != 0)
        conn_close(c);
}

static void conn_alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = handle->data;
    *buf = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

static void conn_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = stream->data;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    if (nread == 0 || c->state != CONN_READING)
        return; /* EAGAIN, or bytes after the request: discarded */
    ldg_buf_append(&c->in, buf->base, (size_t)nread);
    int rv = ldg_metrics_http_handle((const char *)c->in.data, c->in.len, c->srv->ready,
                                     c->srv->ready_arg, &c->out);
    if (rv == LDG_METRICS_HTTP_NEED_MORE)
        return;
    c->state = CONN_WRITING;
    ldg_buf_close(&c->in);
    uv_buf_t b = uv_buf_init((char *)c->out.data, (unsigned)c->out.len);
    c->write_req.data = c;
    if (uv_write(&c->write_req, stream, &b, 1, conn_write_cb) != 0)
        conn_close(c);
}

static void server_connection_cb(uv_stream_t *server, int status)
{
    struct ldg_metrics_http *h = server->data;
    if (status < 0) {
        LDG_LOG(LDG_LOG_WARN, "metrics", "accept failed err=%s", uv_strerror(status));
        return;
    }
    struct conn *c = ldg_calloc(1, sizeof *c);
    c->srv = h;
    c->state = CONN_READING;
    ldg_buf_init(&c->in);
    ldg_buf_init(&c->out);
    uv_tcp_init(h->loop, &c->tcp);
    uv_timer_init(h->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles = 2;
    h->nconns++;
    c->next = h->conns;
    if (h->conns)
        h->conns->prev = c;
    h->conns = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 || h->closing ||
        h->nconns > LDG_METRICS_HTTP_MAX_CONNS) {
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, conn_timer_cb, h->timeout_ms, 0);
    if (uv_read_start((uv_stream_t *)&c->tcp, conn_alloc_cb, conn_read_cb) != 0)
        conn_close(c);
}

/* Split "host:port" / "[v6]:port" / ":port" and resolve numerically or by
 * name. Returns 0 or LDG_EINVAL. */
static int resolve(const char *addr, struct sockaddr_storage *ss, socklen_t *sslen)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || colon[1] == '\0')
        return LDG_EINVAL;
    size_t hlen = (size_t)(colon - addr);
    const char *hp = addr;
    if (hlen >= 2 && addr[0] == '[' && addr[hlen - 1] == ']') {
        hp++;
        hlen -= 2;
    }
    if (hlen >= sizeof host)
        return LDG_EINVAL;
    memcpy(host, hp, hlen);
    host[hlen] = '\0';
    for (const char *p = colon + 1; *p; p++)
        if (*p < '0' || *p > '9')
            return LDG_EINVAL;
    if (strlen(colon + 1) > 5 || atoi(colon + 1) > 65535)
        return LDG_EINVAL;

    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if (getaddrinfo(hlen ? host : NULL, colon + 1, &hints, &res) != 0 || res == NULL)
        return LDG_EINVAL;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sslen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

int ldg_metrics_http_start(uv_loop_t *loop, const char *addr, int addr_is_default,
                           ldg_ready_fn ready, void *ready_arg, struct ldg_metrics_http **out,
                           struct ldg_err *err)
{
    *out = NULL;
    if (strcmp(addr, "off") == 0) {
        LDG_LOG(LDG_LOG_INFO, "metrics", "metrics endpoint disabled (off)");
        return 0;
    }
    struct sockaddr_storage ss;
    socklen_t sslen = 0;
    if (resolve(addr, &ss, &sslen) != 0)
        return ldg_err_set(err, LDG_EINVAL, "invalid metrics address '%s' (want host:port)",
                           addr);

    int e = 0;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        e = errno;
        goto err;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sslen) != 0 || listen(fd, 128) != 0) {
        e = errno;
        goto err_socket;
    }
    if (getsockname(fd, (struct sockaddr *)&ss, &sslen) != 0) {
        e = errno;
        goto err_socket;
    }

    struct ldg_metrics_http *h = ldg_calloc(1, sizeof *h);
    h->loop = loop;
    h->ready = ready;
    h->ready_arg = ready_arg;
    h->timeout_ms = LDG_METRICS_HTTP_TIMEOUT_MS;
    h->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    int rv = uv_tcp_init(loop, &h->tcp);
    if (rv != 0) {
        ldg_free(h);
        close(fd);
        return ldg_err_set(err, ldg_err_from_uv(rv), "metrics endpoint %s: %s", addr,
                           uv_strerror(rv));
    }
    h->tcp.data = h;
    h->listener_open = 1;
    rv = uv_tcp_open(&h->tcp, fd);
    int adopted = rv == 0; /* from here on, closing the handle closes fd */
    if (rv == 0)
        rv = uv_listen((uv_stream_t *)&h->tcp, 128, server_connection_cb);
    if (rv != 0) {
        if (!adopted)
            close(fd);
        ldg_metrics_http_close(h, NULL, NULL);
        return ldg_err_set(err, ldg_err_from_uv(rv), "metrics endpoint %s: %s", addr,
                           uv_strerror(rv));
    }
    LDG_LOG(LDG_LOG_INFO, "metrics", "metrics endpoint listening addr=%s port=%d", addr,
            h->port);
    *out = h;
    return 0;

err_socket:
    close(fd);
err:
    if (addr_is_default) {
        if (e == EADDRINUSE)
            LDG_LOG(LDG_LOG_WARN, "metrics", "metrics endpoint disabled: %s in use", addr);
        else
            LDG_LOG(LDG_LOG_WARN, "metrics", "metrics endpoint disabled: cannot bind %s: %s",
                    addr, strerror(e));
        return 0;
    }
    if (e == EADDRINUSE)
        return ldg_err_set(err, LDG_EBUSY, "metrics address %s: already in use", addr);
    return ldg_err_set(err, ldg_err_from_errno(e), "metrics address %s: %s", addr,
                       strerror(e));
}

int ldg_metrics_http_port(const struct ldg_metrics_http *h)
{
    return h->port;
}

void ldg_metrics_http_set_timeout_ms(struct ldg_metrics_http *h, unsigned timeout_ms)
{
    h->timeout_ms = timeout_ms;
}

static void listener_closed_cb(uv_handle_t *handle)
{
    struct ldg_metrics_http *h = handle->data;
    h->listener_open = 0;
    server_maybe_free(h);
}

void ldg_metrics_http_close(struct ldg_metrics_http *h, ldg_metrics_http_close_cb cb,
                            void *arg)
{
    if (h == NULL || h->closing)
        return;
    h->closing = 1;
    h->close_cb = cb;
    h->close_arg = arg;
    while (h->conns)
        conn_close(h->conns);
    uv_close((uv_handle_t *)&h->tcp, listener_closed_cb);
}
