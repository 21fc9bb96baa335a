/* ledger.v1 Read/Write/Admin handlers end to end through the fake call and
 * a fake cluster: the fake applies submitted commands with the real ledger
 * state machine (ldg_ledger_apply_entry) on a real LMDB store when the test
 * pumps it, so every handler path runs against real state without Raft. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <uv.h>

#include "fake_grpc_call.h"
#include "cluster/cluster.h"
#include "ledger/v1/ledger.pb-c.h"
#include "crypto/merkle.h"
#include "node/ttl.h"
#include "rpc/rpc.h"

/* ---- fake cluster ---- */

struct pending {
    uint8_t *enc;
    size_t len;
    ldg_cluster_submit_cb cb;
    ldg_cluster_barrier_cb bcb;
    void *arg;
};

struct ldg_cluster_watch {
    ldg_cluster_block_fn fn;
    void *arg;
    bool active;
};

struct ldg_cluster {
    struct ldg_store store;
    struct ldg_ledger ledger;
    bool leader;
    uint64_t index;
    struct pending q[4096];
    size_t nq;
    struct ldg_cluster_watch watches[8];
    char dir[64];
};

static struct ldg_cluster *fc;

int ldg_cluster_submit(struct ldg_cluster *c, const struct ldg_cmd *cmd, uint64_t timeout_ms,
                       ldg_cluster_submit_cb cb, void *arg)
{
    if (!c->leader)
        return LDG_ENOTLEADER;
    struct ldg_entry e = {.log_id = 1, .cmds = cmd, .cmd_count = 1};
    struct ldg_buf b;
    ldg_buf_init(&b);
    assert_int_equal(ldg_entry_encode(&e, &b), 0);
    assert_true(c->nq < 4096);
    struct pending *p = &c->q[c->nq++];
    memset(p, 0, sizeof *p);
    p->enc = ldg_buf_steal(&b, &p->len);
    p->cb = cb;
    p->arg = arg;
    return 0;
}

struct ldg_ledger *ldg_cluster_ledger(struct ldg_cluster *c)
{
    return &c->ledger;
}

int ldg_cluster_barrier(struct ldg_cluster *c, uint64_t timeout_ms, ldg_cluster_barrier_cb cb,
                        void *arg)
{
    if (!c->leader)
        return LDG_ENOTLEADER;
    struct pending *p = &c->q[c->nq++];
    memset(p, 0, sizeof *p);
    p->bcb = cb;
    p->arg = arg;
    return 0;
}

int ldg_cluster_watch(struct ldg_cluster *c, ldg_cluster_block_fn fn, void *arg,
                      struct ldg_cluster_watch **out)
{
    for (int i = 0; i < 8; i++) {
        if (!c->watches[i].active) {
            c->watches[i] = (struct ldg_cluster_watch){fn, arg, true};
            *out = &c->watches[i];
            return 0;
        }
    }
    return LDG_EFULL;
}

void ldg_cluster_unwatch(struct ldg_cluster *c, struct ldg_cluster_watch *w)
{
    w->active = false;
}

void ldg_cluster_get_status(struct ldg_cluster *c, struct ldg_cluster_status *out)
{
    memset(out, 0, sizeof *out);
    out->is_leader = c->leader;
    out->leader_id = c->leader ? 1 : 0;
    out->leader_address = c->leader ? "127.0.0.1:1" : NULL;
}

/* Apply every queued command, one entry each, and call back. */
static void pump(void)
{
    for (size_t i = 0; i < fc->nq; i++) {
        struct pending *p = &fc->q[i];
        if (p->bcb) {
            p->bcb(p->arg, 0);
            continue;
        }
        struct ldg_entry e;
        assert_int_equal(ldg_entry_decode(p->enc, p->len, &e), 0);
        e.index = ++fc->index;
        e.term = 1;
        e.ts_seconds = (int64_t)time(NULL);
        e.ts_nanos = 0;
        e.leader_id = 1;
        struct ldg_apply_result res;
        assert_int_equal(ldg_ledger_apply_entry(&fc->ledger, &e, &res), 0);
        const struct ldg_block_made *made = res.block_count ? &res.blocks[res.block_count - 1]
                                                            : NULL;
        for (size_t b = 0; b < res.block_count; b++)
            for (int w = 0; w < 8; w++)
                if (fc->watches[w].active)
                    fc->watches[w].fn(fc->watches[w].arg, &res.blocks[b]);
        p->cb(p->arg, 0, &res.results[0], made);
        ldg_apply_result_free(&res);
        ldg_entry_clear(&e);
        ldg_free(p->enc);
    }
    fc->nq = 0;
}

