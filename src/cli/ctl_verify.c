/* ledgerctl verify: the disaster-recovery runbook's post-recovery checklist
 * (all nodes healthy, leader elected, vaults accessible, integrity checks
 * pass, write and read succeed, metrics flowing) as one PASS/FAIL table. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "cli/ctl.h"
#include "net/grpc.h"
#include "util/mem.h"

#define VERIFY_ORG_NAME "ledgerctl-verify"
#define VERIFY_VAULT_NAME "scratch"
#define VERIFY_KEY "ledgerctl-verify-probe"

static const struct ldg_ctl_col verify_cols[] = {
    {"check", LDG_CTL_STR}, {"target", LDG_CTL_STR}, {"result", LDG_CTL_STR},
    {"detail", LDG_CTL_STR},
};

struct verify {
    struct ldg_ctl *ctl;
    struct ldg_ctl_table t;
    size_t failed;
};

static void row(struct verify *v, const char *check, const char *target, bool pass,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void row(struct verify *v, const char *check, const char *target, bool pass,
                const char *fmt, ...)
{
    char detail[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    ldg_ctl_cell(&v->t, "%s", check);
    ldg_ctl_cell(&v->t, "%s", target);
    ldg_ctl_cell(&v->t, "%s", pass ? "PASS" : "FAIL");
    ldg_ctl_cell(&v->t, "%s", detail);
    if (!pass)
        v->failed++;
}

static const char *code(const struct ldg_ctl_reply *r)
{
    return ldg_grpc_code_name(r->code);
}

/* Splits "a,b,c" into an owned array of owned strings. */
static size_t split_nodes(const char *list, char ***out)
{
    size_t n = 0;
    char **v = NULL;
    char *copy = ldg_strdup(list), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (*tok == '\0')
            continue;
        v = ldg_realloc(v, (n + 1) * sizeof *v);
        v[n++] = ldg_strdup(tok);
    }
    free(copy);
    *out = v;
    return n;
}

static void check_nodes(struct verify *v, char **nodes, size_t n)
{
    char *leader = NULL;
    bool agreed = n > 0;
    char why[512] = "";
    for (size_t i = 0; i < n; i++) {
        Ledger__V1__HealthCheckRequest hreq = LEDGER__V1__HEALTH_CHECK_REQUEST__INIT;
        struct ldg_ctl_reply r;
        if (ldg_ctl_call(v->ctl, nodes[i], "HealthService/Check", &hreq.base,
                         &ledger__v1__health_check_response__descriptor, &r) != 0) {
            row(v, "node healthy", nodes[i], false, "HealthService/Check: %s: %s", code(&r),
                r.message);
        } else {
            const Ledger__V1__HealthCheckResponse *h = (void *)r.resp;
            bool ok = h->status == LEDGER__V1__HEALTH_STATUS__HEALTH_STATUS_HEALTHY;
            row(v, "node healthy", nodes[i], ok, "%s%s%s",
                ldg_ctl_enum_name(&ledger__v1__health_status__descriptor, (int)h->status,
                                  "HEALTH_STATUS_"),
                h->message[0] ? ": " : "", h->message);
        }
        ldg_ctl_reply_clear(&r);

        Ledger__V1__GetNodeInfoRequest nreq = LEDGER__V1__GET_NODE_INFO_REQUEST__INIT;
        if (ldg_ctl_call(v->ctl, nodes[i], "AdminService/GetNodeInfo", &nreq.base,
                         &ledger__v1__get_node_info_response__descriptor, &r) != 0) {
            if (agreed)
                snprintf(why, sizeof why, "%s: GetNodeInfo: %s: %s", nodes[i], code(&r),
                         r.message);
            agreed = false;
        } else {
            const Ledger__V1__GetNodeInfoResponse *ni = (void *)r.resp;
            const char *lid = ni->leader_id && ni->leader_id->id[0] ? ni->leader_id->id : NULL;
            if (lid == NULL) {
                if (agreed)
                    snprintf(why, sizeof why, "%s knows no leader", nodes[i]);
                agreed = false;
            } else if (leader == NULL) {
                leader = ldg_strdup(lid);
            } else if (strcmp(leader, lid) != 0) {
                if (agreed)
                    snprintf(why, sizeof why, "%s sees leader %s, %s sees %s", nodes[0], leader,
                             nodes[i], lid);
                agreed = false;
            }
        }
        ldg_ctl_reply_clear(&r);
    }
    if (n == 0)
        snprintf(why, sizeof why, "no nodes to ask");
    if (agreed)
        row(v, "leader elected", "cluster", true, "leader %s agreed by %zu node(s)", leader, n);
    else
        row(v, "leader elected", "cluster", false, "%s", why);
    free(leader);
}

