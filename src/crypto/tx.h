/* Transactions and operations: the domain types the ledger layer applies and
 * stores, their canonical encoding, and their hashes (SPEC §5 "Transaction
 * hash", "Idempotency").
 *
 * Canonical transaction encoding (= the tx hash preimage):
 *   tx_id[16] ‖ len client_id ‖ sequence u64be ‖ len actor ‖ op_count u32le ‖
 *   ops ‖ timestamp_seconds i64be ‖ timestamp_nanos u32be
 * where "len x" is x's length as u32 little-endian then x's bytes, and each op
 * is a type byte then its fields:
 *   0x01 create_relationship, 0x02 delete_relationship:
 *        len resource ‖ len relation ‖ len subject
 *   0x03 set_entity: len key ‖ len value ‖ condition ‖ expires_at u64be
 *        condition: 0x00 none | 0x01 not_exists | 0x02 must_exist |
 *                   0x03 u64be version | 0x04 len value
 *   0x04 delete_entity: len key
 *   0x05 expire_entity: len key ‖ expired_at u64be
 * docs/hashing.md has the byte tables and test vectors.
 *
 * All byte fields are borrowed (pointer + length); nothing here takes
 * ownership except where a function says the caller frees. */
#ifndef LDG_CRYPTO_TX_H
#define LDG_CRYPTO_TX_H

#include <stddef.h>
#include <stdint.h>

#include "crypto/bytes.h"
#include "crypto/sha256.h"
#include "util/buf.h"

#define LDG_TX_ID_LEN 16

enum ldg_op_type {
    LDG_OP_CREATE_RELATIONSHIP = 0x01,
    LDG_OP_DELETE_RELATIONSHIP = 0x02,
    LDG_OP_SET_ENTITY = 0x03,
    LDG_OP_DELETE_ENTITY = 0x04,
    LDG_OP_EXPIRE_ENTITY = 0x05,
};

enum ldg_cond_kind {
    LDG_COND_NONE = 0x00,
    LDG_COND_NOT_EXISTS = 0x01,
    LDG_COND_MUST_EXIST = 0x02,
    LDG_COND_VERSION = 0x03,      /* equals the height of the key's last change */
    LDG_COND_VALUE_EQUALS = 0x04, /* current value equals cond_value */
};

/* One operation. Only the fields of its type are encoded; the others are
 * ignored (leave them zero). */
struct ldg_op {
    uint8_t type;                /* enum ldg_op_type */
    uint8_t cond;                /* set_entity: enum ldg_cond_kind */
    struct ldg_bytes resource;   /* relationship ops */
    struct ldg_bytes relation;   /* relationship ops */
    struct ldg_bytes subject;    /* relationship ops */
    struct ldg_bytes key;        /* entity ops */
    struct ldg_bytes value;      /* set_entity */
    struct ldg_bytes cond_value; /* set_entity with LDG_COND_VALUE_EQUALS */
    uint64_t cond_version;       /* set_entity with LDG_COND_VERSION */
    uint64_t expires_at;         /* set_entity: Unix seconds, 0 = never */
    uint64_t expired_at;         /* expire_entity: the expires_at being expired */
};

/* One transaction as it appears in a block. */
struct ldg_tx {
    uint8_t tx_id[LDG_TX_ID_LEN]; /* leader-made, UUIDv4 bytes */
    struct ldg_bytes client_id;   /* "" for TTL expiry transactions */
    uint64_t sequence;            /* per (client_id, chain); 0 for system:gc */
    struct ldg_bytes actor;       /* "client:<client_id>" or "system:gc" */
    const struct ldg_op *ops;     /* borrowed array of op_count ops */
    size_t op_count;              /* must fit in u32 */
    int64_t timestamp_seconds;    /* entry timestamp */
    uint32_t timestamp_nanos;     /* 0..999999999, multiple of 1000 */
};

/* Check that |op| is encodable: known type and condition, every length fits
 * in u32, non-NULL data for non-empty fields.
 * Returns 0 or LDG_EINVAL. */
int ldg_op_validate(const struct ldg_op *op);

/* Append the canonical encoding of |op| / of |ops[0..n)| (no count) to |out|.
 * Returns 0, or LDG_EINVAL (nothing appended by the failing op) when an op
 * does not validate. */
int ldg_op_encode(const struct ldg_op *op, struct ldg_buf *out);
int ldg_ops_encode(const struct ldg_op *ops, size_t n, struct ldg_buf *out);

/* Decode one op from |p[*off..n)| into |op|, whose byte fields then point into
 * |p| (borrowed: valid while |p| is). Advances |*off| past the op.
 * Returns 0; LDG_EINVAL when the bytes are truncated or name an unknown op
 * type or condition (|*off| unchanged). */
int ldg_op_decode(const uint8_t *p, size_t n, size_t *off, struct ldg_op *op);

/* Append the canonical encoding of |tx| (the tx hash preimage) to |out|.
 * Returns 0 or LDG_EINVAL (|out| may then hold a partial encoding; reset it). */
int ldg_tx_encode(const struct ldg_tx *tx, struct ldg_buf *out);

/* Decode a canonical transaction encoding that spans exactly |p[0..n)|.
 * On success |tx| points into |p| and into a new ops array returned in
 * |*ops_out| (caller frees with ldg_free; NULL when there are no ops).
 * Returns 0; LDG_EINVAL for truncated, trailing or invalid bytes (nothing
 * allocated). */
int ldg_tx_decode(const uint8_t *p, size_t n, struct ldg_tx *tx, struct ldg_op **ops_out);

/* tx hash = H(canonical encoding), computed streaming with no allocation.
 * Returns 0 or LDG_EINVAL (when an op does not validate, or op_count or a
 * length does not fit in u32). */
int ldg_tx_hash(const struct ldg_tx *tx, uint8_t out[LDG_HASH_LEN]);

/* Idempotency payload digest H(organization_slug u64be ‖ vault_slug u64be ‖
 * ops), "ops" being the concatenated op encodings without a count (as in the
 * tx hash). Vault slug 0 is the organization chain.
 * Returns 0 or LDG_EINVAL. */
int ldg_tx_payload_digest(uint64_t organization_slug, uint64_t vault_slug,
                          const struct ldg_op *ops, size_t n, uint8_t out[LDG_HASH_LEN]);

#endif