/* ---- harness ---- */

static uv_loop_t loop;
static struct ldg_rpc_ctx ctx;

static void status_fn(void *arg, struct ldg_node_status *out)
{
    out->node_id = 1;
    out->leader_id = 1;
}

static int setup(void **state)
{
    fc = ldg_calloc(1, sizeof *fc);
    strcpy(fc->dir, "/tmp/ldg-rpc-XXXXXX");
    assert_non_null(mkdtemp(fc->dir));
    assert_int_equal(ldg_store_open(&fc->store, fc->dir, NULL, NULL), 0);
    ldg_ledger_init(&fc->ledger, &fc->store);
    fc->leader = true;
    uv_loop_init(&loop);
    memset(&ctx, 0, sizeof ctx);
    ctx.cluster = fc;
    ctx.loop = &loop;
    ctx.node_status = status_fn;
    return 0;
}

static int teardown(void **state)
{
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&loop), 0);
    ldg_store_close(&fc->store);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", fc->dir);
    assert_int_equal(system(cmd), 0);
    ldg_free(fc);
    return 0;
}

static struct ldg_grpc_method method(const char *service, const char *name)
{
    static const ProtobufCServiceDescriptor *const sds[] = {
        &ledger__v1__read_service__descriptor, &ledger__v1__write_service__descriptor,
        &ledger__v1__admin_service__descriptor};
    static const struct ldg_rpc_impl *const tables[] = {
        ldg_rpc_read_impls, ldg_rpc_write_impls, ldg_rpc_admin_impls};
    char full[64];
    snprintf(full, sizeof full, "ledger.v1.%s", service);
    for (int s = 0; s < 3; s++) {
        if (strcmp(sds[s]->name, full) != 0)
            continue;
        const ProtobufCMethodDescriptor *md = protobuf_c_service_descriptor_get_method_by_name(
            sds[s], name);
        assert_non_null(md);
        for (const struct ldg_rpc_impl *i = tables[s]; i->service; i++) {
            if (strcmp(i->method, name) == 0) {
                struct ldg_grpc_method m = {.service = i->service, .method = name,
                                            .kind = i->kind, .request = md->input,
                                            .response = md->output, .handler = i->handler,
                                            .ud = &ctx};
                return m;
            }
        }
    }
    fail_msg("no implementation of %s/%s", service, name);
    struct ldg_grpc_method none = {0};
    return none;
}

struct result {
    int code;
    char msg[256];
    ProtobufCMessage *resp;
};

/* Run one unary call to its end (pumping the fake cluster). */
static struct result call(const char *service, const char *name, const ProtobufCMessage *req)
{
    struct ldg_grpc_method m = method(service, name);
    struct ldg_grpc_call c;
    fake_call_init(&c, &m);
    fake_call_invoke(&c, req);
    pump();
    assert_int_equal(c.end_count, 1);
    struct result r = {.code = c.end_code};
    snprintf(r.msg, sizeof r.msg, "%s", c.end_msg);
    if (c.end_code == LDG_GRPC_OK) {
        assert_int_equal(c.n_sent, 1);
        r.resp = protobuf_c_message_unpack(m.response, NULL, c.sent[0].len, c.sent[0].data);
        assert_non_null(r.resp);
    }
    fake_call_close(&c);
    return r;
}

static void done(struct result *r)
{
    if (r->resp)
        protobuf_c_message_free_unpacked(r->resp, NULL);
    r->resp = NULL;
}

static Ledger__V1__OrganizationSlug org1 = {PROTOBUF_C_MESSAGE_INIT(
    &ledger__v1__organization_slug__descriptor), 1};

static uint64_t create_org(const char *name)
{
    Ledger__V1__CreateOrganizationRequest req;
    ledger__v1__create_organization_request__init(&req);
    req.name = (char *)name;
    struct result r = call("AdminService", "CreateOrganization", &req.base);
    assert_int_equal(r.code, LDG_GRPC_OK);
    Ledger__V1__CreateOrganizationResponse *resp = (void *)r.resp;
    uint64_t slug = resp->slug->id;
    assert_int_equal(resp->genesis->height, 0);
    assert_int_equal(resp->genesis->block_hash->value.len, 32);
    done(&r);
    return slug;
}

