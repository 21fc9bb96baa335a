/* ledger.v1.AdminService: organizations, vaults, ForceGc. The other
 * AdminService methods live in admin_cluster.c (membership),
 * admin_integrity.c (CheckIntegrity, CreateSnapshot) and admin_backup.c
 * (backups); the rest answer UNIMPLEMENTED (see registry.c).
 *
 * Reads (the Get and List methods) are served from this node's applied
 * state. Changes (the Create and Delete methods) are submitted to the cluster as commands and answered
 * from the submit callback; ForceGc runs one TTL pass (node/ttl.h) on the
 * leader and answers when its expire transactions are applied. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cluster/cluster.h"
#include "ledger/local_health.h"
#include "ledger/v1/ledger.pb-c.h"
#include "node/ttl.h"
#include "rpc/common.h"
#include "rpc/convert.h"
#include "rpc/page_token.h"
#include "rpc/validate.h"
#include "util/assert.h"
#include "util/buf.h"
#include "util/mem.h"

#define INVALID(call, msg) ldg_grpc_call_fail((call), LDG_GRPC_INVALID_ARGUMENT, "%s", (msg))

struct admin_req {
    struct ldg_grpc_call *call;
    struct ldg_rpc_ctx *ctx;
    uint8_t type; /* enum ldg_cmd_type */
    uint64_t org, vault;
};

static Ledger__V1__OrganizationInfo *org_info(struct ldg_arena *a, const struct ldg_org_info *o)
{
    Ledger__V1__OrganizationInfo *m = ldg_arena_alloc(a, sizeof *m);
    ledger__v1__organization_info__init(m);
    m->slug = ldg_rpc_org_slug(a, o->slug);
    m->name = ldg_arena_strndup(a, o->name.data, o->name.len);
    m->status = ldg_rpc_org_status(o->status);
    m->created_at = ldg_rpc_timestamp(a, o->created_seconds, o->created_nanos);
    m->vault_count = o->vault_count;
    return m;
}

static Ledger__V1__VaultInfo *vault_info(struct ldg_arena *a, struct ldg_rpc_ctx *ctx,
                                         const struct ldg_chain_info *c)
{
    Ledger__V1__VaultInfo *m = ldg_arena_alloc(a, sizeof *m);
    ledger__v1__vault_info__init(m);
    m->organization_slug = ldg_rpc_org_slug(a, c->org);
    m->vault = ldg_rpc_vault_slug(a, c->vault);
    m->name = ldg_arena_strndup(a, c->name.data, c->name.len);
    m->optional_height_case = LEDGER__V1__VAULT_INFO__OPTIONAL_HEIGHT_HEIGHT;
    m->height = c->height;
    m->state_root = ldg_rpc_hash(a, c->state_root);
    m->block_hash = ldg_rpc_hash(a, c->tip_hash);
    m->status = ldg_rpc_vault_status(c->status);
    struct ldg_node_status st;
    memset(&st, 0, sizeof st);
    if (ctx->node_status)
        ctx->node_status(ctx->node_status_arg, &st);
    if (ctx->cluster) {
        struct ldg_cluster_status cs;
        memset(&cs, 0, sizeof cs);
        ldg_cluster_get_status(ctx->cluster, &cs);
        if (cs.leader_id)
            st.leader_id = cs.leader_id;
    }
    size_t n = 0;
    m->nodes = ldg_arena_alloc(a, 2 * sizeof *m->nodes);
    if (st.node_id)
        m->nodes[n++] = ldg_rpc_node_id(a, st.node_id);
    if (st.leader_id && st.leader_id != st.node_id)
        m->nodes[n++] = ldg_rpc_node_id(a, st.leader_id);
    m->n_nodes = n;
    if (st.leader_id)
        m->leader = ldg_rpc_node_id(a, st.leader_id);
    Ledger__V1__RetentionPolicy *rp = ldg_arena_alloc(a, sizeof *rp);
    ledger__v1__retention_policy__init(rp);
    rp->mode = LEDGER__V1__RETENTION_MODE__RETENTION_MODE_FULL;
    m->retention_policy = rp;
    return m;
}

