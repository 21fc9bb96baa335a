/* Ledger structs to ledger.v1 messages. See convert.h. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "rpc/convert.h"
#include "util/mem.h"

void ldg_arena_init(struct ldg_arena *a)
{
    memset(a, 0, sizeof *a);
}

void *ldg_arena_alloc(struct ldg_arena *a, size_t n)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 16;
        a->ptrs = ldg_realloc(a->ptrs, a->cap * sizeof *a->ptrs);
    }
    void *p = ldg_calloc(1, n ? n : 1);
    a->ptrs[a->n++] = p;
    return p;
}

void *ldg_arena_dup(struct ldg_arena *a, const void *p, size_t n)
{
    void *q = ldg_arena_alloc(a, n);
    if (n)
        memcpy(q, p, n);
    return q;
}

char *ldg_arena_strndup(struct ldg_arena *a, const void *p, size_t n)
{
    char *q = ldg_arena_alloc(a, n + 1);
    if (n)
        memcpy(q, p, n);
    return q;
}

char *ldg_arena_printf(struct ldg_arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = ldg_arena_alloc(a, (size_t)(n < 0 ? 0 : n) + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)(n < 0 ? 0 : n) + 1, fmt, ap);
    va_end(ap);
    return s;
}

void ldg_arena_free(struct ldg_arena *a)
{
    for (size_t i = 0; i < a->n; i++)
        ldg_free(a->ptrs[i]);
    ldg_free(a->ptrs);
    memset(a, 0, sizeof *a);
}

Ledger__V1__Hash *ldg_rpc_hash(struct ldg_arena *a, const uint8_t h[LDG_HASH_LEN])
{
    Ledger__V1__Hash *m = ldg_arena_alloc(a, sizeof *m);
    ledger__v1__hash__init(m);
    m->value.data = ldg_arena_dup(a, h, LDG_HASH_LEN);
    m->value.len = LDG_HASH_LEN;
    return m;
}

Ledger__V1__OrganizationSlug *ldg_rpc_org_slug(struct ldg_arena *a, uint64_t org)
{
    Ledger__V1__OrganizationSlug *m = ldg_arena_alloc(a, sizeof *m);
    ledger__v1__organization_slug__init(m);
    m->id = org;
    return m;
}

Ledger__V1__VaultSlug *ldg_rpc_vault_slug(struct ldg_arena *a, uint64_t vault)
{
    Ledger__V1__VaultSlug *m = ldg_arena_alloc(a, sizeof *m);
    ledger__v1__vault_slug__init(m);
    m->slug = vault;
    return m;
}

Ledger__V1__NodeId *ldg_rpc_node_id(struct ldg_arena *a, uint64_t id)
{
    Ledger__V1__NodeId *m = ldg_arena_alloc(a, sizeof *m);
    ledger__v1__node_id__init(m);
    m->id = ldg_arena_printf(a, "%" PRIu64, id);
    return m;
}

Google__Protobuf__Timestamp *ldg_rpc_timestamp(struct ldg_arena *a, int64_t s, uint32_t ns)
{
    Google__Protobuf__Timestamp *m = ldg_arena_alloc(a, sizeof *m);
    google__protobuf__timestamp__init(m);
    m->seconds = s;
    m->nanos = (int32_t)ns;
    return m;
}

Ledger__V1__BlockHeader *ldg_rpc_header(struct ldg_arena *a, const struct ldg_block_header *h,
                                        uint64_t leader_id, const uint8_t *block_hash)
{
    Ledger__V1__BlockHeader *m = ldg_arena_alloc(a, sizeof *m);
    ledger__v1__block_header__init(m);
    m->height = h->height;
    m->organization_slug = ldg_rpc_org_slug(a, h->organization_slug);
    m->vault = ldg_rpc_vault_slug(a, h->vault_slug);
    m->previous_hash = ldg_rpc_hash(a, h->previous_hash);
    m->tx_merkle_root = ldg_rpc_hash(a, h->tx_merkle_root);
    m->state_root = ldg_rpc_hash(a, h->state_root);
    m->timestamp = ldg_rpc_timestamp(a, h->timestamp_seconds, h->timestamp_nanos);
    m->term = h->term;
    m->committed_index = h->committed_index;
    if (leader_id)
        m->leader_id = ldg_rpc_node_id(a, leader_id);
    uint8_t bh[LDG_HASH_LEN];
    if (block_hash == NULL) {
        ldg_block_hash(h, bh);
        block_hash = bh;
    }
    m->block_hash = ldg_rpc_hash(a, block_hash);
    return m;
}

static char *str_of(struct ldg_arena *a, struct ldg_bytes b)
{
    return ldg_arena_strndup(a, b.data, b.len);
}

Ledger__V1__Operation *ldg_rpc_op(struct ldg_arena *a, const struct ldg_op *op)
{
    Ledger__V1__Operation *m = ldg_arena_alloc(a, sizeof *m);
    ledger__v1__operation__init(m);
    switch (op->type) {
    case LDG_OP_CREATE_RELATIONSHIP: {
        Ledger__V1__CreateRelationship *r = ldg_arena_alloc(a, sizeof *r);
        ledger__v1__create_relationship__init(r);
        r->resource = str_of(a, op->resource);
        r->relation = str_of(a, op->relation);
        r->subject = str_of(a, op->subject);
        m->op_case = LEDGER__V1__OPERATION__OP_CREATE_RELATIONSHIP;
        m->create_relationship = r;
        break;
    }
    case LDG_OP_DELETE_RELATIONSHIP: {
        Ledger__V1__DeleteRelationship *r = ldg_arena_alloc(a, sizeof *r);
        ledger__v1__delete_relationship__init(r);
        r->resource = str_of(a, op->resource);
        r->relation = str_of(a, op->relation);
        r->subject = str_of(a, op->subject);
        m->op_case = LEDGER__V1__OPERATION__OP_DELETE_RELATIONSHIP;
        m->delete_relationship = r;
        break;
    }
    case LDG_OP_SET_ENTITY: {
        Ledger__V1__SetEntity *s = ldg_arena_alloc(a, sizeof *s);
        ledger__v1__set_entity__init(s);
        s->key = str_of(a, op->key);
        s->value.data = ldg_arena_dup(a, op->value.data, op->value.len);
        s->value.len = op->value.len;
        if (op->expires_at) {
            s->optional_expires_at_case = LEDGER__V1__SET_ENTITY__OPTIONAL_EXPIRES_AT_EXPIRES_AT;
            s->expires_at = op->expires_at;
        }
        if (op->cond != LDG_COND_NONE) {
            Ledger__V1__SetCondition *c = ldg_arena_alloc(a, sizeof *c);
            ledger__v1__set_condition__init(c);
            switch (op->cond) {
            case LDG_COND_NOT_EXISTS:
                c->condition_case = LEDGER__V1__SET_CONDITION__CONDITION_NOT_EXISTS;
                c->not_exists = 1;
                break;
            case LDG_COND_MUST_EXIST:
                c->condition_case = LEDGER__V1__SET_CONDITION__CONDITION_MUST_EXIST;
                c->must_exist = 1;
                break;
            case LDG_COND_VERSION:
                c->condition_case = LEDGER__V1__SET_CONDITION__CONDITION_VERSION;
                c->version = op->cond_version;
                break;
            case LDG_COND_VALUE_EQUALS:
                c->condition_case = LEDGER__V1__SET_CONDITION__CONDITION_VALUE_EQUALS;
                c->value_equals.data = ldg_arena_dup(a, op->cond_value.data, op->cond_value.len);
                c->value_equals.len = op->cond_value.len;
                break;
            default:
                break;
            }
            s->condition = c;
        }
        m->op_case = LEDGER__V1__OPERATION__OP_SET_ENTITY;
        m->set_entity = s;
        break;
    }
    case LDG_OP_DELETE_ENTITY: {
        Ledger__V1__DeleteEntity *d = ldg_arena_alloc(a, sizeof *d);
        ledger__v1__delete_entity__init(d);
        d->key = str_of(a, op->key);
        m->op_case = LEDGER__V1__OPERATION__OP_DELETE_ENTITY;
        m->delete_entity = d;
        break;
    }
    case LDG_OP_EXPIRE_ENTITY: {
        Ledger__V1__ExpireEntity *e = ldg_arena_alloc(a, sizeof *e);
        ledger__v1__expire_entity__init(e);
        e->key = str_of(a, op->key);
        e->expired_at = op->expired_at;
        m->op_case = LEDGER__V1__OPERATION__OP_EXPIRE_ENTITY;
        m->expire_entity = e;
        break;
    }
    default:
        break;
    }
    return m;
}

Ledger__V1__Transaction *ldg_rpc_tx(struct ldg_arena *a, const struct ldg_tx *tx)
{
    Ledger__V1__Transaction *m = ldg_arena_alloc(a, sizeof *m);
    ledger__v1__transaction__init(m);
    Ledger__V1__TxId *id = ldg_arena_alloc(a, sizeof *id);
    ledger__v1__tx_id__init(id);
    id->id.data = ldg_arena_dup(a, tx->tx_id, LDG_TX_ID_LEN);
    id->id.len = LDG_TX_ID_LEN;
    m->tx_id = id;
    if (tx->client_id.len) {
        Ledger__V1__ClientId *c = ldg_arena_alloc(a, sizeof *c);
        ledger__v1__client_id__init(c);
        c->id = str_of(a, tx->client_id);
        m->client_id = c;
    }
    m->sequence = tx->sequence;
    m->actor = str_of(a, tx->actor);
    m->n_operations = tx->op_count;
    m->operations = ldg_arena_alloc(a, tx->op_count * sizeof *m->operations);
    for (size_t i = 0; i < tx->op_count; i++)
        m->operations[i] = ldg_rpc_op(a, &tx->ops[i]);
    m->timestamp = ldg_rpc_timestamp(a, tx->timestamp_seconds, tx->timestamp_nanos);
    return m;
}

Ledger__V1__Block *ldg_rpc_block(struct ldg_arena *a, const struct ldg_block *b)
{
    Ledger__V1__Block *m = ldg_arena_alloc(a, sizeof *m);
    ledger__v1__block__init(m);
    m->header = ldg_rpc_header(a, &b->header, b->leader_id, b->block_hash);
    m->n_transactions = b->tx_count;
    m->transactions = ldg_arena_alloc(a, b->tx_count * sizeof *m->transactions);
    for (size_t i = 0; i < b->tx_count; i++)
        m->transactions[i] = ldg_rpc_tx(a, &b->txs[i]);
    return m;
}

Ledger__V1__StateLeaf *ldg_rpc_leaf(struct ldg_arena *a, const struct ldg_leaf *l)
{
    Ledger__V1__StateLeaf *m = ldg_arena_alloc(a, sizeof *m);
    ledger__v1__state_leaf__init(m);
    m->leaf_key.data = ldg_arena_dup(a, l->key.data, l->key.len);
    m->leaf_key.len = l->key.len;
    m->value_hash = ldg_rpc_hash(a, l->value_hash);
    m->expires_at = l->expires_at;
    m->version = l->version;
    return m;
}

Ledger__V1__OperationOutcome ldg_rpc_outcome(int outcome)
{
    switch (outcome) {
    case LDG_OUTCOME_CREATED: return LEDGER__V1__OPERATION_OUTCOME__OPERATION_OUTCOME_CREATED;
    case LDG_OUTCOME_UPDATED: return LEDGER__V1__OPERATION_OUTCOME__OPERATION_OUTCOME_UPDATED;
    case LDG_OUTCOME_DELETED: return LEDGER__V1__OPERATION_OUTCOME__OPERATION_OUTCOME_DELETED;
    case LDG_OUTCOME_NOT_FOUND: return LEDGER__V1__OPERATION_OUTCOME__OPERATION_OUTCOME_NOT_FOUND;
    case LDG_OUTCOME_ALREADY_EXISTS:
        return LEDGER__V1__OPERATION_OUTCOME__OPERATION_OUTCOME_ALREADY_EXISTS;
    default: return LEDGER__V1__OPERATION_OUTCOME__OPERATION_OUTCOME_UNSPECIFIED;
    }
}

Ledger__V1__VaultStatus ldg_rpc_vault_status(int status)
{
    switch (status) {
    case LDG_STATUS_ACTIVE: return LEDGER__V1__VAULT_STATUS__VAULT_STATUS_ACTIVE;
    case LDG_STATUS_READ_ONLY: return LEDGER__V1__VAULT_STATUS__VAULT_STATUS_READ_ONLY;
    case LDG_STATUS_DIVERGED: return LEDGER__V1__VAULT_STATUS__VAULT_STATUS_DIVERGED;
    case LDG_STATUS_RECOVERING: return LEDGER__V1__VAULT_STATUS__VAULT_STATUS_RECOVERING;
    case LDG_STATUS_DELETED: return LEDGER__V1__VAULT_STATUS__VAULT_STATUS_DELETED;
    default: return LEDGER__V1__VAULT_STATUS__VAULT_STATUS_UNSPECIFIED;
    }
}

Ledger__V1__OrganizationStatus ldg_rpc_org_status(int status)
{
    switch (status) {
    case LDG_STATUS_ACTIVE: return LEDGER__V1__ORGANIZATION_STATUS__ORGANIZATION_STATUS_ACTIVE;
    case LDG_STATUS_DELETED: return LEDGER__V1__ORGANIZATION_STATUS__ORGANIZATION_STATUS_DELETED;
    default: return LEDGER__V1__ORGANIZATION_STATUS__ORGANIZATION_STATUS_UNSPECIFIED;
    }
}

Ledger__V1__WriteErrorCode ldg_rpc_write_error_code(int result_code)
{
    switch (result_code) {
    case LDG_RES_KEY_EXISTS: return LEDGER__V1__WRITE_ERROR_CODE__WRITE_ERROR_CODE_KEY_EXISTS;
    case LDG_RES_KEY_NOT_FOUND: return LEDGER__V1__WRITE_ERROR_CODE__WRITE_ERROR_CODE_KEY_NOT_FOUND;
    case LDG_RES_VERSION_MISMATCH:
        return LEDGER__V1__WRITE_ERROR_CODE__WRITE_ERROR_CODE_VERSION_MISMATCH;
    case LDG_RES_VALUE_MISMATCH:
        return LEDGER__V1__WRITE_ERROR_CODE__WRITE_ERROR_CODE_VALUE_MISMATCH;
    case LDG_RES_ALREADY_COMMITTED:
        return LEDGER__V1__WRITE_ERROR_CODE__WRITE_ERROR_CODE_ALREADY_COMMITTED;
    case LDG_RES_IDEMPOTENCY_KEY_REUSED:
        return LEDGER__V1__WRITE_ERROR_CODE__WRITE_ERROR_CODE_IDEMPOTENCY_KEY_REUSED;
    case LDG_RES_ORG_NOT_FOUND:
    case LDG_RES_VAULT_NOT_FOUND:
    case LDG_RES_CHAIN_INACTIVE:
        return LEDGER__V1__WRITE_ERROR_CODE__WRITE_ERROR_CODE_CHAIN_NOT_WRITABLE;
    default: return LEDGER__V1__WRITE_ERROR_CODE__WRITE_ERROR_CODE_UNSPECIFIED;
    }
}
