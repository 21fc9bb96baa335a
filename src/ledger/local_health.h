/* Node-local health of a chain (SPEC §6 "Diverged replica").
 *
 * A chain that this node found (or was told, with SimulateDivergence) to
 * differ from the cluster is marked here, in the node-local LMDB table
 * `local_health` (docs/storage.md §5). The marker never goes through Raft
 * and is never part of a dump or Raft snapshot, so the other replicas of the
 * chain stay ACTIVE. The state machine (apply) never reads it.
 *
 * Effective status of a chain on this node: DELETED when the replicated row
 * says so, else the local status when a marker exists, else the replicated
 * status. Everything that reports or enforces a status on this node (reads,
 * writes, GetVault, ListVaults, HealthService, ledger_vaults) uses it. */
#ifndef LDG_LEDGER_LOCAL_HEALTH_H
#define LDG_LEDGER_LOCAL_HEALTH_H

#include <lmdb.h>
#include <stdint.h>

#include "crypto/block.h"
#include "ledger/ledger.h"
#include "store/store.h"

/* Encoded value size: version ‖ status ‖ height ‖ 2 roots ‖ attempts ‖ since. */
#define LDG_LOCAL_HEALTH_VALUE_LEN (1 + 1 + 8 + 2 * LDG_HASH_LEN + 4 + 8)

struct ldg_local_health {
    int status;                          /* LDG_STATUS_DIVERGED or LDG_STATUS_RECOVERING */
    uint64_t diverged_height;            /* block height where the mismatch was seen */
    uint8_t expected_root[LDG_HASH_LEN]; /* the root the cluster agrees on */
    uint8_t computed_root[LDG_HASH_LEN]; /* the root this node computed */
    uint32_t attempts;                   /* recovery attempts since the divergence */
    int64_t since_seconds;               /* Unix time the marker was first set */
};

/* This node's marker of chain (org, vault): 0, LDG_ENOTFOUND when the chain
 * has none, LDG_ECORRUPT for an undecodable row, or an LMDB error. */
int ldg_local_health_get(struct ldg_store *s, MDB_txn *txn, uint64_t org, uint64_t vault,
                         struct ldg_local_health *out);

/* Write (replace) the marker in write txn |txn|. |h->status| must be
 * DIVERGED or RECOVERING (else LDG_EINVAL). */
int ldg_local_health_put(struct ldg_store *s, MDB_txn *txn, uint64_t org, uint64_t vault,
                         const struct ldg_local_health *h);

/* Remove the marker (the chain is healthy on this node again). Absent is
 * fine (returns 0). */
int ldg_local_health_clear(struct ldg_store *s, MDB_txn *txn, uint64_t org, uint64_t vault);

/* Effective status (see top) of a chain whose replicated row is |ci|:
 * |ci->status| is replaced in place. Returns 0 or a storage error. */
int ldg_local_health_apply(struct ldg_store *s, MDB_txn *txn, struct ldg_chain_info *ci);

#endif
