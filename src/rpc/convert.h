/* Conversions between ledger structs and ledger.v1 protobuf-c messages.
 *
 * Response messages are built in a struct ldg_arena: every allocation made
 * for one response is freed at once with ldg_arena_free after the reply is
 * packed, so handlers never free message trees by hand. */
#ifndef LDG_RPC_CONVERT_H
#define LDG_RPC_CONVERT_H

#include <stddef.h>
#include <stdint.h>

#include "crypto/block.h"
#include "crypto/state.h"
#include "crypto/tx.h"
#include "ledger/ledger.h"
#include "ledger/v1/ledger.pb-c.h"

struct ldg_arena {
    void **ptrs;
    size_t n, cap;
};

void ldg_arena_init(struct ldg_arena *a);
/* Zeroed memory owned by the arena (aborts on OOM). */
void *ldg_arena_alloc(struct ldg_arena *a, size_t n);
void *ldg_arena_dup(struct ldg_arena *a, const void *p, size_t n);
/* NUL-terminated copy of |p[0..n)|. */
char *ldg_arena_strndup(struct ldg_arena *a, const void *p, size_t n);
char *ldg_arena_printf(struct ldg_arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void ldg_arena_free(struct ldg_arena *a);

Ledger__V1__Hash *ldg_rpc_hash(struct ldg_arena *a, const uint8_t h[LDG_HASH_LEN]);
Ledger__V1__OrganizationSlug *ldg_rpc_org_slug(struct ldg_arena *a, uint64_t org);
Ledger__V1__VaultSlug *ldg_rpc_vault_slug(struct ldg_arena *a, uint64_t vault);
Ledger__V1__NodeId *ldg_rpc_node_id(struct ldg_arena *a, uint64_t id);
Google__Protobuf__Timestamp *ldg_rpc_timestamp(struct ldg_arena *a, int64_t s, uint32_t ns);
/* |block_hash| NULL: computed from the header. |leader_id| 0: omitted. */
Ledger__V1__BlockHeader *ldg_rpc_header(struct ldg_arena *a, const struct ldg_block_header *h,
                                        uint64_t leader_id, const uint8_t *block_hash);
Ledger__V1__Operation *ldg_rpc_op(struct ldg_arena *a, const struct ldg_op *op);
Ledger__V1__Transaction *ldg_rpc_tx(struct ldg_arena *a, const struct ldg_tx *tx);
Ledger__V1__Block *ldg_rpc_block(struct ldg_arena *a, const struct ldg_block *b);
Ledger__V1__StateLeaf *ldg_rpc_leaf(struct ldg_arena *a, const struct ldg_leaf *l);

/* Enum mappings. */
Ledger__V1__OperationOutcome ldg_rpc_outcome(int outcome);
Ledger__V1__VaultStatus ldg_rpc_vault_status(int status);
Ledger__V1__OrganizationStatus ldg_rpc_org_status(int status);
/* WriteErrorCode of a ledger result code (UNSPECIFIED for OK and codes
 * that are not write errors). */
Ledger__V1__WriteErrorCode ldg_rpc_write_error_code(int result_code);

#endif
