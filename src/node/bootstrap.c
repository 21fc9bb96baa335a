/* Bootstrap (see bootstrap.h). */
#include "node/bootstrap.h"
#include "node/notify.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <arpa/inet.h>

#include "cluster/cluster.h"
#include "node/backup.h"
#include "ledger/v1/ledger.pb-c.h"
#include "node/serve.h"
#include "node/ttl.h"
#include "rpc/forward.h"
#include "util/log.h"
#include "util/mem.h"

#define CALL_TIMEOUT_MS 2000
#define JOIN_TIMEOUT_MS 10000

/* AdminService calls to other nodes (GetClusterInfo, JoinCluster) carry
 * this node's admin token: with --admin-token-file every node of a cluster
 * uses the same token (docs/operations.md). Returns |hdrs| ready for
 * ldg_grpc_client_call_ex, or NULL without a token; |auth| holds the value. */
static const char *const *admin_headers(const struct ldg_bootstrap *b, const char *hdrs[3],
                                        char *auth, size_t cap)
{
    const char *token = b->serve->rpc.admin_token;
    if (token == NULL)
        return NULL;
    snprintf(auth, cap, "Bearer %s", token);
    hdrs[0] = "authorization";
    hdrs[1] = auth;
    hdrs[2] = NULL;
    return hdrs;
}

/* ---- PEERS parsing ---- */

static void list_add(char ***list, size_t *n, const char *s, size_t len)
{
    while (len > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        len--;
    }
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\n' ||
                       s[len - 1] == '\r'))
        len--;
    if (len == 0)
        return;
    *list = ldg_realloc(*list, (*n + 1) * sizeof **list);
    char *e = ldg_malloc(len + 1);
    memcpy(e, s, len);
    e[len] = '\0';
    (*list)[(*n)++] = e;
}

void ldg_peers_free(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ldg_free(list[i]);
    ldg_free(list);
}

/* Every "addr": "..." string value of a JSON document (no escapes needed in
 * addresses; a backslash is refused). */
static int parse_json_peers(const char *path, const char *text, char ***out, size_t *n,
                            struct ldg_err *err)
{
    const char *p = text;
    while ((p = strstr(p, "\"addr\"")) != NULL) {
        p += 6;
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
            p++;
        if (*p != ':')
            continue;
        p++;
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
            p++;
        if (*p != '"')
            return ldg_err_set(err, LDG_EINVAL, "--peers %s: \"addr\" must be a string", path);
        const char *q = ++p;
        while (*q != '\0' && *q != '"' && *q != '\\')
            q++;
        if (*q != '"')
            return ldg_err_set(err, LDG_EINVAL, "--peers %s: bad \"addr\" string", path);
        list_add(out, n, p, (size_t)(q - p));
        p = q + 1;
    }
    if (*n == 0)
        return ldg_err_set(err, LDG_EINVAL,
                           "--peers %s: no peers found (expected {\"peers\": [{\"addr\": "
                           "\"host:port\"}, ...]})",
                           path);
    return 0;
}

int ldg_peers_parse(const char *peers, char ***out, size_t *n, struct ldg_err *err)
{
    *out = NULL;
    *n = 0;
    size_t len = strlen(peers);
    bool is_file = strchr(peers, '/') != NULL ||
                   (len > 5 && strcmp(peers + len - 5, ".json") == 0);
    if (is_file) {
        FILE *f = fopen(peers, "r");
        if (f == NULL)
            return ldg_err_set(err, errno == ENOENT ? LDG_ENOTFOUND : LDG_EIO,
                               "--peers %s: %s", peers, strerror(errno));
        struct ldg_buf b;
        ldg_buf_init(&b);
        char chunk[4096];
        size_t got;
        while ((got = fread(chunk, 1, sizeof chunk, f)) > 0 && b.len < (1u << 20))
            ldg_buf_append(&b, chunk, got);
        fclose(f);
        ldg_buf_append(&b, "", 1);
        int rv = parse_json_peers(peers, (const char *)b.data, out, n, err);
        ldg_buf_close(&b);
        if (rv != 0) {
            ldg_peers_free(*out, *n);
            *out = NULL;
            *n = 0;
        }
        return rv;
    }
    const char *p = peers;
    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        size_t l = comma ? (size_t)(comma - p) : strlen(p);
        list_add(out, n, p, l);
        p += l;
        if (*p == ',')
            p++;
    }
    if (*n == 0)
        return ldg_err_set(err, LDG_EINVAL, "--peers: empty list");
    return 0;
}

