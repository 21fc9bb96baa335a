/* Read side of the ledger: everything here takes an LMDB txn (read or
 * write) and never writes. Byte fields handed out point into the map. */
#include <string.h>

#include "ledger/ledger.h"
#include "ledger/rows.h"
#include "util/mem.h"

int ldg_ledger_applied(struct ldg_ledger *l, MDB_txn *txn, struct ldg_applied *out)
{
    memset(out, 0, sizeof *out);
    MDB_val v;
    int rv = ldg_store_get(l->store, txn, LDG_T_META, "applied", 7, &v);
    if (rv == LDG_ENOTFOUND)
        return 0;
    if (rv != 0)
        return rv;
    const uint8_t *p = v.mv_data;
    if (v.mv_size != 25 || p[0] != LDG_STORE_VALUE_V1)
        return LDG_ECORRUPT;
    out->log_id = ldg_get_u64be(p + 1);
    out->index = ldg_get_u64be(p + 9);
    out->term = ldg_get_u64be(p + 17);
    return 0;
}

/* ---- organizations and chains ---- */

int ldg_ledger_parse_org_row(uint64_t org, const uint8_t *p, size_t n, struct ldg_org_info *o)
{
    memset(o, 0, sizeof *o);
    if (n < ORG_ROW_FIXED || p[0] != LDG_STORE_VALUE_V1)
        return LDG_ECORRUPT;
    o->slug = org;
    o->status = p[1];
    get_ts(p + 2, &o->created_seconds, &o->created_nanos);
    uint32_t len = ldg_get_u32le(p + 2 + TS_LEN);
    if (n - ORG_ROW_FIXED != len)
        return LDG_ECORRUPT;
    o->name.data = len ? p + ORG_ROW_FIXED : NULL;
    o->name.len = len;
    return 0;
}

static int parse_chain_row(const uint8_t *k, const uint8_t *p, size_t n,
                           struct ldg_chain_info *c)
{
    memset(c, 0, sizeof *c);
    if (n < CHAIN_ROW_FIXED || p[0] != LDG_STORE_VALUE_V1)
        return LDG_ECORRUPT;
    c->org = ldg_get_u64be(k);
    c->vault = ldg_get_u64be(k + 8);
    size_t off = 1;
    c->status = p[off++];
    get_ts(p + off, &c->created_seconds, &c->created_nanos);
    off += TS_LEN;
    c->height = ldg_get_u64be(p + off);
    off += 8;
    memcpy(c->tip_hash, p + off, LDG_HASH_LEN);
    off += LDG_HASH_LEN;
    memcpy(c->state_root, p + off, LDG_HASH_LEN);
    off += LDG_HASH_LEN;
    get_ts(p + off, &c->last_seconds, &c->last_nanos);
    off += TS_LEN;
    uint32_t len = ldg_get_u32le(p + off);
    off += 4;
    if (n - off != len)
        return LDG_ECORRUPT;
    c->name.data = len ? p + off : NULL;
    c->name.len = len;
    return 0;
}

int ldg_ledger_get_chain(struct ldg_ledger *l, MDB_txn *txn, uint64_t org, uint64_t vault,
                         struct ldg_chain_info *out)
{
    uint8_t k[CHAIN_KEY_LEN];
    chain_key(k, org, vault);
    MDB_val v;
    int rv = ldg_store_get(l->store, txn, LDG_T_CHAINS, k, sizeof k, &v);
    if (rv != 0)
        return rv;
    return parse_chain_row(k, v.mv_data, v.mv_size, out);
}

