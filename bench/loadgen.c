/* loadgen: closed-loop gRPC load generator for the ledger (bench/README in
 * bench/RESULTS.md).
 *
 * One libuv loop drives --connections client objects (one HTTP/2 connection
 * each) and --concurrency workers spread over them round-robin; a worker has
 * exactly one call outstanding and issues its next call from the completion
 * callback. Phases: optional --setup (CreateOrganization, CreateVault), a
 * prefill for read/mixed workloads (keys k0..k<keys-1> written in
 * transactions of up to 100 set_entity ops), --warmup seconds whose results
 * are discarded, then --duration seconds measured: completions inside the
 * window count toward ops/s, errors by gRPC code and the latency histogram
 * (log-linear buckets, about 3% resolution). Calls still outstanding at the
 * end are drained (or cancelled after the call timeout) and not counted.
 *
 * Output: human-readable lines, then one JSON object on the last line.
 * Exit status: 0 when at least one measured call succeeded, 1 on a setup or
 * prefill failure, 2 when nothing succeeded. */
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "ledger/v1/ledger.pb-c.h"
#include "net/grpc.h"
#include "net/grpc_client.h"
#include "util/mem.h"

#define N_CODES 17
#define HIST_BUCKETS 2048
#define PREFILL_OPS_PER_TX 100
#define PREFILL_CONCURRENCY 8

enum workload { WL_WRITE, WL_READ, WL_MIXED, WL_HEALTH };
enum phase { PH_SETUP, PH_PREFILL, PH_WARMUP, PH_MEASURE, PH_DRAIN, PH_DONE };

struct opts {
    const char *target;
    unsigned connections;
    unsigned concurrency;
    double duration_s;
    double warmup_s;
    enum workload wl;
    unsigned read_pct;      /* mixed:R: percentage of reads */
    const char *wl_name;
    size_t value_bytes;
    uint64_t keys;
    uint64_t org;
    uint64_t vault;
    bool setup;
    bool linearizable;
    uint64_t timeout_ms;
};

struct bench;

struct worker {
    struct bench *b;
    struct ldg_grpc_client *cl; /* borrowed from b->clients */
    unsigned id;
    char client_id[64];
    uint64_t rng;
    uint64_t started_ns;
    bool is_read;               /* kind of the call in flight */
};

struct bench {
    struct opts o;
    uv_loop_t *loop;
    struct ldg_grpc_client **clients;
    struct worker *workers;
    enum phase phase;
    uv_timer_t timer;
    uint64_t measure_start_ns, measure_end_ns;
    size_t inflight;
    uint8_t *value;
    /* prefill */
    uint64_t prefill_next;
    uint64_t prefill_done;
    /* results of the measured window */
    uint64_t ok, errors;
    uint64_t reads_ok, writes_ok;
    uint64_t by_code[N_CODES];
    uint64_t write_rejected;    /* status OK, WriteResponse.error */
    uint64_t read_not_found;    /* status OK, found = false */
    uint64_t hist[HIST_BUCKETS];
    uint64_t max_ns;
    int exit_code;
    char fail[512];
};

/* ---- latency histogram: 64 exact ns buckets, then 32 per power of two ---- */

static unsigned hist_index(uint64_t v)
{
    if (v < 64)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - 5;
    unsigned i = 64 + (msb - 6) * 32 + (unsigned)((v >> shift) - 32);
    return i < HIST_BUCKETS ? i : HIST_BUCKETS - 1;
}

static uint64_t hist_value(unsigned i)
{
    if (i < 64)
        return i;
    unsigned j = i - 64, msb = j / 32 + 6, shift = msb - 5;
    uint64_t sub = j % 32 + 32;
    return (sub << shift) + ((uint64_t)1 << shift) / 2;
}

static uint64_t hist_quantile(const struct bench *b, double q)
{
    uint64_t total = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        total += b->hist[i];
    if (total == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)total);
    if (rank >= total)
        rank = total - 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += b->hist[i];
        if (seen > rank)
            return hist_value(i);
    }
    return b->max_ns;
}

