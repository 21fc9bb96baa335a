/* Canonical op/transaction encoding, decoding and hashing (see tx.h).
 *
 * One encoder writes either into a buffer or straight into a SHA-256 context
 * (struct sink), so the stored bytes and the hashed bytes cannot drift apart
 * and hashing never allocates. */
#include "crypto/tx.h"

#include <string.h>

#include "util/err.h"
#include "util/mem.h"

struct sink {
    struct ldg_buf *buf;         /* append here, or */
    struct ldg_sha256_ctx *hash; /* feed here */
};

static void sink_put(struct sink *s, const void *p, size_t n)
{
    if (s->buf)
        ldg_buf_append(s->buf, p, n);
    else
        ldg_sha256_update(s->hash, p, n);
}

static void sink_u8(struct sink *s, uint8_t v)
{
    sink_put(s, &v, 1);
}

static void sink_u32le(struct sink *s, uint32_t v)
{
    uint8_t b[4];
    ldg_put_u32le(b, v);
    sink_put(s, b, sizeof b);
}

static void sink_u32be(struct sink *s, uint32_t v)
{
    uint8_t b[4];
    ldg_put_u32be(b, v);
    sink_put(s, b, sizeof b);
}

static void sink_u64be(struct sink *s, uint64_t v)
{
    uint8_t b[8];
    ldg_put_u64be(b, v);
    sink_put(s, b, sizeof b);
}

/* Callers validated b.len <= UINT32_MAX. */
static void sink_lenbytes(struct sink *s, struct ldg_bytes b)
{
    sink_u32le(s, (uint32_t)b.len);
    sink_put(s, b.data, b.len);
}

static int bytes_ok(struct ldg_bytes b)
{
    return b.len <= UINT32_MAX && (b.len == 0 || b.data != NULL);
}

int ldg_op_validate(const struct ldg_op *op)
{
    switch (op->type) {
    case LDG_OP_CREATE_RELATIONSHIP:
    case LDG_OP_DELETE_RELATIONSHIP:
        if (!bytes_ok(op->resource) || !bytes_ok(op->relation) || !bytes_ok(op->subject))
            return LDG_EINVAL;
        return 0;
    case LDG_OP_SET_ENTITY:
        if (!bytes_ok(op->key) || !bytes_ok(op->value))
            return LDG_EINVAL;
        switch (op->cond) {
        case LDG_COND_NONE:
        case LDG_COND_NOT_EXISTS:
        case LDG_COND_MUST_EXIST:
        case LDG_COND_VERSION:
            return 0;
        case LDG_COND_VALUE_EQUALS:
            return bytes_ok(op->cond_value) ? 0 : LDG_EINVAL;
        default:
            return LDG_EINVAL;
        }
    case LDG_OP_DELETE_ENTITY:
    case LDG_OP_EXPIRE_ENTITY:
        return bytes_ok(op->key) ? 0 : LDG_EINVAL;
    default:
        return LDG_EINVAL;
    }
}

/* |op| validated. */
static void op_write(struct sink *s, const struct ldg_op *op)
{
    sink_u8(s, op->type);
    switch (op->type) {
    case LDG_OP_CREATE_RELATIONSHIP:
    case LDG_OP_DELETE_RELATIONSHIP:
        sink_lenbytes(s, op->resource);
        sink_lenbytes(s, op->relation);
        sink_lenbytes(s, op->subject);
        break;
    case LDG_OP_SET_ENTITY:
        sink_lenbytes(s, op->key);
        sink_lenbytes(s, op->value);
        sink_u8(s, op->cond);
        if (op->cond == LDG_COND_VERSION)
            sink_u64be(s, op->cond_version);
        else if (op->cond == LDG_COND_VALUE_EQUALS)
            sink_lenbytes(s, op->cond_value);
        sink_u64be(s, op->expires_at);
        break;
    case LDG_OP_DELETE_ENTITY:
        sink_lenbytes(s, op->key);
        break;
    case LDG_OP_EXPIRE_ENTITY:
        sink_lenbytes(s, op->key);
        sink_u64be(s, op->expired_at);
        break;
    default:
        break; /* unreachable: validated */
    }
}