int ldg_ledger_list_vaults(struct ldg_ledger *l, MDB_txn *txn, uint64_t org,
                           uint64_t after_org, uint64_t after_vault, bool include_deleted,
                           size_t limit, ldg_chain_cb cb, void *arg)
{
    uint8_t prefix[8];
    ldg_put_u64be(prefix, org);
    uint8_t start[CHAIN_KEY_LEN + 1];
    size_t slen = 0;
    if (after_org != 0 || after_vault != 0) {
        chain_key(start, after_org, after_vault);
        start[CHAIN_KEY_LEN] = 0; /* strictly after */
        slen = sizeof start;
    }
    struct ldg_store_iter it;
    int rv = ldg_store_iter_init(&it, l->store, txn, LDG_T_CHAINS, prefix, org ? 8 : 0,
                                 slen ? start : NULL, slen);
    if (rv != 0)
        return rv;
    size_t n = 0;
    while ((rv = ldg_store_iter_next(&it)) == 1) {
        if (it.key.mv_size != CHAIN_KEY_LEN) {
            rv = LDG_ECORRUPT;
            break;
        }
        struct ldg_chain_info c;
        rv = parse_chain_row(it.key.mv_data, it.val.mv_data, it.val.mv_size, &c);
        if (rv != 0)
            break;
        if (c.vault == 0 || (!include_deleted && c.status == LDG_STATUS_DELETED))
            continue;
        if (limit && n >= limit) {
            rv = 0;
            break;
        }
        n++;
        int crv = cb(&c, arg);
        if (crv != 0) {
            ldg_store_iter_close(&it);
            return crv;
        }
    }
    ldg_store_iter_close(&it);
    return rv < 0 ? rv : 0;
}

static int count_cb(const struct ldg_chain_info *c, void *arg)
{
    (void)c;
    (*(uint64_t *)arg)++;
    return 0;
}

static int fill_org(struct ldg_ledger *l, MDB_txn *txn, uint64_t org, const MDB_val *v,
                    struct ldg_org_info *out)
{
    int rv = ldg_ledger_parse_org_row(org, v->mv_data, v->mv_size, out);
    if (rv != 0)
        return rv;
    return ldg_ledger_list_vaults(l, txn, org, 0, 0, false, 0, count_cb, &out->vault_count);
}

int ldg_ledger_get_org(struct ldg_ledger *l, MDB_txn *txn, uint64_t org,
                       struct ldg_org_info *out)
{
    uint8_t k[8];
    ldg_put_u64be(k, org);
    MDB_val v;
    int rv = ldg_store_get(l->store, txn, LDG_T_ORGS, k, 8, &v);
    if (rv != 0)
        return rv;
    return fill_org(l, txn, org, &v, out);
}

int ldg_ledger_list_orgs(struct ldg_ledger *l, MDB_txn *txn, uint64_t after, size_t limit,
                         ldg_org_cb cb, void *arg)
{
    uint8_t start[9];
    ldg_put_u64be(start, after);
    start[8] = 0;
    struct ldg_store_iter it;
    int rv = ldg_store_iter_init(&it, l->store, txn, LDG_T_ORGS, NULL, 0, start, 9);
    if (rv != 0)
        return rv;
    size_t n = 0;
    while ((limit == 0 || n < limit) && (rv = ldg_store_iter_next(&it)) == 1) {
        if (it.key.mv_size != 8) {
            rv = LDG_ECORRUPT;
            break;
        }
        struct ldg_org_info o;
        rv = fill_org(l, txn, ldg_get_u64be(it.key.mv_data), &it.val, &o);
        if (rv != 0)
            break;
        n++;
        int crv = cb(&o, arg);
        if (crv != 0) {
            ldg_store_iter_close(&it);
            return crv;
        }
    }
    ldg_store_iter_close(&it);
    return rv < 0 ? rv : 0;
}

/* A row holding one u64 (relationship version, client sequence): format
 * byte then the value big-endian. */
static int parse_u64_row(const MDB_val *v, uint64_t *out)
{
    if (v->mv_size != 9 || ((uint8_t *)v->mv_data)[0] != LDG_STORE_VALUE_V1)
        return LDG_ECORRUPT;
    *out = ldg_get_u64be((uint8_t *)v->mv_data + 1);
    return 0;
}

/* ---- entities ---- */

static int parse_entity(const MDB_val *v, struct ldg_entity *out)
{
    const uint8_t *p = v->mv_data;
    if (v->mv_size < ENTITY_ROW_FIXED || p[0] != LDG_STORE_VALUE_V1)
        return LDG_ECORRUPT;
    out->version = ldg_get_u64be(p + 1);
    out->expires_at = ldg_get_u64be(p + 9);
    out->value.data = p + ENTITY_ROW_FIXED;
    out->value.len = v->mv_size - ENTITY_ROW_FIXED;
    return 0;
}

