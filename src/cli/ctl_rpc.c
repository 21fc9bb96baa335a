/* ledgerctl: synchronous gRPC calls over the libuv client, listing helpers
 * and a tiny HTTP GET for the metrics check. */
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli/ctl.h"
#include "net/grpc.h"
#include "net/grpc_client.h"
#include "util/err.h"
#include "util/mem.h"

int ldg_ctl_init(struct ldg_ctl *ctl)
{
    memset(ctl, 0, sizeof *ctl);
    ctl->timeout_ms = LDG_CTL_DEFAULT_TIMEOUT_MS;
    int rv = uv_loop_init(&ctl->loop);
    return rv < 0 ? ldg_err_from_uv(rv) : 0;
}

void ldg_ctl_close(struct ldg_ctl *ctl)
{
    for (size_t i = 0; i < ctl->n_clients; i++) {
        ldg_grpc_client_close(ctl->clients[i].cl, NULL, NULL);
        free(ctl->clients[i].addr);
    }
    ctl->n_clients = 0;
    uv_run(&ctl->loop, UV_RUN_DEFAULT);
    uv_loop_close(&ctl->loop);
    free(ctl->auth);
    ctl->auth = NULL;
}

int ldg_ctl_load_token(struct ldg_ctl *ctl, const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "ledgerctl: --token-file %s: %s\n", path, strerror(errno));
        return -1;
    }
    char buf[LDG_GRPC_CLIENT_MAX_HEADER_VALUE];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    bool more = fgetc(f) != EOF;
    fclose(f);
    if (more) {
        fprintf(stderr, "ledgerctl: --token-file %s: token too long\n", path);
        return -1;
    }
    buf[n] = '\0';
    char *s = buf;
    while (*s != '\0' && isspace((unsigned char)*s))
        s++;
    size_t len = strlen(s);
    while (len > 0 && isspace((unsigned char)s[len - 1]))
        s[--len] = '\0';
    if (len == 0 || strpbrk(s, "\r\n") != NULL) {
        fprintf(stderr, "ledgerctl: --token-file %s: empty or multi-line token\n", path);
        return -1;
    }
    size_t sz = len + sizeof "Bearer ";
    ctl->auth = ldg_malloc(sz);
    snprintf(ctl->auth, sz, "Bearer %s", s);
    return 0;
}

static struct ldg_grpc_client *client_for(struct ldg_ctl *ctl, const char *addr, int *err)
{
    for (size_t i = 0; i < ctl->n_clients; i++)
        if (strcmp(ctl->clients[i].addr, addr) == 0)
            return ctl->clients[i].cl;
    if (ctl->n_clients == LDG_CTL_MAX_CLIENTS) {
        *err = LDG_ENOMEM;
        return NULL;
    }
    struct ldg_grpc_client *cl = NULL;
    int rv = ldg_grpc_client_new(&ctl->loop, addr, &cl);
    if (rv != 0) {
        *err = rv;
        return NULL;
    }
    ctl->clients[ctl->n_clients].addr = ldg_strdup(addr);
    ctl->clients[ctl->n_clients].cl = cl;
    ctl->n_clients++;
    return cl;
}

struct call_wait {
    bool done;
    const ProtobufCMessageDescriptor *desc;
    struct ldg_ctl_reply *out;
};

static void call_done_cb(const struct ldg_grpc_client_result *res, void *arg)
{
    struct call_wait *w = arg;
    w->done = true;
    w->out->code = res->code;
    w->out->message = ldg_strdup(res->message ? res->message : "");
    if (res->code != LDG_GRPC_OK || w->desc == NULL)
        return;
    /* res->resp dies with this callback: decode our own copy. */
    w->out->resp = protobuf_c_message_unpack(w->desc, NULL, res->raw_len, res->raw);
    if (w->out->resp == NULL) {
        free(w->out->message);
        w->out->message = ldg_strdup("response does not decode");
        w->out->code = LDG_GRPC_INTERNAL;
    }
}

static void set_reply(struct ldg_ctl_reply *out, int code, const char *msg)
{
    out->code = code;
    free(out->message);
    out->message = ldg_strdup(msg);
}

