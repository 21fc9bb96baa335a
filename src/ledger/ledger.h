/* The ledger state machine (SPEC §4, §5): organizations, vaults, entities,
 * relationships, blocks, commitments, sequences, idempotency, TTL.
 *
 * Pure logic over an LMDB transaction: no Raft, no gRPC, no libuv, no clock.
 * Everything written depends only on the entry and the replicated state, so
 * applying the same entries to two fresh stores yields identical blocks.
 *
 * Apply: ldg_ledger_apply(ledger, write_txn, entry, &result) applies one
 * Raft entry (a batch of commands) inside the caller's write txn, including
 * the applied position; the caller commits. ldg_ledger_apply_entry wraps
 * that in its own txn with map-growth retry. Client-level failures
 * (conditions, duplicates, unknown org) are results, never errors: a
 * non-zero return means local I/O trouble (the FSM must not commit and
 * should stop the node).
 *
 * Reads take a read (or write) txn; returned byte fields point into the
 * LMDB map and are valid until that txn ends. List functions call their
 * callback per row: return 0 to go on; any other value stops the walk and
 * is returned. They return 0, LDG_ECORRUPT for undecodable rows, or an
 * LMDB error. */
#ifndef LDG_LEDGER_LEDGER_H
#define LDG_LEDGER_LEDGER_H

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto/block.h"
#include "crypto/state.h"
#include "crypto/tx.h"
#include "ledger/entry.h"
#include "store/store.h"

/* Idempotency records live at least this long in entry time. */
#define LDG_IDEMPOTENCY_RETENTION_S 86400
/* At most this many expired idempotency records are pruned per entry. */
#define LDG_IDEMPOTENCY_PRUNE_MAX 1000

enum ldg_status {
    LDG_STATUS_ACTIVE = 1,
    LDG_STATUS_READ_ONLY = 2,
    LDG_STATUS_DIVERGED = 3,
    LDG_STATUS_RECOVERING = 4,
    LDG_STATUS_DELETED = 5,
};

/* Per-operation outcome of a successful transaction. */
enum ldg_op_outcome {
    LDG_OUTCOME_CREATED = 1,        /* set_entity on an absent key, new relationship */
    LDG_OUTCOME_UPDATED = 2,        /* set_entity on a live key */
    LDG_OUTCOME_DELETED = 3,        /* delete/expire removed a leaf */
    LDG_OUTCOME_NOT_FOUND = 4,      /* delete/expire no-op */
    LDG_OUTCOME_ALREADY_EXISTS = 5, /* create_relationship no-op */
};

/* Result code of a command. 0 = success; others are client-level results. */
enum ldg_result_code {
    LDG_RES_OK = 0,
    LDG_RES_KEY_EXISTS = 1,             /* not_exists failed */
    LDG_RES_KEY_NOT_FOUND = 2,          /* must_exist/version/value_equals on absent key */
    LDG_RES_VERSION_MISMATCH = 3,
    LDG_RES_VALUE_MISMATCH = 4,
    LDG_RES_ALREADY_COMMITTED = 5,      /* idempotent retry: original result given */
    LDG_RES_IDEMPOTENCY_KEY_REUSED = 6, /* same key, other payload */
    LDG_RES_ORG_NOT_FOUND = 7,          /* unknown or deleted organization */
    LDG_RES_VAULT_NOT_FOUND = 8,        /* unknown or deleted vault */
    LDG_RES_CHAIN_INACTIVE = 9,         /* vault READ_ONLY/DIVERGED/RECOVERING */
    LDG_RES_INVALID = 10,               /* structurally invalid command */
    LDG_RES_SLUG_EXISTS = 11,           /* create with a slug already used */
    LDG_RES_HAS_VAULTS = 12,            /* delete_org with live vaults, no force */
};

/* Text name of a result code ("KEY_EXISTS"), static. */
const char *ldg_result_code_name(int code);