static bool expired(uint64_t expires_at, int64_t now_s)
{
    return expires_at > 0 && now_s > 0 && expires_at <= (uint64_t)now_s;
}

int ldg_ledger_get_entity(struct ldg_ledger *l, MDB_txn *txn, uint64_t org, uint64_t vault,
                          struct ldg_bytes key, int64_t now_s, struct ldg_entity *out)
{
    memset(out, 0, sizeof *out);
    struct ldg_buf k;
    ldg_buf_init(&k);
    ldg_buf_reserve(&k, CHAIN_KEY_LEN + key.len);
    uint8_t ck[CHAIN_KEY_LEN];
    chain_key(ck, org, vault);
    ldg_buf_append(&k, ck, sizeof ck);
    ldg_buf_append(&k, key.data, key.len);
    MDB_val v;
    int rv = ldg_store_get(l->store, txn, LDG_T_ENTITIES, k.data, k.len, &v);
    ldg_buf_close(&k);
    if (rv != 0)
        return rv;
    out->key = key;
    rv = parse_entity(&v, out);
    if (rv == 0 && expired(out->expires_at, now_s))
        rv = LDG_ENOTFOUND;
    return rv;
}

int ldg_ledger_get_entity_at(struct ldg_ledger *l, MDB_txn *txn, uint64_t org,
                             uint64_t vault, struct ldg_bytes key, uint64_t height,
                             int64_t now_s, struct ldg_entity *out)
{
    memset(out, 0, sizeof *out);
    if (key.len > UINT32_MAX)
        return LDG_EINVAL;
    uint8_t ck[CHAIN_KEY_LEN];
    chain_key(ck, org, vault);
    struct ldg_buf k;
    ldg_buf_init(&k);
    history_key(&k, ck, key, height);
    size_t plen = k.len - 8;
    struct ldg_store_iter it;
    int rv = ldg_store_iter_init(&it, l->store, txn, LDG_T_HISTORY, k.data, plen, k.data, k.len);
    if (rv == 0) {
        rv = ldg_store_iter_next(&it);
        if (rv == 0) {
            rv = LDG_ENOTFOUND;
        } else if (rv == 1) {
            const uint8_t *p = it.val.mv_data;
            if (it.key.mv_size != k.len || it.val.mv_size < HISTORY_ROW_FIXED ||
                p[0] != LDG_STORE_VALUE_V1) {
                rv = LDG_ECORRUPT;
            } else if (p[1] != HISTORY_SET) {
                rv = LDG_ENOTFOUND;
            } else {
                out->key = key;
                out->expires_at = ldg_get_u64be(p + 2);
                out->version = ldg_get_u64be(p + 10);
                out->value.data = p + HISTORY_ROW_FIXED;
                out->value.len = it.val.mv_size - HISTORY_ROW_FIXED;
                rv = expired(out->expires_at, now_s) ? LDG_ENOTFOUND : 0;
            }
        }
        ldg_store_iter_close(&it);
    }
    ldg_buf_close(&k);
    return rv;
}

