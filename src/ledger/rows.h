/* Key and value encodings of the ledger tables (docs/storage.md).
 * Internal to src/ledger/. */
#ifndef LDG_LEDGER_ROWS_H
#define LDG_LEDGER_ROWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "crypto/bytes.h"
#include "crypto/sha256.h"
#include "crypto/state.h"
#include "store/store.h"
#include "util/buf.h"

#define CHAIN_KEY_LEN 16
#define TS_LEN 12
#define HISTORY_SET 1
#define HISTORY_REMOVED 2

static inline void chain_key(uint8_t out[CHAIN_KEY_LEN], uint64_t org, uint64_t vault)
{
    ldg_put_u64be(out, org);
    ldg_put_u64be(out + 8, vault);
}

static inline void put_ts(uint8_t *p, int64_t s, uint32_t ns)
{
    ldg_put_u64be(p, (uint64_t)s);
    ldg_put_u32be(p + 8, ns);
}

static inline void get_ts(const uint8_t *p, int64_t *s, uint32_t *ns)
{
    *s = (int64_t)ldg_get_u64be(p);
    *ns = ldg_get_u32be(p + 8);
}

/* chain ‖ parts[0] ‖ 0x00 ‖ parts[1] ‖ ... (relationship indexes). */
static inline void rel_index_key(struct ldg_buf *b, const uint8_t chain[CHAIN_KEY_LEN],
                                 struct ldg_bytes a, struct ldg_bytes c, struct ldg_bytes d)
{
    ldg_buf_reset(b);
    ldg_buf_append(b, chain, CHAIN_KEY_LEN);
    ldg_buf_append(b, a.data, a.len);
    ldg_buf_u8(b, 0);
    ldg_buf_append(b, c.data, c.len);
    ldg_buf_u8(b, 0);
    ldg_buf_append(b, d.data, d.len);
}

/* Split "a\0b\0c" into three parts. Returns false if malformed. */
static inline bool split3(const uint8_t *p, size_t n, struct ldg_bytes out[3])
{
    size_t part = 0, start = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == 0) {
            if (part >= 2)
                return false;
            out[part].data = p + start;
            out[part].len = i - start;
            part++;
            start = i + 1;
        }
    }
    if (part != 2)
        return false;
    out[2].data = p + start;
    out[2].len = n - start;
    return true;
}

static inline void history_key(struct ldg_buf *b, const uint8_t chain[CHAIN_KEY_LEN],
                               struct ldg_bytes key, uint64_t height)
{
    ldg_buf_reset(b);
    ldg_buf_append(b, chain, CHAIN_KEY_LEN);
    ldg_buf_u32be(b, (uint32_t)key.len);
    ldg_buf_append(b, key.data, key.len);
    ldg_buf_u64be(b, UINT64_MAX - height);
}

static inline void block_key(uint8_t out[CHAIN_KEY_LEN + 8], uint64_t org, uint64_t vault,
                             uint64_t height)
{
    chain_key(out, org, vault);
    ldg_put_u64be(out + CHAIN_KEY_LEN, height);
}

static inline void tree_key(uint8_t out[CHAIN_KEY_LEN + 3], const uint8_t chain[CHAIN_KEY_LEN],
                            uint8_t bucket, uint16_t node)
{
    memcpy(out, chain, CHAIN_KEY_LEN);
    out[CHAIN_KEY_LEN] = bucket;
    out[CHAIN_KEY_LEN + 1] = (uint8_t)(node >> 8);
    out[CHAIN_KEY_LEN + 2] = (uint8_t)node;
}

static inline void idem_key(struct ldg_buf *b, struct ldg_bytes client, const uint8_t key[16])
{
    ldg_buf_reset(b);
    ldg_buf_u32be(b, (uint32_t)client.len);
    ldg_buf_append(b, client.data, client.len);
    ldg_buf_append(b, key, 16);
}

/* Chain row (after version byte): status u8 ‖ created ts ‖ height ‖ tip ‖
 * root ‖ last ts ‖ len name. */
#define CHAIN_ROW_FIXED (1 + 1 + TS_LEN + 8 + 32 + 32 + TS_LEN + 4)
#define ORG_ROW_FIXED (1 + 1 + TS_LEN + 4)
#define ENTITY_ROW_FIXED (1 + 8 + 8)
#define HISTORY_ROW_FIXED (1 + 1 + 8 + 8)
#define LEAF_ROW_LEN (1 + 32 + 8 + 8)
#define IDEM_ROW_LEN (1 + 32 + TS_LEN + 8 + 8 + 16 + 8 + 8)
#define BLOCK_ROW_FIXED (1 + 148 + 8 + 32 + 4)

struct ldg_org_info;
/* Parse an orgs row (name points into |p|); vault_count is left 0. */
int ldg_ledger_parse_org_row(uint64_t org, const uint8_t *p, size_t n, struct ldg_org_info *o);

/* Load bucket |b| of a chain: defaults overlaid with the stored nodes
 * (apply.c; shared with the proof code). */
int ldg_ledger_load_bucket(struct ldg_store *s, MDB_txn *txn, const uint8_t chain[CHAIN_KEY_LEN],
                           uint8_t b, struct ldg_bucket_tree *t);

#endif
