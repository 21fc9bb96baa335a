#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "crypto/merkle.h"
#include "ledger/entry.h"
#include "ledger/ledger.h"
#include "store/store.h"
#include "util/mem.h"

#define T0 1700000000LL

struct fx {
    char dir[64];
    struct ldg_store store;
    struct ldg_ledger ledger;
    uint64_t log_id;
    uint64_t index;
    int64_t ts;
    struct ldg_apply_result res;
};

static struct fx *fx_new(void)
{
    struct fx *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/ldg-ledger-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(ldg_store_open(&f->store, f->dir, NULL, NULL), 0);
    ldg_ledger_init(&f->ledger, &f->store);
    f->log_id = 0xabc;
    f->ts = T0;
    return f;
}

static void fx_free(struct fx *f)
{
    ldg_apply_result_free(&f->res);
    ldg_store_close(&f->store);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
}

/* Apply one entry made of |cmds| at the next index; result in f->res. */
static void apply(struct fx *f, const struct ldg_cmd *cmds, size_t n)
{
    ldg_apply_result_free(&f->res);
    struct ldg_entry e = {
        .log_id = f->log_id, .index = ++f->index, .term = 3, .ts_seconds = f->ts,
        .ts_nanos = 5000, .leader_id = 7, .cmds = cmds, .cmd_count = n,
    };
    assert_int_equal(ldg_ledger_apply_entry(&f->ledger, &e, &f->res), 0);
    assert_false(f->res.skipped);
    assert_int_equal(f->res.count, n);
}

static const struct ldg_cmd_result *apply1(struct fx *f, struct ldg_cmd c)
{
    apply(f, &c, 1);
    return &f->res.results[0];
}

static struct ldg_bytes B(const char *s)
{
    return ldg_bytes_str(s);
}

static struct ldg_op op_set(const char *k, const char *v, uint8_t cond)
{
    struct ldg_op o = {.type = LDG_OP_SET_ENTITY, .key = B(k), .value = B(v), .cond = cond};
    return o;
}

static struct ldg_op op_del(const char *k)
{
    struct ldg_op o = {.type = LDG_OP_DELETE_ENTITY, .key = B(k)};
    return o;
}

static struct ldg_op op_rel(uint8_t type, const char *r, const char *rel, const char *s)
{
    struct ldg_op o = {.type = type, .resource = B(r), .relation = B(rel), .subject = B(s)};
    return o;
}

static uint32_t txn_counter; /* makes tx ids; reset for determinism runs */

static struct ldg_cmd cmd_write(uint64_t org, uint64_t vault, const char *client,
                                const struct ldg_op *ops, size_t n)
{
    struct ldg_cmd c = {.type = LDG_CMD_WRITE, .org = org, .vault = vault,
                        .client_id = B(client), .ops = ops, .op_count = n};
    txn_counter++;
    memcpy(c.tx_id, &txn_counter, sizeof txn_counter);
    c.tx_id[15] = 0x42;
    return c;
}

static uint64_t create_org(struct fx *f)
{
    struct ldg_cmd c = {.type = LDG_CMD_CREATE_ORG, .name = B("acme")};
    const struct ldg_cmd_result *r = apply1(f, c);
    assert_int_equal(r->code, LDG_RES_OK);
    return r->org;
}

static uint64_t create_vault(struct fx *f, uint64_t org)
{
    struct ldg_cmd c = {.type = LDG_CMD_CREATE_VAULT, .org = org, .name = B("v")};
    const struct ldg_cmd_result *r = apply1(f, c);
    assert_int_equal(r->code, LDG_RES_OK);
    return r->vault;
}

static struct ldg_chain_info chain(struct fx *f, uint64_t org, uint64_t vault)
{
    MDB_txn *txn;
    assert_int_equal(ldg_store_txn_begin(&f->store, true, &txn), 0);
    struct ldg_chain_info ci;
    assert_int_equal(ldg_ledger_get_chain(&f->ledger, txn, org, vault, &ci), 0);
    ci.name.data = NULL;
    ldg_store_txn_abort(txn);
    return ci;
}

/* Value of an entity as a C string ("" when absent); |version| optional. */
static char *get(struct fx *f, uint64_t org, uint64_t vault, const char *key, int64_t now,
                 uint64_t *version)
{
    static char buf[256];
    MDB_txn *txn;
    assert_int_equal(ldg_store_txn_begin(&f->store, true, &txn), 0);
    struct ldg_entity e;
    int rv = ldg_ledger_get_entity(&f->ledger, txn, org, vault, B(key), now, &e);
    if (rv == LDG_ENOTFOUND) {
        strcpy(buf, "<none>");
    } else {
        assert_int_equal(rv, 0);
        memcpy(buf, e.value.data, e.value.len);
        buf[e.value.len] = 0;
        if (version)
            *version = e.version;
    }
    ldg_store_txn_abort(txn);
    return buf;
}

/* ---- organizations and vaults ---- */

static void test_org_vault_lifecycle(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    struct ldg_cmd c = {.type = LDG_CMD_CREATE_ORG, .name = B("acme")};
    const struct ldg_cmd_result *r = apply1(f, c);
    assert_int_equal(r->code, LDG_RES_OK);
    assert_int_equal(r->org, 1);
    /* Genesis of the org chain. */
    assert_int_equal(r->genesis.height, 0);
    assert_int_equal(r->genesis.organization_slug, 1);
    assert_int_equal(r->genesis.vault_slug, 0);
    assert_int_equal(r->genesis.committed_index, f->index);
    assert_int_equal(r->genesis.term, 3);
    assert_memory_equal(r->genesis.tx_merkle_root, LDG_EMPTY_HASH, 32);
    assert_memory_equal(r->genesis.state_root, LDG_EMPTY_STATE_ROOT, 32);
    static const uint8_t zero[32];
    assert_memory_equal(r->genesis.previous_hash, zero, 32);
    assert_int_equal(f->res.block_count, 1);
    struct ldg_chain_info ci = chain(f, 1, 0);
    assert_int_equal(ci.height, 0);
    assert_memory_equal(ci.tip_hash, f->res.blocks[0].block_hash, 32);

    /* Named slug; the counter moves past it; a taken slug is refused. */
    c.slug = 10;
    assert_int_equal(apply1(f, c)->org, 10);
    assert_int_equal(apply1(f, c)->code, LDG_RES_SLUG_EXISTS);
    c.slug = 0;
    assert_int_equal(apply1(f, c)->org, 11);
    c.slug = 5;
    assert_int_equal(apply1(f, c)->org, 5);
    c.slug = 0;
    assert_int_equal(apply1(f, c)->org, 12);

    /* Vaults: slugs global, genesis per vault, unknown org refused. */
    uint64_t v1 = create_vault(f, 1);
    assert_int_equal(v1, 1);
    assert_int_equal(f->res.results[0].genesis.vault_slug, 1);
    uint64_t v2 = create_vault(f, 10);
    assert_int_equal(v2, 2);
    struct ldg_cmd cv = {.type = LDG_CMD_CREATE_VAULT, .org = 99};
    assert_int_equal(apply1(f, cv)->code, LDG_RES_ORG_NOT_FOUND);
    cv.org = 10;
    cv.slug = 1; /* used in org 1: vault slugs are unique across orgs */
    assert_int_equal(apply1(f, cv)->code, LDG_RES_SLUG_EXISTS);

    MDB_txn *txn;
    assert_int_equal(ldg_store_txn_begin(&f->store, true, &txn), 0);
    struct ldg_org_info oi;
    assert_int_equal(ldg_ledger_get_org(&f->ledger, txn, 1, &oi), 0);
    assert_int_equal(oi.vault_count, 1);
    assert_int_equal(oi.name.len, 4);
    assert_memory_equal(oi.name.data, "acme", 4);
    ldg_store_txn_abort(txn);

    /* Delete: refused with live vaults unless forced. */
    struct ldg_cmd d = {.type = LDG_CMD_DELETE_ORG, .org = 1};
    assert_int_equal(apply1(f, d)->code, LDG_RES_HAS_VAULTS);
    struct ldg_op ops[] = {op_set("k", "v", LDG_COND_NONE)};
    assert_int_equal(apply1(f, cmd_write(1, v1, "c", ops, 1))->code, LDG_RES_OK);
    d.force = true;
    assert_int_equal(apply1(f, d)->code, LDG_RES_OK);
    assert_int_equal(apply1(f, d)->code, LDG_RES_ORG_NOT_FOUND);
    assert_int_equal(apply1(f, cmd_write(1, v1, "c", ops, 1))->code, LDG_RES_ORG_NOT_FOUND);
    assert_int_equal(apply1(f, cmd_write(1, 0, "c", ops, 1))->code, LDG_RES_ORG_NOT_FOUND);
    assert_int_equal(chain(f, 1, v1).status, LDG_STATUS_DELETED);
    /* Data stays for audit. */
    assert_string_equal(get(f, 1, v1, "k", 0, NULL), "v");

    /* Delete vault. */
    struct ldg_cmd dv = {.type = LDG_CMD_DELETE_VAULT, .org = 10, .vault = v2};
    assert_int_equal(apply1(f, dv)->code, LDG_RES_OK);
    assert_int_equal(apply1(f, dv)->code, LDG_RES_VAULT_NOT_FOUND);
    assert_int_equal(apply1(f, cmd_write(10, v2, "c", ops, 1))->code, LDG_RES_VAULT_NOT_FOUND);
    assert_int_equal(apply1(f, cmd_write(10, 77, "c", ops, 1))->code, LDG_RES_VAULT_NOT_FOUND);
    dv.vault = 0;
    assert_int_equal(apply1(f, dv)->code, LDG_RES_INVALID);
    /* The org chain still takes writes. */
    assert_int_equal(apply1(f, cmd_write(10, 0, "c", ops, 1))->code, LDG_RES_OK);
    assert_int_equal(chain(f, 10, 0).height, 1);
    fx_free(f);
}