/* Walk the chain's entities with |prefix| after |after|; |want| filters. */
static int walk_entities(struct ldg_ledger *l, MDB_txn *txn, uint64_t org, uint64_t vault,
                         struct ldg_bytes prefix, struct ldg_bytes after, size_t limit,
                         bool (*want)(const struct ldg_entity *, int64_t), int64_t now_s,
                         ldg_entity_cb cb, void *arg, bool *more)
{
    if (more)
        *more = false;
    struct ldg_buf pk, sk;
    ldg_buf_init(&pk);
    ldg_buf_init(&sk);
    uint8_t ck[CHAIN_KEY_LEN];
    chain_key(ck, org, vault);
    ldg_buf_append(&pk, ck, sizeof ck);
    ldg_buf_append(&pk, prefix.data, prefix.len);
    if (after.len) {
        ldg_buf_append(&sk, ck, sizeof ck);
        ldg_buf_append(&sk, after.data, after.len);
        ldg_buf_u8(&sk, 0); /* smallest key after |after| */
    }
    struct ldg_store_iter it;
    int rv = ldg_store_iter_init(&it, l->store, txn, LDG_T_ENTITIES, pk.data, pk.len,
                                 after.len ? sk.data : NULL, sk.len);
    size_t n = 0;
    while (rv == 0) {
        rv = ldg_store_iter_next(&it);
        if (rv != 1)
            break;
        rv = 0;
        struct ldg_entity e = {
            .key = {(const uint8_t *)it.key.mv_data + CHAIN_KEY_LEN,
                    it.key.mv_size - CHAIN_KEY_LEN},
        };
        rv = parse_entity(&it.val, &e);
        if (rv != 0)
            break;
        if (!want(&e, now_s))
            continue;
        if (limit && n >= limit) {
            if (more)
                *more = true;
            break;
        }
        rv = cb(&e, arg);
        n++;
    }
    ldg_store_iter_close(&it);
    ldg_buf_close(&pk);
    ldg_buf_close(&sk);
    return rv;
}

static bool want_live(const struct ldg_entity *e, int64_t now_s)
{
    return !expired(e->expires_at, now_s);
}

static bool want_expired(const struct ldg_entity *e, int64_t now_s)
{
    return expired(e->expires_at, now_s);
}

int ldg_ledger_list_entities(struct ldg_ledger *l, MDB_txn *txn, uint64_t org, uint64_t vault,
                             struct ldg_bytes prefix, struct ldg_bytes after, int64_t now_s,
                             size_t limit, ldg_entity_cb cb, void *arg, bool *more)
{
    return walk_entities(l, txn, org, vault, prefix, after, limit, want_live, now_s, cb, arg,
                         more);
}

int ldg_ledger_list_expired(struct ldg_ledger *l, MDB_txn *txn, uint64_t org, uint64_t vault,
                            int64_t now_s, struct ldg_bytes after, size_t limit,
                            ldg_entity_cb cb, void *arg, bool *more)
{
    return walk_entities(l, txn, org, vault, (struct ldg_bytes){NULL, 0}, after, limit,
                         want_expired, now_s, cb, arg, more);
}

/* ---- relationships ---- */

