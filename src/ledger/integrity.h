/* Chain integrity checks (SPEC §6 "CheckIntegrity"). Pure: no gRPC, no Raft,
 * no libuv; runs in the caller's read txn and never modifies the store.
 *
 * Quick check, for chain (org, vault):
 *   - every block 0..height is present (missing_block), its stored block_hash
 *     equals H(header) (block_hash_mismatch), its header names this chain and
 *     height and its previous_hash equals the stored block_hash of the block
 *     below, zeros at genesis (chain_break), and its tx_merkle_root equals the
 *     RFC 6962 root over H(stored tx bytes) (tx_root_mismatch);
 *   - the chain row's height, tip hash and state root match the last block,
 *     and no block exists above it (tip_mismatch);
 *   - the live commitment tree: every bucket's interior nodes are consistent
 *     (ldg_bucket_tree_check) and H(256 bucket roots) equals the tip header's
 *     state_root (state_root_mismatch); for a sample of slots (numbered
 *     bucket * 256 + slot, a window that the caller rotates with
 *     next_sample_start so all 65536 are covered over successive calls) the
 *     slot hash is recomputed from the stored leaves (leaf_mismatch).
 * Full check additionally replays every stored transaction from genesis into
 * a scratch LMDB store (a fresh temp directory, removed afterwards) with the
 * same state machine (ldg_ledger_apply of synthesized entries reproducing each
 * block's timestamp, term and index; organization and vault creation first),
 * compares each replayed block's tx_merkle_root and state_root with the stored
 * header (tx_root_mismatch / state_root_mismatch) and finally every leaf of the
 * two stores with two cursors (leaf_mismatch), and checks every slot.
 *
 * Streaming: blocks are read one at a time; memory is bounded by one block
 * plus one bucket tree, whatever the chain size. */
#ifndef LDG_LEDGER_INTEGRITY_H
#define LDG_LEDGER_INTEGRITY_H

#include <lmdb.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ledger/ledger.h"

enum ldg_issue_type {
    LDG_ISSUE_CHAIN_BREAK = 1,
    LDG_ISSUE_BLOCK_HASH_MISMATCH = 2,
    LDG_ISSUE_TX_ROOT_MISMATCH = 3,
    LDG_ISSUE_STATE_ROOT_MISMATCH = 4,
    LDG_ISSUE_MISSING_BLOCK = 5,
    LDG_ISSUE_TIP_MISMATCH = 6,
    LDG_ISSUE_LEAF_MISMATCH = 7,
};

/* "chain_break", ... (static); "unknown" for other values. */
const char *ldg_issue_type_name(int type);

/* At most this many issues are kept; later ones are only counted. */
#define LDG_INTEGRITY_MAX_ISSUES 256
/* Total number of slots of a chain (256 buckets x 256 slots). */
#define LDG_INTEGRITY_SLOTS 65536u
/* Default sample size of the quick check (16 calls cover every slot). */
#define LDG_INTEGRITY_DEFAULT_SAMPLE 4096u

struct ldg_integrity_issue {
    uint64_t height;        /* block height where it was found */
    int type;               /* enum ldg_issue_type */
    char description[224];  /* expected vs found */
};

struct ldg_integrity_opts {
    bool full;                /* replay from genesis */
    uint32_t sample_start;    /* first slot of the quick sample (mod 65536) */
    uint32_t sample_slots;    /* 0: LDG_INTEGRITY_DEFAULT_SAMPLE; >= 65536: all */
    const char *scratch_dir;  /* parent of the replay store's temp dir; NULL: /tmp */
    const atomic_int *cancel; /* may be NULL; non-zero: stop soon, LDG_ECANCELED */
};

struct ldg_integrity_report {
    struct ldg_integrity_issue *issues; /* owned, count entries */
    size_t count;
    size_t dropped;                     /* issues beyond LDG_INTEGRITY_MAX_ISSUES */
    uint64_t blocks_checked;            /* blocks read and verified (height + 1 when whole) */
    uint32_t next_sample_start;         /* pass as sample_start next time */
    bool replayed;                      /* full check replayed the whole chain */
};

/* Check chain (org, vault) as seen by |txn| (read or write; not modified).
 * Issues go to |out| (free with ldg_integrity_report_free, also on error).
 * Returns 0 (healthy iff out->count == 0), LDG_ENOTFOUND for an unknown
 * chain, or a storage error (LMDB trouble on the live store or the scratch
 * store). May run on any thread. */
int ldg_integrity_check(struct ldg_ledger *l, MDB_txn *txn, uint64_t org, uint64_t vault,
                        const struct ldg_integrity_opts *opts,
                        struct ldg_integrity_report *out);

void ldg_integrity_report_free(struct ldg_integrity_report *r);

#endif