/* ---- changes through the cluster ---- */

static void admin_done_cb(void *arg, int status, const struct ldg_cmd_result *res,
                          const struct ldg_block_made *block)
{
    struct admin_req *q = arg;
    struct ldg_grpc_call *call = q->call;
    struct ldg_arena a;
    ldg_arena_init(&a);
    if (status != 0) {
        ldg_rpc_fail_cluster(call, q->ctx, status, "the change");
        goto out;
    }
    switch (res->code) {
    case LDG_RES_OK:
        break;
    case LDG_RES_SLUG_EXISTS:
        ldg_grpc_call_fail(call, LDG_GRPC_ALREADY_EXISTS,
                           "%s slug %" PRIu64 " is already used (slugs are never reused); omit "
                           "the slug to get a new one",
                           q->type == LDG_CMD_CREATE_ORG ? "organization" : "vault",
                           q->type == LDG_CMD_CREATE_ORG ? q->org : q->vault);
        goto out;
    case LDG_RES_ORG_NOT_FOUND:
        ldg_grpc_call_fail(call, LDG_GRPC_NOT_FOUND, "organization %" PRIu64 " not found",
                           q->org);
        goto out;
    case LDG_RES_VAULT_NOT_FOUND:
        ldg_grpc_call_fail(call, LDG_GRPC_NOT_FOUND,
                           "vault %" PRIu64 " of organization %" PRIu64 " not found", q->vault,
                           q->org);
        goto out;
    case LDG_RES_HAS_VAULTS:
        ldg_grpc_call_fail(call, LDG_GRPC_FAILED_PRECONDITION,
                           "organization %" PRIu64 " still has live vaults: delete them first "
                           "or pass force: true", q->org);
        goto out;
    case LDG_RES_CHAIN_INACTIVE:
        ldg_grpc_call_fail(call, LDG_GRPC_FAILED_PRECONDITION, "the chain is not ACTIVE");
        goto out;
    default:
        ldg_grpc_call_fail(call, LDG_GRPC_INVALID_ARGUMENT, "rejected by the state machine: %s",
                           ldg_result_code_name(res->code));
        goto out;
    }
    switch (q->type) {
    case LDG_CMD_CREATE_ORG: {
        Ledger__V1__CreateOrganizationResponse resp;
        ledger__v1__create_organization_response__init(&resp);
        resp.slug = ldg_rpc_org_slug(&a, res->org);
        resp.genesis = ldg_rpc_header(&a, &res->genesis, 0, NULL);
        ldg_grpc_call_reply(call, &resp.base);
        break;
    }
    case LDG_CMD_DELETE_ORG: {
        Ledger__V1__DeleteOrganizationResponse resp;
        ledger__v1__delete_organization_response__init(&resp);
        resp.status = LEDGER__V1__ORGANIZATION_STATUS__ORGANIZATION_STATUS_DELETED;
        ldg_grpc_call_reply(call, &resp.base);
        break;
    }
    case LDG_CMD_CREATE_VAULT: {
        Ledger__V1__CreateVaultResponse resp;
        ledger__v1__create_vault_response__init(&resp);
        resp.vault = ldg_rpc_vault_slug(&a, res->vault);
        resp.genesis = ldg_rpc_header(&a, &res->genesis, 0, NULL);
        ldg_grpc_call_reply(call, &resp.base);
        break;
    }
    default: {
        Ledger__V1__DeleteVaultResponse resp;
        ledger__v1__delete_vault_response__init(&resp);
        resp.status = LEDGER__V1__VAULT_STATUS__VAULT_STATUS_DELETED;
        ldg_grpc_call_reply(call, &resp.base);
        break;
    }
    }
out:
    ldg_arena_free(&a);
    ldg_free(q);
}