static uint64_t create_vault(uint64_t org)
{
    Ledger__V1__OrganizationSlug o;
    ledger__v1__organization_slug__init(&o);
    o.id = org;
    Ledger__V1__CreateVaultRequest req;
    ledger__v1__create_vault_request__init(&req);
    req.organization_slug = &o;
    req.name = "main";
    struct result r = call("AdminService", "CreateVault", &req.base);
    assert_int_equal(r.code, LDG_GRPC_OK);
    uint64_t v = ((Ledger__V1__CreateVaultResponse *)r.resp)->vault->slug;
    assert_int_not_equal(v, 0);
    done(&r);
    return v;
}

/* One set_entity write; returns the response (caller done()s it). */
static struct result set_entity(uint64_t vault, const char *key, const char *value,
                                uint64_t expires_at, Ledger__V1__SetCondition *cond,
                                const uint8_t *idem, bool proof)
{
    Ledger__V1__VaultSlug v;
    ledger__v1__vault_slug__init(&v);
    v.slug = vault;
    Ledger__V1__ClientId cid;
    ledger__v1__client_id__init(&cid);
    cid.id = "app-1";
    Ledger__V1__SetEntity se;
    ledger__v1__set_entity__init(&se);
    se.key = (char *)key;
    se.value.data = (uint8_t *)value;
    se.value.len = strlen(value);
    if (expires_at) {
        se.optional_expires_at_case = LEDGER__V1__SET_ENTITY__OPTIONAL_EXPIRES_AT_EXPIRES_AT;
        se.expires_at = expires_at;
    }
    se.condition = cond;
    Ledger__V1__Operation op;
    ledger__v1__operation__init(&op);
    op.op_case = LEDGER__V1__OPERATION__OP_SET_ENTITY;
    op.set_entity = &se;
    Ledger__V1__Operation *ops[1] = {&op};
    Ledger__V1__WriteRequest req;
    ledger__v1__write_request__init(&req);
    req.organization_slug = &org1;
    req.vault = vault ? &v : NULL;
    req.client_id = &cid;
    if (idem) {
        req.idempotency_key.data = (uint8_t *)idem;
        req.idempotency_key.len = 16;
    }
    req.n_operations = 1;
    req.operations = ops;
    req.include_tx_proof = proof;
    return call("WriteService", "Write", &req.base);
}

static struct result read_key(uint64_t vault, const char *key)
{
    Ledger__V1__VaultSlug v;
    ledger__v1__vault_slug__init(&v);
    v.slug = vault;
    Ledger__V1__ReadRequest req;
    ledger__v1__read_request__init(&req);
    req.organization_slug = &org1;
    req.vault = vault ? &v : NULL;
    req.key = (char *)key;
    return call("ReadService", "Read", &req.base);
}

/* ---- tests ---- */

static void test_write_then_read(void **state)
{
    assert_int_equal(create_org("acme"), 1);
    uint64_t vault = create_vault(1);
    /* vault chain and organization chain */
    uint64_t chains[2] = {vault, 0};
    for (int i = 0; i < 2; i++) {
        struct result w = set_entity(chains[i], "user:1", "alice", 0, NULL, NULL, true);
        assert_int_equal(w.code, LDG_GRPC_OK);
        Ledger__V1__WriteResponse *wr = (void *)w.resp;
        assert_int_equal(wr->result_case, LEDGER__V1__WRITE_RESPONSE__RESULT_SUCCESS);
        Ledger__V1__WriteSuccess *s = wr->success;
        assert_int_equal(s->block_height, 1);
        assert_int_equal(s->assigned_sequence, 1);
        assert_int_equal(s->n_outcomes, 1);
        assert_int_equal(s->outcomes[0], LEDGER__V1__OPERATION_OUTCOME__OPERATION_OUTCOME_CREATED);
        assert_int_equal(s->tx_id->id.len, 16);
        /* tx_proof verifies against the header's tx_merkle_root */
        assert_non_null(s->block_header);
        assert_non_null(s->tx_proof);
        assert_int_equal(s->tx_proof->tree_size, 1);
        uint8_t path[1][32];
        assert_int_equal(ldg_merkle_path_verify(s->tx_proof->leaf_hash->value.data,
                                                s->tx_proof->leaf_index, s->tx_proof->tree_size,
                                                (const uint8_t(*)[32])path, 0,
                                                s->block_header->tx_merkle_root->value.data), 0);
        done(&w);

        struct result r = read_key(chains[i], "user:1");
        assert_int_equal(r.code, LDG_GRPC_OK);
        Ledger__V1__ReadResponse *rr = (void *)r.resp;
        assert_true(rr->found);
        assert_int_equal(rr->optional_value_case, LEDGER__V1__READ_RESPONSE__OPTIONAL_VALUE_VALUE);
        assert_int_equal(rr->value.len, 5);
        assert_memory_equal(rr->value.data, "alice", 5);
        assert_int_equal(rr->version, 1);
        assert_int_equal(rr->block_height, 1);
        done(&r);
    }
    struct result r = read_key(vault, "nobody");
    assert_int_equal(r.code, LDG_GRPC_OK);
    assert_false(((Ledger__V1__ReadResponse *)r.resp)->found);
    assert_int_equal(((Ledger__V1__ReadResponse *)r.resp)->optional_value_case,
                     LEDGER__V1__READ_RESPONSE__OPTIONAL_VALUE__NOT_SET);
    done(&r);
}