struct ldg_cmd_result {
    uint8_t type;             /* enum ldg_cmd_type */
    int code;                 /* enum ldg_result_code */
    uint64_t org;             /* organization (assigned for create_org) */
    uint64_t vault;           /* vault (assigned for create_vault) */
    /* write/expire success, or the original for ALREADY_COMMITTED: */
    uint8_t tx_id[LDG_TX_ID_LEN];
    uint64_t height;          /* block height holding the tx */
    uint64_t sequence;        /* assigned sequence (0 for system:gc) */
    uint32_t tx_index;        /* position of the tx in its block (success only) */
    uint8_t *outcomes;        /* op_count enum ldg_op_outcome (success only) */
    size_t outcome_count;
    /* condition failure detail: */
    uint32_t failed_op;       /* index of the failing op */
    uint8_t *key;             /* the key (owned) */
    size_t key_len;
    bool has_current;         /* the key is live: current_* are set */
    uint64_t current_version;
    uint8_t *current_value;   /* owned */
    size_t current_value_len;
    /* create_org / create_vault success: the genesis header */
    struct ldg_block_header genesis;
};

/* A block made by an entry (for WatchBlocks announcements, write replies). */
struct ldg_block_made {
    struct ldg_block_header header;
    uint8_t block_hash[LDG_HASH_LEN];
    uint32_t tx_count;
};

struct ldg_apply_result {
    bool skipped;                   /* at or below the applied position */
    struct ldg_cmd_result *results; /* one per command, in order */
    size_t count;
    struct ldg_block_made *blocks;  /* genesis and new blocks, in creation order */
    size_t block_count;
};

/* Free what a result owns; |r| is zeroed. */
void ldg_apply_result_free(struct ldg_apply_result *r);

struct ldg_ledger {
    struct ldg_store *store; /* borrowed */
};

/* Bind a ledger to an open store. */
void ldg_ledger_init(struct ldg_ledger *l, struct ldg_store *s);

/* Apply |e| in write txn |txn| (see top). On success |out| is filled (free
 * with ldg_apply_result_free) and the applied position is e's; |txn| must
 * then be committed by the caller. Entries with log_id equal to the applied
 * one and index <= the applied index are skipped (out->skipped).
 * Returns 0, or LDG_EIO/LDG_EFULL/LDG_ECORRUPT... on storage trouble, with
 * |out| empty; the caller must abort |txn| then. */
int ldg_ledger_apply(struct ldg_ledger *l, MDB_txn *txn, const struct ldg_entry *e,
                     struct ldg_apply_result *out);

/* ldg_ledger_apply in its own write txn, committed; grows the map and
 * retries on LDG_EFULL. */
int ldg_ledger_apply_entry(struct ldg_ledger *l, const struct ldg_entry *e,
                           struct ldg_apply_result *out);

/* ---- reads ---- */

struct ldg_applied {
    uint64_t log_id;
    uint64_t index;
    uint64_t term;
};
/* Applied position; all zero for a fresh store. */
int ldg_ledger_applied(struct ldg_ledger *l, MDB_txn *txn, struct ldg_applied *out);

struct ldg_org_info {
    uint64_t slug;
    int status;                 /* enum ldg_status */
    int64_t created_seconds;
    uint32_t created_nanos;
    struct ldg_bytes name;      /* into the map */
    uint64_t vault_count;       /* live (not deleted) vaults */
};
/* LDG_ENOTFOUND for an unknown org (deleted ones are returned with status). */
int ldg_ledger_get_org(struct ldg_ledger *l, MDB_txn *txn, uint64_t org,
                       struct ldg_org_info *out);
typedef int (*ldg_org_cb)(const struct ldg_org_info *o, void *arg);
/* Organizations with slug > |after|, ascending, at most |limit| (0 = all).
 * A non-zero return from |cb| stops and is returned. */
int ldg_ledger_list_orgs(struct ldg_ledger *l, MDB_txn *txn, uint64_t after, size_t limit,
                         ldg_org_cb cb, void *arg);

