/* Node-local chain health markers. See local_health.h and docs/storage.md §5. */
#include <string.h>

#include "ledger/local_health.h"
#include "util/buf.h"

static void chain_key(uint8_t k[16], uint64_t org, uint64_t vault)
{
    ldg_put_u64be(k, org);
    ldg_put_u64be(k + 8, vault);
}

int ldg_local_health_get(struct ldg_store *s, MDB_txn *txn, uint64_t org, uint64_t vault,
                         struct ldg_local_health *out)
{
    if (s->local_missing)
        return LDG_ENOTFOUND;
    uint8_t k[16];
    chain_key(k, org, vault);
    MDB_val v;
    int rv = ldg_store_get(s, txn, LDG_T_LOCAL_HEALTH, k, sizeof k, &v);
    if (rv != 0)
        return rv;
    const uint8_t *p = v.mv_data;
    if (v.mv_size != LDG_LOCAL_HEALTH_VALUE_LEN || p[0] != LDG_STORE_VALUE_V1 ||
        (p[1] != LDG_STATUS_DIVERGED && p[1] != LDG_STATUS_RECOVERING))
        return LDG_ECORRUPT;
    memset(out, 0, sizeof *out);
    out->status = p[1];
    out->diverged_height = ldg_get_u64be(p + 2);
    memcpy(out->expected_root, p + 10, LDG_HASH_LEN);
    memcpy(out->computed_root, p + 10 + LDG_HASH_LEN, LDG_HASH_LEN);
    out->attempts = ldg_get_u32be(p + 10 + 2 * LDG_HASH_LEN);
    out->since_seconds = (int64_t)ldg_get_u64be(p + 14 + 2 * LDG_HASH_LEN);
    return 0;
}

int ldg_local_health_put(struct ldg_store *s, MDB_txn *txn, uint64_t org, uint64_t vault,
                         const struct ldg_local_health *h)
{
    if (h->status != LDG_STATUS_DIVERGED && h->status != LDG_STATUS_RECOVERING)
        return LDG_EINVAL;
    uint8_t k[16];
    chain_key(k, org, vault);
    uint8_t v[LDG_LOCAL_HEALTH_VALUE_LEN];
    v[0] = LDG_STORE_VALUE_V1;
    v[1] = (uint8_t)h->status;
    ldg_put_u64be(v + 2, h->diverged_height);
    memcpy(v + 10, h->expected_root, LDG_HASH_LEN);
    memcpy(v + 10 + LDG_HASH_LEN, h->computed_root, LDG_HASH_LEN);
    ldg_put_u32be(v + 10 + 2 * LDG_HASH_LEN, h->attempts);
    ldg_put_u64be(v + 14 + 2 * LDG_HASH_LEN, (uint64_t)h->since_seconds);
    return ldg_store_put(s, txn, LDG_T_LOCAL_HEALTH, k, sizeof k, v, sizeof v);
}

int ldg_local_health_clear(struct ldg_store *s, MDB_txn *txn, uint64_t org, uint64_t vault)
{
    uint8_t k[16];
    chain_key(k, org, vault);
    int rv = ldg_store_del(s, txn, LDG_T_LOCAL_HEALTH, k, sizeof k);
    return rv == LDG_ENOTFOUND ? 0 : rv;
}

int ldg_local_health_apply(struct ldg_store *s, MDB_txn *txn, struct ldg_chain_info *ci)
{
    if (ci->status == LDG_STATUS_DELETED)
        return 0;
    struct ldg_local_health h;
    int rv = ldg_local_health_get(s, txn, ci->org, ci->vault, &h);
    if (rv == LDG_ENOTFOUND)
        return 0;
    if (rv != 0)
        return rv;
    ci->status = h.status;
    return 0;
}