/* Split a peer entry into host and port (default 50051). */
static int split_entry(const char *e, char *host, size_t hcap, char *port, size_t pcap)
{
    const char *h = e;
    size_t hl;
    const char *colon = NULL;
    if (e[0] == '[') {
        const char *rb = strchr(e, ']');
        if (rb == NULL)
            return LDG_EINVAL;
        h = e + 1;
        hl = (size_t)(rb - h);
        if (rb[1] == ':')
            colon = rb + 1;
        else if (rb[1] != '\0')
            return LDG_EINVAL;
    } else {
        colon = strchr(e, ':');
        if (colon != NULL && strchr(colon + 1, ':') != NULL) {
            colon = NULL; /* a bare IPv6 address */
            hl = strlen(e);
        } else {
            hl = colon ? (size_t)(colon - e) : strlen(e);
        }
    }
    if (hl == 0 || hl >= hcap)
        return LDG_EINVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    if (colon != NULL) {
        char *end = NULL;
        long v = strtol(colon + 1, &end, 10);
        if (*end != '\0' || v <= 0 || v > 65535)
            return LDG_EINVAL;
        snprintf(port, pcap, "%ld", v);
    } else {
        snprintf(port, pcap, "%d", LDG_CONFIG_DEFAULT_PORT);
    }
    return 0;
}

/* Resolve every entry to "ip:port" addresses (all A/AAAA records). */
static void resolve(char **entries, size_t n, char ***out, size_t *nout, char *why, size_t wcap)
{
    *out = NULL;
    *nout = 0;
    for (size_t i = 0; i < n; i++) {
        char host[256], port[8];
        if (split_entry(entries[i], host, sizeof host, port, sizeof port) != 0) {
            snprintf(why, wcap, "bad peer %s (host[:port] expected)", entries[i]);
            continue;
        }
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
        struct addrinfo *res = NULL;
        int rv = getaddrinfo(host, port, &hints, &res);
        if (rv != 0) {
            snprintf(why, wcap, "cannot resolve %s: %s", host, gai_strerror(rv));
            continue;
        }
        for (struct addrinfo *a = res; a != NULL; a = a->ai_next) {
            char ip[INET6_ADDRSTRLEN], addr[INET6_ADDRSTRLEN + 10];
            if (a->ai_family == AF_INET) {
                inet_ntop(AF_INET, &((struct sockaddr_in *)a->ai_addr)->sin_addr, ip, sizeof ip);
                snprintf(addr, sizeof addr, "%s:%s", ip, port);
            } else if (a->ai_family == AF_INET6) {
                inet_ntop(AF_INET6, &((struct sockaddr_in6 *)a->ai_addr)->sin6_addr, ip,
                          sizeof ip);
                snprintf(addr, sizeof addr, "[%s]:%s", ip, port);
            } else {
                continue;
            }
            bool dup = false;
            for (size_t j = 0; j < *nout && !dup; j++)
                dup = strcmp((*out)[j], addr) == 0;
            if (!dup)
                list_add(out, nout, addr, strlen(addr));
        }
        freeaddrinfo(res);
    }
}

/* ---- cluster start ---- */

static int read_secret(struct ldg_bootstrap *b, struct ldg_err *err)
{
    const char *path = b->cfg->cluster_secret_file;
    if (path == NULL)
        return 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return ldg_err_set(err, errno == ENOENT ? LDG_ENOTFOUND : LDG_EIO,
                           "--cluster-secret-file %s: %s", path, strerror(errno));
    uint8_t buf[4096];
    size_t n = fread(buf, 1, sizeof buf, f);
    bool more = fgetc(f) != EOF;
    fclose(f);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        n--;
    if (more)
        return ldg_err_set(err, LDG_EINVAL, "--cluster-secret-file %s: larger than 4096 bytes",
                           path);
    if (n < 16)
        return ldg_err_set(err, LDG_EINVAL,
                           "--cluster-secret-file %s: the secret must be at least 16 bytes "
                           "(e.g. openssl rand -hex 32 > %s)",
                           path, path);
    b->secret = ldg_memdup(buf, n);
    b->secret_len = n;
    return 0;
}

/* ---- removed-member watch ---- */

struct watch_call {
    struct ldg_bootstrap *b;
};