static void admin_submit(struct ldg_grpc_call *call, struct ldg_rpc_ctx *ctx,
                         const struct ldg_cmd *cmd)
{
    uint64_t timeout_ms;
    if (ldg_rpc_timeout_ms(call, &timeout_ms) != 0)
        return;
    struct admin_req *q = ldg_calloc(1, sizeof *q);
    q->call = call;
    q->ctx = ctx;
    q->type = cmd->type;
    q->org = cmd->type == LDG_CMD_CREATE_ORG ? cmd->slug : cmd->org;
    q->vault = cmd->type == LDG_CMD_CREATE_VAULT ? cmd->slug : cmd->vault;
    int rv = ldg_cluster_submit(ctx->cluster, cmd, timeout_ms, admin_done_cb, q);
    if (rv != 0) {
        ldg_free(q);
        ldg_rpc_fail_cluster(call, ctx, rv, "the change");
    }
}

/* Organization lookup for admin calls: NOT_FOUND when unknown (or deleted
 * and |live|). Ends the call on failure. */
static int org_lookup(struct ldg_grpc_call *call, struct ldg_rpc_ctx *ctx, uint64_t org,
                      bool live, struct ldg_rpc_read *r)
{
    if (ldg_rpc_txn_begin(call, ctx, r) != 0)
        return -1;
    int rv = ldg_ledger_get_org(r->ledger, r->txn, org, &r->org);
    if (rv == 0 && (!live || r->org.status != LDG_STATUS_DELETED))
        return 0;
    if (rv == 0 || rv == LDG_ENOTFOUND)
        ldg_grpc_call_fail(call, LDG_GRPC_NOT_FOUND, "organization %" PRIu64 " not found%s", org,
                           rv == 0 ? " (deleted)" : "");
    else
        ldg_rpc_fail_storage(call, rv, "read organization");
    ldg_rpc_read_end(r);
    return -1;
}

/* The organization of a Get/Delete request: checks |slug|
 * (INVALID_ARGUMENT), then org_lookup. Ends the call on failure. */
static int org_of_request(struct ldg_grpc_call *call, struct ldg_rpc_ctx *ctx,
                          const Ledger__V1__OrganizationSlug *slug, bool live, uint64_t *org,
                          struct ldg_rpc_read *r)
{
    char msg[256];
    uint64_t vault;
    if (ldg_rpc_check_chain(slug, NULL, org, &vault, msg, sizeof msg) != 0) {
        INVALID(call, msg);
        return -1;
    }
    return org_lookup(call, ctx, *org, live, r);
}

/* Page tokens of the admin lists carry |n| big-endian u64s. Decode |token|
 * (may be empty) made for |kind|/|qh| into |after| (left as is when empty or
 * of another length). Fails the call on a bad token. */
static int u64_cursor_of(struct ldg_grpc_call *call, const char *token, uint8_t kind,
                         const uint8_t qh[LDG_HASH_LEN], uint64_t *after, size_t n)
{
    if (token[0] == '\0')
        return 0;
    char msg[256];
    uint8_t *cur;
    size_t cl;
    if (ldg_page_token_decode(token, kind, qh, &cur, &cl, msg, sizeof msg) != 0) {
        INVALID(call, msg);
        return -1;
    }
    if (cl == 8 * n)
        for (size_t i = 0; i < n; i++)
            after[i] = ldg_get_u64be(cur + 8 * i);
    ldg_free(cur);
    return 0;
}

/* A token continuing after |last| (n u64s, at most 2); caller frees. */
static char *u64_token(uint8_t kind, const uint8_t qh[LDG_HASH_LEN], const uint64_t *last,
                       size_t n)
{
    uint8_t c[16];
    LDG_ASSERT(n <= 2);
    for (size_t i = 0; i < n; i++)
        ldg_put_u64be(c + 8 * i, last[i]);
    return ldg_page_token_encode(kind, qh, ldg_bytes_of(c, 8 * n));
}

static void create_org_handler(struct ldg_grpc_call *call, const ProtobufCMessage *reqm,
                               void *ud)
{
    const Ledger__V1__CreateOrganizationRequest *req =
        (const Ledger__V1__CreateOrganizationRequest *)reqm;
    char msg[256];
    if (ldg_rpc_check_name("name", req->name, false, msg, sizeof msg) != 0) {
        INVALID(call, msg);
        return;
    }
    if (ldg_rpc_ledger(call, ud) == NULL)
        return;
    struct ldg_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = LDG_CMD_CREATE_ORG;
    cmd.slug = req->slug ? req->slug->id : 0;
    cmd.name = ldg_bytes_str(req->name);
    admin_submit(call, ud, &cmd);
}

