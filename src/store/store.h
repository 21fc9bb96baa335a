/* LMDB environment holding all ledger state (docs/storage.md).
 *
 * One struct ldg_store per DATA/state/ directory. Tables are opened once at
 * ldg_store_open and addressed by enum ldg_table. All integers in keys are
 * big-endian (LMDB order = numeric order); values start with a version byte.
 *
 * MDB_val data returned by the get/cursor helpers points into the map and is
 * valid only until the txn ends (or the next write in that txn): copy it. */
#ifndef LDG_STORE_STORE_H
#define LDG_STORE_STORE_H

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"

#define LDG_STORE_VALUE_V1 0x01 /* version byte that starts every value */

enum ldg_table {
    LDG_T_META = 0,        /* ASCII name -> row (applied, counters, schema) */
    LDG_T_ORGS,            /* org -> organization row */
    LDG_T_CHAINS,          /* org ‖ vault -> chain row (tip, root, status) */
    LDG_T_VAULT_SLUGS,     /* vault -> org (global uniqueness of vault slugs) */
    LDG_T_ENTITIES,        /* chain ‖ key -> version ‖ expires_at ‖ value */
    LDG_T_RELS,            /* chain ‖ resource\0relation\0subject -> version */
    LDG_T_RELS_BY_SUBJECT, /* chain ‖ subject\0resource\0relation -> - */
    LDG_T_HISTORY,         /* chain ‖ keylen ‖ key ‖ ~height -> change */
    LDG_T_BLOCKS,          /* chain ‖ height -> header ‖ txs */
    LDG_T_SLOT_LEAVES,     /* chain ‖ bucket ‖ slot ‖ leaf_key -> leaf encoding */
    LDG_T_TREE,            /* chain ‖ bucket ‖ node u16 -> hash */
    LDG_T_CLIENTS,         /* chain ‖ client_id -> last sequence */
    LDG_T_IDEM,            /* len ‖ client_id ‖ idem_key -> record */
    LDG_T_IDEM_BY_TIME,    /* entry ts ‖ idem key -> - */
    LDG_T_COUNT,           /* number of REPLICATED tables: the ones dumps carry */
    /* Node-local tables (never in a dump, never replicated): */
    LDG_T_LOCAL_HEALTH = LDG_T_COUNT, /* chain -> this node's divergence marker */
    LDG_T_ALL              /* every table */
};

struct ldg_store_opts {
    size_t map_size;     /* initial map size in bytes; 0 = 1 GiB */
    size_t max_map_size; /* growth limit; 0 = 1 TiB */
    bool read_only;      /* open with MDB_RDONLY (inspection tools) */
};

struct ldg_store {
    MDB_env *env;
    MDB_dbi dbi[LDG_T_ALL];
    bool local_missing;  /* read-only open of a store without the node-local tables */
    size_t map_size;     /* current map size */
    size_t max_map_size;
    char *path;          /* directory, owned */
    bool map_full;       /* a helper saw MDB_MAP_FULL since the last txn begin */
};

/* Name of a table as stored in LMDB (static string). */
const char *ldg_store_table_name(enum ldg_table t);

/* Open (creating the directory and tables if needed) the environment in
 * directory |path|. |opts| may be NULL for defaults. Sync is always on.
 * Returns 0, or LDG_EIO/LDG_ECORRUPT/LDG_EFULL/... with |err| filled. */
int ldg_store_open(struct ldg_store *s, const char *path,
                   const struct ldg_store_opts *opts, struct ldg_err *err);

/* Close the environment. No txn may be open. Safe on a zeroed store. */
void ldg_store_close(struct ldg_store *s);

/* Begin a txn (read-only when |readonly|). Returns 0 or a negative code. */
int ldg_store_txn_begin(struct ldg_store *s, bool readonly, MDB_txn **txn);
/* Begin a nested write txn inside |parent|. */
int ldg_store_txn_child(struct ldg_store *s, MDB_txn *parent, MDB_txn **txn);
/* Commit; the txn is freed whatever the result. LDG_EFULL on map full. */
int ldg_store_txn_commit(MDB_txn *txn);
/* Abort and free; NULL is ignored. */
void ldg_store_txn_abort(MDB_txn *txn);

/* Run |fn(txn, arg)| in a write txn and commit it. When fn or the commit
 * fails with LDG_EFULL (MDB_MAP_FULL), the txn is aborted, the map grows
 * (doubling, up to max_map_size) and fn runs again from scratch, so fn must
 * have no side effects outside the txn (or undo them itself). Returns fn's
 * error, a commit error, or LDG_EFULL once the map cannot grow. */