/* ---- entities ---- */

static void test_entity_ops_and_conditions(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    uint64_t org = create_org(f), v = create_vault(f, org);
    struct ldg_op o[3];
    const struct ldg_cmd_result *r;

    o[0] = op_set("a", "1", LDG_COND_NONE);
    r = apply1(f, cmd_write(org, v, "c", o, 1));
    assert_int_equal(r->code, LDG_RES_OK);
    assert_int_equal(r->outcomes[0], LDG_OUTCOME_CREATED);
    assert_int_equal(r->height, 1);
    assert_int_equal(f->res.block_count, 1);
    o[0] = op_set("a", "2", LDG_COND_NONE);
    r = apply1(f, cmd_write(org, v, "c", o, 1));
    assert_int_equal(r->outcomes[0], LDG_OUTCOME_UPDATED);
    uint64_t ver = 0;
    assert_string_equal(get(f, org, v, "a", 0, &ver), "2");
    assert_int_equal(ver, 2); /* version = height of the last set */

    /* not_exists on a live key */
    o[0] = op_set("a", "x", LDG_COND_NOT_EXISTS);
    r = apply1(f, cmd_write(org, v, "c", o, 1));
    assert_int_equal(r->code, LDG_RES_KEY_EXISTS);
    assert_int_equal(r->key_len, 1);
    assert_memory_equal(r->key, "a", 1);
    assert_true(r->has_current);
    assert_int_equal(r->current_version, 2);
    assert_memory_equal(r->current_value, "2", 1);
    assert_int_equal(f->res.block_count, 0); /* failed tx: no block */
    assert_int_equal(chain(f, org, v).height, 2);

    /* must_exist on an absent key */
    o[0] = op_set("b", "x", LDG_COND_MUST_EXIST);
    r = apply1(f, cmd_write(org, v, "c", o, 1));
    assert_int_equal(r->code, LDG_RES_KEY_NOT_FOUND);
    assert_false(r->has_current);
    o[0] = op_set("b", "x", LDG_COND_NOT_EXISTS);
    assert_int_equal(apply1(f, cmd_write(org, v, "c", o, 1))->code, LDG_RES_OK);
    o[0] = op_set("b", "y", LDG_COND_MUST_EXIST);
    assert_int_equal(apply1(f, cmd_write(org, v, "c", o, 1))->code, LDG_RES_OK);

    /* version */
    o[0] = op_set("a", "3", LDG_COND_VERSION);
    o[0].cond_version = 1;
    r = apply1(f, cmd_write(org, v, "c", o, 1));
    assert_int_equal(r->code, LDG_RES_VERSION_MISMATCH);
    assert_int_equal(r->current_version, 2);
    o[0].cond_version = 2;
    assert_int_equal(apply1(f, cmd_write(org, v, "c", o, 1))->code, LDG_RES_OK);
    o[0] = op_set("zz", "3", LDG_COND_VERSION);
    assert_int_equal(apply1(f, cmd_write(org, v, "c", o, 1))->code, LDG_RES_KEY_NOT_FOUND);

    /* value_equals */
    o[0] = op_set("a", "4", LDG_COND_VALUE_EQUALS);
    o[0].cond_value = B("nope");
    r = apply1(f, cmd_write(org, v, "c", o, 1));
    assert_int_equal(r->code, LDG_RES_VALUE_MISMATCH);
    assert_int_equal(r->current_value_len, 1);
    assert_memory_equal(r->current_value, "3", 1);
    o[0].cond_value = B("3");
    assert_int_equal(apply1(f, cmd_write(org, v, "c", o, 1))->code, LDG_RES_OK);
    assert_string_equal(get(f, org, v, "a", 0, NULL), "4");
    o[0] = op_set("zz", "3", LDG_COND_VALUE_EQUALS);
    assert_int_equal(apply1(f, cmd_write(org, v, "c", o, 1))->code, LDG_RES_KEY_NOT_FOUND);

    /* delete / no-op delete */
    o[0] = op_del("a");
    o[1] = op_del("never");
    r = apply1(f, cmd_write(org, v, "c", o, 2));
    assert_int_equal(r->code, LDG_RES_OK);
    assert_int_equal(r->outcomes[0], LDG_OUTCOME_DELETED);
    assert_int_equal(r->outcomes[1], LDG_OUTCOME_NOT_FOUND);
    assert_string_equal(get(f, org, v, "a", 0, NULL), "<none>");

    /* Structurally invalid: empty key, no ops, empty client. */
    o[0] = op_set("", "x", LDG_COND_NONE);
    assert_int_equal(apply1(f, cmd_write(org, v, "c", o, 1))->code, LDG_RES_INVALID);
    assert_int_equal(apply1(f, cmd_write(org, v, "c", o, 0))->code, LDG_RES_INVALID);
    o[0] = op_set("q", "x", LDG_COND_NONE);
    assert_int_equal(apply1(f, cmd_write(org, v, "", o, 1))->code, LDG_RES_INVALID);
    fx_free(f);
}