static void watch_info_cb(const struct ldg_grpc_client_result *res, void *arg)
{
    struct watch_call *wc = arg;
    struct ldg_bootstrap *b = wc->b;
    ldg_free(wc);
    b->watch_inflight--;
    struct ldg_cluster *c = b->serve->rpc.cluster;
    if (b->stopping || c == NULL || res->code != LDG_GRPC_OK || res->resp == NULL)
        return;
    const Ledger__V1__GetClusterInfoResponse *r =
        (const Ledger__V1__GetClusterInfoResponse *)res->resp;
    struct ldg_cluster_status st;
    ldg_cluster_get_status(c, &st);
    uint8_t cid[16];
    if (r->cluster_id == NULL || ldg_cluster_id_parse(r->cluster_id, cid) != 0 ||
        memcmp(cid, st.cluster_id, sizeof cid) != 0 || r->leader_id == NULL ||
        r->n_members == 0)
        return;
    for (size_t i = 0; i < r->n_members; i++) {
        const Ledger__V1__ClusterMember *m = r->members[i];
        if (m->node_id && m->node_id->id && strtoull(m->node_id->id, NULL, 10) == b->node_id)
            return;
    }
    ldg_cluster_mark_removed(c);
}

static void watch_cb(uv_timer_t *t)
{
    struct ldg_bootstrap *b = t->data;
    struct ldg_cluster *c = b->serve->rpc.cluster;
    if (b->stopping || c == NULL || b->watch_inflight > 0)
        return;
    struct ldg_cluster_status st;
    ldg_cluster_get_status(c, &st);
    if (st.leader_id != 0 || !st.is_member) {
        b->leaderless_since = 0;
        return;
    }
    uint64_t now = uv_now(b->loop);
    if (b->leaderless_since == 0) {
        b->leaderless_since = now;
        return;
    }
    if (now - b->leaderless_since < 3000)
        return;
    struct ldg_cluster_member *mem = NULL;
    size_t n = 0;
    ldg_cluster_members(c, &mem, &n);
    Ledger__V1__GetClusterInfoRequest req = LEDGER__V1__GET_CLUSTER_INFO_REQUEST__INIT;
    for (size_t i = 0; i < n; i++) {
        struct ldg_grpc_client *cl;
        if (mem[i].id == b->node_id || b->serve->rpc.pool == NULL ||
            ldg_rpc_pool_get(b->serve->rpc.pool, mem[i].address, &cl) != 0)
            continue;
        struct watch_call *wc = ldg_calloc(1, sizeof *wc);
        wc->b = b;
        const char *hdrs[3];
        char auth[1100];
        if (ldg_grpc_client_call_ex(cl, "/ledger.v1.AdminService/GetClusterInfo", &req.base,
                                    admin_headers(b, hdrs, auth, sizeof auth),
                                    &ledger__v1__get_cluster_info_response__descriptor,
                                    CALL_TIMEOUT_MS, watch_info_cb, wc) != 0) {
            ldg_free(wc);
            continue;
        }
        b->watch_inflight++;
    }
    ldg_free(mem);
}

static void start_watch(struct ldg_bootstrap *b)
{
    uv_timer_init(b->loop, &b->watch);
    b->watch.data = b;
    b->watch_init = true;
    uv_timer_start(&b->watch, watch_cb, 2000, 2000);
}

static int start_cluster(struct ldg_bootstrap *b, bool bootstrap_single,
                         const uint8_t *join_id, struct ldg_err *err)
{
    bool restored = b->restored;
    const struct ldg_config *cfg = b->cfg;
    unsigned voters = cfg->cluster_size < 3 ? 3 : cfg->cluster_size;
    struct ldg_cluster_opts copts = {
        .data_dir = b->data_dir,
        .node_id = b->node_id,
        .address = cfg->advertise,
        .batch_size = cfg->batch_size,
        .batch_delay_s = cfg->batch_delay_s,
        .snapshot_threshold = (unsigned)cfg->snapshot_threshold,
        /* Keep at most one threshold of log behind a snapshot (<= 2048), so a
         * small threshold really compacts (a node further behind is caught
         * up by snapshot install). */
        .snapshot_trailing = cfg->snapshot_threshold < 2048 ? (unsigned)cfg->snapshot_threshold
                                                            : 2048,
        .cluster_secret = b->secret,
        .cluster_secret_len = b->secret_len,
        .join_cluster_id = join_id,
        .single = cfg->mode == LDG_MODE_SINGLE,
        .force = cfg->force,
        .max_voters = voters > 5 ? 5 : voters,
        .restored = restored,
    };
    int rv = ldg_cluster_start(b->loop, &copts, bootstrap_single, b->serve->listener,
                               &b->serve->rpc.cluster, err);
    if (rv != 0)
        return ldg_err_wrap(err, "start the replicated ledger");
    b->done = true;
    /* The TTL job submits expiries while this node leads. */
    ldg_ttl_start(&b->serve->ttl, b->loop, b->serve->rpc.cluster, LDG_TTL_DEFAULT_INTERVAL_MS);
    b->serve->ttl_started = true;
    start_watch(b);
    ldg_notify_ready("serving; replicated ledger started");
    return 0;
}