/* ---- helpers ---- */

static uint64_t rng_next(uint64_t *s)
{
    /* xorshift64* */
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static void fail(struct bench *b, const char *what, const struct ldg_grpc_client_result *res)
{
    snprintf(b->fail, sizeof b->fail, "%s: %s %s", what, ldg_grpc_code_name(res->code),
             res->message ? res->message : "");
    b->exit_code = 1;
}

static void finish(struct bench *b);
static void start_workers(struct bench *b);
static void issue(struct worker *w);

/* ---- request builders: messages live on the caller's stack; the client
 * encodes them before returning ---- */

static int call_write(struct ldg_grpc_client *cl, const struct bench *b, const char *client_id,
                      uint64_t *rng, uint64_t first_key, unsigned n_ops, bool random_keys,
                      ldg_grpc_client_cb cb, void *arg)
{
    Ledger__V1__OrganizationSlug org = LEDGER__V1__ORGANIZATION_SLUG__INIT;
    Ledger__V1__VaultSlug vault = LEDGER__V1__VAULT_SLUG__INIT;
    Ledger__V1__ClientId cid = LEDGER__V1__CLIENT_ID__INIT;
    Ledger__V1__WriteRequest req = LEDGER__V1__WRITE_REQUEST__INIT;
    Ledger__V1__Operation ops[PREFILL_OPS_PER_TX];
    Ledger__V1__SetEntity sets[PREFILL_OPS_PER_TX];
    Ledger__V1__Operation *op_ptrs[PREFILL_OPS_PER_TX];
    char keys[PREFILL_OPS_PER_TX][32];
    uint8_t idem[16];

    org.id = b->o.org;
    req.organization_slug = &org;
    if (b->o.vault != 0) {
        vault.slug = b->o.vault;
        req.vault = &vault;
    }
    cid.id = (char *)client_id;
    req.client_id = &cid;
    for (int i = 0; i < 2; i++) {
        uint64_t r = rng_next(rng);
        memcpy(idem + 8 * i, &r, 8);
    }
    req.idempotency_key.data = idem;
    req.idempotency_key.len = sizeof idem;
    for (unsigned i = 0; i < n_ops; i++) {
        uint64_t k = random_keys ? rng_next(rng) % b->o.keys : first_key + i;
        snprintf(keys[i], sizeof keys[i], "k%" PRIu64, k);
        ledger__v1__set_entity__init(&sets[i]);
        sets[i].key = keys[i];
        sets[i].value.data = b->value;
        sets[i].value.len = b->o.value_bytes;
        ledger__v1__operation__init(&ops[i]);
        ops[i].op_case = LEDGER__V1__OPERATION__OP_SET_ENTITY;
        ops[i].set_entity = &sets[i];
        op_ptrs[i] = &ops[i];
    }
    req.n_operations = n_ops;
    req.operations = op_ptrs;
    return ldg_grpc_client_call(cl, "/ledger.v1.WriteService/Write", &req.base,
                                &ledger__v1__write_response__descriptor, b->o.timeout_ms, cb,
                                arg);
}

/* ---- measured calls ---- */

static void worker_done_cb(const struct ldg_grpc_client_result *res, void *arg)
{
    struct worker *w = arg;
    struct bench *b = w->b;
    uint64_t now = uv_hrtime();
    b->inflight--;
    if (b->phase == PH_MEASURE) {
        int code = res->code >= 0 && res->code < N_CODES ? res->code : LDG_GRPC_UNKNOWN;
        if (code == LDG_GRPC_OK) {
            b->ok++;
            if (w->is_read) {
                b->reads_ok++;
                const Ledger__V1__ReadResponse *r = (const void *)res->resp;
                if (r != NULL && !r->found)
                    b->read_not_found++;
            } else if (b->o.wl != WL_HEALTH) {
                b->writes_ok++;
                const Ledger__V1__WriteResponse *r = (const void *)res->resp;
                if (r != NULL && r->result_case != LEDGER__V1__WRITE_RESPONSE__RESULT_SUCCESS)
                    b->write_rejected++;
            }
        } else {
            b->errors++;
            b->by_code[code]++;
        }
        uint64_t lat = now - w->started_ns;
        b->hist[hist_index(lat)]++;
        if (lat > b->max_ns)
            b->max_ns = lat;
    }
    if (b->phase == PH_WARMUP || b->phase == PH_MEASURE) {
        issue(w);
        return;
    }
    if (b->phase == PH_DRAIN && b->inflight == 0)
        finish(b);
}

static void issue(struct worker *w)
{
    struct bench *b = w->b;
    int rv;
    w->started_ns = uv_hrtime();
    switch (b->o.wl) {
    case WL_HEALTH: {
        Ledger__V1__HealthCheckRequest req = LEDGER__V1__HEALTH_CHECK_REQUEST__INIT;
        w->is_read = false;
        rv = ldg_grpc_client_call(w->cl, "/ledger.v1.HealthService/Check", &req.base,
                                  &ledger__v1__health_check_response__descriptor,
                                  b->o.timeout_ms, worker_done_cb, w);
        break;
    }
    case WL_WRITE:
        w->is_read = false;
        rv = call_write(w->cl, b, w->client_id, &w->rng, 0, 1, true, worker_done_cb, w);
        break;
    case WL_READ:
    case WL_MIXED:
    default:
        w->is_read = b->o.wl == WL_READ || rng_next(&w->rng) % 100 < b->o.read_pct;
        if (w->is_read) {
            Ledger__V1__OrganizationSlug org = LEDGER__V1__ORGANIZATION_SLUG__INIT;
            Ledger__V1__VaultSlug vault = LEDGER__V1__VAULT_SLUG__INIT;
            Ledger__V1__ReadRequest req = LEDGER__V1__READ_REQUEST__INIT;
            char key[32];
            org.id = b->o.org;
            req.organization_slug = &org;
            if (b->o.vault != 0) {
                vault.slug = b->o.vault;
                req.vault = &vault;
            }
            snprintf(key, sizeof key, "k%" PRIu64, rng_next(&w->rng) % b->o.keys);
            req.key = key;
            req.consistency =
                b->o.linearizable ? LEDGER__V1__READ_CONSISTENCY__READ_CONSISTENCY_LINEARIZABLE
                                  : LEDGER__V1__READ_CONSISTENCY__READ_CONSISTENCY_EVENTUAL;
            rv = ldg_grpc_client_call(w->cl, "/ledger.v1.ReadService/Read", &req.base,
                                      &ledger__v1__read_response__descriptor, b->o.timeout_ms,
                                      worker_done_cb, w);
        } else {
            rv = call_write(w->cl, b, w->client_id, &w->rng, 0, 1, true, worker_done_cb, w);
        }
        break;
    }
    if (rv != 0) {
        fprintf(stderr, "loadgen: call failed to start: %d\n", rv);
        return;
    }
    b->inflight++;
}

/* ---- phases ---- */

static void timer_cb(uv_timer_t *t)
{
    struct bench *b = LDG_CONTAINER_OF(t, struct bench, timer);
    uint64_t now = uv_hrtime();
    if (b->phase == PH_WARMUP) {
        b->phase = PH_MEASURE;
        b->measure_start_ns = now;
        uv_timer_start(&b->timer, timer_cb, (uint64_t)(b->o.duration_s * 1000.0), 0);
        return;
    }
    if (b->phase == PH_MEASURE) {
        b->phase = PH_DRAIN;
        b->measure_end_ns = now;
        if (b->inflight == 0)
            finish(b);
        else /* give stragglers the call timeout, then cancel them */
            uv_timer_start(&b->timer, timer_cb, b->o.timeout_ms + 1000, 0);
        return;
    }
    if (b->phase == PH_DRAIN)
        finish(b);
}

static void start_workers(struct bench *b)
{
    b->phase = b->o.warmup_s > 0 ? PH_WARMUP : PH_MEASURE;
    b->measure_start_ns = uv_hrtime();
    uint64_t first_ms = (uint64_t)((b->phase == PH_WARMUP ? b->o.warmup_s : b->o.duration_s) *
                                   1000.0);
    uv_timer_start(&b->timer, timer_cb, first_ms, 0);
    for (unsigned i = 0; i < b->o.concurrency; i++)
        issue(&b->workers[i]);
}

static void prefill_issue(struct bench *b, unsigned slot);

static void prefill_done_cb(const struct ldg_grpc_client_result *res, void *arg)
{
    struct bench *b = arg;
    b->inflight--;
    if (b->phase != PH_PREFILL)
        goto check_done;
    if (res->code != LDG_GRPC_OK) {
        fail(b, "prefill Write", res);
        b->phase = PH_DRAIN;
        goto check_done;
    }
    const Ledger__V1__WriteResponse *r = (const void *)res->resp;
    if (r == NULL || r->result_case != LEDGER__V1__WRITE_RESPONSE__RESULT_SUCCESS) {
        snprintf(b->fail, sizeof b->fail, "prefill Write: rejected: %s",
                 r && r->result_case == LEDGER__V1__WRITE_RESPONSE__RESULT_ERROR &&
                         r->error->message
                     ? r->error->message
                     : "no success");
        b->exit_code = 1;
        b->phase = PH_DRAIN;
        goto check_done;
    }
    b->prefill_done++;
    if (b->prefill_next < b->o.keys) {
        prefill_issue(b, (unsigned)(b->prefill_done % b->o.connections));
        return;
    }
    if (b->inflight == 0) {
        fprintf(stderr, "loadgen: prefilled %" PRIu64 " keys\n", b->o.keys);
        start_workers(b);
    }
    return;
check_done:
    if (b->inflight == 0)
        finish(b);
}

static void prefill_issue(struct bench *b, unsigned slot)
{
    uint64_t first = b->prefill_next;
    uint64_t n = b->o.keys - first;
    if (n > PREFILL_OPS_PER_TX)
        n = PREFILL_OPS_PER_TX;
    b->prefill_next += n;
    uint64_t rng = 0x9E3779B97F4A7C15ULL ^ (first + 1);
    char cid[64];
    snprintf(cid, sizeof cid, "loadgen-%d-prefill", (int)getpid());
    int rv = call_write(b->clients[slot], b, cid, &rng, first, (unsigned)n, false,
                        prefill_done_cb, b);
    if (rv == 0)
        b->inflight++;
}

static void start_prefill(struct bench *b)
{
    if (b->o.wl == WL_WRITE || b->o.wl == WL_HEALTH) {
        start_workers(b);
        return;
    }
    b->phase = PH_PREFILL;
    fprintf(stderr, "loadgen: prefilling %" PRIu64 " keys\n", b->o.keys);
    for (unsigned i = 0; i < PREFILL_CONCURRENCY && b->prefill_next < b->o.keys; i++)
        prefill_issue(b, i % b->o.connections);
}

static void setup_vault_cb(const struct ldg_grpc_client_result *res, void *arg)
{
    struct bench *b = arg;
    b->inflight--;
    const Ledger__V1__CreateVaultResponse *r = (const void *)res->resp;
    if (res->code != LDG_GRPC_OK || r == NULL || r->vault == NULL) {
        fail(b, "setup CreateVault", res);
        finish(b);
        return;
    }
    b->o.vault = r->vault->slug;
    fprintf(stderr, "loadgen: created organization %" PRIu64 " vault %" PRIu64 "\n", b->o.org,
            b->o.vault);
    start_prefill(b);
}

static void setup_org_cb(const struct ldg_grpc_client_result *res, void *arg)
{
    struct bench *b = arg;
    b->inflight--;
    const Ledger__V1__CreateOrganizationResponse *r = (const void *)res->resp;
    if (res->code != LDG_GRPC_OK || r == NULL || r->slug == NULL) {
        fail(b, "setup CreateOrganization", res);
        finish(b);
        return;
    }
    b->o.org = r->slug->id;
    Ledger__V1__OrganizationSlug org = LEDGER__V1__ORGANIZATION_SLUG__INIT;
    Ledger__V1__CreateVaultRequest req = LEDGER__V1__CREATE_VAULT_REQUEST__INIT;
    org.id = b->o.org;
    req.organization_slug = &org;
    req.name = "loadgen";
    if (ldg_grpc_client_call(b->clients[0], "/ledger.v1.AdminService/CreateVault", &req.base,
                             &ledger__v1__create_vault_response__descriptor, b->o.timeout_ms,
                             setup_vault_cb, b) == 0)
        b->inflight++;
}

static void start(struct bench *b)
{
    if (!b->o.setup) {
        start_prefill(b);
        return;
    }
    b->phase = PH_SETUP;
    Ledger__V1__CreateOrganizationRequest req = LEDGER__V1__CREATE_ORGANIZATION_REQUEST__INIT;
    char name[64];
    snprintf(name, sizeof name, "loadgen-%d", (int)getpid());
    req.name = name;
    if (ldg_grpc_client_call(b->clients[0], "/ledger.v1.AdminService/CreateOrganization",
                             &req.base, &ledger__v1__create_organization_response__descriptor,
                             b->o.timeout_ms, setup_org_cb, b) == 0)
        b->inflight++;
}

static void finish(struct bench *b)
{
    if (b->phase == PH_DONE)
        return;
    b->phase = PH_DONE;
    uv_timer_stop(&b->timer);
    uv_close((uv_handle_t *)&b->timer, NULL);
    for (unsigned i = 0; i < b->o.connections; i++)
        ldg_grpc_client_close(b->clients[i], NULL, NULL);
}

/* ---- report ---- */

static void report(struct bench *b)
{
    const struct opts *o = &b->o;
    double secs = b->measure_end_ns > b->measure_start_ns
                      ? (double)(b->measure_end_ns - b->measure_start_ns) / 1e9
                      : 0.0;
    double ops_s = secs > 0 ? (double)b->ok / secs : 0.0;
    double p50 = (double)hist_quantile(b, 0.50) / 1e3;
    double p99 = (double)hist_quantile(b, 0.99) / 1e3;
    double p999 = (double)hist_quantile(b, 0.999) / 1e3;
    double max = (double)b->max_ns / 1e3;

    printf("loadgen: workload=%s target=%s connections=%u concurrency=%u value_bytes=%zu "
           "keys=%" PRIu64 " org=%" PRIu64 " vault=%" PRIu64 "%s\n",
           o->wl_name, o->target, o->connections, o->concurrency, o->value_bytes, o->keys,
           o->org, o->vault, o->linearizable ? " linearizable" : "");
    if (b->fail[0])
        printf("failed: %s\n", b->fail);
    printf("measured %.2f s: %" PRIu64 " ok, %" PRIu64 " errors, %.1f ops/s\n", secs, b->ok,
           b->errors, ops_s);
    printf("latency (us): p50 %.1f  p99 %.1f  p999 %.1f  max %.1f\n", p50, p99, p999, max);
    if (b->write_rejected || b->read_not_found)
        printf("write rejected %" PRIu64 ", read not found %" PRIu64 "\n", b->write_rejected,
               b->read_not_found);
    for (int c = 0; c < N_CODES; c++)
        if (b->by_code[c])
            printf("errors %s: %" PRIu64 "\n", ldg_grpc_code_name(c), b->by_code[c]);

    printf("{\"workload\":\"%s\",\"target\":\"%s\",\"connections\":%u,\"concurrency\":%u,"
           "\"value_bytes\":%zu,\"keys\":%" PRIu64 ",\"linearizable\":%s,\"seconds\":%.3f,"
           "\"ok\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"reads_ok\":%" PRIu64
           ",\"writes_ok\":%" PRIu64 ",\"write_rejected\":%" PRIu64
           ",\"read_not_found\":%" PRIu64 ",\"ops_per_sec\":%.1f,\"p50_us\":%.1f,"
           "\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,\"errors_by_code\":{",
           o->wl_name, o->target, o->connections, o->concurrency, o->value_bytes, o->keys,
           o->linearizable ? "true" : "false", secs, b->ok, b->errors, b->reads_ok,
           b->writes_ok, b->write_rejected, b->read_not_found, ops_s, p50, p99, p999, max);
    bool first = true;
    for (int c = 0; c < N_CODES; c++) {
        if (!b->by_code[c])
            continue;
        printf("%s\"%s\":%" PRIu64, first ? "" : ",", ldg_grpc_code_name(c), b->by_code[c]);
        first = false;
    }
    printf("},\"failure\":\"");
    for (const char *p = b->fail; *p; p++) /* JSON-escape the few that matter */
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if ((unsigned char)*p >= 0x20)
            putchar(*p);
    printf("\"}\n");
}

/* ---- options ---- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: loadgen --target host:port [options]\n"
            "  --connections N     HTTP/2 connections (default 4)\n"
            "  --concurrency N     outstanding calls in total (default 64)\n"
            "  --duration SECS     measured time (default 10)\n"
            "  --warmup SECS       unmeasured time first (default 2)\n"
            "  --workload W        write | read | mixed:R (R%% reads) | health (default write)\n"
            "  --value-bytes N     set_entity value size (default 100)\n"
            "  --keys N            key space k0..k<N-1>; read prefill size (default 10000)\n"
            "  --org N --vault N   target chain (vault 0 = organization chain)\n"
            "  --setup             create an organization and a vault first\n"
            "  --linearizable      linearizable reads (default eventual)\n"
            "  --timeout-ms N      per-call deadline (default 10000)\n");
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s == '\0' || *end != '\0' || *s == '-')
        return -1;
    *out = v;
    return 0;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {
        {"target", required_argument, NULL, 't'},
        {"connections", required_argument, NULL, 'c'},
        {"concurrency", required_argument, NULL, 'n'},
        {"duration", required_argument, NULL, 'd'},
        {"warmup", required_argument, NULL, 'w'},
        {"workload", required_argument, NULL, 'W'},
        {"value-bytes", required_argument, NULL, 'v'},
        {"keys", required_argument, NULL, 'k'},
        {"org", required_argument, NULL, 'o'},
        {"vault", required_argument, NULL, 'V'},
        {"setup", no_argument, NULL, 'S'},
        {"linearizable", no_argument, NULL, 'L'},
        {"timeout-ms", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (struct opts){
        .connections = 4, .concurrency = 64, .duration_s = 10, .warmup_s = 2,
        .wl = WL_WRITE, .wl_name = "write", .value_bytes = 100, .keys = 10000,
        .timeout_ms = 10000,
    };
    int c;
    uint64_t v;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 't': o->target = optarg; break;
        case 'c':
            if (parse_u64(optarg, &v) || v == 0 || v > 4096) goto bad;
            o->connections = (unsigned)v;
            break;
        case 'n':
            if (parse_u64(optarg, &v) || v == 0 || v > 100000) goto bad;
            o->concurrency = (unsigned)v;
            break;
        case 'd':
        case 'w': {
            char *end;
            double d = strtod(optarg, &end);
            if (*end != '\0' || d < 0 || (c == 'd' && d <= 0)) goto bad;
            if (c == 'd') o->duration_s = d; else o->warmup_s = d;
            break;
        }
        case 'W':
            o->wl_name = optarg;
            if (strcmp(optarg, "write") == 0) {
                o->wl = WL_WRITE;
            } else if (strcmp(optarg, "read") == 0) {
                o->wl = WL_READ;
            } else if (strcmp(optarg, "health") == 0) {
                o->wl = WL_HEALTH;
            } else if (strncmp(optarg, "mixed:", 6) == 0 && parse_u64(optarg + 6, &v) == 0 &&
                       v <= 100) {
                o->wl = WL_MIXED;
                o->read_pct = (unsigned)v;
            } else {
                goto bad;
            }
            break;
        case 'v':
            if (parse_u64(optarg, &v) || v > (1u << 20)) goto bad;
            o->value_bytes = (size_t)v;
            break;
        case 'k':
            if (parse_u64(optarg, &v) || v == 0) goto bad;
            o->keys = v;
            break;
        case 'o': if (parse_u64(optarg, &o->org)) goto bad; break;
        case 'V': if (parse_u64(optarg, &o->vault)) goto bad; break;
        case 'S': o->setup = true; break;
        case 'L': o->linearizable = true; break;
        case 'T':
            if (parse_u64(optarg, &o->timeout_ms) || o->timeout_ms == 0) goto bad;
            break;
        case 'h': usage(stdout); exit(0);
        default: goto bad;
        }
    }
    if (o->target == NULL || optind != argc) {
        fprintf(stderr, "loadgen: --target is required\n");
        goto usage;
    }
    if (o->wl != WL_HEALTH && !o->setup && o->org == 0) {
        fprintf(stderr, "loadgen: workload %s needs --org (and --vault) or --setup\n",
                o->wl_name);
        goto usage;
    }
    if (o->connections > o->concurrency)
        o->connections = o->concurrency;
    return 0;
bad:
    fprintf(stderr, "loadgen: bad option value: %s\n", optarg ? optarg : "");
usage:
    usage(stderr);
    return -1;
}

int main(int argc, char **argv)
{
    struct bench *b = ldg_calloc(1, sizeof *b);
    if (parse_opts(argc, argv, &b->o) != 0)
        return 64;
    b->loop = uv_default_loop();
    b->value = ldg_malloc(b->o.value_bytes ? b->o.value_bytes : 1);
    for (size_t i = 0; i < b->o.value_bytes; i++)
        b->value[i] = (uint8_t)('a' + i % 26);
    b->clients = ldg_calloc(b->o.connections, sizeof *b->clients);
    for (unsigned i = 0; i < b->o.connections; i++) {
        int rv = ldg_grpc_client_new(b->loop, b->o.target, &b->clients[i]);
        if (rv != 0) {
            fprintf(stderr, "loadgen: bad target %s (%d)\n", b->o.target, rv);
            return 64;
        }
    }
    b->workers = ldg_calloc(b->o.concurrency, sizeof *b->workers);
    uint64_t seed = uv_hrtime() ^ ((uint64_t)getpid() << 32);
    for (unsigned i = 0; i < b->o.concurrency; i++) {
        struct worker *w = &b->workers[i];
        w->b = b;
        w->id = i;
        w->cl = b->clients[i % b->o.connections];
        w->rng = seed + 0x9E3779B97F4A7C15ULL * (i + 1);
        if (w->rng == 0)
            w->rng = 1;
        snprintf(w->client_id, sizeof w->client_id, "loadgen-%d-w%u", (int)getpid(), i);
    }
    uv_timer_init(b->loop, &b->timer);
    start(b);
    uv_run(b->loop, UV_RUN_DEFAULT);
    report(b);
    int code = b->exit_code ? b->exit_code : (b->ok > 0 ? 0 : 2);
    uv_loop_close(b->loop);
    ldg_free(b->workers);
    ldg_free(b->clients);
    ldg_free(b->value);
    ldg_free(b);
    return code;
}