static void test_atomic_failure(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    uint64_t org = create_org(f), v = create_vault(f, org);
    struct ldg_op o[3] = {op_set("b", "old", LDG_COND_NONE)};
    apply1(f, cmd_write(org, v, "c", o, 1));
    struct ldg_chain_info before = chain(f, org, v);

    o[0] = op_set("a", "new", LDG_COND_NONE);
    o[1] = op_rel(LDG_OP_CREATE_RELATIONSHIP, "doc:1", "viewer", "user:1");
    o[2] = op_set("b", "new", LDG_COND_NOT_EXISTS);
    const struct ldg_cmd_result *r = apply1(f, cmd_write(org, v, "c", o, 3));
    assert_int_equal(r->code, LDG_RES_KEY_EXISTS);
    assert_int_equal(r->failed_op, 2);
    assert_null(r->outcomes);
    assert_string_equal(get(f, org, v, "a", 0, NULL), "<none>");
    assert_string_equal(get(f, org, v, "b", 0, NULL), "old");
    struct ldg_chain_info after = chain(f, org, v);
    assert_int_equal(after.height, before.height);
    assert_memory_equal(after.state_root, before.state_root, 32);

    /* Within one entry, the failed tx leaves no trace but others land. */
    struct ldg_op ok[] = {op_set("c", "1", LDG_COND_NONE)};
    struct ldg_cmd cmds[] = {cmd_write(org, v, "c", o, 3), cmd_write(org, v, "c", ok, 1)};
    apply(f, cmds, 2);
    assert_int_equal(f->res.results[0].code, LDG_RES_KEY_EXISTS);
    assert_int_equal(f->res.results[1].code, LDG_RES_OK);
    assert_int_equal(f->res.results[1].tx_index, 0);
    assert_int_equal(f->res.block_count, 1);
    assert_int_equal(f->res.blocks[0].tx_count, 1);
    assert_string_equal(get(f, org, v, "a", 0, NULL), "<none>");
    fx_free(f);
}

/* ---- relationships ---- */

struct rel_collect {
    char rows[32][64];
    char cursor[64];
    size_t cursor_len;
    uint64_t versions[32];
    int n;
};

static int rel_cb(const struct ldg_relationship *r, void *arg)
{
    struct rel_collect *c = arg;
    snprintf(c->rows[c->n], 64, "%.*s#%.*s@%.*s", (int)r->resource.len, r->resource.data,
             (int)r->relation.len, r->relation.data, (int)r->subject.len, r->subject.data);
    c->versions[c->n] = r->version;
    memcpy(c->cursor, r->cursor.data, r->cursor.len);
    c->cursor_len = r->cursor.len;
    c->n++;
    return 0;
}

static int res_cb(struct ldg_bytes res, void *arg)
{
    struct rel_collect *c = arg;
    snprintf(c->rows[c->n++], 64, "%.*s", (int)res.len, res.data);
    return 0;
}

static void test_relationships(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    uint64_t org = create_org(f), v = create_vault(f, org);
    struct ldg_op o[] = {
        op_rel(LDG_OP_CREATE_RELATIONSHIP, "doc:1", "viewer", "user:a"),
        op_rel(LDG_OP_CREATE_RELATIONSHIP, "doc:1", "viewer", "user:b"),
        op_rel(LDG_OP_CREATE_RELATIONSHIP, "doc:1", "editor", "user:a"),
        op_rel(LDG_OP_CREATE_RELATIONSHIP, "doc:2", "viewer", "user:a"),
        op_rel(LDG_OP_CREATE_RELATIONSHIP, "folder:9", "owner", "group:x#member"),
    };
    const struct ldg_cmd_result *r = apply1(f, cmd_write(org, v, "c", o, 5));
    assert_int_equal(r->code, LDG_RES_OK);
    for (int i = 0; i < 5; i++)
        assert_int_equal(r->outcomes[i], LDG_OUTCOME_CREATED);
    struct ldg_op again[] = {
        op_rel(LDG_OP_CREATE_RELATIONSHIP, "doc:1", "viewer", "user:a"),
        op_rel(LDG_OP_DELETE_RELATIONSHIP, "doc:1", "viewer", "user:zzz"),
    };
    r = apply1(f, cmd_write(org, v, "c", again, 2));
    assert_int_equal(r->outcomes[0], LDG_OUTCOME_ALREADY_EXISTS);
    assert_int_equal(r->outcomes[1], LDG_OUTCOME_NOT_FOUND);
    struct ldg_op bad[] = {op_rel(LDG_OP_CREATE_RELATIONSHIP, "doc:1", "", "user:a")};
    assert_int_equal(apply1(f, cmd_write(org, v, "c", bad, 1))->code, LDG_RES_INVALID);

    MDB_txn *txn;
    assert_int_equal(ldg_store_txn_begin(&f->store, true, &txn), 0);
    struct ldg_bytes none = {NULL, 0};
    struct rel_collect c = {0};
    bool more;
    /* by resource (object index) */
    assert_int_equal(ldg_ledger_list_relationships(&f->ledger, txn, org, v, B("doc:1"), none,
                                                   none, none, 0, rel_cb, &c, &more), 0);
    assert_int_equal(c.n, 3);
    assert_string_equal(c.rows[0], "doc:1#editor@user:a");
    assert_string_equal(c.rows[2], "doc:1#viewer@user:b");
    assert_int_equal(c.versions[0], 1); /* creation height */
    assert_false(more);
    /* resource + relation */
    memset(&c, 0, sizeof c);
    ldg_ledger_list_relationships(&f->ledger, txn, org, v, B("doc:1"), B("viewer"), none, none,
                                  0, rel_cb, &c, NULL);
    assert_int_equal(c.n, 2);
    /* by subject (subject index) + relation filter */
    memset(&c, 0, sizeof c);
    ldg_ledger_list_relationships(&f->ledger, txn, org, v, none, none, B("user:a"), none, 0,
                                  rel_cb, &c, NULL);
    assert_int_equal(c.n, 3);
    assert_string_equal(c.rows[0], "doc:1#editor@user:a");
    memset(&c, 0, sizeof c);
    ldg_ledger_list_relationships(&f->ledger, txn, org, v, none, B("viewer"), B("user:a"), none,
                                  0, rel_cb, &c, NULL);
    assert_int_equal(c.n, 2);
    /* everything, paged by 2 */
    int total = 0;
    char cursor[64];
    size_t clen = 0;
    for (int page = 0; page < 5; page++) {
        memset(&c, 0, sizeof c);
        ldg_ledger_list_relationships(&f->ledger, txn, org, v, none, none, none,
                                      (struct ldg_bytes){(uint8_t *)cursor, clen}, 2, rel_cb, &c,
                                      &more);
        total += c.n;
        memcpy(cursor, c.cursor, c.cursor_len);
        clen = c.cursor_len;
        if (!more)
            break;
        assert_int_equal(c.n, 2);
    }
    assert_int_equal(total, 5);
    /* resources by type */
    memset(&c, 0, sizeof c);
    ldg_ledger_list_resources(&f->ledger, txn, org, v, B("doc"), none, 0, res_cb, &c, &more);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.rows[0], "doc:1");
    assert_string_equal(c.rows[1], "doc:2");
    memset(&c, 0, sizeof c);
    ldg_ledger_list_resources(&f->ledger, txn, org, v, B("doc"), none, 1, res_cb, &c, &more);
    assert_int_equal(c.n, 1);
    assert_true(more);
    memset(&c, 0, sizeof c);
    ldg_ledger_list_resources(&f->ledger, txn, org, v, B("doc:"), B("doc:1"), 0, res_cb, &c,
                              &more);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.rows[0], "doc:2");
    ldg_store_txn_abort(txn);

    struct ldg_op del[] = {op_rel(LDG_OP_DELETE_RELATIONSHIP, "doc:1", "viewer", "user:a")};
    r = apply1(f, cmd_write(org, v, "c", del, 1));
    assert_int_equal(r->outcomes[0], LDG_OUTCOME_DELETED);
    assert_int_equal(ldg_store_txn_begin(&f->store, true, &txn), 0);
    memset(&c, 0, sizeof c);
    ldg_ledger_list_relationships(&f->ledger, txn, org, v, none, none, B("user:a"), none, 0,
                                  rel_cb, &c, NULL);
    assert_int_equal(c.n, 2);
    ldg_store_txn_abort(txn);
    fx_free(f);
}