static void boot_fail(struct ldg_bootstrap *b, const char *msg)
{
    if (b->done || b->stopping)
        return;
    b->done = true;
    if (b->timer_init)
        uv_timer_stop(&b->timer);
    b->fail(b->fail_arg, msg);
}

/* SPEC §3.2/§3.4: a data dir restored from a backup (or holding only its
 * archive, unpacked here) starts a NEW one-node cluster over that state, in
 * --single and --cluster N alike (then admitting joiners up to N voters).
 * Returns 1 when started, 0 when the dir is not restored data, or < 0. */
static int start_restored(struct ldg_bootstrap *b, struct ldg_err *err)
{
    struct ldg_backup_manifest m;
    int rv = ldg_backup_restore_prepare(b->data_dir, &m, err);
    if (rv <= 0)
        return rv < 0 ? ldg_err_wrap(err, "restore from backup") : 0;
    char ts[32];
    time_t t = (time_t)m.created_at;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    LDG_LOG(LDG_LOG_WARN, "bootstrap",
            "restored from backup %s (created %s, tag \"%s\") source_cluster=%s applied_index=%"
            PRIu64 " applied_log_id=%016" PRIx64 " vaults=%zu: starting a NEW cluster (new "
            "cluster id, new Raft log) with this node as its only voter%s",
            m.backup_id, ts, m.tag, m.source_cluster_id[0] ? m.source_cluster_id : "unknown",
            m.applied_index, m.log_id, m.nvaults,
            b->cfg->mode == LDG_MODE_CLUSTER && b->cfg->cluster_size > 1
                ? "; other nodes join it (JoinCluster / --join / --cluster N with PEERS "
                  "pointing here) up to CLUSTER voters"
                : "");
    ldg_backup_manifest_free(&m);
    b->restored = true;
    rv = start_cluster(b, true, NULL, err);
    return rv != 0 ? rv : 1;
}

static bool has_raft_log(const char *data_dir)
{
    char p[4096];
    struct stat st;
    snprintf(p, sizeof p, "%s/raft/metadata1", data_dir);
    if (stat(p, &st) == 0)
        return true;
    snprintf(p, sizeof p, "%s/raft/metadata2", data_dir);
    return stat(p, &st) == 0;
}

/* ---- discovery ---- */

struct boot_call {
    struct ldg_bootstrap *b;
    char address[128];
};

static struct ldg_boot_peer *seen_find(struct ldg_bootstrap *b, uint64_t id)
{
    for (size_t i = 0; i < b->nseen; i++)
        if (b->seen[i].id == id)
            return &b->seen[i];
    return NULL;
}

static void join_cb(const struct ldg_grpc_client_result *res, void *arg)
{
    struct boot_call *bc = arg;
    struct ldg_bootstrap *b = bc->b;
    b->inflight--;
    b->joining = false;
    if (b->stopping || b->done) {
        ldg_free(bc);
        return;
    }
    if (res->code != LDG_GRPC_OK || res->resp == NULL) {
        snprintf(b->last_error, sizeof b->last_error, "JoinCluster via %s: %s %s", bc->address,
                 ldg_grpc_code_name(res->code), res->message);
        LDG_LOG(LDG_LOG_WARN, "bootstrap", "%s; retrying", b->last_error);
        ldg_free(bc);
        return;
    }
    const Ledger__V1__JoinClusterResponse *r = (const Ledger__V1__JoinClusterResponse *)res->resp;
    uint8_t cid[16];
    if (r->cluster_id == NULL || ldg_cluster_id_parse(r->cluster_id, cid) != 0) {
        snprintf(b->last_error, sizeof b->last_error,
                 "JoinCluster via %s: reply without a valid cluster id", bc->address);
        ldg_free(bc);
        return;
    }
    LDG_LOG(LDG_LOG_INFO, "bootstrap",
            "joined cluster %s through %s (leader %s at %s): %s; starting Raft and waiting for "
            "the leader's log",
            r->cluster_id, bc->address, r->leader_id && r->leader_id->id ? r->leader_id->id : "?",
            r->leader_address ? r->leader_address : "?", r->message ? r->message : "");
    ldg_free(bc);
    struct ldg_err err = {0};
    if (start_cluster(b, false, cid, &err) != 0)
        boot_fail(b, err.msg);
}

