/* TTL expiry pass and periodic leader job. See ttl.h.
 *
 * Happy path of a pass: one read txn lists the chains (ACTIVE
 * organizations' chains and their ACTIVE vaults) and each chain's expired
 * entities (ldg_ledger_list_expired at now_s); every group of up to 1000
 * becomes one LDG_CMD_EXPIRE command with expire_entity ops whose
 * expired_at is the entity's expires_at; all are submitted at once (the
 * cluster deep-copies them). The pass ends when the last submit callback
 * fires. */
#include <string.h>


#include "cluster/cluster.h"
#include "ledger/ledger.h"
#include "node/ttl.h"
#include "util/log.h"
#include "util/mem.h"

struct pass {
    ldg_ttl_done_cb cb;
    void *arg;
    struct ldg_ttl_stats st;
    size_t pending;
    int status;
};

struct chain_ref {
    uint64_t org, vault;
};

struct scan {
    struct chain_ref *chains;
    size_t n, cap;
    uint64_t only_org;
};

static void add_chain(struct scan *s, uint64_t org, uint64_t vault)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->chains = ldg_realloc(s->chains, s->cap * sizeof *s->chains);
    }
    s->chains[s->n].org = org;
    s->chains[s->n].vault = vault;
    s->n++;
}

static int vault_cb(const struct ldg_chain_info *c, void *arg)
{
    if (c->status == LDG_STATUS_ACTIVE)
        add_chain(arg, c->org, c->vault);
    return 0;
}

static int org_cb(const struct ldg_org_info *o, void *arg)
{
    if (o->status == LDG_STATUS_ACTIVE)
        add_chain(arg, o->slug, 0);
    return 0;
}

struct expired {
    struct ldg_op *ops;
    size_t n;
};

static int expired_cb(const struct ldg_entity *e, void *arg)
{
    struct expired *x = arg;
    struct ldg_op *op = &x->ops[x->n++];
    memset(op, 0, sizeof *op);
    op->type = LDG_OP_EXPIRE_ENTITY;
    op->key = ldg_bytes_of(ldg_memdup(e->key.len ? e->key.data : (const uint8_t *)"", e->key.len),
                           e->key.len);
    op->expired_at = e->expires_at;
    return 0;
}

static void submit_cb(void *arg, int status, const struct ldg_cmd_result *res,
                      const struct ldg_block_made *block)
{
    struct pass *p = arg;
    if (status != 0) {
        if (p->status == 0)
            p->status = status;
    } else if (res && res->code == LDG_RES_OK) {
        for (size_t i = 0; i < res->outcome_count; i++)
            if (res->outcomes[i] == LDG_OUTCOME_DELETED)
                p->st.expired++;
    }
    if (--p->pending == 0) {
        p->cb(p->arg, p->status, &p->st);
        ldg_free(p);
    }
}

int ldg_ttl_run(struct ldg_cluster *c, uint64_t org, uint64_t vault, bool all_vaults,
                int64_t now_s, uint64_t timeout_ms, ldg_ttl_done_cb cb, void *arg,
                struct ldg_ttl_stats *now_out)
{
    struct ldg_cluster_status cs;
    ldg_cluster_get_status(c, &cs);
    if (!cs.is_leader)
        return LDG_ENOTLEADER;
    struct ldg_ledger *l = ldg_cluster_ledger(c);
    MDB_txn *txn;
    int rv = ldg_store_txn_begin(l->store, true, &txn);
    if (rv != 0)
        return rv;
    struct scan sc = {0};
    if (org != 0) {
        struct ldg_chain_info ci;
        rv = ldg_ledger_get_chain(l, txn, org, vault, &ci);
        if (rv != 0)
            goto out;
        if (ci.status == LDG_STATUS_ACTIVE)
            add_chain(&sc, org, vault);
        if (all_vaults)
            rv = ldg_ledger_list_vaults(l, txn, org, 0, 0, false, 0, vault_cb, &sc);
    } else {
        rv = ldg_ledger_list_orgs(l, txn, 0, 0, org_cb, &sc);
        if (rv == 0)
            rv = ldg_ledger_list_vaults(l, txn, 0, 0, 0, false, 0, vault_cb, &sc);
    }
    if (rv != 0)
        goto out;