/* ---- idempotency and sequences ---- */

static void test_idempotency(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    uint64_t org = create_org(f), v = create_vault(f, org);
    struct ldg_op o[] = {op_set("k", "1", LDG_COND_NONE)};
    struct ldg_cmd c = cmd_write(org, v, "cl", o, 1);
    memset(c.idempotency_key, 0x11, 16);
    const struct ldg_cmd_result *r = apply1(f, c);
    assert_int_equal(r->code, LDG_RES_OK);
    assert_int_equal(r->sequence, 1);
    uint8_t tx_id[16];
    memcpy(tx_id, c.tx_id, 16);
    uint64_t h = r->height;

    /* Retry with a new tx id: original result, no new block, no sequence. */
    struct ldg_cmd retry = cmd_write(org, v, "cl", o, 1);
    memset(retry.idempotency_key, 0x11, 16);
    r = apply1(f, retry);
    assert_int_equal(r->code, LDG_RES_ALREADY_COMMITTED);
    assert_memory_equal(r->tx_id, tx_id, 16);
    assert_int_equal(r->height, h);
    assert_int_equal(r->sequence, 1);
    assert_int_equal(f->res.block_count, 0);
    assert_int_equal(chain(f, org, v).height, h);

    /* Same key, other payload (ops or chain). */
    struct ldg_op o2[] = {op_set("k", "2", LDG_COND_NONE)};
    struct ldg_cmd other = cmd_write(org, v, "cl", o2, 1);
    memset(other.idempotency_key, 0x11, 16);
    assert_int_equal(apply1(f, other)->code, LDG_RES_IDEMPOTENCY_KEY_REUSED);
    other = cmd_write(org, 0, "cl", o, 1);
    memset(other.idempotency_key, 0x11, 16);
    assert_int_equal(apply1(f, other)->code, LDG_RES_IDEMPOTENCY_KEY_REUSED);
    assert_string_equal(get(f, org, v, "k", 0, NULL), "1");
    /* Another client may use the same key. */
    other = cmd_write(org, v, "cl2", o, 1);
    memset(other.idempotency_key, 0x11, 16);
    assert_int_equal(apply1(f, other)->code, LDG_RES_OK);

    /* Two copies in one entry: the second is a duplicate. */
    struct ldg_cmd pair[2] = {cmd_write(org, v, "cl", o2, 1), cmd_write(org, v, "cl", o2, 1)};
    memset(pair[0].idempotency_key, 0x22, 16);
    memset(pair[1].idempotency_key, 0x22, 16);
    apply(f, pair, 2);
    assert_int_equal(f->res.results[0].code, LDG_RES_OK);
    assert_int_equal(f->res.results[1].code, LDG_RES_ALREADY_COMMITTED);
    assert_memory_equal(f->res.results[1].tx_id, pair[0].tx_id, 16);
    assert_int_equal(f->res.blocks[0].tx_count, 1);

    /* Still there just under 24 h later; pruned after. */
    f->ts = T0 + 86400;
    r = apply1(f, retry);
    assert_int_equal(r->code, LDG_RES_ALREADY_COMMITTED);
    f->ts = T0 + 86401;
    struct ldg_op noop[] = {op_del("nothing")};
    apply1(f, cmd_write(org, 0, "x", noop, 1)); /* any entry prunes */
    MDB_txn *txn;
    assert_int_equal(ldg_store_txn_begin(&f->store, true, &txn), 0);
    struct ldg_idem_record rec;
    uint8_t key11[16];
    memset(key11, 0x11, 16);
    assert_int_equal(ldg_ledger_idempotency_get(&f->ledger, txn, B("cl"), key11, &rec),
                     LDG_ENOTFOUND);
    ldg_store_txn_abort(txn);
    r = apply1(f, retry);
    assert_int_equal(r->code, LDG_RES_OK);
    fx_free(f);
}

static void test_sequences(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    uint64_t org = create_org(f), v1 = create_vault(f, org), v2 = create_vault(f, org);
    struct ldg_op o[] = {op_set("k", "1", LDG_COND_NONE)};
    struct ldg_op bad[] = {op_set("k", "1", LDG_COND_NOT_EXISTS)};
    assert_int_equal(apply1(f, cmd_write(org, v1, "a", o, 1))->sequence, 1);
    assert_int_equal(apply1(f, cmd_write(org, v1, "a", o, 1))->sequence, 2);
    assert_int_equal(apply1(f, cmd_write(org, v1, "a", bad, 1))->code, LDG_RES_KEY_EXISTS);
    assert_int_equal(apply1(f, cmd_write(org, v1, "a", o, 1))->sequence, 3);
    assert_int_equal(apply1(f, cmd_write(org, v1, "b", o, 1))->sequence, 1);
    assert_int_equal(apply1(f, cmd_write(org, v2, "a", o, 1))->sequence, 1);
    struct ldg_cmd cmds[] = {cmd_write(org, v1, "a", o, 1), cmd_write(org, v1, "a", o, 1),
                             cmd_write(org, v2, "a", o, 1)};
    apply(f, cmds, 3);
    assert_int_equal(f->res.results[0].sequence, 4);
    assert_int_equal(f->res.results[1].sequence, 5);
    assert_int_equal(f->res.results[2].sequence, 2);
    assert_int_equal(f->res.block_count, 2); /* one block per chain */
    assert_int_equal(f->res.results[0].height, f->res.results[1].height);
    MDB_txn *txn;
    assert_int_equal(ldg_store_txn_begin(&f->store, true, &txn), 0);
    uint64_t seq;
    assert_int_equal(ldg_ledger_client_sequence(&f->ledger, txn, org, v1, B("a"), &seq), 0);
    assert_int_equal(seq, 5);
    assert_int_equal(ldg_ledger_client_sequence(&f->ledger, txn, org, v1, B("zz"), &seq), 0);
    assert_int_equal(seq, 0);
    /* The block records client, sequence and actor. */
    struct ldg_block b;
    assert_int_equal(ldg_ledger_get_block(&f->ledger, txn, org, v1, f->res.results[0].height,
                                          &b), 0);
    assert_int_equal(b.tx_count, 2);
    assert_int_equal(b.txs[1].sequence, 5);
    assert_int_equal(b.txs[1].actor.len, 8);
    assert_memory_equal(b.txs[1].actor.data, "client:a", 8);
    assert_int_equal(b.txs[1].timestamp_seconds, f->ts);
    assert_int_equal(b.leader_id, 7);
    ldg_block_clear(&b);
    ldg_store_txn_abort(txn);
    fx_free(f);
}

/* ---- TTL ---- */

static int count_cb(const struct ldg_entity *e, void *arg)
{
    (void)e;
    (*(int *)arg)++;
    return 0;
}