int ldg_ctl_call(struct ldg_ctl *ctl, const char *addr, const char *method,
                 const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
                 struct ldg_ctl_reply *out)
{
    memset(out, 0, sizeof *out);
    if (addr == NULL)
        addr = ctl->addr;
    int err = 0;
    struct ldg_grpc_client *cl = client_for(ctl, addr, &err);
    if (cl == NULL) {
        char msg[300];
        snprintf(msg, sizeof msg, "cannot use address \"%s\": %s", addr, ldg_strerror(err));
        set_reply(out, LDG_GRPC_INVALID_ARGUMENT, msg);
        return out->code;
    }
    char path[160];
    snprintf(path, sizeof path, "/ledger.v1.%s", method);
    const char *headers[3] = {NULL, NULL, NULL};
    if (ctl->auth != NULL) {
        headers[0] = "authorization";
        headers[1] = ctl->auth;
    }
    struct call_wait w = {.done = false, .desc = resp_desc, .out = out};
    int rv = ldg_grpc_client_call_ex(cl, path, req, headers, NULL, ctl->timeout_ms, call_done_cb,
                                     &w);
    if (rv != 0) {
        set_reply(out, LDG_GRPC_INTERNAL, ldg_strerror(rv));
        return out->code;
    }
    while (!w.done) {
        if (uv_run(&ctl->loop, UV_RUN_ONCE) == 0 && !w.done) {
            /* Nothing left that could finish the call: never expected. */
            set_reply(out, LDG_GRPC_INTERNAL, "event loop ran dry before the call finished");
            return out->code;
        }
    }
    return out->code;
}

void ldg_ctl_reply_clear(struct ldg_ctl_reply *r)
{
    free(r->message);
    if (r->resp != NULL)
        protobuf_c_message_free_unpacked(r->resp, NULL);
    memset(r, 0, sizeof *r);
}

void ldg_ctl_report(const char *method, const struct ldg_ctl_reply *r)
{
    fprintf(stderr, "ledgerctl: %s: %s: %s\n", method, ldg_grpc_code_name(r->code),
            r->message && r->message[0] ? r->message : "(no message)");
}

int ldg_ctl_call_checked(struct ldg_ctl *ctl, const char *addr, const char *method,
                         const ProtobufCMessage *req,
                         const ProtobufCMessageDescriptor *resp_desc, struct ldg_ctl_reply *out)
{
    int code = ldg_ctl_call(ctl, addr, method, req, resp_desc, out);
    if (code != 0) {
        const char *slash = strchr(method, '/');
        ldg_ctl_report(slash ? slash + 1 : method, out);
        ldg_ctl_reply_clear(out);
    }
    return code;
}

int ldg_ctl_list_orgs(struct ldg_ctl *ctl, const char *addr, struct ldg_ctl_orgs *out)
{
    memset(out, 0, sizeof *out);
    char *token = ldg_strdup("");
    for (;;) {
        Ledger__V1__ListOrganizationsRequest req = LEDGER__V1__LIST_ORGANIZATIONS_REQUEST__INIT;
        req.limit = 1000;
        req.page_token = token;
        struct ldg_ctl_reply r;
        if (ldg_ctl_call_checked(ctl, addr, "AdminService/ListOrganizations", &req.base,
                                 &ledger__v1__list_organizations_response__descriptor, &r) != 0) {
            free(token);
            ldg_ctl_orgs_free(out);
            return -1;
        }
        Ledger__V1__ListOrganizationsResponse *page = (void *)r.resp;
        r.resp = NULL;
        ldg_ctl_reply_clear(&r);
        out->pages = ldg_realloc(out->pages, (out->n_pages + 1) * sizeof *out->pages);
        out->pages[out->n_pages++] = page;
        out->orgs = ldg_realloc(out->orgs, (out->n + page->n_organizations + 1) * sizeof *out->orgs);
        for (size_t i = 0; i < page->n_organizations; i++)
            out->orgs[out->n++] = page->organizations[i];
        free(token);
        if (page->next_page_token[0] == '\0' || page->n_organizations == 0)
            return 0;
        token = ldg_strdup(page->next_page_token);
    }
}

void ldg_ctl_orgs_free(struct ldg_ctl_orgs *o)
{
    for (size_t i = 0; i < o->n_pages; i++)
        protobuf_c_message_free_unpacked(&o->pages[i]->base, NULL);
    free(o->pages);
    free(o->orgs);
    memset(o, 0, sizeof *o);
}