    struct pass *p = ldg_calloc(1, sizeof *p);
    p->cb = cb;
    p->arg = arg;
    p->st.chains_scanned = sc.n;
    p->pending = 1; /* held by this function until every submit is made */
    struct expired x = {.ops = ldg_malloc(LDG_TTL_OPS_PER_TX * sizeof *x.ops)};
    for (size_t i = 0; i < sc.n && p->status == 0; i++) {
        struct ldg_bytes after = {0};
        uint8_t *after_mem = NULL;
        size_t taken = 0;
        for (;;) {
            bool more = false;
            x.n = 0;
            rv = ldg_ledger_list_expired(l, txn, sc.chains[i].org, sc.chains[i].vault, now_s,
                                         after, LDG_TTL_OPS_PER_TX, expired_cb, &x, &more);
            if (rv == 0 && x.n > 0) {
                struct ldg_cmd cmd;
                memset(&cmd, 0, sizeof cmd);
                cmd.type = LDG_CMD_EXPIRE;
                cmd.org = sc.chains[i].org;
                cmd.vault = sc.chains[i].vault;
                cmd.ops = x.ops;
                cmd.op_count = x.n;
                p->pending++;
                int srv = ldg_cluster_submit(c, &cmd, timeout_ms, submit_cb, p);
                if (srv != 0) {
                    p->pending--;
                    p->status = srv;
                } else {
                    p->st.submitted++;
                }
                taken += x.n;
                ldg_free(after_mem);
                after_mem = ldg_memdup(x.ops[x.n - 1].key.data, x.ops[x.n - 1].key.len);
                after = ldg_bytes_of(after_mem, x.ops[x.n - 1].key.len);
            }
            for (size_t k = 0; k < x.n; k++)
                ldg_free((void *)x.ops[k].key.data);
            if (rv != 0 && p->status == 0)
                p->status = rv;
            if (rv != 0 || !more || x.n == 0 || p->status != 0 ||
                taken >= LDG_TTL_MAX_PER_CHAIN)
                break;
        }
        ldg_free(after_mem);
    }
    ldg_free(x.ops);
    mdb_txn_abort(txn);
    txn = NULL;
    ldg_free(sc.chains);
    if (--p->pending == 0) {
        /* Nothing in flight: no callback will come. */
        rv = p->status;
        if (now_out)
            *now_out = p->st;
        ldg_free(p);
        return rv != 0 ? rv : 1;
    }
    return 0;
out:
    mdb_txn_abort(txn);
    ldg_free(sc.chains);
    return rv;
}

/* ---- periodic job ---- */

static void job_finish(struct ldg_ttl *t)
{
    t->running = false;
    if (t->closing && t->closed && t->stop_cb) {
        void (*cb)(void *) = t->stop_cb;
        t->stop_cb = NULL;
        cb(t->stop_arg);
    }
}

static void job_done_cb(void *arg, int status, const struct ldg_ttl_stats *st)
{
    struct ldg_ttl *t = arg;
    if (status != 0)
        LDG_LOG(LDG_LOG_WARN, "ttl", "ttl pass incomplete err=%s expired=%llu",
                ldg_strerror(status), (unsigned long long)st->expired);
    else
        LDG_LOG(LDG_LOG_DEBUG, "ttl", "ttl pass done expired=%llu chains=%llu",
                (unsigned long long)st->expired, (unsigned long long)st->chains_scanned);
    job_finish(t);
}

static void job_timer_cb(uv_timer_t *h)
{
    struct ldg_ttl *t = LDG_CONTAINER_OF(h, struct ldg_ttl, timer);
    if (t->running || t->closing || t->cluster == NULL)
        return;
    struct ldg_cluster_status cs;
    ldg_cluster_get_status(t->cluster, &cs);
    if (!cs.is_leader)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    t->running = true;
    t->passes++;
    struct ldg_ttl_stats st;
    int rv = ldg_ttl_run(t->cluster, 0, 0, false, (int64_t)ts.tv_sec, t->interval_ms, job_done_cb,
                         t, &st);
    if (rv != 0) {
        if (rv < 0 && rv != LDG_ENOTLEADER)
            LDG_LOG(LDG_LOG_WARN, "ttl", "ttl pass failed err=%s", ldg_strerror(rv));
        t->running = false;
    }
}

void ldg_ttl_start(struct ldg_ttl *t, uv_loop_t *loop, struct ldg_cluster *c,
                   uint64_t interval_ms)
{
    memset(t, 0, sizeof *t);
    t->cluster = c;
    t->interval_ms = interval_ms ? interval_ms : LDG_TTL_DEFAULT_INTERVAL_MS;
    uv_timer_init(loop, &t->timer);
    uv_timer_start(&t->timer, job_timer_cb, t->interval_ms, t->interval_ms);
}

static void job_close_cb(uv_handle_t *h)
{
    struct ldg_ttl *t = LDG_CONTAINER_OF(h, struct ldg_ttl, timer);
    t->closed = true;
    if (!t->running)
        job_finish(t);
}

void ldg_ttl_stop(struct ldg_ttl *t, void (*cb)(void *arg), void *arg)
{
    t->closing = true;
    t->stop_cb = cb;
    t->stop_arg = arg;
    uv_timer_stop(&t->timer);
    uv_close((uv_handle_t *)&t->timer, job_close_cb);
}