static void test_ttl(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    uint64_t org = create_org(f), v = create_vault(f, org);
    struct ldg_op o[] = {op_set("t", "x", LDG_COND_NONE)};
    o[0].expires_at = T0 + 10;
    apply1(f, cmd_write(org, v, "c", o, 1));
    assert_string_equal(get(f, org, v, "t", T0 + 9, NULL), "x");
    assert_string_equal(get(f, org, v, "t", T0 + 10, NULL), "<none>");
    assert_string_equal(get(f, org, v, "t", 0, NULL), "x");

    MDB_txn *txn;
    int n = 0;
    assert_int_equal(ldg_store_txn_begin(&f->store, true, &txn), 0);
    struct ldg_bytes none = {NULL, 0};
    ldg_ledger_list_entities(&f->ledger, txn, org, v, none, none, T0 + 10, 0, count_cb, &n,
                             NULL);
    assert_int_equal(n, 0);
    ldg_ledger_list_expired(&f->ledger, txn, org, v, T0 + 10, none, 0, count_cb, &n, NULL);
    assert_int_equal(n, 1);
    ldg_store_txn_abort(txn);

    /* expire_entity: no-op before the time or with another expired_at. */
    struct ldg_op ex[] = {{.type = LDG_OP_EXPIRE_ENTITY, .key = B("t"), .expired_at = T0 + 10}};
    struct ldg_cmd gc = {.type = LDG_CMD_EXPIRE, .org = org, .vault = v, .ops = ex, .op_count = 1};
    f->ts = T0 + 9;
    const struct ldg_cmd_result *r = apply1(f, gc);
    assert_int_equal(r->code, LDG_RES_OK);
    assert_int_equal(r->outcomes[0], LDG_OUTCOME_NOT_FOUND);
    assert_int_equal(r->sequence, 0);
    f->ts = T0 + 10;
    ex[0].expired_at = T0 + 11;
    assert_int_equal(apply1(f, gc)->outcomes[0], LDG_OUTCOME_NOT_FOUND);

    /* At apply, an expired entity counts as absent for conditions. */
    struct ldg_op must[] = {op_set("t", "y", LDG_COND_MUST_EXIST)};
    assert_int_equal(apply1(f, cmd_write(org, v, "c", must, 1))->code, LDG_RES_KEY_NOT_FOUND);

    ex[0].expired_at = T0 + 10;
    r = apply1(f, gc);
    assert_int_equal(r->outcomes[0], LDG_OUTCOME_DELETED);
    assert_string_equal(get(f, org, v, "t", 0, NULL), "<none>");

    /* Re-set with a new expiry: the old expiry proposal cannot delete it. */
    o[0].expires_at = T0 + 100;
    apply1(f, cmd_write(org, v, "c", o, 1));
    f->ts = T0 + 200;
    assert_int_equal(apply1(f, gc)->outcomes[0], LDG_OUTCOME_NOT_FOUND);
    struct ldg_op nx[] = {op_set("t", "z", LDG_COND_NOT_EXISTS)};
    r = apply1(f, cmd_write(org, v, "c", nx, 1));
    assert_int_equal(r->code, LDG_RES_OK);
    assert_int_equal(r->outcomes[0], LDG_OUTCOME_CREATED);

    /* The gc tx is in the block with actor system:gc, client "" and seq 0. */
    o[0].expires_at = T0 + 150; /* already past */
    apply1(f, cmd_write(org, v, "c", o, 1));
    ex[0].expired_at = T0 + 150;
    r = apply1(f, gc);
    assert_int_equal(r->outcomes[0], LDG_OUTCOME_DELETED);
    assert_int_equal(ldg_store_txn_begin(&f->store, true, &txn), 0);
    struct ldg_block b;
    assert_int_equal(ldg_ledger_get_block(&f->ledger, txn, org, v, r->height, &b), 0);
    assert_int_equal(b.tx_count, 1);
    assert_int_equal(b.txs[0].client_id.len, 0);
    assert_int_equal(b.txs[0].sequence, 0);
    assert_memory_equal(b.txs[0].actor.data, "system:gc", 9);
    ldg_block_clear(&b);
    ldg_store_txn_abort(txn);

    /* A gc tx may carry only expire ops. */
    struct ldg_op wrong[] = {op_del("t")};
    gc.ops = wrong;
    assert_int_equal(apply1(f, gc)->code, LDG_RES_INVALID);
    fx_free(f);
}

/* ---- history ---- */

static void test_history(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    uint64_t org = create_org(f), v = create_vault(f, org);
    struct ldg_op o[] = {op_set("h", "v1", LDG_COND_NONE)};
    apply1(f, cmd_write(org, v, "c", o, 1)); /* h1 */
    o[0] = op_set("h", "v2", LDG_COND_NONE);
    apply1(f, cmd_write(org, v, "c", o, 1)); /* h2 */
    o[0] = op_set("other", "x", LDG_COND_NONE);
    apply1(f, cmd_write(org, v, "c", o, 1)); /* h3 */
    o[0] = op_del("h");
    apply1(f, cmd_write(org, v, "c", o, 1)); /* h4 */
    o[0] = op_set("h", "v5", LDG_COND_NONE);
    o[0].expires_at = T0 + 5;
    apply1(f, cmd_write(org, v, "c", o, 1)); /* h5 */
    MDB_txn *txn;
    assert_int_equal(ldg_store_txn_begin(&f->store, true, &txn), 0);
    struct ldg_entity e;
    assert_int_equal(ldg_ledger_get_entity_at(&f->ledger, txn, org, v, B("h"), 0, 0, &e),
                     LDG_ENOTFOUND);
    const char *want[] = {NULL, "v1", "v2", "v2", NULL, "v5", "v5"};
    for (uint64_t h = 1; h <= 6; h++) {
        int rv = ldg_ledger_get_entity_at(&f->ledger, txn, org, v, B("h"), h, 0, &e);
        if (want[h] == NULL) {
            assert_int_equal(rv, LDG_ENOTFOUND);
        } else {
            assert_int_equal(rv, 0);
            assert_int_equal(e.value.len, strlen(want[h]));
            assert_memory_equal(e.value.data, want[h], e.value.len);
        }
    }
    assert_int_equal(ldg_ledger_get_entity_at(&f->ledger, txn, org, v, B("h"), 2, 0, &e), 0);
    assert_int_equal(e.version, 2);
    /* hidden with the block's time */
    assert_int_equal(ldg_ledger_get_entity_at(&f->ledger, txn, org, v, B("h"), 5, T0 + 5, &e),
                     LDG_ENOTFOUND);
    /* a key that is a prefix of another is not confused with it */
    assert_int_equal(ldg_ledger_get_entity_at(&f->ledger, txn, org, v, B("ot"), 3, 0, &e),
                     LDG_ENOTFOUND);
    ldg_store_txn_abort(txn);
    fx_free(f);
}

/* ---- listing ---- */

static int key_cb(const struct ldg_entity *e, void *arg)
{
    struct rel_collect *c = arg;
    snprintf(c->rows[c->n++], 64, "%.*s", (int)e->key.len, e->key.data);
    return 0;
}

static void test_list_entities(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    uint64_t org = create_org(f), v = create_vault(f, org);
    struct ldg_op o[] = {op_set("user:1", "a", 0), op_set("user:2", "b", 0),
                         op_set("user:3", "c", 0), op_set("zed", "d", 0)};
    apply1(f, cmd_write(org, v, "c", o, 4));
    MDB_txn *txn;
    assert_int_equal(ldg_store_txn_begin(&f->store, true, &txn), 0);
    struct rel_collect c = {0};
    bool more;
    struct ldg_bytes none = {NULL, 0};
    ldg_ledger_list_entities(&f->ledger, txn, org, v, B("user:"), none, 0, 2, key_cb, &c, &more);
    assert_int_equal(c.n, 2);
    assert_true(more);
    ldg_ledger_list_entities(&f->ledger, txn, org, v, B("user:"), B(c.rows[1]), 0, 2, key_cb,
                             &c, &more);
    assert_int_equal(c.n, 3);
    assert_string_equal(c.rows[2], "user:3");
    assert_false(more);
    /* Other vaults and the org chain are separate. */
    memset(&c, 0, sizeof c);
    ldg_ledger_list_entities(&f->ledger, txn, org, 0, none, none, 0, 0, key_cb, &c, NULL);
    assert_int_equal(c.n, 0);
    ldg_store_txn_abort(txn);
    fx_free(f);
}