static void send_join(struct ldg_bootstrap *b, const struct ldg_boot_peer *p)
{
    const char *to = p->leader_address[0] ? p->leader_address : p->address;
    struct ldg_grpc_client *cl;
    if (ldg_rpc_pool_get(b->serve->rpc.pool, to, &cl) != 0) {
        snprintf(b->last_error, sizeof b->last_error, "bad leader address %s", to);
        return;
    }
    char idtext[24];
    snprintf(idtext, sizeof idtext, "%" PRIu64, b->node_id);
    Ledger__V1__NodeId nid = LEDGER__V1__NODE_ID__INIT;
    nid.id = idtext;
    Ledger__V1__JoinClusterRequest req = LEDGER__V1__JOIN_CLUSTER_REQUEST__INIT;
    req.node_id = &nid;
    req.address = b->cfg->advertise;
    struct boot_call *bc = ldg_calloc(1, sizeof *bc);
    bc->b = b;
    snprintf(bc->address, sizeof bc->address, "%s", to);
    LDG_LOG(LDG_LOG_INFO, "bootstrap", "asking %s to add this node (cluster %s) at %s", to,
            p->cluster_id, b->cfg->advertise);
    const char *hdrs[3];
    char auth[1100];
    if (ldg_grpc_client_call_ex(cl, "/ledger.v1.AdminService/JoinCluster", &req.base,
                                admin_headers(b, hdrs, auth, sizeof auth),
                                &ledger__v1__join_cluster_response__descriptor, JOIN_TIMEOUT_MS,
                                join_cb, bc) != 0) {
        ldg_free(bc);
        return;
    }
    b->inflight++;
    b->joining = true;
}

static void decide(struct ldg_bootstrap *b)
{
    if (b->stopping || b->done)
        return;
    const struct ldg_boot_peer *member = NULL;
    for (size_t i = 0; i < b->nseen; i++) {
        const struct ldg_boot_peer *p = &b->seen[i];
        if (p->id != b->node_id && p->member && p->cluster_id[0] != '\0' &&
            (member == NULL || (p->leader_address[0] && !member->leader_address[0])))
            member = p;
    }
    if (member != NULL) {
        send_join(b, member);
        return;
    }
    if (b->cfg->mode == LDG_MODE_JOIN) {
        snprintf(b->last_error, sizeof b->last_error,
                 "no reachable peer is a cluster member (%zu other node(s) answered)",
                 b->nseen - 1);
        return;
    }
    size_t need = b->cfg->cluster_size;
    uint64_t lowest = b->node_id;
    for (size_t i = 0; i < b->nseen; i++)
        if (b->seen[i].id < lowest)
            lowest = b->seen[i].id;
    if (b->nseen != b->last_logged_count) {
        b->last_logged_count = b->nseen;
        LDG_LOG(LDG_LOG_INFO, "bootstrap", "discovery: %zu of %zu nodes answered (this one "
                "included)%s", b->nseen, need,
                b->nseen >= need ? (lowest == b->node_id
                                        ? "; this node has the lowest id: bootstrapping"
                                        : "; waiting for the node with the lowest id to "
                                          "bootstrap, then joining it")
                                 : "");
    }
    if (b->nseen < need) {
        snprintf(b->last_error, sizeof b->last_error, "only %zu of %zu nodes answered",
                 b->nseen, need);
        return;
    }
    if (lowest != b->node_id) {
        snprintf(b->last_error, sizeof b->last_error,
                 "node %" PRIu64 " (lowest id) has not bootstrapped yet", lowest);
        return;
    }
    struct ldg_err err = {0};
    if (start_cluster(b, true, NULL, &err) != 0)
        boot_fail(b, err.msg);
}