static bool bytes_eq(struct ldg_bytes a, struct ldg_bytes b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

int ldg_ledger_list_relationships(struct ldg_ledger *l, MDB_txn *txn, uint64_t org,
                                  uint64_t vault, struct ldg_bytes resource,
                                  struct ldg_bytes relation, struct ldg_bytes subject,
                                  struct ldg_bytes after, size_t limit, ldg_rel_cb cb,
                                  void *arg, bool *more)
{
    if (more)
        *more = false;
    uint8_t ck[CHAIN_KEY_LEN];
    chain_key(ck, org, vault);
    /* by_subject: rows are subject\0resource\0relation */
    bool by_subject = resource.len == 0 && subject.len > 0;
    enum ldg_table t = by_subject ? LDG_T_RELS_BY_SUBJECT : LDG_T_RELS;
    struct ldg_buf pk, sk;
    ldg_buf_init(&pk);
    ldg_buf_init(&sk);
    ldg_buf_append(&pk, ck, sizeof ck);
    if (by_subject) {
        ldg_buf_append(&pk, subject.data, subject.len);
        ldg_buf_u8(&pk, 0);
    } else if (resource.len) {
        ldg_buf_append(&pk, resource.data, resource.len);
        ldg_buf_u8(&pk, 0);
        if (relation.len) {
            ldg_buf_append(&pk, relation.data, relation.len);
            ldg_buf_u8(&pk, 0);
        }
    }
    if (after.len) {
        ldg_buf_append(&sk, ck, sizeof ck);
        ldg_buf_append(&sk, after.data, after.len);
        ldg_buf_u8(&sk, 0);
    }
    struct ldg_store_iter it;
    int rv = ldg_store_iter_init(&it, l->store, txn, t, pk.data, pk.len,
                                 after.len ? sk.data : NULL, sk.len);
    size_t n = 0;
    while (rv == 0) {
        rv = ldg_store_iter_next(&it);
        if (rv != 1)
            break;
        rv = 0;
        const uint8_t *kp = (const uint8_t *)it.key.mv_data + CHAIN_KEY_LEN;
        size_t kn = it.key.mv_size - CHAIN_KEY_LEN;
        struct ldg_bytes parts[3];
        if (!split3(kp, kn, parts)) {
            rv = LDG_ECORRUPT;
            break;
        }
        struct ldg_relationship r = {.cursor = {kp, kn}};
        if (by_subject) {
            r.subject = parts[0];
            r.resource = parts[1];
            r.relation = parts[2];
        } else {
            r.resource = parts[0];
            r.relation = parts[1];
            r.subject = parts[2];
        }
        if ((relation.len && !bytes_eq(relation, r.relation)) ||
            (subject.len && !bytes_eq(subject, r.subject)))
            continue;
        if (by_subject) {
            /* The version lives in the object row. */
            struct ldg_buf ok;
            ldg_buf_init(&ok);
            rel_index_key(&ok, ck, r.resource, r.relation, r.subject);
            MDB_val v;
            rv = ldg_store_get(l->store, txn, LDG_T_RELS, ok.data, ok.len, &v);
            ldg_buf_close(&ok);
            if (rv == LDG_ENOTFOUND)
                rv = LDG_ECORRUPT;
            if (rv == 0)
                rv = parse_u64_row(&v, &r.version);
        } else {
            rv = parse_u64_row(&it.val, &r.version);
        }
        if (rv != 0)
            break;
        if (limit && n >= limit) {
            if (more)
                *more = true;
            break;
        }
        rv = cb(&r, arg);
        n++;
    }
    ldg_store_iter_close(&it);
    ldg_buf_close(&pk);
    ldg_buf_close(&sk);
    return rv;
}

int ldg_ledger_list_resources(struct ldg_ledger *l, MDB_txn *txn, uint64_t org,
                              uint64_t vault, struct ldg_bytes type, struct ldg_bytes after,
                              size_t limit, ldg_resource_cb cb, void *arg, bool *more)
{
    if (more)
        *more = false;
    uint8_t ck[CHAIN_KEY_LEN];
    chain_key(ck, org, vault);
    struct ldg_buf pk, seek;
    ldg_buf_init(&pk);
    ldg_buf_init(&seek);
    ldg_buf_append(&pk, ck, sizeof ck);
    ldg_buf_append(&pk, type.data, type.len);
    if (type.len && type.data[type.len - 1] != ':')
        ldg_buf_u8(&pk, ':');
    if (after.len) {
        ldg_buf_append(&seek, ck, sizeof ck);
        ldg_buf_append(&seek, after.data, after.len);
        ldg_buf_u8(&seek, 1); /* past every row of |after| */
    } else {
        ldg_buf_append(&seek, pk.data, pk.len);
    }
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, l->store->dbi[LDG_T_RELS], &cur);
    int rv = ldg_err_from_mdb(rc);
    size_t n = 0;
    struct ldg_buf last;
    ldg_buf_init(&last);
    while (rv == 0) {
        MDB_val k = {.mv_size = seek.len, .mv_data = seek.data}, v;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (rc == MDB_NOTFOUND)
            break;
        if (rc != 0) {
            rv = ldg_err_from_mdb(rc);
            break;
        }
        if (k.mv_size < pk.len || memcmp(k.mv_data, pk.data, pk.len) != 0)
            break;
        const uint8_t *kp = (const uint8_t *)k.mv_data + CHAIN_KEY_LEN;
        size_t kn = k.mv_size - CHAIN_KEY_LEN;
        const uint8_t *nul = memchr(kp, 0, kn);
        if (nul == NULL) {
            rv = LDG_ECORRUPT;
            break;
        }
        struct ldg_bytes res = {kp, (size_t)(nul - kp)};
        if (limit && n >= limit) {
            if (more)
                *more = true;
            break;
        }
        /* Copy before the callback: the next seek needs it. */
        ldg_buf_reset(&last);
        ldg_buf_append(&last, res.data, res.len);
        rv = cb(res, arg);
        n++;
        ldg_buf_reset(&seek);
        ldg_buf_append(&seek, ck, sizeof ck);
        ldg_buf_append(&seek, last.data, last.len);
        ldg_buf_u8(&seek, 1);
    }
    if (rc == 0 || rc == MDB_NOTFOUND || cur != NULL)
        mdb_cursor_close(cur);
    ldg_buf_close(&last);
    ldg_buf_close(&pk);
    ldg_buf_close(&seek);
    return rv;
}