/* ---- replay ---- */

static void test_replay_skip(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    uint64_t org = create_org(f), v = create_vault(f, org);
    struct ldg_op o[] = {op_set("k", "1", LDG_COND_NONE)};
    struct ldg_cmd c = cmd_write(org, v, "c", o, 1);
    struct ldg_entry e = {.log_id = f->log_id, .index = 10, .term = 3, .ts_seconds = T0,
                          .cmds = &c, .cmd_count = 1};
    struct ldg_apply_result res;
    assert_int_equal(ldg_ledger_apply_entry(&f->ledger, &e, &res), 0);
    assert_false(res.skipped);
    assert_int_equal(res.results[0].sequence, 1);
    ldg_apply_result_free(&res);
    uint64_t h = chain(f, org, v).height;
    /* Same index and lower: skipped, no effect. */
    assert_int_equal(ldg_ledger_apply_entry(&f->ledger, &e, &res), 0);
    assert_true(res.skipped);
    assert_int_equal(res.count, 0);
    e.index = 9;
    assert_int_equal(ldg_ledger_apply_entry(&f->ledger, &e, &res), 0);
    assert_true(res.skipped);
    assert_int_equal(chain(f, org, v).height, h);
    MDB_txn *txn;
    struct ldg_applied ap;
    assert_int_equal(ldg_store_txn_begin(&f->store, true, &txn), 0);
    assert_int_equal(ldg_ledger_applied(&f->ledger, txn, &ap), 0);
    ldg_store_txn_abort(txn);
    assert_int_equal(ap.log_id, f->log_id);
    assert_int_equal(ap.index, 10);
    assert_int_equal(ap.term, 3);
    /* A new log starts over the existing state from a low index. */
    e.log_id = 0xdef;
    e.index = 1;
    assert_int_equal(ldg_ledger_apply_entry(&f->ledger, &e, &res), 0);
    assert_false(res.skipped);
    assert_int_equal(res.results[0].sequence, 2);
    ldg_apply_result_free(&res);
    assert_int_equal(chain(f, org, v).height, h + 1);
    fx_free(f);
}

/* ---- commitments ---- */

struct leafset {
    struct ldg_leaf *leaves;
    uint8_t **keys;
    size_t n, cap;
};

static void leafset_add(struct leafset *s, struct ldg_buf *key, struct ldg_bytes value,
                        uint64_t expires, uint64_t version)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->leaves = realloc(s->leaves, s->cap * sizeof *s->leaves);
        s->keys = realloc(s->keys, s->cap * sizeof *s->keys);
    }
    size_t len;
    s->keys[s->n] = ldg_buf_steal(key, &len);
    struct ldg_leaf *l = &s->leaves[s->n++];
    l->key.data = s->keys[s->n - 1];
    l->key.len = len;
    ldg_sha256(value.data, value.len, l->value_hash);
    l->expires_at = expires;
    l->version = version;
}

static int leaf_entity_cb(const struct ldg_entity *e, void *arg)
{
    struct ldg_buf k;
    ldg_buf_init(&k);
    ldg_leaf_key_entity(&k, e->key);
    leafset_add(arg, &k, e->value, e->expires_at, e->version);
    return 0;
}

static int leaf_rel_cb(const struct ldg_relationship *r, void *arg)
{
    struct ldg_buf k;
    ldg_buf_init(&k);
    assert_int_equal(ldg_leaf_key_relationship(&k, r->resource, r->relation, r->subject), 0);
    leafset_add(arg, &k, (struct ldg_bytes){NULL, 0}, 0, r->version);
    return 0;
}

/* Full recomputation from the entities and relationships tables. */
static void naive_root(struct fx *f, uint64_t org, uint64_t vault, uint8_t out[32])
{
    MDB_txn *txn;
    assert_int_equal(ldg_store_txn_begin(&f->store, true, &txn), 0);
    struct leafset s = {0};
    struct ldg_bytes none = {NULL, 0};
    assert_int_equal(ldg_ledger_list_entities(&f->ledger, txn, org, vault, none, none, 0, 0,
                                              leaf_entity_cb, &s, NULL), 0);
    assert_int_equal(ldg_ledger_list_relationships(&f->ledger, txn, org, vault, none, none, none,
                                                   none, 0, leaf_rel_cb, &s, NULL), 0);
    uint8_t roots[256][32];
    assert_int_equal(ldg_state_root_from_leaves(s.leaves, s.n, roots, out), 0);
    uint8_t stored[256][32];
    assert_int_equal(ldg_ledger_bucket_roots(&f->ledger, txn, org, vault, stored), 0);
    assert_memory_equal(roots, stored, sizeof roots);
    ldg_store_txn_abort(txn);
    for (size_t i = 0; i < s.n; i++)
        ldg_free(s.keys[i]);
    free(s.keys);
    free(s.leaves);
}

static uint64_t rnd_state = 88172645463325252ULL;
static uint64_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

/* Apply |entries| entries of random ops to (org, vault) of |f|. */
static void random_entries(struct fx *f, uint64_t org, uint64_t v, int entries)
{
    static char keys[64][16], vals[64][16];
    for (int i = 0; i < 64; i++) {
        snprintf(keys[i], 16, "k%d", i);
        snprintf(vals[i], 16, "val%d", i);
    }
    static const char *res[] = {"doc:1", "doc:2", "doc:3", "folder:1"};
    static const char *rels[] = {"viewer", "editor"};
    static const char *subs[] = {"user:a", "user:b", "user:c"};
    for (int e = 0; e < entries; e++) {
        struct ldg_op ops[4][6];
        struct ldg_cmd cmds[4];
        int ncmd = 1 + (int)(rnd() % 4);
        for (int c = 0; c < ncmd; c++) {
            int nops = 1 + (int)(rnd() % 6);
            for (int i = 0; i < nops; i++) {
                struct ldg_op *o = &ops[c][i];
                switch (rnd() % 5) {
                case 0:
                case 1:
                    *o = op_set(keys[rnd() % 64], vals[rnd() % 64], LDG_COND_NONE);
                    if (rnd() % 4 == 0)
                        o->expires_at = (uint64_t)(f->ts + (int64_t)(rnd() % 20));
                    break;
                case 2:
                    *o = op_del(keys[rnd() % 64]);
                    break;
                case 3:
                    *o = op_rel(LDG_OP_CREATE_RELATIONSHIP, res[rnd() % 4], rels[rnd() % 2],
                                subs[rnd() % 3]);
                    break;
                default:
                    *o = op_rel(LDG_OP_DELETE_RELATIONSHIP, res[rnd() % 4], rels[rnd() % 2],
                                subs[rnd() % 3]);
                }
            }
            if (rnd() % 5 == 0) /* sometimes a failing condition */
                ops[c][0].cond = LDG_COND_VERSION, ops[c][0].type = LDG_OP_SET_ENTITY,
                ops[c][0].key = B(keys[0]), ops[c][0].cond_version = 999999;
            cmds[c] = cmd_write(org, v, (rnd() & 1) ? "x" : "y", ops[c], (size_t)nops);
        }
        apply(f, cmds, (size_t)ncmd);
        f->ts += (int64_t)(rnd() % 3);
    }
}