static void test_conditions_and_idempotency(void **state)
{
    create_org("acme");
    struct result w = set_entity(0, "k", "v1", 0, NULL, NULL, false);
    done(&w);
    Ledger__V1__SetCondition c;
    ledger__v1__set_condition__init(&c);
    c.condition_case = LEDGER__V1__SET_CONDITION__CONDITION_NOT_EXISTS;
    c.not_exists = 1;
    w = set_entity(0, "k", "v2", 0, &c, NULL, false);
    assert_int_equal(w.code, LDG_GRPC_OK);
    Ledger__V1__WriteResponse *wr = (void *)w.resp;
    assert_int_equal(wr->result_case, LEDGER__V1__WRITE_RESPONSE__RESULT_ERROR);
    assert_int_equal(wr->error->code, LEDGER__V1__WRITE_ERROR_CODE__WRITE_ERROR_CODE_KEY_EXISTS);
    assert_string_equal(wr->error->key, "k");
    assert_int_equal(wr->error->current_version, 1);
    assert_int_equal(wr->error->operation_index, 0);
    done(&w);

    c.condition_case = LEDGER__V1__SET_CONDITION__CONDITION_VALUE_EQUALS;
    c.value_equals.data = (uint8_t *)"nope";
    c.value_equals.len = 4;
    w = set_entity(0, "k", "v2", 0, &c, NULL, false);
    wr = (void *)w.resp;
    assert_int_equal(wr->error->code,
                     LEDGER__V1__WRITE_ERROR_CODE__WRITE_ERROR_CODE_VALUE_MISMATCH);
    assert_int_equal(wr->error->optional_current_value_case,
                     LEDGER__V1__WRITE_ERROR__OPTIONAL_CURRENT_VALUE_CURRENT_VALUE);
    assert_memory_equal(wr->error->current_value.data, "v1", 2);
    done(&w);

    uint8_t key[16] = {9, 9, 9};
    w = set_entity(0, "i", "x", 0, NULL, key, false);
    wr = (void *)w.resp;
    assert_int_equal(wr->result_case, LEDGER__V1__WRITE_RESPONSE__RESULT_SUCCESS);
    uint64_t h = wr->success->block_height, seq = wr->success->assigned_sequence;
    uint8_t txid[16];
    memcpy(txid, wr->success->tx_id->id.data, 16);
    done(&w);
    w = set_entity(0, "i", "x", 0, NULL, key, false);
    wr = (void *)w.resp;
    assert_int_equal(wr->error->code,
                     LEDGER__V1__WRITE_ERROR_CODE__WRITE_ERROR_CODE_ALREADY_COMMITTED);
    assert_int_equal(wr->error->committed_block_height, h);
    assert_int_equal(wr->error->assigned_sequence, seq);
    assert_memory_equal(wr->error->committed_tx_id->id.data, txid, 16);
    done(&w);
    w = set_entity(0, "i", "other", 0, NULL, key, false);
    wr = (void *)w.resp;
    assert_int_equal(wr->error->code,
                     LEDGER__V1__WRITE_ERROR_CODE__WRITE_ERROR_CODE_IDEMPOTENCY_KEY_REUSED);
    done(&w);
}