typedef int (*ldg_store_write_fn)(MDB_txn *txn, void *arg);
int ldg_store_write(struct ldg_store *s, ldg_store_write_fn fn, void *arg);

/* Double the map size (up to the limit). No txn of this process may be
 * open. Returns 0, LDG_EFULL at the limit, or an LMDB error. */
int ldg_store_grow(struct ldg_store *s);

/* Point lookups. get returns LDG_ENOTFOUND when absent; |val| points into
 * the map. put overwrites. del returns LDG_ENOTFOUND when absent. */
int ldg_store_get(struct ldg_store *s, MDB_txn *txn, enum ldg_table t,
                  const void *key, size_t klen, MDB_val *val);
int ldg_store_put(struct ldg_store *s, MDB_txn *txn, enum ldg_table t,
                  const void *key, size_t klen, const void *val, size_t vlen);
int ldg_store_del(struct ldg_store *s, MDB_txn *txn, enum ldg_table t,
                  const void *key, size_t klen);
/* Reserve |vlen| bytes for a value and return where to write it. */
int ldg_store_reserve(struct ldg_store *s, MDB_txn *txn, enum ldg_table t,
                      const void *key, size_t klen, size_t vlen, void **out);

/* Forward iteration over the keys that start with |prefix|, beginning at
 * the first key >= |start| (start may be NULL = the prefix itself; a start
 * that does not begin with the prefix ends the iteration at once unless it
 * sorts before the prefix).
 *
 *   struct ldg_store_iter it;
 *   ldg_store_iter_init(&it, s, txn, LDG_T_X, prefix, plen, NULL, 0);
 *   while ((rv = ldg_store_iter_next(&it)) == 1) { use it.key, it.val }
 *   ldg_store_iter_close(&it);
 *
 * next returns 1 with key/val set, 0 at the end, or a negative code. */
struct ldg_store_iter {
    MDB_cursor *cur;
    const uint8_t *prefix; /* borrowed, must outlive the iterator */
    size_t plen;
    const uint8_t *start;  /* borrowed */
    size_t slen;
    bool started;
    MDB_val key, val;
};
int ldg_store_iter_init(struct ldg_store_iter *it, struct ldg_store *s, MDB_txn *txn,
                        enum ldg_table t, const void *prefix, size_t plen,
                        const void *start, size_t slen);
int ldg_store_iter_next(struct ldg_store_iter *it);
void ldg_store_iter_close(struct ldg_store_iter *it);

/* Delete every key that starts with |prefix|. Returns the count or < 0. */
int64_t ldg_store_del_prefix(struct ldg_store *s, MDB_txn *txn, enum ldg_table t,
                             const void *prefix, size_t plen);


/* ---- whole-state dump (Raft snapshots) ----
 *
 * Format, version 1 (integers big-endian):
 *   'L' 'D' 'S' 'D' ‖ version u8 (1) ‖ table_count u8 (LDG_T_COUNT)
 *   per table, in enum order: table u8 ‖ rows u64 ‖ rows of
 *       klen u32 ‖ key ‖ vlen u32 ‖ value        (LMDB key order)
 *   sha256[32] over everything before it
 * A dump taken in one read txn is a consistent image of every replicated
 * table, including the applied position (meta "applied"). Node-local tables
 * (LDG_T_LOCAL_HEALTH) are never dumped; a load empties them (the markers
 * describe the state being replaced). */
#define LDG_STORE_DUMP_VERSION 1

/* Append the dump of every table as seen by |txn| (read or write) to |out|.
 * May run on any thread (MDB_NOTLS). Returns 0 or an LMDB error. */
int ldg_store_dump(struct ldg_store *s, MDB_txn *txn, struct ldg_buf *out);

/* Check a dump (magic, version, table count, structure, checksum) without
 * touching the store. Returns 0 or LDG_ECORRUPT. */
int ldg_store_dump_check(const uint8_t *p, size_t n);

/* Replace the whole state by the dump |p[0..n)|: checked first, then every
 * table is emptied and refilled in one write txn (grown and retried on a full
 * map), so a failure leaves the old state. Returns 0, LDG_ECORRUPT, or a
 * storage error. */
int ldg_store_load(struct ldg_store *s, const uint8_t *p, size_t n);

#endif