static void test_state_root_matches_naive(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    uint64_t org = create_org(f), v = create_vault(f, org);
    uint8_t root[32];
    naive_root(f, org, v, root);
    assert_memory_equal(root, LDG_EMPTY_STATE_ROOT, 32);
    for (int round = 0; round < 6; round++) {
        random_entries(f, org, v, 15);
        struct ldg_chain_info ci = chain(f, org, v);
        naive_root(f, org, v, root);
        assert_memory_equal(ci.state_root, root, 32);
        MDB_txn *txn;
        assert_int_equal(ldg_store_txn_begin(&f->store, true, &txn), 0);
        struct ldg_block_header h;
        uint8_t hash[32];
        assert_int_equal(ldg_ledger_get_header(&f->ledger, txn, org, v, ci.height, &h, NULL,
                                               hash), 0);
        assert_memory_equal(h.state_root, root, 32);
        assert_memory_equal(hash, ci.tip_hash, 32);
        ldg_store_txn_abort(txn);
    }
    fx_free(f);
}

static void test_state_root_large_block(void **state)
{
    (void)state;
    /* Enough leaves in one block that buckets take the full-scan path. */
    struct fx *f = fx_new();
    uint64_t org = create_org(f), v = create_vault(f, org);
    enum { N = 9000 };
    struct ldg_op *ops = calloc(N, sizeof *ops);
    char(*keys)[16] = calloc(N, 16);
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], 16, "big%d", i);
        ops[i] = op_set(keys[i], keys[i], LDG_COND_NONE);
    }
    assert_int_equal(apply1(f, cmd_write(org, v, "c", ops, N))->code, LDG_RES_OK);
    uint8_t root[32];
    naive_root(f, org, v, root);
    assert_memory_equal(chain(f, org, v).state_root, root, 32);
    /* Then a few changes on top (point-read path). */
    for (int i = 0; i < 5; i++)
        ops[i] = op_del(keys[i * 7]);
    assert_int_equal(apply1(f, cmd_write(org, v, "c", ops, 5))->code, LDG_RES_OK);
    naive_root(f, org, v, root);
    assert_memory_equal(chain(f, org, v).state_root, root, 32);
    free(ops);
    free(keys);
    fx_free(f);
}

static void test_verified_read_proof(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    uint64_t org = create_org(f), v = create_vault(f, org);
    random_entries(f, org, v, 20);
    struct ldg_op o[] = {op_set("proved", "value!", LDG_COND_NONE)};
    apply1(f, cmd_write(org, v, "c", o, 1));
    struct ldg_chain_info ci = chain(f, org, v);
    MDB_txn *txn;
    assert_int_equal(ldg_store_txn_begin(&f->store, true, &txn), 0);
    struct ldg_buf lk;
    ldg_buf_init(&lk);
    ldg_leaf_key_entity(&lk, B("proved"));
    struct ldg_proof p;
    assert_int_equal(ldg_ledger_prove(&f->ledger, txn, org, v,
                                      (struct ldg_bytes){lk.data, lk.len}, &p), 0);
    assert_true(p.found);
    uint8_t vh[32];
    ldg_sha256("value!", 6, vh);
    assert_memory_equal(p.leaf.value_hash, vh, 32);
    assert_memory_equal(p.tip.state_root, ci.state_root, 32);
    assert_int_equal(ldg_state_proof_verify(&p.proof, ci.state_root), 0);
    /* A tampered sibling fails. */
    p.siblings[3][0] ^= 1;
    assert_int_equal(ldg_state_proof_verify(&p.proof, ci.state_root), LDG_ECORRUPT);
    ldg_proof_clear(&p);
    /* Absence proof. */
    ldg_buf_reset(&lk);
    ldg_leaf_key_entity(&lk, B("never-set"));
    assert_int_equal(ldg_ledger_prove(&f->ledger, txn, org, v,
                                      (struct ldg_bytes){lk.data, lk.len}, &p), 0);
    assert_false(p.found);
    assert_int_equal(ldg_state_proof_verify(&p.proof, ci.state_root), 0);
    ldg_proof_clear(&p);
    ldg_buf_close(&lk);
    ldg_store_txn_abort(txn);
    fx_free(f);
}

static void test_determinism_and_chain(void **state)
{
    (void)state;
    struct fx *a = fx_new(), *b = fx_new();
    uint64_t seed = rnd_state;
    uint32_t tx_seed = txn_counter;
    uint64_t org = create_org(a), v = create_vault(a, org);
    random_entries(a, org, v, 40);
    rnd_state = seed;
    txn_counter = tx_seed;
    assert_int_equal(create_org(b), org);
    assert_int_equal(create_vault(b, org), v);
    random_entries(b, org, v, 40);
    struct ldg_chain_info ca = chain(a, org, v), cb = chain(b, org, v);
    assert_int_equal(ca.height, cb.height);
    assert_true(ca.height > 10);
    MDB_txn *ta, *tb;
    assert_int_equal(ldg_store_txn_begin(&a->store, true, &ta), 0);
    assert_int_equal(ldg_store_txn_begin(&b->store, true, &tb), 0);
    uint8_t prev[32] = {0};
    for (uint64_t h = 0; h <= ca.height; h++) {
        struct ldg_block ba, bb;
        assert_int_equal(ldg_ledger_get_block(&a->ledger, ta, org, v, h, &ba), 0);
        assert_int_equal(ldg_ledger_get_block(&b->ledger, tb, org, v, h, &bb), 0);
        assert_memory_equal(ba.block_hash, bb.block_hash, 32);
        /* Independent re-verification of the stored block. */
        uint8_t hh[32];
        ldg_block_hash(&ba.header, hh);
        assert_memory_equal(hh, ba.block_hash, 32);
        assert_memory_equal(ba.header.previous_hash, prev, 32);
        assert_int_equal(ba.header.height, h);
        uint8_t(*th)[32] = calloc(ba.tx_count + 1, 32);
        for (size_t i = 0; i < ba.tx_count; i++)
            assert_int_equal(ldg_tx_hash(&ba.txs[i], th[i]), 0);
        uint8_t txroot[32];
        ldg_merkle_root((const uint8_t(*)[32])th, ba.tx_count, txroot);
        assert_memory_equal(txroot, ba.header.tx_merkle_root, 32);
        assert_true(h == 0 || ba.tx_count > 0);
        free(th);
        memcpy(prev, ba.block_hash, 32);
        ldg_block_clear(&ba);
        ldg_block_clear(&bb);
    }
    assert_memory_equal(prev, ca.tip_hash, 32);
    struct ldg_block none;
    assert_int_equal(ldg_ledger_get_block(&a->ledger, ta, org, v, ca.height + 1, &none),
                     LDG_ENOTFOUND);
    ldg_store_txn_abort(ta);
    ldg_store_txn_abort(tb);
    fx_free(a);
    fx_free(b);
}

/* ---- entry codec ---- */