static void check_chains(struct verify *v)
{
    struct ldg_ctl_chains cs;
    if (ldg_ctl_all_chains(v->ctl, NULL, true, &cs) != 0) {
        row(v, "vaults readable", v->ctl->addr, false, "cannot list organizations/vaults");
        row(v, "integrity", v->ctl->addr, false, "cannot list organizations/vaults");
        return;
    }
    size_t unreadable = 0, unhealthy = 0;
    char first_bad_read[512] = "", first_bad_integ[512] = "";
    for (size_t i = 0; i < cs.n; i++) {
        Ledger__V1__OrganizationSlug os = LEDGER__V1__ORGANIZATION_SLUG__INIT;
        Ledger__V1__VaultSlug vs = LEDGER__V1__VAULT_SLUG__INIT;
        os.id = cs.v[i].org;
        vs.slug = cs.v[i].vault;
        Ledger__V1__GetTipRequest treq = LEDGER__V1__GET_TIP_REQUEST__INIT;
        treq.organization_slug = &os;
        if (cs.v[i].vault != 0)
            treq.vault = &vs;
        struct ldg_ctl_reply r;
        if (ldg_ctl_call(v->ctl, NULL, "ReadService/GetTip", &treq.base,
                         &ledger__v1__get_tip_response__descriptor, &r) != 0) {
            if (unreadable++ == 0)
                snprintf(first_bad_read, sizeof first_bad_read,
                         "organization %" PRIu64 " vault %" PRIu64 ": GetTip: %s: %s",
                         cs.v[i].org, cs.v[i].vault, code(&r), r.message);
        }
        ldg_ctl_reply_clear(&r);
        Ledger__V1__CheckIntegrityRequest ireq = LEDGER__V1__CHECK_INTEGRITY_REQUEST__INIT;
        ireq.organization_slug = &os;
        ireq.vault = &vs;
        if (ldg_ctl_call(v->ctl, NULL, "AdminService/CheckIntegrity", &ireq.base,
                         &ledger__v1__check_integrity_response__descriptor, &r) != 0) {
            if (unhealthy++ == 0)
                snprintf(first_bad_integ, sizeof first_bad_integ,
                         "organization %" PRIu64 " vault %" PRIu64 ": CheckIntegrity: %s: %s",
                         cs.v[i].org, cs.v[i].vault, code(&r), r.message);
        } else {
            const Ledger__V1__CheckIntegrityResponse *ci = (void *)r.resp;
            if (!ci->healthy && unhealthy++ == 0)
                snprintf(first_bad_integ, sizeof first_bad_integ,
                         "organization %" PRIu64 " vault %" PRIu64 ": %s", cs.v[i].org,
                         cs.v[i].vault,
                         ci->n_issues ? ci->issues[0]->description : "unhealthy");
        }
        ldg_ctl_reply_clear(&r);
    }
    if (unreadable == 0)
        row(v, "vaults readable", v->ctl->addr, true, "%zu chain(s) readable (GetTip)", cs.n);
    else
        row(v, "vaults readable", v->ctl->addr, false, "%zu of %zu unreadable; %s", unreadable,
            cs.n, first_bad_read);
    if (unhealthy == 0)
        row(v, "integrity", v->ctl->addr, true, "%zu chain(s) healthy (quick check)", cs.n);
    else
        row(v, "integrity", v->ctl->addr, false, "%zu of %zu unhealthy; %s", unhealthy, cs.n,
            first_bad_integ);
    ldg_ctl_chains_free(&cs);
}