static void get_org_handler(struct ldg_grpc_call *call, const ProtobufCMessage *reqm, void *ud)
{
    const Ledger__V1__GetOrganizationRequest *req =
        (const Ledger__V1__GetOrganizationRequest *)reqm;
    uint64_t org;
    struct ldg_rpc_read r;
    if (org_of_request(call, ud, req->organization_slug, false, &org, &r) != 0)
        return;
    struct ldg_arena a;
    ldg_arena_init(&a);
    ldg_grpc_call_reply(call, &org_info(&a, &r.org)->base);
    ldg_arena_free(&a);
    ldg_rpc_read_end(&r);
}

struct org_page {
    struct ldg_arena *a;
    Ledger__V1__OrganizationInfo **rows;
    size_t n, limit;
    uint64_t last;
    bool more;
};

static int org_row_cb(const struct ldg_org_info *o, void *arg)
{
    struct org_page *pg = arg;
    if (pg->n == pg->limit) {
        pg->more = true;
        return 1;
    }
    pg->rows[pg->n++] = org_info(pg->a, o);
    pg->last = o->slug;
    return 0;
}

static void list_orgs_handler(struct ldg_grpc_call *call, const ProtobufCMessage *reqm, void *ud)
{
    const Ledger__V1__ListOrganizationsRequest *req =
        (const Ledger__V1__ListOrganizationsRequest *)reqm;
    char msg[256];
    size_t limit;
    if (ldg_rpc_check_limit(req->limit, LDG_RPC_DEFAULT_PAGE, &limit, msg, sizeof msg) != 0) {
        INVALID(call, msg);
        return;
    }
    uint8_t qh[LDG_HASH_LEN];
    ldg_page_query_hash(LDG_PAGE_ORGANIZATIONS, 0, 0, NULL, 0, qh);
    uint64_t after = 0;
    if (u64_cursor_of(call, req->page_token, LDG_PAGE_ORGANIZATIONS, qh, &after, 1) != 0)
        return;
    struct ldg_rpc_read r;
    if (ldg_rpc_txn_begin(call, ud, &r) != 0)
        return;
    struct ldg_arena a;
    ldg_arena_init(&a);
    struct org_page pg = {.a = &a, .limit = limit};
    pg.rows = ldg_arena_alloc(&a, limit * sizeof *pg.rows);
    int rv = ldg_ledger_list_orgs(r.ledger, r.txn, after, limit + 1, org_row_cb, &pg);
    if (rv != 0 && rv != 1) {
        ldg_rpc_fail_storage(call, rv, "list organizations");
    } else {
        Ledger__V1__ListOrganizationsResponse resp;
        ledger__v1__list_organizations_response__init(&resp);
        resp.n_organizations = pg.n;
        resp.organizations = pg.rows;
        char *tok = NULL;
        if (pg.more) {
            tok = u64_token(LDG_PAGE_ORGANIZATIONS, qh, &pg.last, 1);
            resp.next_page_token = tok;
        }
        ldg_grpc_call_reply(call, &resp.base);
        ldg_free(tok);
    }
    ldg_arena_free(&a);
    ldg_rpc_read_end(&r);
}

static void delete_org_handler(struct ldg_grpc_call *call, const ProtobufCMessage *reqm,
                               void *ud)
{
    const Ledger__V1__DeleteOrganizationRequest *req =
        (const Ledger__V1__DeleteOrganizationRequest *)reqm;
    uint64_t org;
    struct ldg_rpc_read r;
    if (org_of_request(call, ud, req->organization_slug, true, &org, &r) != 0)
        return;
    uint64_t live = r.org.vault_count;
    ldg_rpc_read_end(&r);
    if (live > 0 && !req->force) {
        ldg_grpc_call_fail(call, LDG_GRPC_FAILED_PRECONDITION,
                           "organization %" PRIu64 " has %" PRIu64 " live vault(s): delete them "
                           "first or pass force: true", org, live);
        return;
    }
    struct ldg_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = LDG_CMD_DELETE_ORG;
    cmd.org = org;
    cmd.force = req->force;
    admin_submit(call, ud, &cmd);
}