int ldg_ctl_list_vaults(struct ldg_ctl *ctl, const char *addr, uint64_t org,
                        Ledger__V1__ListVaultsResponse **out)
{
    Ledger__V1__ListVaultsRequest req = LEDGER__V1__LIST_VAULTS_REQUEST__INIT;
    Ledger__V1__OrganizationSlug os = LEDGER__V1__ORGANIZATION_SLUG__INIT;
    if (org != 0) {
        os.id = org;
        req.organization_slug = &os;
    }
    struct ldg_ctl_reply r;
    if (ldg_ctl_call_checked(ctl, addr, "AdminService/ListVaults", &req.base,
                             &ledger__v1__list_vaults_response__descriptor, &r) != 0) {
        return -1;
    }
    *out = (void *)r.resp;
    r.resp = NULL;
    ldg_ctl_reply_clear(&r);
    return 0;
}

/* ---- HTTP GET ---- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for |events| on |fd| until |deadline| (ms); 0 ready, -1 timeout/error. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return -1;
        struct pollfd p = {.fd = fd, .events = events};
        int rv = poll(&p, 1, (int)left);
        if (rv > 0)
            return 0;
        if (rv < 0 && errno != EINTR)
            return -1;
    }
}

int ldg_ctl_http_get(const char *addr, const char *path, uint64_t timeout_ms, int *status,
                     char **body, char *err, size_t err_len)
{
    int fd = -1, ret = -1;
    struct addrinfo *ai = NULL;
    char *resp = NULL;
    size_t len = 0, cap = 0;
    char host[256];
    const char *colon = strrchr(addr, ':');
    *body = NULL;
    if (colon == NULL || colon == addr || (size_t)(colon - addr) >= sizeof host) {
        snprintf(err, err_len, "bad address \"%s\" (want host:port)", addr);
        return -1;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    int gai = getaddrinfo(host, colon + 1, &hints, &ai);
    if (gai != 0) {
        snprintf(err, err_len, "resolve %s: %s", addr, gai_strerror(gai));
        return -1;
    }
    int64_t deadline = now_ms() + (int64_t)timeout_ms;
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, err_len, "socket: %s", strerror(errno));
        goto cleanup;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
        snprintf(err, err_len, "connect %s: %s", addr, strerror(errno));
        goto cleanup;
    }
    if (wait_fd(fd, POLLOUT, deadline) != 0) {
        snprintf(err, err_len, "connect %s: timed out", addr);
        goto cleanup;
    }
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
    if (soerr != 0) {
        snprintf(err, err_len, "connect %s: %s", addr, strerror(soerr));
        goto cleanup;
    }
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: ledgerctl\r\n"
                     "Connection: close\r\n\r\n",
                     path, addr);
    for (int off = 0; off < n;) {
        if (wait_fd(fd, POLLOUT, deadline) != 0) {
            snprintf(err, err_len, "send to %s: timed out", addr);
            goto cleanup;
        }
        ssize_t w = send(fd, req + off, (size_t)(n - off), MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN && errno != EINTR) {
            snprintf(err, err_len, "send to %s: %s", addr, strerror(errno));
            goto cleanup;
        }
        if (w > 0)
            off += (int)w;
    }
    for (;;) {
        if (wait_fd(fd, POLLIN, deadline) != 0) {
            snprintf(err, err_len, "read from %s: timed out", addr);
            goto cleanup;
        }
        if (cap - len < 4097) {
            cap = cap ? cap * 2 : 16384;
            if (cap > 64u << 20) {
                snprintf(err, err_len, "response from %s too large", addr);
                goto cleanup;
            }
            resp = ldg_realloc(resp, cap);
        }
        ssize_t r = recv(fd, resp + len, cap - len - 1, 0);
        if (r == 0)
            break;
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            snprintf(err, err_len, "read from %s: %s", addr, strerror(errno));
            goto cleanup;
        }
        len += (size_t)r;
    }
    if (resp == NULL) {
        snprintf(err, err_len, "%s closed the connection without a response", addr);
        goto cleanup;
    }
    resp[len] = '\0';
    int code = 0;
    if (sscanf(resp, "HTTP/1.%*d %d", &code) != 1) {
        snprintf(err, err_len, "%s sent no HTTP status line", addr);
        goto cleanup;
    }
    char *sep = strstr(resp, "\r\n\r\n");
    *status = code;
    *body = ldg_strdup(sep ? sep + 4 : "");
    ret = 0;
cleanup:
    if (fd >= 0)
        close(fd);
    if (ai != NULL)
        freeaddrinfo(ai);
    free(resp);
    return ret;
}