static void test_entry_codec(void **state)
{
    (void)state;
    struct ldg_op ops[] = {
        op_set("key", "value", LDG_COND_VALUE_EQUALS),
        op_rel(LDG_OP_CREATE_RELATIONSHIP, "doc:1", "viewer", "user:1"),
        op_del("gone"),
    };
    ops[0].cond_value = B("old");
    ops[0].expires_at = 1234;
    struct ldg_op ex[] = {{.type = LDG_OP_EXPIRE_ENTITY, .key = B("t"), .expired_at = 99}};
    struct ldg_cmd cmds[6] = {
        {.type = LDG_CMD_CREATE_ORG, .slug = 4, .name = B("org")},
        {.type = LDG_CMD_DELETE_ORG, .org = 4, .force = true},
        {.type = LDG_CMD_CREATE_VAULT, .org = 4, .name = B("vault")},
        {.type = LDG_CMD_DELETE_VAULT, .org = 4, .vault = 9},
        cmd_write(4, 9, "client", ops, 3),
        {.type = LDG_CMD_EXPIRE, .org = 4, .vault = 9, .ops = ex, .op_count = 1},
    };
    memset(cmds[4].idempotency_key, 0x5a, 16);
    struct ldg_entry e = {.log_id = 1, .index = 2, .term = 3, .ts_seconds = T0,
                          .ts_nanos = 123000, .leader_id = 77, .cmds = cmds, .cmd_count = 6};
    struct ldg_buf buf;
    ldg_buf_init(&buf);
    assert_int_equal(ldg_entry_encode(&e, &buf), 0);
    struct ldg_entry d;
    assert_int_equal(ldg_entry_decode(buf.data, buf.len, &d), 0);
    assert_int_equal(d.log_id, 1);
    assert_int_equal(d.index, 2);
    assert_int_equal(d.term, 3);
    assert_int_equal(d.ts_seconds, T0);
    assert_int_equal(d.ts_nanos, 123000);
    assert_int_equal(d.leader_id, 77);
    assert_int_equal(d.cmd_count, 6);
    assert_int_equal(d.cmds[0].slug, 4);
    assert_memory_equal(d.cmds[0].name.data, "org", 3);
    assert_true(d.cmds[1].force);
    assert_int_equal(d.cmds[3].vault, 9);
    assert_int_equal(d.cmds[4].op_count, 3);
    assert_memory_equal(d.cmds[4].idempotency_key, cmds[4].idempotency_key, 16);
    assert_memory_equal(d.cmds[4].tx_id, cmds[4].tx_id, 16);
    assert_memory_equal(d.cmds[4].client_id.data, "client", 6);
    assert_int_equal(d.cmds[4].ops[0].cond, LDG_COND_VALUE_EQUALS);
    assert_int_equal(d.cmds[4].ops[0].expires_at, 1234);
    assert_memory_equal(d.cmds[4].ops[0].cond_value.data, "old", 3);
    assert_memory_equal(d.cmds[4].ops[1].subject.data, "user:1", 6);
    assert_int_equal(d.cmds[5].ops[0].expired_at, 99);
    /* Re-encoding gives the same bytes. */
    struct ldg_buf again;
    ldg_buf_init(&again);
    assert_int_equal(ldg_entry_encode(&d, &again), 0);
    assert_int_equal(again.len, buf.len);
    assert_memory_equal(again.data, buf.data, buf.len);
    ldg_buf_close(&again);
    ldg_entry_clear(&d);

    /* Every truncation is rejected; so is a trailing byte. */
    for (size_t n = 0; n < buf.len; n++)
        assert_int_equal(ldg_entry_decode(buf.data, n, &d), LDG_ECORRUPT);
    ldg_buf_u8(&buf, 0);
    assert_int_equal(ldg_entry_decode(buf.data, buf.len, &d), LDG_ECORRUPT);
    buf.len--;
    /* Bad version, bad command type, absurd counts. */
    buf.data[2] = 9;
    assert_int_equal(ldg_entry_decode(buf.data, buf.len, &d), LDG_ECORRUPT);
    buf.data[2] = 1;
    uint8_t *cnt = buf.data + 3 + 8 * 4 + 4 + 8;
    uint8_t saved[4];
    memcpy(saved, cnt, 4);
    memset(cnt, 0xff, 4);
    assert_int_equal(ldg_entry_decode(buf.data, buf.len, &d), LDG_ECORRUPT);
    memcpy(cnt, saved, 4);
    cnt[4] = 0x77; /* first command type */
    assert_int_equal(ldg_entry_decode(buf.data, buf.len, &d), LDG_ECORRUPT);
    cnt[4] = LDG_CMD_CREATE_ORG;
    assert_int_equal(ldg_entry_decode(buf.data, buf.len, &d), 0);
    ldg_entry_clear(&d);
    /* Random byte flips never crash and either decode or say ECORRUPT. */
    uint8_t *copy = malloc(buf.len);
    for (int i = 0; i < 3000; i++) {
        memcpy(copy, buf.data, buf.len);
        int flips = 1 + (int)(rnd() % 4);
        for (int k = 0; k < flips; k++)
            copy[rnd() % buf.len] = (uint8_t)rnd();
        int rv = ldg_entry_decode(copy, buf.len, &d);
        assert_true(rv == 0 || rv == LDG_ECORRUPT);
        if (rv == 0)
            ldg_entry_clear(&d);
    }
    /* Pure garbage */
    for (int i = 0; i < 1000; i++) {
        size_t n = rnd() % 200;
        for (size_t k = 0; k < n; k++)
            copy[k % buf.len] = (uint8_t)rnd();
        int rv = ldg_entry_decode(copy, n < buf.len ? n : buf.len, &d);
        assert_true(rv == 0 || rv == LDG_ECORRUPT);
        if (rv == 0)
            ldg_entry_clear(&d);
    }
    free(copy);
    assert_int_equal(ldg_entry_decode(NULL, 0, &d), LDG_ECORRUPT);
    /* Encoder refuses bad input. */
    struct ldg_cmd badc = {.type = 0x66};
    struct ldg_entry bad = {.cmds = &badc, .cmd_count = 1};
    ldg_buf_reset(&buf);
    assert_int_equal(ldg_entry_encode(&bad, &buf), LDG_EINVAL);
    ldg_buf_close(&buf);
}

static void test_decoded_entry_applies(void **state)
{
    (void)state;
    /* The codec output drives apply exactly like the original structs. */
    struct fx *f = fx_new();
    struct ldg_op ops[] = {op_set("k", "v", LDG_COND_NOT_EXISTS)};
    struct ldg_cmd cmds[] = {
        {.type = LDG_CMD_CREATE_ORG, .name = B("o")},
        {.type = LDG_CMD_CREATE_VAULT, .org = 1, .name = B("v")},
        cmd_write(1, 1, "c", ops, 1),
    };
    struct ldg_entry e = {.log_id = 5, .index = 1, .term = 1, .ts_seconds = T0, .cmds = cmds,
                          .cmd_count = 3};
    struct ldg_buf buf;
    ldg_buf_init(&buf);
    assert_int_equal(ldg_entry_encode(&e, &buf), 0);
    struct ldg_entry d;
    assert_int_equal(ldg_entry_decode(buf.data, buf.len, &d), 0);
    struct ldg_apply_result r;
    assert_int_equal(ldg_ledger_apply_entry(&f->ledger, &d, &r), 0);
    assert_int_equal(r.results[2].code, LDG_RES_OK);
    assert_int_equal(r.results[2].height, 1);
    assert_int_equal(r.block_count, 3); /* two genesis blocks and block 1 */
    ldg_apply_result_free(&r);
    ldg_entry_clear(&d);
    ldg_buf_close(&buf);
    assert_string_equal(get(f, 1, 1, "k", 0, NULL), "v");
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_org_vault_lifecycle),
        cmocka_unit_test(test_entity_ops_and_conditions),
        cmocka_unit_test(test_atomic_failure),
        cmocka_unit_test(test_relationships),
        cmocka_unit_test(test_idempotency),
        cmocka_unit_test(test_sequences),
        cmocka_unit_test(test_ttl),
        cmocka_unit_test(test_history),
        cmocka_unit_test(test_list_entities),
        cmocka_unit_test(test_replay_skip),
        cmocka_unit_test(test_state_root_matches_naive),
        cmocka_unit_test(test_state_root_large_block),
        cmocka_unit_test(test_verified_read_proof),
        cmocka_unit_test(test_determinism_and_chain),
        cmocka_unit_test(test_entry_codec),
        cmocka_unit_test(test_decoded_entry_applies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