/* Finds or creates the scratch organization and vault. 0 or -1 (|err| set). */
static int scratch_vault(struct verify *v, uint64_t *org, uint64_t *vault, char *err,
                         size_t err_len)
{
    struct ldg_ctl_orgs orgs;
    *org = *vault = 0;
    if (ldg_ctl_list_orgs(v->ctl, NULL, &orgs) != 0) {
        snprintf(err, err_len, "ListOrganizations failed");
        return -1;
    }
    for (size_t i = 0; i < orgs.n && *org == 0; i++)
        if (strcmp(orgs.orgs[i]->name, VERIFY_ORG_NAME) == 0 && orgs.orgs[i]->slug &&
            orgs.orgs[i]->status == LEDGER__V1__ORGANIZATION_STATUS__ORGANIZATION_STATUS_ACTIVE)
            *org = orgs.orgs[i]->slug->id;
    ldg_ctl_orgs_free(&orgs);
    struct ldg_ctl_reply r;
    if (*org == 0) {
        Ledger__V1__CreateOrganizationRequest req = LEDGER__V1__CREATE_ORGANIZATION_REQUEST__INIT;
        req.name = VERIFY_ORG_NAME;
        if (ldg_ctl_call(v->ctl, NULL, "AdminService/CreateOrganization", &req.base,
                         &ledger__v1__create_organization_response__descriptor, &r) != 0) {
            snprintf(err, err_len, "CreateOrganization: %s: %s", code(&r), r.message);
            ldg_ctl_reply_clear(&r);
            return -1;
        }
        const Ledger__V1__CreateOrganizationResponse *co = (void *)r.resp;
        *org = co->slug ? co->slug->id : 0;
        ldg_ctl_reply_clear(&r);
    }
    Ledger__V1__ListVaultsResponse *lv = NULL;
    if (ldg_ctl_list_vaults(v->ctl, NULL, *org, &lv) != 0) {
        snprintf(err, err_len, "ListVaults failed");
        return -1;
    }
    for (size_t i = 0; i < lv->n_vaults && *vault == 0; i++)
        if (strcmp(lv->vaults[i]->name, VERIFY_VAULT_NAME) == 0 && lv->vaults[i]->vault &&
            lv->vaults[i]->status == LEDGER__V1__VAULT_STATUS__VAULT_STATUS_ACTIVE)
            *vault = lv->vaults[i]->vault->slug;
    protobuf_c_message_free_unpacked(&lv->base, NULL);
    if (*vault == 0) {
        Ledger__V1__OrganizationSlug os = LEDGER__V1__ORGANIZATION_SLUG__INIT;
        Ledger__V1__CreateVaultRequest req = LEDGER__V1__CREATE_VAULT_REQUEST__INIT;
        os.id = *org;
        req.organization_slug = &os;
        req.name = VERIFY_VAULT_NAME;
        if (ldg_ctl_call(v->ctl, NULL, "AdminService/CreateVault", &req.base,
                         &ledger__v1__create_vault_response__descriptor, &r) != 0) {
            snprintf(err, err_len, "CreateVault: %s: %s", code(&r), r.message);
            ldg_ctl_reply_clear(&r);
            return -1;
        }
        const Ledger__V1__CreateVaultResponse *cv = (void *)r.resp;
        *vault = cv->vault ? cv->vault->slug : 0;
        ldg_ctl_reply_clear(&r);
    }
    return 0;
}

static void random_bytes(uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t got = getrandom(p, n, 0);
        if (got <= 0)
            abort(); /* the kernel CSPRNG does not fail for small requests */
        p += got;
        n -= (size_t)got;
    }
}