struct ldg_chain_info {
    uint64_t org;
    uint64_t vault;                     /* 0 = organization chain */
    int status;                         /* enum ldg_status */
    int64_t created_seconds;
    uint32_t created_nanos;
    uint64_t height;                    /* tip height (0 = genesis only) */
    uint8_t tip_hash[LDG_HASH_LEN];     /* block_hash of the tip */
    uint8_t state_root[LDG_HASH_LEN];   /* state root at the tip */
    int64_t last_seconds;               /* timestamp of the tip block */
    uint32_t last_nanos;
    struct ldg_bytes name;              /* into the map */
};
/* LDG_ENOTFOUND for an unknown chain. */
int ldg_ledger_get_chain(struct ldg_ledger *l, MDB_txn *txn, uint64_t org, uint64_t vault,
                         struct ldg_chain_info *out);
typedef int (*ldg_chain_cb)(const struct ldg_chain_info *c, void *arg);
/* Vaults (never org chains) in (org, vault) order after (after_org,
 * after_vault); |org| != 0 restricts to one organization; deleted vaults
 * only when |include_deleted|. |limit| 0 = all. */
int ldg_ledger_list_vaults(struct ldg_ledger *l, MDB_txn *txn, uint64_t org,
                           uint64_t after_org, uint64_t after_vault, bool include_deleted,
                           size_t limit, ldg_chain_cb cb, void *arg);

struct ldg_entity {
    struct ldg_bytes key;       /* into the map (or the caller's key) */
    struct ldg_bytes value;     /* into the map */
    uint64_t version;           /* height of the last set */
    uint64_t expires_at;        /* 0 = never */
};
/* The live entity. Entities with 0 < expires_at <= |now_s| are hidden
 * (LDG_ENOTFOUND); now_s = 0 hides nothing. */
int ldg_ledger_get_entity(struct ldg_ledger *l, MDB_txn *txn, uint64_t org, uint64_t vault,
                          struct ldg_bytes key, int64_t now_s, struct ldg_entity *out);
/* The entity as of block |height| (state after that block), hidden as
 * above with |now_s| (pass the block's timestamp). LDG_ENOTFOUND when it
 * did not exist then. The caller checks height <= tip. */
int ldg_ledger_get_entity_at(struct ldg_ledger *l, MDB_txn *txn, uint64_t org,
                             uint64_t vault, struct ldg_bytes key, uint64_t height,
                             int64_t now_s, struct ldg_entity *out);
typedef int (*ldg_entity_cb)(const struct ldg_entity *ent, void *arg);
/* Entities whose key starts with |prefix|, in key order, with key > |after|
 * when after.len > 0 (paging cursor = last key returned), at most |limit|
 * (0 = all), hiding expired ones as above. |*more| (may be NULL) is set when
 * entries remain after the last one returned. */
int ldg_ledger_list_entities(struct ldg_ledger *l, MDB_txn *txn, uint64_t org, uint64_t vault,
                             struct ldg_bytes prefix, struct ldg_bytes after, int64_t now_s,
                             size_t limit, ldg_entity_cb cb, void *arg, bool *more);

struct ldg_relationship {
    struct ldg_bytes resource; /* into the map */
    struct ldg_bytes relation;
    struct ldg_bytes subject;
    uint64_t version;          /* creation height */
    struct ldg_bytes cursor;   /* opaque paging cursor of this row */
};
typedef int (*ldg_rel_cb)(const struct ldg_relationship *r, void *arg);
/* Relationships matching the given parts (len 0 = any). Uses the object
 * index when |resource| is given, the subject index when only |subject| is,
 * else scans the chain. |after| is the cursor of the last row returned
 * (opaque, only valid for the same filter), len 0 to start. */
int ldg_ledger_list_relationships(struct ldg_ledger *l, MDB_txn *txn, uint64_t org,
                                  uint64_t vault, struct ldg_bytes resource,
                                  struct ldg_bytes relation, struct ldg_bytes subject,
                                  struct ldg_bytes after, size_t limit, ldg_rel_cb cb,
                                  void *arg, bool *more);
typedef int (*ldg_resource_cb)(struct ldg_bytes resource, void *arg);
/* Distinct resources "type:..." that have at least one relationship, in
 * order, with resource > |after| when after.len > 0. */
