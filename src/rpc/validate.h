/* Request validation for the ledger.v1 services (SPEC §9 limits).
 *
 * Every check writes a message naming the field and the limit to |msg|
 * (e.g. "operations[2].set_entity.key: 1025 bytes, at most 1024 allowed")
 * and returns LDG_EINVAL; the handler answers INVALID_ARGUMENT with it.
 * Nothing here allocates except ldg_rpc_ops_from_proto's output array. */
#ifndef LDG_RPC_VALIDATE_H
#define LDG_RPC_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto/tx.h"
#include "ledger/v1/ledger.pb-c.h"

#define LDG_RPC_MAX_KEY_BYTES 1024
#define LDG_RPC_MAX_VALUE_BYTES (1u << 20)
#define LDG_RPC_MAX_RELATION_CHARS 64
#define LDG_RPC_MAX_REF_CHARS 512 /* resource / subject */
#define LDG_RPC_MAX_OPS 1000
#define LDG_RPC_MAX_PAGE 1000
#define LDG_RPC_DEFAULT_PAGE 100
#define LDG_RPC_MAX_CLIENT_ID_BYTES 256
#define LDG_RPC_MAX_NAME_BYTES 256
#define LDG_RPC_MAX_BATCH_KEYS 1000
#define LDG_RPC_MAX_BLOCK_RANGE 1000
#define LDG_RPC_MAX_CHAIN_PROOF 1000
/* Largest response we build (the gRPC message limit is 4 MiB). */
#define LDG_RPC_MAX_RESPONSE_BYTES (4u << 20)

/* Well-formed UTF-8 (no overlongs, surrogates or code points > U+10FFFF). */
bool ldg_rpc_utf8_valid(const uint8_t *p, size_t n);
/* Number of code points of valid UTF-8 |p[0..n)|. */
size_t ldg_rpc_utf8_chars(const uint8_t *p, size_t n);

/* Entity key: 1..1024 bytes of UTF-8. */
int ldg_rpc_check_key(const char *field, const char *key, char *msg, size_t cap);
/* Value (or value_equals): at most 1 MiB. */
int ldg_rpc_check_value(const char *field, size_t len, char *msg, size_t cap);
/* Relation: 1..64 chars, no ':' or '#'. */
int ldg_rpc_check_relation(const char *field, const char *s, char *msg, size_t cap);
/* Resource: `type:id`, at most 512 chars, no '#'. */
int ldg_rpc_check_resource(const char *field, const char *s, char *msg, size_t cap);
/* Subject: `type:id` or `type:id#relation`, at most 512 chars. */
int ldg_rpc_check_subject(const char *field, const char *s, char *msg, size_t cap);
/* Client id: present, 1..256 bytes UTF-8. */
int ldg_rpc_check_client_id(const Ledger__V1__ClientId *c, char *msg, size_t cap);
/* Idempotency key: empty (none) or exactly 16 bytes not all zero. On
 * success |out| holds the key (all zero when empty). */
int ldg_rpc_check_idempotency_key(ProtobufCBinaryData k, uint8_t out[16], char *msg,
                                  size_t cap);
/* Page size: 0 -> |dflt|, else 1..1000. */
int ldg_rpc_check_limit(uint32_t limit, size_t dflt, size_t *out, char *msg, size_t cap);
/* Organization (required, non-zero) and optional vault (absent: 0, the
 * organization chain). */
int ldg_rpc_check_chain(const Ledger__V1__OrganizationSlug *o, const Ledger__V1__VaultSlug *v,
                        uint64_t *org, uint64_t *vault, char *msg, size_t cap);
/* Organization / vault name: 1..256 bytes UTF-8 (vault names may be empty
 * when |allow_empty|). */
int ldg_rpc_check_name(const char *field, const char *s, bool allow_empty, char *msg,
                       size_t cap);

/* Convert and validate |n| proto operations into |out[0..n)| (byte fields
 * borrow from the proto message). |field| names the array for messages
 * ("operations" / "groups[1].operations"). Rejects empty ops, unset
 * oneofs and every limit above. */
int ldg_rpc_ops_from_proto(Ledger__V1__Operation *const *ops, size_t n, const char *field,
                           struct ldg_op *out, char *msg, size_t cap);

#endif
