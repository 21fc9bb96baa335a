/* Ledger commands and the Raft entry that carries them (the bytes in the
 * Raft log). An entry is a batch: one leader timestamp, term and index for
 * all of its commands (SPEC §5 "Time").
 *
 * Binary encoding, version 1 (all integers big-endian unless noted):
 *   'L' 'E' 0x01
 *   log_id u64 ‖ index u64 ‖ term u64 ‖ ts_seconds i64 ‖ ts_nanos u32 ‖
 *   leader_id u64 ‖ cmd_count u32 ‖ commands
 * each command is a type byte then:
 *   0x01 create_organization: slug u64 (0 = assign) ‖ len name
 *   0x02 delete_organization: org u64 ‖ force u8
 *   0x03 create_vault:        org u64 ‖ slug u64 (0 = assign) ‖ len name
 *   0x04 delete_vault:        org u64 ‖ vault u64
 *   0x05 write:               org u64 ‖ vault u64 ‖ len client_id ‖
 *                             idempotency_key[16] ‖ tx_id[16] ‖ op_count u32 ‖ ops
 *   0x06 expire (system:gc):  org u64 ‖ vault u64 ‖ tx_id[16] ‖ op_count u32 ‖ ops
 * "len x" is u32 little-endian length then bytes; ops use the SPEC §5 op
 * encoding (crypto/tx.h). */
#ifndef LDG_LEDGER_ENTRY_H
#define LDG_LEDGER_ENTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto/tx.h"
#include "util/buf.h"

#define LDG_IDEMPOTENCY_KEY_LEN 16

enum ldg_cmd_type {
    LDG_CMD_CREATE_ORG = 0x01,
    LDG_CMD_DELETE_ORG = 0x02,
    LDG_CMD_CREATE_VAULT = 0x03,
    LDG_CMD_DELETE_VAULT = 0x04,
    LDG_CMD_WRITE = 0x05,
    LDG_CMD_EXPIRE = 0x06,
};

/* One command. Byte fields are borrowed. Unused fields stay zero. */
struct ldg_cmd {
    uint8_t type;                /* enum ldg_cmd_type */
    uint64_t org;                /* all but create_org */
    uint64_t vault;              /* delete_vault, write, expire (0 = org chain) */
    uint64_t slug;               /* create_org / create_vault: 0 = assign */
    bool force;                  /* delete_org: also delete live vaults */
    struct ldg_bytes name;       /* create_org / create_vault */
    struct ldg_bytes client_id;  /* write */
    uint8_t idempotency_key[LDG_IDEMPOTENCY_KEY_LEN]; /* write; all zero = none */
    uint8_t tx_id[LDG_TX_ID_LEN]; /* write, expire: leader-made id */
    const struct ldg_op *ops;    /* write, expire: borrowed array */
    size_t op_count;
};

struct ldg_entry {
    uint64_t log_id;            /* id of the Raft log (SPEC §3.1) */
    uint64_t index;             /* Raft index of this entry */
    uint64_t term;              /* proposing leader's term */
    int64_t ts_seconds;         /* leader wall clock, Unix seconds */
    uint32_t ts_nanos;          /* multiple of 1000, < 1e9 */
    uint64_t leader_id;         /* proposing node (not hashed) */
    const struct ldg_cmd *cmds; /* borrowed array */
    size_t cmd_count;
    void *owned;                /* decode: cmds and ops storage (ldg_entry_clear) */
};

/* Append the encoding of |e| to |out|. Returns 0, or LDG_EINVAL when a
 * command has an unknown type, an op does not validate, or a length does not
 * fit in 32 bits (|out| may then hold a partial encoding). */
int ldg_entry_encode(const struct ldg_entry *e, struct ldg_buf *out);

/* Decode |p[0..n)| into |e|. Byte fields of |e| point into |p| (keep |p|
 * alive while |e| is used); the command and op arrays are allocated: free
 * them with ldg_entry_clear. Returns 0, or LDG_ECORRUPT for a bad magic or
 * version, truncated input, trailing bytes, unknown command/op types, bad
 * nanos (nothing allocated then). */
int ldg_entry_decode(const uint8_t *p, size_t n, struct ldg_entry *e);

/* Free what ldg_entry_decode allocated; |e| is zeroed. */
void ldg_entry_clear(struct ldg_entry *e);

#endif