static void exchange_cb(const struct ldg_grpc_client_result *res, void *arg)
{
    struct boot_call *bc = arg;
    struct ldg_bootstrap *b = bc->b;
    b->inflight--;
    if (!b->stopping && !b->done) {
        if (res->code == LDG_GRPC_OK && res->resp != NULL) {
            const Ledger__V1__ExchangeNodeInfoResponse *r =
                (const Ledger__V1__ExchangeNodeInfoResponse *)res->resp;
            const Ledger__V1__PeerInfo *pi = r->responder;
            uint64_t id = pi && pi->node_id && pi->node_id->id
                              ? strtoull(pi->node_id->id, NULL, 10)
                              : 0;
            if (id != 0 && seen_find(b, id) == NULL && b->nseen < LDG_BOOT_MAX_PEERS) {
                struct ldg_boot_peer *p = &b->seen[b->nseen++];
                memset(p, 0, sizeof *p);
                p->id = id;
                snprintf(p->address, sizeof p->address, "%s", bc->address);
                snprintf(p->cluster_id, sizeof p->cluster_id, "%s",
                         pi->cluster_id ? pi->cluster_id : "");
                p->member = pi->is_cluster_member;
                snprintf(p->leader_address, sizeof p->leader_address, "%s",
                         pi->leader_address ? pi->leader_address : "");
            }
        } else {
            snprintf(b->last_error, sizeof b->last_error, "%s: %s %s", bc->address,
                     ldg_grpc_code_name(res->code), res->message);
        }
        if (b->inflight == 0)
            decide(b);
    }
    ldg_free(bc);
}

static void poll_cb(uv_timer_t *t)
{
    struct ldg_bootstrap *b = t->data;
    if (b->stopping || b->done || b->inflight > 0)
        return;
    if (uv_now(b->loop) >= b->deadline_ms) {
        char msg[1024];
        int o = snprintf(msg, sizeof msg,
                         "%s through --peers %s gave up after PEERS_TIMEOUT (%.0f s): %s; "
                         "nodes that answered:",
                         b->cfg->mode == LDG_MODE_JOIN ? "joining a cluster"
                                                       : "coordinated bootstrap",
                         b->cfg->peers, b->cfg->peers_timeout_s,
                         b->last_error[0] ? b->last_error : "no answer");
        for (size_t i = 0; i < b->nseen && o > 0 && (size_t)o < sizeof msg; i++)
            o += snprintf(msg + o, sizeof msg - (size_t)o, " %" PRIu64 "@%s", b->seen[i].id,
                          b->seen[i].address);
        boot_fail(b, msg);
        return;
    }
    char **entries = NULL, **addrs = NULL;
    size_t ne = 0, na = 0;
    struct ldg_err err = {0};
    if (ldg_peers_parse(b->cfg->peers, &entries, &ne, &err) != 0) {
        snprintf(b->last_error, sizeof b->last_error, "%s", err.msg);
        return;
    }
    resolve(entries, ne, &addrs, &na, b->last_error, sizeof b->last_error);
    ldg_peers_free(entries, ne);

    /* Each round starts afresh; this node is always one of the N. */
    b->nseen = 1;
    memset(&b->seen[0], 0, sizeof b->seen[0]);
    b->seen[0].id = b->node_id;
    snprintf(b->seen[0].address, sizeof b->seen[0].address, "%s", b->cfg->advertise);

    char idtext[24];
    snprintf(idtext, sizeof idtext, "%" PRIu64, b->node_id);
    Ledger__V1__NodeId nid = LEDGER__V1__NODE_ID__INIT;
    nid.id = idtext;
    Ledger__V1__PeerInfo self = LEDGER__V1__PEER_INFO__INIT;
    self.node_id = &nid;
    self.address = b->cfg->advertise;
    self.expected_cluster_size = b->cfg->mode == LDG_MODE_CLUSTER ? b->cfg->cluster_size : 0;
    Ledger__V1__ExchangeNodeInfoRequest req = LEDGER__V1__EXCHANGE_NODE_INFO_REQUEST__INIT;
    req.caller = &self;
    uint64_t timeout = (uint64_t)(b->cfg->peers_poll_s * 1000);
    if (timeout > CALL_TIMEOUT_MS || timeout == 0)
        timeout = CALL_TIMEOUT_MS;
    for (size_t i = 0; i < na; i++) {
        struct ldg_grpc_client *cl;
        if (ldg_rpc_pool_get(b->serve->rpc.pool, addrs[i], &cl) != 0)
            continue;
        struct boot_call *bc = ldg_calloc(1, sizeof *bc);
        bc->b = b;
        snprintf(bc->address, sizeof bc->address, "%s", addrs[i]);
        if (ldg_grpc_client_call(cl, "/ledger.v1.SystemDiscoveryService/ExchangeNodeInfo",
                                 &req.base, &ledger__v1__exchange_node_info_response__descriptor,
                                 timeout, exchange_cb, bc) != 0) {
            ldg_free(bc);
            continue;
        }
        b->inflight++;
    }
    ldg_peers_free(addrs, na);
    if (b->inflight == 0)
        decide(b);
}