static void check_write_read(struct verify *v)
{
    char err[600];
    uint64_t org, vault;
    if (scratch_vault(v, &org, &vault, err, sizeof err) != 0) {
        row(v, "write", "scratch vault", false, "%s", err);
        row(v, "read", "scratch vault", false, "skipped: no scratch vault");
        return;
    }
    char target[80];
    snprintf(target, sizeof target, "org:%" PRIu64 "/vault:%" PRIu64, org, vault);
    uint8_t rnd[16], idem[16];
    char value[33];
    random_bytes(rnd, sizeof rnd);
    random_bytes(idem, sizeof idem);
    for (size_t i = 0; i < sizeof rnd; i++)
        sprintf(value + 2 * i, "%02x", rnd[i]);

    Ledger__V1__OrganizationSlug os = LEDGER__V1__ORGANIZATION_SLUG__INIT;
    Ledger__V1__VaultSlug vs = LEDGER__V1__VAULT_SLUG__INIT;
    Ledger__V1__ClientId cid = LEDGER__V1__CLIENT_ID__INIT;
    Ledger__V1__SetEntity set = LEDGER__V1__SET_ENTITY__INIT;
    Ledger__V1__Operation op = LEDGER__V1__OPERATION__INIT;
    Ledger__V1__Operation *ops[1] = {&op};
    Ledger__V1__WriteRequest wreq = LEDGER__V1__WRITE_REQUEST__INIT;
    os.id = org;
    vs.slug = vault;
    cid.id = "ledgerctl-verify";
    set.key = VERIFY_KEY;
    set.value.data = (uint8_t *)value;
    set.value.len = 32;
    op.op_case = LEDGER__V1__OPERATION__OP_SET_ENTITY;
    op.set_entity = &set;
    wreq.organization_slug = &os;
    wreq.vault = &vs;
    wreq.client_id = &cid;
    wreq.idempotency_key.data = idem;
    wreq.idempotency_key.len = sizeof idem;
    wreq.n_operations = 1;
    wreq.operations = ops;
    struct ldg_ctl_reply r;
    bool wrote = false;
    if (ldg_ctl_call(v->ctl, NULL, "WriteService/Write", &wreq.base,
                     &ledger__v1__write_response__descriptor, &r) != 0) {
        row(v, "write", target, false, "Write: %s: %s", code(&r), r.message);
    } else {
        const Ledger__V1__WriteResponse *wr = (void *)r.resp;
        if (wr->result_case == LEDGER__V1__WRITE_RESPONSE__RESULT_SUCCESS) {
            wrote = true;
            row(v, "write", target, true, "set %s at height %" PRIu64, VERIFY_KEY,
                wr->success->block_height);
        } else {
            row(v, "write", target, false, "Write refused: %s",
                wr->result_case == LEDGER__V1__WRITE_RESPONSE__RESULT_ERROR ? wr->error->message
                                                                           : "no result");
        }
    }
    ldg_ctl_reply_clear(&r);
    if (!wrote) {
        row(v, "read", target, false, "skipped: the write failed");
        return;
    }
    Ledger__V1__ReadRequest rreq = LEDGER__V1__READ_REQUEST__INIT;
    rreq.organization_slug = &os;
    rreq.vault = &vs;
    rreq.key = VERIFY_KEY;
    rreq.consistency = LEDGER__V1__READ_CONSISTENCY__READ_CONSISTENCY_LINEARIZABLE;
    if (ldg_ctl_call(v->ctl, NULL, "ReadService/Read", &rreq.base,
                     &ledger__v1__read_response__descriptor, &r) != 0) {
        row(v, "read", target, false, "Read: %s: %s", code(&r), r.message);
    } else {
        const Ledger__V1__ReadResponse *rr = (void *)r.resp;
        bool same = rr->found && rr->value.len == 32 && memcmp(rr->value.data, value, 32) == 0;
        if (same)
            row(v, "read", target, true, "LINEARIZABLE read returned the written value");
        else
            row(v, "read", target, false, "%s", rr->found ? "read returned a different value"
                                                          : "key not found after the write");
    }
    ldg_ctl_reply_clear(&r);
}

static void check_metrics(struct verify *v, const char *metrics)
{
    int status = 0;
    char *body = NULL;
    char err[512];
    if (ldg_ctl_http_get(metrics, "/metrics", v->ctl->timeout_ms, &status, &body, err,
                         sizeof err) != 0) {
        row(v, "metrics", metrics, false, "GET /metrics: %s", err);
        return;
    }
    if (status != 200)
        row(v, "metrics", metrics, false, "GET /metrics: HTTP %d", status);
    else if (strstr(body, "ledger_build_info") == NULL)
        row(v, "metrics", metrics, false, "GET /metrics: no ledger_build_info in the response");
    else
        row(v, "metrics", metrics, true, "GET /metrics answers with ledger_build_info");
    free(body);
}