static void create_vault_handler(struct ldg_grpc_call *call, const ProtobufCMessage *reqm,
                                 void *ud)
{
    const Ledger__V1__CreateVaultRequest *req = (const Ledger__V1__CreateVaultRequest *)reqm;
    char msg[256];
    uint64_t org, vault;
    if (ldg_rpc_check_chain(req->organization_slug, req->vault, &org, &vault, msg,
                            sizeof msg) != 0 ||
        ldg_rpc_check_name("name", req->name, true, msg, sizeof msg) != 0) {
        INVALID(call, msg);
        return;
    }
    if (req->retention_policy &&
        req->retention_policy->mode == LEDGER__V1__RETENTION_MODE__RETENTION_MODE_COMPACTED) {
        ldg_grpc_call_fail(call, LDG_GRPC_INVALID_ARGUMENT,
                           "retention_policy.mode: RETENTION_MODE_COMPACTED is not supported by "
                           "this version; use RETENTION_MODE_FULL (the default)");
        return;
    }
    struct ldg_rpc_read r;
    if (org_lookup(call, ud, org, true, &r) != 0)
        return;
    int st = r.org.status;
    ldg_rpc_read_end(&r);
    if (st != LDG_STATUS_ACTIVE) {
        ldg_grpc_call_fail(call, LDG_GRPC_FAILED_PRECONDITION,
                           "organization %" PRIu64 " is not ACTIVE: no new vaults", org);
        return;
    }
    struct ldg_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = LDG_CMD_CREATE_VAULT;
    cmd.org = org;
    cmd.slug = vault;
    cmd.name = ldg_bytes_str(req->name);
    admin_submit(call, ud, &cmd);
}

static int vault_required(const Ledger__V1__OrganizationSlug *o, const Ledger__V1__VaultSlug *v,
                          uint64_t *org, uint64_t *vault, char *msg, size_t cap)
{
    if (ldg_rpc_check_chain(o, v, org, vault, msg, cap) != 0)
        return LDG_EINVAL;
    if (*vault == 0) {
        snprintf(msg, cap, "vault: required, a non-zero slug (e.g. {\"slug\": \"7\"})");
        return LDG_EINVAL;
    }
    return 0;
}

static void delete_vault_handler(struct ldg_grpc_call *call, const ProtobufCMessage *reqm,
                                 void *ud)
{
    const Ledger__V1__DeleteVaultRequest *req = (const Ledger__V1__DeleteVaultRequest *)reqm;
    char msg[256];
    uint64_t org, vault;
    if (vault_required(req->organization_slug, req->vault, &org, &vault, msg, sizeof msg) != 0) {
        INVALID(call, msg);
        return;
    }
    struct ldg_rpc_read r;
    if (ldg_rpc_chain_begin(call, ud, org, vault, LDG_RPC_READ, &r) != 0)
        return;
    ldg_rpc_read_end(&r);
    struct ldg_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = LDG_CMD_DELETE_VAULT;
    cmd.org = org;
    cmd.vault = vault;
    admin_submit(call, ud, &cmd);
}