static void test_error_statuses(void **state)
{
    /* unknown organization / vault -> NOT_FOUND */
    struct result r = read_key(0, "k");
    assert_int_equal(r.code, LDG_GRPC_NOT_FOUND);
    assert_non_null(strstr(r.msg, "organization 1 not found"));
    create_org("acme");
    r = read_key(42, "k");
    assert_int_equal(r.code, LDG_GRPC_NOT_FOUND);
    assert_non_null(strstr(r.msg, "vault 42"));
    r = set_entity(42, "k", "v", 0, NULL, NULL, false);
    assert_int_equal(r.code, LDG_GRPC_NOT_FOUND);
    /* invalid input names the field */
    char big[1100];
    memset(big, 'k', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    r = read_key(0, big);
    assert_int_equal(r.code, LDG_GRPC_INVALID_ARGUMENT);
    assert_non_null(strstr(r.msg, "key: 1099 bytes"));
    r = set_entity(0, big, "v", 0, NULL, NULL, false);
    assert_int_equal(r.code, LDG_GRPC_INVALID_ARGUMENT);
    assert_non_null(strstr(r.msg, "operations[0].set_entity.key"));
    /* not leader -> UNAVAILABLE "no leader: ..." */
    fc->leader = false;
    r = set_entity(0, "k", "v", 0, NULL, NULL, false);
    assert_int_equal(r.code, LDG_GRPC_UNAVAILABLE);
    assert_memory_equal(r.msg, "no leader:", 10);
    fc->leader = true;
    /* deleted vault on write -> FAILED_PRECONDITION; read -> NOT_FOUND */
    uint64_t v = create_vault(1);
    Ledger__V1__VaultSlug vs;
    ledger__v1__vault_slug__init(&vs);
    vs.slug = v;
    Ledger__V1__DeleteVaultRequest dv;
    ledger__v1__delete_vault_request__init(&dv);
    dv.organization_slug = &org1;
    dv.vault = &vs;
    r = call("AdminService", "DeleteVault", &dv.base);
    assert_int_equal(r.code, LDG_GRPC_OK);
    done(&r);
    r = set_entity(v, "k", "v", 0, NULL, NULL, false);
    assert_int_equal(r.code, LDG_GRPC_FAILED_PRECONDITION);
    r = read_key(v, "k");
    assert_int_equal(r.code, LDG_GRPC_NOT_FOUND);
    /* GetBlock above the tip -> NOT_FOUND */
    Ledger__V1__GetBlockRequest gb;
    ledger__v1__get_block_request__init(&gb);
    gb.organization_slug = &org1;
    gb.height = 5;
    r = call("ReadService", "GetBlock", &gb.base);
    assert_int_equal(r.code, LDG_GRPC_NOT_FOUND);
}

static void test_paging_and_tokens(void **state)
{
    create_org("acme");
    for (int i = 0; i < 5; i++) {
        char k[8];
        snprintf(k, sizeof k, "u:%d", i);
        struct result w = set_entity(0, k, "v", 0, NULL, NULL, false);
        done(&w);
    }
    Ledger__V1__ListEntitiesRequest req;
    ledger__v1__list_entities_request__init(&req);
    req.organization_slug = &org1;
    req.key_prefix = "u:";
    req.limit = 2;
    char *token = NULL;
    int seen = 0, pages = 0;
    do {
        req.page_token = token ? token : "";
        struct result r = call("ReadService", "ListEntities", &req.base);
        assert_int_equal(r.code, LDG_GRPC_OK);
        Ledger__V1__ListEntitiesResponse *le = (void *)r.resp;
        for (size_t i = 0; i < le->n_entities; i++) {
            char k[8];
            snprintf(k, sizeof k, "u:%d", seen++);
            assert_string_equal(le->entities[i]->key, k);
        }
        free(token);
        token = le->next_page_token[0] ? strdup(le->next_page_token) : NULL;
        done(&r);
        pages++;
    } while (token);
    assert_int_equal(seen, 5);
    assert_int_equal(pages, 3);

    /* a token for another query, and a tampered one */
    req.page_token = "";
    struct result r = call("ReadService", "ListEntities", &req.base);
    char *tok = strdup(((Ledger__V1__ListEntitiesResponse *)r.resp)->next_page_token);
    done(&r);
    req.key_prefix = "x";
    req.page_token = tok;
    r = call("ReadService", "ListEntities", &req.base);
    assert_int_equal(r.code, LDG_GRPC_INVALID_ARGUMENT);
    assert_memory_equal(r.msg, "page_token", 10);
    req.key_prefix = "u:";
    tok[3] = tok[3] == 'A' ? 'B' : 'A';
    r = call("ReadService", "ListEntities", &req.base);
    assert_int_equal(r.code, LDG_GRPC_INVALID_ARGUMENT);
    assert_memory_equal(r.msg, "page_token", 10);
    free(tok);
    req.limit = 1001;
    r = call("ReadService", "ListEntities", &req.base);
    assert_int_equal(r.code, LDG_GRPC_INVALID_ARGUMENT);
    assert_non_null(strstr(r.msg, "limit"));
}

static void test_tip_blocks_and_proofs(void **state)
{
    create_org("acme");
    Ledger__V1__GetTipRequest tr;
    ledger__v1__get_tip_request__init(&tr);
    tr.organization_slug = &org1;
    struct result r = call("ReadService", "GetTip", &tr.base);
    Ledger__V1__GetTipResponse *tip = (void *)r.resp;
    assert_int_equal(tip->optional_height_case,
                     LEDGER__V1__GET_TIP_RESPONSE__OPTIONAL_HEIGHT_HEIGHT);
    assert_int_equal(tip->height, 0);
    done(&r);
    struct result w = set_entity(0, "a", "1", 0, NULL, NULL, false);
    done(&w);
    w = set_entity(0, "a", "2", 0, NULL, NULL, false);
    done(&w);

    Ledger__V1__VerifiedReadRequest vr;
    ledger__v1__verified_read_request__init(&vr);
    vr.organization_slug = &org1;
    vr.key = "a";
    vr.optional_trusted_height_case =
        LEDGER__V1__VERIFIED_READ_REQUEST__OPTIONAL_TRUSTED_HEIGHT_TRUSTED_HEIGHT;
    vr.trusted_height = 0;
    r = call("ReadService", "VerifiedRead", &vr.base);
    assert_int_equal(r.code, LDG_GRPC_OK);
    Ledger__V1__VerifiedReadResponse *v = (void *)r.resp;
    assert_true(v->found);
    assert_int_equal(v->n_bucket_roots, 256);
    assert_int_equal(v->n_bucket_siblings, 8);
    assert_int_equal(v->chain_proof->n_headers, 2);
    /* Recompute the state root from the proof exactly as a client would. */
    struct ldg_leaf leaf = {.key = ldg_bytes_of(v->leaf->leaf_key.data, v->leaf->leaf_key.len),
                            .expires_at = v->leaf->expires_at, .version = v->leaf->version};
    memcpy(leaf.value_hash, v->leaf->value_hash->value.data, 32);
    uint8_t vh[32];
    ldg_sha256(v->value.data, v->value.len, vh);
    assert_memory_equal(vh, leaf.value_hash, 32);
    struct ldg_leaf *others = ldg_calloc(v->n_slot_leaves + 1, sizeof *others);
    for (size_t i = 0; i < v->n_slot_leaves; i++) {
        others[i].key = ldg_bytes_of(v->slot_leaves[i]->leaf_key.data,
                                     v->slot_leaves[i]->leaf_key.len);
        memcpy(others[i].value_hash, v->slot_leaves[i]->value_hash->value.data, 32);
        others[i].expires_at = v->slot_leaves[i]->expires_at;
        others[i].version = v->slot_leaves[i]->version;
    }
    uint8_t sib[8][32], other_roots[255][32];
    for (int i = 0; i < 8; i++)
        memcpy(sib[i], v->bucket_siblings[i]->value.data, 32);
    for (int i = 0, k = 0; i < 256; i++)
        if ((uint32_t)i != v->bucket_index)
            memcpy(other_roots[k++], v->bucket_roots[i]->value.data, 32);
    struct ldg_state_proof sp = {.leaf_key = leaf.key, .leaf = &leaf, .others = others,
                                 .n_others = v->n_slot_leaves,
                                 .siblings = (const uint8_t(*)[32])sib,
                                 .other_bucket_roots = (const uint8_t(*)[32])other_roots};
    assert_int_equal(ldg_state_proof_verify(&sp, v->block_header->state_root->value.data), 0);
    ldg_free(others);
    done(&r);

    Ledger__V1__HistoricalReadRequest hr;
    ledger__v1__historical_read_request__init(&hr);
    hr.organization_slug = &org1;
    hr.key = "a";
    hr.at_height = 1;
    r = call("ReadService", "HistoricalRead", &hr.base);
    Ledger__V1__HistoricalReadResponse *h = (void *)r.resp;
    assert_true(h->found);
    assert_memory_equal(h->value.data, "1", 1);
    done(&r);
    hr.at_height = 3;
    r = call("ReadService", "HistoricalRead", &hr.base);
    assert_int_equal(r.code, LDG_GRPC_INVALID_ARGUMENT);

    Ledger__V1__GetBlockRangeRequest br;
    ledger__v1__get_block_range_request__init(&br);
    br.organization_slug = &org1;
    br.start_height = 0;
    br.end_height = 100;
    r = call("ReadService", "GetBlockRange", &br.base);
    Ledger__V1__GetBlockRangeResponse *range = (void *)r.resp;
    assert_int_equal(range->n_blocks, 3);
    assert_int_equal(range->current_tip, 2);
    assert_string_equal(range->blocks[2]->transactions[0]->actor, "client:app-1");
    assert_int_equal(range->blocks[2]->transactions[0]->operations[0]->op_case,
                     LEDGER__V1__OPERATION__OP_SET_ENTITY);
    done(&r);
}

static void test_ttl_and_force_gc(void **state)
{
    create_org("acme");
    uint64_t past = (uint64_t)time(NULL) - 5;
    struct result w = set_entity(0, "tmp", "x", past, NULL, NULL, false);
    assert_int_equal(((Ledger__V1__WriteResponse *)w.resp)->result_case,
                     LEDGER__V1__WRITE_RESPONSE__RESULT_SUCCESS);
    done(&w);
    struct result r = read_key(0, "tmp");
    assert_false(((Ledger__V1__ReadResponse *)r.resp)->found); /* hidden by our clock */
    done(&r);
    Ledger__V1__ForceGcRequest gc;
    ledger__v1__force_gc_request__init(&gc);
    r = call("AdminService", "ForceGc", &gc.base);
    assert_int_equal(r.code, LDG_GRPC_OK);
    assert_int_equal(((Ledger__V1__ForceGcResponse *)r.resp)->expired_count, 1);
    assert_int_equal(((Ledger__V1__ForceGcResponse *)r.resp)->chains_scanned, 1);
    done(&r);
    Ledger__V1__GetBlockRequest gb;
    ledger__v1__get_block_request__init(&gb);
    gb.organization_slug = &org1;
    gb.height = 2;
    r = call("ReadService", "GetBlock", &gb.base);
    Ledger__V1__Transaction *tx = ((Ledger__V1__GetBlockResponse *)r.resp)->block->transactions[0];
    assert_string_equal(tx->actor, "system:gc");
    assert_int_equal(tx->operations[0]->expire_entity->expired_at, past);
    done(&r);
    /* nothing left: answers at once */
    r = call("AdminService", "ForceGc", &gc.base);
    assert_int_equal(((Ledger__V1__ForceGcResponse *)r.resp)->expired_count, 0);
    done(&r);
}

static void test_admin_lists(void **state)
{
    create_org("a");
    create_org("b");
    create_vault(1);
    create_vault(1);
    Ledger__V1__ListVaultsRequest lv;
    ledger__v1__list_vaults_request__init(&lv);
    struct result r = call("AdminService", "ListVaults", &lv.base);
    Ledger__V1__ListVaultsResponse *vs = (void *)r.resp;
    assert_int_equal(vs->n_vaults, 2); /* organization chains never listed */
    assert_int_equal(vs->next_page_token[0], '\0');
    assert_int_equal(vs->vaults[0]->status, LEDGER__V1__VAULT_STATUS__VAULT_STATUS_ACTIVE);
    done(&r);
    lv.limit = 1;
    r = call("AdminService", "ListVaults", &lv.base);
    vs = (void *)r.resp;
    assert_int_equal(vs->n_vaults, 1);
    assert_int_not_equal(vs->next_page_token[0], '\0');
    done(&r);
    Ledger__V1__ListOrganizationsRequest lo;
    ledger__v1__list_organizations_request__init(&lo);
    r = call("AdminService", "ListOrganizations", &lo.base);
    Ledger__V1__ListOrganizationsResponse *os = (void *)r.resp;
    assert_int_equal(os->n_organizations, 2);
    assert_string_equal(os->organizations[0]->name, "a");
    assert_int_equal(os->organizations[0]->vault_count, 2);
    done(&r);
    Ledger__V1__DeleteOrganizationRequest d;
    ledger__v1__delete_organization_request__init(&d);
    d.organization_slug = &org1;
    r = call("AdminService", "DeleteOrganization", &d.base);
    assert_int_equal(r.code, LDG_GRPC_FAILED_PRECONDITION);
    d.force = 1;
    r = call("AdminService", "DeleteOrganization", &d.base);
    assert_int_equal(r.code, LDG_GRPC_OK);
    done(&r);
    Ledger__V1__CreateOrganizationRequest co;
    ledger__v1__create_organization_request__init(&co);
    co.name = "again";
    co.slug = &org1;
    r = call("AdminService", "CreateOrganization", &co.base);
    assert_int_equal(r.code, LDG_GRPC_ALREADY_EXISTS);
}

static void test_watch_blocks(void **state)
{
    create_org("acme");
    for (int i = 0; i < 3; i++) {
        struct result w = set_entity(0, "k", "v", 0, NULL, NULL, false);
        done(&w);
    }
    struct ldg_grpc_method m = method("ReadService", "WatchBlocks");
    struct ldg_grpc_call c;
    fake_call_init(&c, &m);
    Ledger__V1__WatchBlocksRequest req;
    ledger__v1__watch_blocks_request__init(&req);
    req.organization_slug = &org1;
    req.start_height = 1;
    fake_call_invoke(&c, &req.base);
    assert_int_equal(c.n_sent, 3); /* history 1..3 */
    struct result w = set_entity(0, "k", "v", 0, NULL, NULL, false); /* live 4 */
    done(&w);
    assert_int_equal(c.n_sent, 4);
    for (size_t i = 0; i < c.n_sent; i++) {
        Ledger__V1__BlockAnnouncement *a = ledger__v1__block_announcement__unpack(
            NULL, c.sent[i].len, c.sent[i].data);
        assert_int_equal(a->height, i + 1);
        ledger__v1__block_announcement__free_unpacked(a, NULL);
    }
    /* slow subscriber: the next live block finds the queue full */
    c.send_rv = LDG_EFULL;
    w = set_entity(0, "k", "v", 0, NULL, NULL, false);
    done(&w);
    assert_int_equal(c.end_count, 1);
    assert_int_equal(c.end_code, LDG_GRPC_RESOURCE_EXHAUSTED);
    assert_non_null(strstr(c.end_msg, "start_height 5"));
    uv_run(&loop, UV_RUN_NOWAIT); /* closes the timer, unsubscribes */
    assert_false(fc->watches[0].active);
    fake_call_close(&c);

    /* cancel ends the stream and unsubscribes */
    fake_call_init(&c, &m);
    fake_call_invoke(&c, &req.base);
    fake_call_cancel(&c);
    assert_int_equal(c.end_code, LDG_GRPC_CANCELLED);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_false(fc->watches[0].active);
    fake_call_close(&c);
}

static void stopped_cb(void *arg)
{
    *(bool *)arg = true;
}

/* The periodic job acts only on the leader and proposes the expiry. */
static void test_ttl_job(void **state)
{
    create_org("acme");
    struct result w = set_entity(0, "tmp", "x", (uint64_t)time(NULL) - 5, NULL, NULL, false);
    done(&w);
    struct ldg_ttl t;
    fc->leader = false;
    ldg_ttl_start(&t, &loop, fc, 5);
    for (int i = 0; i < 5; i++)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(t.passes, 0);
    assert_int_equal(fc->nq, 0);
    fc->leader = true;
    for (int i = 0; i < 100 && fc->nq == 0; i++)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(t.passes, 1);
    assert_int_equal(fc->nq, 1);
    assert_true(t.running);
    pump();
    assert_false(t.running);
    Ledger__V1__ListEntitiesRequest req;
    ledger__v1__list_entities_request__init(&req);
    req.organization_slug = &org1;
    req.include_expired = 1;
    struct result r = call("ReadService", "ListEntities", &req.base);
    assert_int_equal(((Ledger__V1__ListEntitiesResponse *)r.resp)->n_entities, 0);
    done(&r);
    bool stopped = false;
    ldg_ttl_stop(&t, stopped_cb, &stopped);
    for (int i = 0; i < 10 && !stopped; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    assert_true(stopped);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_write_then_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conditions_and_idempotency, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_statuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paging_and_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tip_blocks_and_proofs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ttl_and_force_gc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_lists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_blocks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ttl_job, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