int ldg_ctl_cmd_verify(struct ldg_ctl *ctl, int argc, char **argv)
{
    const char *metrics = NULL, *nodes_arg = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char **dst = NULL;
        const char *name = NULL;
        if (strncmp(a, "--metrics", 9) == 0 && (a[9] == '\0' || a[9] == '=')) {
            dst = &metrics;
            name = "--metrics";
        } else if (strncmp(a, "--nodes", 7) == 0 && (a[7] == '\0' || a[7] == '=')) {
            dst = &nodes_arg;
            name = "--nodes";
        } else {
            return ldg_ctl_usage_error("verify", "unexpected argument \"%s\"", a);
        }
        size_t nl = strlen(name);
        if (a[nl] == '=') {
            *dst = a + nl + 1;
        } else {
            if (i + 1 >= argc)
                return ldg_ctl_usage_error("verify", "%s needs a value", name);
            *dst = argv[++i];
        }
    }
    if (metrics == NULL || metrics[0] == '\0')
        return ldg_ctl_usage_error("verify", "verify needs --metrics HOST:PORT");

    struct verify v = {.ctl = ctl};
    ldg_ctl_table_init(&v.t, verify_cols, 4);
    char **nodes = NULL;
    size_t n_nodes = 0;
    if (nodes_arg != NULL) {
        n_nodes = split_nodes(nodes_arg, &nodes);
        if (n_nodes == 0) {
            ldg_ctl_table_free(&v.t);
            return ldg_ctl_usage_error("verify", "--nodes wants a comma-separated list");
        }
    } else {
        Ledger__V1__GetClusterInfoRequest req = LEDGER__V1__GET_CLUSTER_INFO_REQUEST__INIT;
        struct ldg_ctl_reply r;
        if (ldg_ctl_call(ctl, NULL, "AdminService/GetClusterInfo", &req.base,
                         &ledger__v1__get_cluster_info_response__descriptor, &r) != 0) {
            row(&v, "cluster members", ctl->addr, false, "GetClusterInfo: %s: %s", code(&r),
                r.message);
        } else {
            const Ledger__V1__GetClusterInfoResponse *ci = (void *)r.resp;
            for (size_t i = 0; i < ci->n_members; i++) {
                nodes = ldg_realloc(nodes, (n_nodes + 1) * sizeof *nodes);
                nodes[n_nodes++] = ldg_strdup(ci->members[i]->address);
            }
            row(&v, "cluster members", ctl->addr, ci->n_members > 0, "%zu member(s)",
                ci->n_members);
        }
        ldg_ctl_reply_clear(&r);
        if (n_nodes == 0) {
            nodes = ldg_malloc(sizeof *nodes);
            nodes[n_nodes++] = ldg_strdup(ctl->addr);
        }
    }
    check_nodes(&v, nodes, n_nodes);
    check_chains(&v);
    check_write_read(&v);
    check_metrics(&v, metrics);

    if (ctl->json) {
        printf("{\"passed\": %s, \"failed_checks\": %zu, \"checks\": ",
               v.failed == 0 ? "true" : "false", v.failed);
        ldg_ctl_table_json(&v.t, stdout);
        fputs("}\n", stdout);
    } else {
        ldg_ctl_table_print(&v.t, stdout);
        printf("\n%s: %zu of %zu checks passed\n", v.failed == 0 ? "PASS" : "FAIL",
               v.t.n_rows - v.failed, v.t.n_rows);
    }
    for (size_t i = 0; i < n_nodes; i++)
        free(nodes[i]);
    free(nodes);
    int rc = v.failed == 0 ? LDG_CTL_EXIT_OK : LDG_CTL_EXIT_FAIL;
    ldg_ctl_table_free(&v.t);
    return rc;
}