/* ---- clients and idempotency ---- */

int ldg_ledger_client_sequence(struct ldg_ledger *l, MDB_txn *txn, uint64_t org,
                               uint64_t vault, struct ldg_bytes client_id, uint64_t *seq)
{
    *seq = 0;
    struct ldg_buf k;
    ldg_buf_init(&k);
    uint8_t ck[CHAIN_KEY_LEN];
    chain_key(ck, org, vault);
    ldg_buf_append(&k, ck, sizeof ck);
    ldg_buf_append(&k, client_id.data, client_id.len);
    MDB_val v;
    int rv = ldg_store_get(l->store, txn, LDG_T_CLIENTS, k.data, k.len, &v);
    ldg_buf_close(&k);
    if (rv == LDG_ENOTFOUND)
        return 0;
    if (rv != 0)
        return rv;
    return parse_u64_row(&v, seq);
}

int ldg_ledger_idempotency_get(struct ldg_ledger *l, MDB_txn *txn,
                               struct ldg_bytes client_id,
                               const uint8_t key[LDG_IDEMPOTENCY_KEY_LEN],
                               struct ldg_idem_record *out)
{
    if (client_id.len > UINT32_MAX)
        return LDG_EINVAL;
    struct ldg_buf k;
    ldg_buf_init(&k);
    idem_key(&k, client_id, key);
    MDB_val v;
    int rv = ldg_store_get(l->store, txn, LDG_T_IDEM, k.data, k.len, &v);
    ldg_buf_close(&k);
    if (rv != 0)
        return rv;
    const uint8_t *p = v.mv_data;
    if (v.mv_size != IDEM_ROW_LEN || p[0] != LDG_STORE_VALUE_V1)
        return LDG_ECORRUPT;
    memcpy(out->digest, p + 1, LDG_HASH_LEN);
    get_ts(p + 33, &out->entry_seconds, &out->entry_nanos);
    out->org = ldg_get_u64be(p + 45);
    out->vault = ldg_get_u64be(p + 53);
    memcpy(out->tx_id, p + 61, LDG_TX_ID_LEN);
    out->height = ldg_get_u64be(p + 77);
    out->sequence = ldg_get_u64be(p + 85);
    return 0;
}

/* ---- blocks ---- */

static int block_row(struct ldg_ledger *l, MDB_txn *txn, uint64_t org, uint64_t vault,
                     uint64_t height, MDB_val *v, struct ldg_block_header *h,
                     uint64_t *leader_id, uint8_t hash[LDG_HASH_LEN])
{
    uint8_t k[CHAIN_KEY_LEN + 8];
    block_key(k, org, vault, height);
    int rv = ldg_store_get(l->store, txn, LDG_T_BLOCKS, k, sizeof k, v);
    if (rv != 0)
        return rv;
    const uint8_t *p = v->mv_data;
    if (v->mv_size < BLOCK_ROW_FIXED || p[0] != LDG_STORE_VALUE_V1)
        return LDG_ECORRUPT;
    if (ldg_block_header_decode(p + 1, LDG_BLOCK_HEADER_LEN, h) != 0)
        return LDG_ECORRUPT;
    if (leader_id)
        *leader_id = ldg_get_u64be(p + 1 + 148);
    if (hash)
        memcpy(hash, p + 1 + 148 + 8, LDG_HASH_LEN);
    return 0;
}

int ldg_ledger_get_header(struct ldg_ledger *l, MDB_txn *txn, uint64_t org, uint64_t vault,
                          uint64_t height, struct ldg_block_header *out, uint64_t *leader_id,
                          uint8_t block_hash[LDG_HASH_LEN])
{
    MDB_val v;
    return block_row(l, txn, org, vault, height, &v, out, leader_id, block_hash);
}