static void get_vault_handler(struct ldg_grpc_call *call, const ProtobufCMessage *reqm, void *ud)
{
    const Ledger__V1__GetVaultRequest *req = (const Ledger__V1__GetVaultRequest *)reqm;
    char msg[256];
    uint64_t org, vault;
    if (vault_required(req->organization_slug, req->vault, &org, &vault, msg, sizeof msg) != 0) {
        INVALID(call, msg);
        return;
    }
    struct ldg_rpc_read r;
    if (ldg_rpc_txn_begin(call, ud, &r) != 0)
        return;
    int rv = ldg_ledger_get_chain(r.ledger, r.txn, org, vault, &r.chain);
    if (rv == 0)
        rv = ldg_local_health_apply(r.ledger->store, r.txn, &r.chain);
    if (rv == LDG_ENOTFOUND) {
        ldg_grpc_call_fail(call, LDG_GRPC_NOT_FOUND,
                           "vault %" PRIu64 " of organization %" PRIu64 " not found", vault, org);
    } else if (rv != 0) {
        ldg_rpc_fail_storage(call, rv, "read vault");
    } else {
        struct ldg_arena a;
        ldg_arena_init(&a);
        ldg_grpc_call_reply(call, &vault_info(&a, ud, &r.chain)->base);
        ldg_arena_free(&a);
    }
    ldg_rpc_read_end(&r);
}

struct vault_page {
    struct ldg_arena *a;
    struct ldg_rpc_ctx *ctx;
    struct ldg_rpc_read *r; /* txn for this node's chain health */
    Ledger__V1__VaultInfo **rows;
    size_t n, cap, limit; /* limit 0: all */
    uint64_t last[2]; /* org, vault */
    bool more;
};

static int vault_row_cb(const struct ldg_chain_info *c, void *arg)
{
    struct vault_page *pg = arg;
    if (pg->limit && pg->n == pg->limit) {
        pg->more = true;
        return 1;
    }
    if (pg->n == pg->cap) {
        size_t ncap = pg->cap ? pg->cap * 2 : 64;
        Ledger__V1__VaultInfo **rows = ldg_arena_alloc(pg->a, ncap * sizeof *rows);
        if (pg->n)
            memcpy(rows, pg->rows, pg->n * sizeof *rows);
        pg->rows = rows;
        pg->cap = ncap;
    }
    struct ldg_chain_info eff = *c;
    int rv = ldg_local_health_apply(pg->r->ledger->store, pg->r->txn, &eff);
    if (rv != 0)
        return rv;
    pg->rows[pg->n++] = vault_info(pg->a, pg->ctx, &eff);
    pg->last[0] = c->org;
    pg->last[1] = c->vault;
    return 0;
}

static void list_vaults_handler(struct ldg_grpc_call *call, const ProtobufCMessage *reqm,
                                void *ud)
{
    const Ledger__V1__ListVaultsRequest *req = (const Ledger__V1__ListVaultsRequest *)reqm;
    char msg[256];
    size_t limit = 0;
    if (req->limit != 0 &&
        ldg_rpc_check_limit(req->limit, LDG_RPC_DEFAULT_PAGE, &limit, msg, sizeof msg) != 0) {
        INVALID(call, msg);
        return;
    }
    uint64_t org = req->organization_slug ? req->organization_slug->id : 0;
    uint8_t qh[LDG_HASH_LEN];
    ldg_page_query_hash(LDG_PAGE_VAULTS, org, 0, NULL, 0, qh);
    uint64_t after[2] = {0, 0}; /* org, vault */
    if (u64_cursor_of(call, req->page_token, LDG_PAGE_VAULTS, qh, after, 2) != 0)
        return;
    struct ldg_rpc_read r;
    if (ldg_rpc_txn_begin(call, ud, &r) != 0)
        return;
    struct ldg_arena a;
    ldg_arena_init(&a);
    struct vault_page pg = {.a = &a, .ctx = ud, .r = &r, .limit = limit};
    int rv = ldg_ledger_list_vaults(r.ledger, r.txn, org, after[0], after[1], false,
                                    limit ? limit + 1 : 0, vault_row_cb, &pg);
    if (rv != 0 && rv != 1) {
        ldg_rpc_fail_storage(call, rv, "list vaults");
    } else {
        Ledger__V1__ListVaultsResponse resp;
        ledger__v1__list_vaults_response__init(&resp);
        resp.n_vaults = pg.n;
        resp.vaults = pg.rows;
        char *tok = NULL;
        if (pg.more) {
            tok = u64_token(LDG_PAGE_VAULTS, qh, pg.last, 2);
            resp.next_page_token = tok;
        }
        ldg_grpc_call_reply(call, &resp.base);
        ldg_free(tok);
    }
    ldg_arena_free(&a);
    ldg_rpc_read_end(&r);
}