static int ops_validate(const struct ldg_op *ops, size_t n)
{
    if (n > 0 && ops == NULL)
        return LDG_EINVAL;
    for (size_t i = 0; i < n; i++) {
        int rv = ldg_op_validate(&ops[i]);
        if (rv != 0)
            return rv;
    }
    return 0;
}

static int tx_validate(const struct ldg_tx *tx)
{
    if (!bytes_ok(tx->client_id) || !bytes_ok(tx->actor) || tx->op_count > UINT32_MAX)
        return LDG_EINVAL;
    return ops_validate(tx->ops, tx->op_count);
}

static void tx_write(struct sink *s, const struct ldg_tx *tx)
{
    sink_put(s, tx->tx_id, LDG_TX_ID_LEN);
    sink_lenbytes(s, tx->client_id);
    sink_u64be(s, tx->sequence);
    sink_lenbytes(s, tx->actor);
    sink_u32le(s, (uint32_t)tx->op_count);
    for (size_t i = 0; i < tx->op_count; i++)
        op_write(s, &tx->ops[i]);
    sink_u64be(s, (uint64_t)tx->timestamp_seconds);
    sink_u32be(s, tx->timestamp_nanos);
}

int ldg_op_encode(const struct ldg_op *op, struct ldg_buf *out)
{
    struct sink s = {.buf = out};
    int rv = ldg_op_validate(op);
    if (rv != 0)
        return rv;
    op_write(&s, op);
    return 0;
}

int ldg_ops_encode(const struct ldg_op *ops, size_t n, struct ldg_buf *out)
{
    for (size_t i = 0; i < n; i++) {
        int rv = ldg_op_encode(&ops[i], out);
        if (rv != 0)
            return rv;
    }
    return 0;
}

int ldg_tx_encode(const struct ldg_tx *tx, struct ldg_buf *out)
{
    struct sink s = {.buf = out};
    int rv = tx_validate(tx);
    if (rv != 0)
        return rv;
    tx_write(&s, tx);
    return 0;
}

int ldg_tx_hash(const struct ldg_tx *tx, uint8_t out[LDG_HASH_LEN])
{
    struct ldg_sha256_ctx ctx;
    struct sink s = {.hash = &ctx};
    int rv = tx_validate(tx);
    if (rv != 0)
        return rv;
    ldg_sha256_init(&ctx);
    tx_write(&s, tx);
    ldg_sha256_final(&ctx, out);
    return 0;
}

int ldg_tx_payload_digest(uint64_t organization_slug, uint64_t vault_slug,
                          const struct ldg_op *ops, size_t n, uint8_t out[LDG_HASH_LEN])
{
    struct ldg_sha256_ctx ctx;
    struct sink s = {.hash = &ctx};
    int rv = ops_validate(ops, n);
    if (rv != 0)
        return rv;
    ldg_sha256_init(&ctx);
    sink_u64be(&s, organization_slug);
    sink_u64be(&s, vault_slug);
    for (size_t i = 0; i < n; i++)
        op_write(&s, &ops[i]);
    ldg_sha256_final(&ctx, out);
    return 0;
}

/* ---- decoding (untrusted input: every read is bounds-checked) ---- */

struct reader {
    const uint8_t *p;
    size_t n;
    size_t off;
};

static int rd_u8(struct reader *r, uint8_t *v)
{
    if (r->n - r->off < 1)
        return LDG_EINVAL;
    *v = r->p[r->off++];
    return 0;
}

static int rd_u32le(struct reader *r, uint32_t *v)
{
    if (r->n - r->off < 4)
        return LDG_EINVAL;
    *v = ldg_get_u32le(r->p + r->off);
    r->off += 4;
    return 0;
}

static int rd_u32be(struct reader *r, uint32_t *v)
{
    if (r->n - r->off < 4)
        return LDG_EINVAL;
    *v = ldg_get_u32be(r->p + r->off);
    r->off += 4;
    return 0;
}

static int rd_u64be(struct reader *r, uint64_t *v)
{
    if (r->n - r->off < 8)
        return LDG_EINVAL;
    *v = ldg_get_u64be(r->p + r->off);
    r->off += 8;
    return 0;
}