void ldg_block_clear(struct ldg_block *b)
{
    if (b->txs != NULL)
        for (size_t i = 0; i < b->tx_count; i++)
            ldg_free((void *)b->txs[i].ops);
    ldg_free(b->txs);
    memset(b, 0, sizeof *b);
}

int ldg_ledger_get_block(struct ldg_ledger *l, MDB_txn *txn, uint64_t org, uint64_t vault,
                         uint64_t height, struct ldg_block *out)
{
    memset(out, 0, sizeof *out);
    MDB_val v;
    int rv = block_row(l, txn, org, vault, height, &v, &out->header, &out->leader_id,
                       out->block_hash);
    if (rv != 0)
        return rv;
    const uint8_t *p = v.mv_data;
    uint32_t count = ldg_get_u32be(p + BLOCK_ROW_FIXED - 4);
    size_t off = BLOCK_ROW_FIXED;
    if (count > (v.mv_size - off) / 4)
        return LDG_ECORRUPT;
    out->txs = count ? ldg_calloc(count, sizeof *out->txs) : NULL;
    for (uint32_t i = 0; i < count; i++) {
        if (v.mv_size - off < 4) {
            rv = LDG_ECORRUPT;
            break;
        }
        uint32_t len = ldg_get_u32be(p + off);
        off += 4;
        if (v.mv_size - off < len) {
            rv = LDG_ECORRUPT;
            break;
        }
        struct ldg_op *ops = NULL;
        if (ldg_tx_decode(p + off, len, &out->txs[i], &ops) != 0) {
            rv = LDG_ECORRUPT;
            break;
        }
        out->txs[i].ops = ops;
        out->tx_count = i + 1;
        off += len;
    }
    if (rv == 0 && off != v.mv_size)
        rv = LDG_ECORRUPT;
    if (rv != 0)
        ldg_block_clear(out);
    return rv;
}

/* ---- commitments ---- */

int ldg_ledger_bucket_roots(struct ldg_ledger *l, MDB_txn *txn, uint64_t org, uint64_t vault,
                            uint8_t roots[LDG_STATE_BUCKETS][LDG_HASH_LEN])
{
    uint8_t ck[CHAIN_KEY_LEN];
    chain_key(ck, org, vault);
    for (unsigned b = 0; b < LDG_STATE_BUCKETS; b++) {
        uint8_t k[CHAIN_KEY_LEN + 3];
        tree_key(k, ck, (uint8_t)b, 0);
        MDB_val v;
        int rv = ldg_store_get(l->store, txn, LDG_T_TREE, k, sizeof k, &v);
        if (rv == LDG_ENOTFOUND) {
            memcpy(roots[b], LDG_EMPTY_SUBTREE[LDG_BUCKET_DEPTH], LDG_HASH_LEN);
            continue;
        }
        if (rv != 0)
            return rv;
        if (v.mv_size != 1 + LDG_HASH_LEN || ((uint8_t *)v.mv_data)[0] != LDG_STORE_VALUE_V1)
            return LDG_ECORRUPT;
        memcpy(roots[b], (uint8_t *)v.mv_data + 1, LDG_HASH_LEN);
    }
    return 0;
}

void ldg_proof_clear(struct ldg_proof *p)
{
    ldg_free(p->others);
    ldg_free(p->keys_mem);
    memset(p, 0, sizeof *p);
}

int ldg_ledger_prove(struct ldg_ledger *l, MDB_txn *txn, uint64_t org, uint64_t vault,
                     struct ldg_bytes leaf_key, struct ldg_proof *out)
{
    memset(out, 0, sizeof *out);
    struct ldg_chain_info ci;
    int rv = ldg_ledger_get_chain(l, txn, org, vault, &ci);
    if (rv != 0)
        return rv;
    rv = ldg_ledger_get_header(l, txn, org, vault, ci.height, &out->tip, NULL, NULL);
    if (rv != 0)
        return rv;
    ldg_leaf_key_locate(leaf_key, &out->bucket, &out->slot);
    uint8_t ck[CHAIN_KEY_LEN];
    chain_key(ck, org, vault);