int ldg_bootstrap_start(struct ldg_bootstrap *b, uv_loop_t *loop, const struct ldg_config *cfg,
                        struct ldg_serve *serve, uint64_t node_id, const char *data_dir,
                        ldg_bootstrap_fail_cb fail, void *fail_arg, struct ldg_err *err)
{
    memset(b, 0, sizeof *b);
    b->loop = loop;
    b->cfg = cfg;
    b->serve = serve;
    b->node_id = node_id;
    b->data_dir = data_dir;
    b->fail = fail;
    b->fail_arg = fail_arg;
    int rv = read_secret(b, err);
    if (rv != 0)
        return rv;
    if (cfg->cluster_secret_file == NULL && cfg->mode != LDG_MODE_SINGLE)
        LDG_LOG(LDG_LOG_WARN, "bootstrap",
                "no --cluster-secret-file: anyone who can reach %s can open a Raft peer "
                "connection; set a shared secret on every node unless the network is fully "
                "trusted",
                cfg->listen);

    if (has_raft_log(data_dir)) {
        LDG_LOG(LDG_LOG_INFO, "bootstrap",
                "data directory holds a Raft log: rejoining its cluster as a member "
                "(bootstrap settings ignored)");
        /* Started from a backup earlier: cluster.c makes sure a Raft
         * snapshot of the restored state exists (crash before the first). */
        char p[4096];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", data_dir, LDG_BACKUP_MANIFEST);
        b->restored = stat(p, &st) == 0;
        return start_cluster(b, cfg->mode == LDG_MODE_SINGLE, NULL, err);
    }
    if (cfg->mode != LDG_MODE_JOIN) {
        rv = start_restored(b, err);
        if (rv != 0)
            return rv < 0 ? rv : 0;
    }
    if (cfg->mode == LDG_MODE_SINGLE)
        return start_cluster(b, true, NULL, err);
    if (cfg->peers == NULL)
        return ldg_err_set(err, LDG_EINVAL,
                           "%s needs --peers (INFERADB__LEDGER__PEERS) to find the other nodes; "
                           "use --single for a one-node cluster",
                           cfg->mode == LDG_MODE_JOIN ? "--join" : "--cluster N (the default mode)");
    char **entries = NULL;
    size_t ne = 0;
    rv = ldg_peers_parse(cfg->peers, &entries, &ne, err);
    if (rv != 0)
        return rv;
    ldg_peers_free(entries, ne);
    LDG_LOG(LDG_LOG_INFO, "bootstrap",
            "%s: polling --peers %s every %.3g s for up to %.3g s",
            cfg->mode == LDG_MODE_JOIN ? "joining an existing cluster"
                                       : "coordinated bootstrap",
            cfg->peers, cfg->peers_poll_s, cfg->peers_timeout_s);
    b->deadline_ms = uv_now(loop) + (uint64_t)(cfg->peers_timeout_s * 1000);
    uv_timer_init(loop, &b->timer);
    b->timer.data = b;
    b->timer_init = true;
    uint64_t every = (uint64_t)(cfg->peers_poll_s * 1000);
    uv_timer_start(&b->timer, poll_cb, 0, every ? every : 1);
    return 0;
}

void ldg_bootstrap_stop(struct ldg_bootstrap *b)
{
    b->stopping = true;
    if (b->timer_init && !uv_is_closing((uv_handle_t *)&b->timer))
        uv_close((uv_handle_t *)&b->timer, NULL);
    if (b->watch_init && !uv_is_closing((uv_handle_t *)&b->watch))
        uv_close((uv_handle_t *)&b->watch, NULL);
}

void ldg_bootstrap_free(struct ldg_bootstrap *b)
{
    if (b->secret != NULL) {
        memset(b->secret, 0, b->secret_len);
        ldg_free(b->secret);
    }
    b->secret = NULL;
}