int ldg_ledger_list_resources(struct ldg_ledger *l, MDB_txn *txn, uint64_t org,
                              uint64_t vault, struct ldg_bytes type, struct ldg_bytes after,
                              size_t limit, ldg_resource_cb cb, void *arg, bool *more);

/* Last committed sequence of |client_id| on the chain (0 if none). */
int ldg_ledger_client_sequence(struct ldg_ledger *l, MDB_txn *txn, uint64_t org,
                               uint64_t vault, struct ldg_bytes client_id, uint64_t *seq);

/* Idempotency record (what ALREADY_COMMITTED returns). */
struct ldg_idem_record {
    uint8_t digest[LDG_HASH_LEN];
    int64_t entry_seconds;
    uint32_t entry_nanos;
    uint64_t org, vault;
    uint8_t tx_id[LDG_TX_ID_LEN];
    uint64_t height;
    uint64_t sequence;
};
/* LDG_ENOTFOUND when (client_id, key) has no live record. */
int ldg_ledger_idempotency_get(struct ldg_ledger *l, MDB_txn *txn,
                               struct ldg_bytes client_id,
                               const uint8_t key[LDG_IDEMPOTENCY_KEY_LEN],
                               struct ldg_idem_record *out);

/* A stored block. Transactions point into the map; the ops array is
 * allocated: free with ldg_block_clear. */
struct ldg_block {
    struct ldg_block_header header;
    uint64_t leader_id;
    uint8_t block_hash[LDG_HASH_LEN];
    struct ldg_tx *txs;   /* tx_count, each with timestamp = header's */
    size_t tx_count;
};
/* LDG_ENOTFOUND when there is no such block; LDG_ECORRUPT for bad bytes. */
int ldg_ledger_get_block(struct ldg_ledger *l, MDB_txn *txn, uint64_t org, uint64_t vault,
                         uint64_t height, struct ldg_block *out);
/* Header only (no allocation). */
int ldg_ledger_get_header(struct ldg_ledger *l, MDB_txn *txn, uint64_t org, uint64_t vault,
                          uint64_t height, struct ldg_block_header *out, uint64_t *leader_id,
                          uint8_t block_hash[LDG_HASH_LEN]);
void ldg_block_clear(struct ldg_block *b);

/* The 256 bucket roots of the chain's live state (the tip's state). */
int ldg_ledger_bucket_roots(struct ldg_ledger *l, MDB_txn *txn, uint64_t org, uint64_t vault,
                            uint8_t roots[LDG_STATE_BUCKETS][LDG_HASH_LEN]);

/* VerifiedRead material for one leaf_key at the chain's tip. Owns copies of
 * everything except, for an absent leaf, proof.leaf_key (borrows |leaf_key|);
 * free with ldg_proof_clear. |proof| is ready for
 * ldg_state_proof_verify against tip.state_root. */
struct ldg_proof {
    struct ldg_block_header tip;          /* header whose state_root it proves */
    uint8_t bucket, slot;
    bool found;                           /* the leaf exists */
    struct ldg_leaf leaf;                 /* when found (key points into keys_mem) */
    struct ldg_leaf *others;              /* the slot's other leaves, ascending */
    size_t n_others;
    uint8_t siblings[LDG_BUCKET_DEPTH][LDG_HASH_LEN];
    uint8_t other_bucket_roots[LDG_STATE_BUCKETS - 1][LDG_HASH_LEN];
    struct ldg_state_proof proof;         /* views into the above */
    uint8_t *keys_mem;                    /* backing store of leaf keys */
};
int ldg_ledger_prove(struct ldg_ledger *l, MDB_txn *txn, uint64_t org, uint64_t vault,
                     struct ldg_bytes leaf_key, struct ldg_proof *out);
void ldg_proof_clear(struct ldg_proof *p);

/* Entities of the chain whose 0 < expires_at <= now_s, in key order after
 * |after| (the TTL job turns them into expire_entity ops). */
int ldg_ledger_list_expired(struct ldg_ledger *l, MDB_txn *txn, uint64_t org, uint64_t vault,
                            int64_t now_s, struct ldg_bytes after, size_t limit,
                            ldg_entity_cb cb, void *arg, bool *more);

#endif