static int rd_lenbytes(struct reader *r, struct ldg_bytes *b)
{
    uint32_t len;
    if (rd_u32le(r, &len) != 0 || r->n - r->off < len)
        return LDG_EINVAL;
    b->data = r->p + r->off;
    b->len = len;
    r->off += len;
    return 0;
}

static int op_read(struct reader *r, struct ldg_op *op)
{
    memset(op, 0, sizeof *op);
    if (rd_u8(r, &op->type) != 0)
        return LDG_EINVAL;
    switch (op->type) {
    case LDG_OP_CREATE_RELATIONSHIP:
    case LDG_OP_DELETE_RELATIONSHIP:
        if (rd_lenbytes(r, &op->resource) != 0 || rd_lenbytes(r, &op->relation) != 0 ||
            rd_lenbytes(r, &op->subject) != 0)
            return LDG_EINVAL;
        return 0;
    case LDG_OP_SET_ENTITY:
        if (rd_lenbytes(r, &op->key) != 0 || rd_lenbytes(r, &op->value) != 0 ||
            rd_u8(r, &op->cond) != 0)
            return LDG_EINVAL;
        switch (op->cond) {
        case LDG_COND_NONE:
        case LDG_COND_NOT_EXISTS:
        case LDG_COND_MUST_EXIST:
            break;
        case LDG_COND_VERSION:
            if (rd_u64be(r, &op->cond_version) != 0)
                return LDG_EINVAL;
            break;
        case LDG_COND_VALUE_EQUALS:
            if (rd_lenbytes(r, &op->cond_value) != 0)
                return LDG_EINVAL;
            break;
        default:
            return LDG_EINVAL;
        }
        return rd_u64be(r, &op->expires_at);
    case LDG_OP_DELETE_ENTITY:
        return rd_lenbytes(r, &op->key);
    case LDG_OP_EXPIRE_ENTITY:
        if (rd_lenbytes(r, &op->key) != 0)
            return LDG_EINVAL;
        return rd_u64be(r, &op->expired_at);
    default:
        return LDG_EINVAL;
    }
}

int ldg_op_decode(const uint8_t *p, size_t n, size_t *off, struct ldg_op *op)
{
    struct reader r = {.p = p, .n = n, .off = *off};
    if (*off > n)
        return LDG_EINVAL;
    int rv = op_read(&r, op);
    if (rv != 0)
        return rv;
    *off = r.off;
    return 0;
}

/* Smallest op encoding: delete_entity with an empty key (type + u32). */
#define MIN_OP_LEN 5

int ldg_tx_decode(const uint8_t *p, size_t n, struct ldg_tx *tx, struct ldg_op **ops_out)
{
    struct reader r = {.p = p, .n = n, .off = 0};
    struct ldg_op *ops = NULL;
    uint32_t count, nanos;
    uint64_t secs;
    int rv = LDG_EINVAL;

    memset(tx, 0, sizeof *tx);
    if (n < LDG_TX_ID_LEN)
        goto err;
    memcpy(tx->tx_id, p, LDG_TX_ID_LEN);
    r.off = LDG_TX_ID_LEN;
    if (rd_lenbytes(&r, &tx->client_id) != 0 || rd_u64be(&r, &tx->sequence) != 0 ||
        rd_lenbytes(&r, &tx->actor) != 0 || rd_u32le(&r, &count) != 0)
        goto err;
    /* Bound the allocation by what the input can actually hold. */
    if (count > (r.n - r.off) / MIN_OP_LEN)
        goto err;
    if (count > 0)
        ops = ldg_malloc(count * sizeof *ops);
    for (uint32_t i = 0; i < count; i++) {
        if (op_read(&r, &ops[i]) != 0)
            goto err_ops;
    }
    if (rd_u64be(&r, &secs) != 0 || rd_u32be(&r, &nanos) != 0 || r.off != n)
        goto err_ops;
    tx->ops = ops;
    tx->op_count = count;
    tx->timestamp_seconds = (int64_t)secs;
    tx->timestamp_nanos = nanos;
    *ops_out = ops;
    return 0;
err_ops:
    ldg_free(ops);
err:
    memset(tx, 0, sizeof *tx);
    return rv;
}