    /* The slot's leaves: copy keys into one buffer, then point into it. */
    uint8_t prefix[CHAIN_KEY_LEN + 2];
    memcpy(prefix, ck, CHAIN_KEY_LEN);
    prefix[CHAIN_KEY_LEN] = out->bucket;
    prefix[CHAIN_KEY_LEN + 1] = out->slot;
    struct ldg_buf keys;
    ldg_buf_init(&keys);
    size_t n = 0, cap = 0, self = SIZE_MAX;
    struct ldg_leaf *leaves = NULL;
    size_t *offs = NULL;
    struct ldg_store_iter it;
    rv = ldg_store_iter_init(&it, l->store, txn, LDG_T_SLOT_LEAVES, prefix, sizeof prefix, NULL, 0);
    while (rv == 0) {
        rv = ldg_store_iter_next(&it);
        if (rv != 1)
            break;
        rv = 0;
        const uint8_t *p = it.val.mv_data;
        if (it.val.mv_size != LEAF_ROW_LEN || p[0] != LDG_STORE_VALUE_V1) {
            rv = LDG_ECORRUPT;
            break;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 4;
            leaves = ldg_realloc(leaves, cap * sizeof *leaves);
            offs = ldg_realloc(offs, cap * sizeof *offs);
        }
        struct ldg_leaf *lf = &leaves[n];
        size_t klen = it.key.mv_size - sizeof prefix;
        offs[n] = keys.len;
        ldg_buf_append(&keys, (const uint8_t *)it.key.mv_data + sizeof prefix, klen);
        lf->key.len = klen;
        memcpy(lf->value_hash, p + 1, LDG_HASH_LEN);
        lf->expires_at = ldg_get_u64be(p + 33);
        lf->version = ldg_get_u64be(p + 41);
        if (klen == leaf_key.len && memcmp((const uint8_t *)it.key.mv_data + sizeof prefix,
                                           leaf_key.data, klen) == 0)
            self = n;
        n++;
    }
    ldg_store_iter_close(&it);
    if (rv < 0)
        goto fail;
    rv = 0;
    for (size_t i = 0; i < n; i++)
        leaves[i].key.data = keys.data + offs[i];
    out->keys_mem = ldg_buf_steal(&keys, NULL);
    out->others = n ? ldg_malloc(n * sizeof *out->others) : NULL;
    for (size_t i = 0; i < n; i++) {
        if (i == self) {
            out->leaf = leaves[i];
            out->found = true;
        } else {
            out->others[out->n_others++] = leaves[i];
        }
    }

    struct ldg_bucket_tree *t = ldg_malloc(sizeof *t);
    rv = ldg_ledger_load_bucket(l->store, txn, ck, out->bucket, t);
    if (rv == 0)
        ldg_bucket_tree_path(t, out->slot, out->siblings);
    ldg_free(t);
    if (rv != 0)
        goto fail;
    uint8_t(*roots)[LDG_HASH_LEN] = ldg_malloc(LDG_STATE_BUCKETS * LDG_HASH_LEN);
    rv = ldg_ledger_bucket_roots(l, txn, org, vault, roots);
    for (unsigned b = 0, j = 0; rv == 0 && b < LDG_STATE_BUCKETS; b++)
        if (b != out->bucket)
            memcpy(out->other_bucket_roots[j++], roots[b], LDG_HASH_LEN);
    ldg_free(roots);
    if (rv != 0)
        goto fail;

    out->proof.leaf_key = leaf_key;
    out->proof.leaf = out->found ? &out->leaf : NULL;
    out->proof.others = out->others;
    out->proof.n_others = out->n_others;
    out->proof.siblings = (const uint8_t(*)[LDG_HASH_LEN])out->siblings;
    out->proof.other_bucket_roots = (const uint8_t(*)[LDG_HASH_LEN])out->other_bucket_roots;
    if (out->found)
        out->proof.leaf_key = out->leaf.key;
    ldg_free(leaves);
    ldg_free(offs);
    return 0;
fail:
    ldg_free(leaves);
    ldg_free(offs);
    ldg_buf_close(&keys);
    ldg_proof_clear(out);
    return rv;
}