/* ---- ForceGc ---- */

struct gc_req {
    struct ldg_grpc_call *call;
    struct ldg_rpc_ctx *ctx;
};

static void gc_reply(struct ldg_grpc_call *call, const struct ldg_ttl_stats *st)
{
    Ledger__V1__ForceGcResponse resp;
    ledger__v1__force_gc_response__init(&resp);
    resp.expired_count = st->expired;
    resp.chains_scanned = st->chains_scanned;
    ldg_grpc_call_reply(call, &resp.base);
}

static void gc_done_cb(void *arg, int status, const struct ldg_ttl_stats *st)
{
    struct gc_req *g = arg;
    if (status != 0)
        ldg_rpc_fail_cluster(g->call, g->ctx, status, "ForceGc");
    else
        gc_reply(g->call, st);
    ldg_free(g);
}

static void force_gc_handler(struct ldg_grpc_call *call, const ProtobufCMessage *reqm, void *ud)
{
    const Ledger__V1__ForceGcRequest *req = (const Ledger__V1__ForceGcRequest *)reqm;
    struct ldg_rpc_ctx *ctx = ud;
    uint64_t org = req->organization_slug ? req->organization_slug->id : 0;
    if (req->vault && org == 0) {
        ldg_grpc_call_fail(call, LDG_GRPC_INVALID_ARGUMENT,
                           "vault: requires organization_slug");
        return;
    }
    uint64_t vault = req->vault ? req->vault->slug : 0;
    if (org != 0) {
        struct ldg_rpc_read r;
        if (ldg_rpc_chain_begin(call, ctx, org, vault, LDG_RPC_READ, &r) != 0)
            return;
        ldg_rpc_read_end(&r);
    } else if (ldg_rpc_ledger(call, ctx) == NULL) {
        return;
    }
    uint64_t timeout_ms;
    if (ldg_rpc_timeout_ms(call, &timeout_ms) != 0)
        return;
    struct gc_req *g = ldg_calloc(1, sizeof *g);
    g->call = call;
    g->ctx = ctx;
    struct ldg_ttl_stats st;
    memset(&st, 0, sizeof st);
    int rv = ldg_ttl_run(ctx->cluster, org, vault, org != 0 && req->vault == NULL,
                         ldg_rpc_now_s(), timeout_ms, gc_done_cb, g, &st);
    if (rv == 0)
        return;
    ldg_free(g);
    if (rv == 1)
        gc_reply(call, &st);
    else if (rv == LDG_ENOTFOUND)
        ldg_grpc_call_fail(call, LDG_GRPC_NOT_FOUND, "chain not found");
    else
        ldg_rpc_fail_cluster(call, ctx, rv, "ForceGc");
}

const struct ldg_rpc_impl ldg_rpc_admin_impls[] = {
    {"ledger.v1.AdminService", "CreateOrganization", LDG_GRPC_UNARY, create_org_handler},
    {"ledger.v1.AdminService", "GetOrganization", LDG_GRPC_UNARY, get_org_handler},
    {"ledger.v1.AdminService", "ListOrganizations", LDG_GRPC_UNARY, list_orgs_handler},
    {"ledger.v1.AdminService", "DeleteOrganization", LDG_GRPC_UNARY, delete_org_handler},
    {"ledger.v1.AdminService", "CreateVault", LDG_GRPC_UNARY, create_vault_handler},
    {"ledger.v1.AdminService", "DeleteVault", LDG_GRPC_UNARY, delete_vault_handler},
    {"ledger.v1.AdminService", "GetVault", LDG_GRPC_UNARY, get_vault_handler},
    {"ledger.v1.AdminService", "ListVaults", LDG_GRPC_UNARY, list_vaults_handler},
    {"ledger.v1.AdminService", "ForceGc", LDG_GRPC_UNARY, force_gc_handler},
    {NULL, NULL, LDG_GRPC_UNARY, NULL},
};
