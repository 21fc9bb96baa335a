/* Raft entry codec (see entry.h for the layout). The decoder trusts nothing:
 * every length is checked against the bytes left before anything is read. */
#include "ledger/entry.h"

#include <string.h>

#include "util/err.h"
#include "util/mem.h"

#define ENTRY_MAGIC0 'L'
#define ENTRY_MAGIC1 'E'
#define ENTRY_VERSION 1
#define ENTRY_FIXED_LEN (3 + 8 * 3 + 8 + 4 + 8 + 4)

static int put_lenbytes(struct ldg_buf *out, struct ldg_bytes b)
{
    if (b.len > UINT32_MAX || (b.len > 0 && b.data == NULL))
        return LDG_EINVAL;
    ldg_buf_lenbytes(out, b.data, b.len);
    return 0;
}

static int put_ops(struct ldg_buf *out, const struct ldg_op *ops, size_t n)
{
    if (n > UINT32_MAX || (n > 0 && ops == NULL))
        return LDG_EINVAL;
    ldg_buf_u32be(out, (uint32_t)n);
    return ldg_ops_encode(ops, n, out);
}

int ldg_entry_encode(const struct ldg_entry *e, struct ldg_buf *out)
{
    if (e->ts_nanos > 999999999u || e->cmd_count > UINT32_MAX ||
        (e->cmd_count > 0 && e->cmds == NULL))
        return LDG_EINVAL;
    ldg_buf_u8(out, ENTRY_MAGIC0);
    ldg_buf_u8(out, ENTRY_MAGIC1);
    ldg_buf_u8(out, ENTRY_VERSION);
    ldg_buf_u64be(out, e->log_id);
    ldg_buf_u64be(out, e->index);
    ldg_buf_u64be(out, e->term);
    ldg_buf_u64be(out, (uint64_t)e->ts_seconds);
    ldg_buf_u32be(out, e->ts_nanos);
    ldg_buf_u64be(out, e->leader_id);
    ldg_buf_u32be(out, (uint32_t)e->cmd_count);
    for (size_t i = 0; i < e->cmd_count; i++) {
        const struct ldg_cmd *c = &e->cmds[i];
        int rv = 0;
        ldg_buf_u8(out, c->type);
        switch (c->type) {
        case LDG_CMD_CREATE_ORG:
            ldg_buf_u64be(out, c->slug);
            rv = put_lenbytes(out, c->name);
            break;
        case LDG_CMD_DELETE_ORG:
            ldg_buf_u64be(out, c->org);
            ldg_buf_u8(out, c->force ? 1 : 0);
            break;
        case LDG_CMD_CREATE_VAULT:
            ldg_buf_u64be(out, c->org);
            ldg_buf_u64be(out, c->slug);
            rv = put_lenbytes(out, c->name);
            break;
        case LDG_CMD_DELETE_VAULT:
            ldg_buf_u64be(out, c->org);
            ldg_buf_u64be(out, c->vault);
            break;
        case LDG_CMD_WRITE:
            ldg_buf_u64be(out, c->org);
            ldg_buf_u64be(out, c->vault);
            rv = put_lenbytes(out, c->client_id);
            if (rv != 0)
                break;
            ldg_buf_append(out, c->idempotency_key, LDG_IDEMPOTENCY_KEY_LEN);
            ldg_buf_append(out, c->tx_id, LDG_TX_ID_LEN);
            rv = put_ops(out, c->ops, c->op_count);
            break;
        case LDG_CMD_EXPIRE:
            ldg_buf_u64be(out, c->org);
            ldg_buf_u64be(out, c->vault);
            ldg_buf_append(out, c->tx_id, LDG_TX_ID_LEN);
            rv = put_ops(out, c->ops, c->op_count);
            break;
        default:
            rv = LDG_EINVAL;
        }
        if (rv != 0)
            return rv;
    }
    return 0;
}

/* A bounds-checked reader over the input. */
struct rd {
    const uint8_t *p;
    size_t n;
    size_t off;
};

static bool rd_has(const struct rd *r, size_t k)
{
    return r->n - r->off >= k;
}

static int rd_u8(struct rd *r, uint8_t *v)
{
    if (!rd_has(r, 1))
        return LDG_ECORRUPT;
    *v = r->p[r->off++];
    return 0;
}

static int rd_u32(struct rd *r, uint32_t *v)
{
    if (!rd_has(r, 4))
        return LDG_ECORRUPT;
    *v = ldg_get_u32be(r->p + r->off);
    r->off += 4;
    return 0;
}

static int rd_u64(struct rd *r, uint64_t *v)
{
    if (!rd_has(r, 8))
        return LDG_ECORRUPT;
    *v = ldg_get_u64be(r->p + r->off);
    r->off += 8;
    return 0;
}

static int rd_raw(struct rd *r, void *dst, size_t k)
{
    if (!rd_has(r, k))
        return LDG_ECORRUPT;
    memcpy(dst, r->p + r->off, k);
    r->off += k;
    return 0;
}

static int rd_lenbytes(struct rd *r, struct ldg_bytes *b)
{
    if (!rd_has(r, 4))
        return LDG_ECORRUPT;
    uint32_t len = ldg_get_u32le(r->p + r->off);
    if (!rd_has(r, 4 + (size_t)len))
        return LDG_ECORRUPT;
    b->data = len ? r->p + r->off + 4 : NULL;
    b->len = len;
    r->off += 4 + (size_t)len;
    return 0;
}

/* Smallest encoded op: type byte + one length (delete_entity). */
#define MIN_OP_LEN 5

/* Read op_count and check it could fit in what is left. */
static int rd_op_count(struct rd *r, uint32_t *count)
{
    int rv = rd_u32(r, count);
    if (rv != 0)
        return rv;
    if ((uint64_t)*count * MIN_OP_LEN > (uint64_t)(r->n - r->off))
        return LDG_ECORRUPT;
    return 0;
}

static int rd_ops(struct rd *r, uint32_t count, struct ldg_op *ops)
{
    for (uint32_t i = 0; i < count; i++) {
        memset(&ops[i], 0, sizeof ops[i]);
        if (ldg_op_decode(r->p, r->n, &r->off, &ops[i]) != 0)
            return LDG_ECORRUPT;
    }
    return 0;
}

/* First pass: validate the layout and count commands and ops, so the
 * second pass can fill arrays allocated once. */
static int scan(const uint8_t *p, size_t n, struct ldg_entry *e, struct ldg_cmd *cmds,
                struct ldg_op *ops, size_t *total_ops)
{
    struct rd r = {.p = p, .n = n, .off = 0};
    uint8_t m0, m1, ver;
    uint64_t ts;
    uint32_t count;
    int rv;
    if ((rv = rd_u8(&r, &m0)) || (rv = rd_u8(&r, &m1)) || (rv = rd_u8(&r, &ver)))
        return rv;
    if (m0 != ENTRY_MAGIC0 || m1 != ENTRY_MAGIC1 || ver != ENTRY_VERSION)
        return LDG_ECORRUPT;
    if ((rv = rd_u64(&r, &e->log_id)) || (rv = rd_u64(&r, &e->index)) ||
        (rv = rd_u64(&r, &e->term)) || (rv = rd_u64(&r, &ts)) ||
        (rv = rd_u32(&r, &e->ts_nanos)) || (rv = rd_u64(&r, &e->leader_id)) ||
        (rv = rd_u32(&r, &count)))
        return rv;
    e->ts_seconds = (int64_t)ts;
    if (e->ts_nanos > 999999999u)
        return LDG_ECORRUPT;
    if ((size_t)count > n - r.off) /* each command is at least its type byte */
        return LDG_ECORRUPT;
    e->cmd_count = count;
    size_t nops = 0;
    for (uint32_t i = 0; i < count; i++) {
        struct ldg_cmd tmp;
        struct ldg_cmd *c = cmds ? &cmds[i] : &tmp;
        memset(c, 0, sizeof *c);
        uint8_t force;
        uint32_t oc;
        if ((rv = rd_u8(&r, &c->type)))
            return rv;
        switch (c->type) {
        case LDG_CMD_CREATE_ORG:
            if ((rv = rd_u64(&r, &c->slug)) || (rv = rd_lenbytes(&r, &c->name)))
                return rv;
            break;
        case LDG_CMD_DELETE_ORG:
            if ((rv = rd_u64(&r, &c->org)) || (rv = rd_u8(&r, &force)))
                return rv;
            if (force > 1)
                return LDG_ECORRUPT;
            c->force = force == 1;
            break;
        case LDG_CMD_CREATE_VAULT:
            if ((rv = rd_u64(&r, &c->org)) || (rv = rd_u64(&r, &c->slug)) ||
                (rv = rd_lenbytes(&r, &c->name)))
                return rv;
            break;
        case LDG_CMD_DELETE_VAULT:
            if ((rv = rd_u64(&r, &c->org)) || (rv = rd_u64(&r, &c->vault)))
                return rv;
            break;
        case LDG_CMD_WRITE:
        case LDG_CMD_EXPIRE:
            if ((rv = rd_u64(&r, &c->org)) || (rv = rd_u64(&r, &c->vault)))
                return rv;
            if (c->type == LDG_CMD_WRITE) {
                if ((rv = rd_lenbytes(&r, &c->client_id)) ||
                    (rv = rd_raw(&r, c->idempotency_key, LDG_IDEMPOTENCY_KEY_LEN)))
                    return rv;
            }
            if ((rv = rd_raw(&r, c->tx_id, LDG_TX_ID_LEN)) || (rv = rd_op_count(&r, &oc)))
                return rv;
            if (ops != NULL) {
                c->ops = oc ? &ops[nops] : NULL;
                rv = rd_ops(&r, oc, &ops[nops]);
            } else {
                struct ldg_op op;
                for (uint32_t k = 0; k < oc && rv == 0; k++) {
                    memset(&op, 0, sizeof op);
                    rv = ldg_op_decode(r.p, r.n, &r.off, &op) ? LDG_ECORRUPT : 0;
                }
            }
            if (rv != 0)
                return rv;
            c->op_count = oc;
            nops += oc;
            break;
        default:
            return LDG_ECORRUPT;
        }
    }
    if (r.off != n)
        return LDG_ECORRUPT;
    *total_ops = nops;
    return 0;
}

int ldg_entry_decode(const uint8_t *p, size_t n, struct ldg_entry *e)
{
    memset(e, 0, sizeof *e);
    if (p == NULL && n > 0)
        return LDG_ECORRUPT;
    size_t nops = 0;
    int rv = scan(p, n, e, NULL, NULL, &nops);
    if (rv != 0) {
        memset(e, 0, sizeof *e);
        return rv;
    }
    size_t cmd_bytes = e->cmd_count * sizeof(struct ldg_cmd);
    /* Align the ops area for struct ldg_op. */
    size_t align = _Alignof(struct ldg_op);
    cmd_bytes = (cmd_bytes + align - 1) / align * align;
    size_t total = cmd_bytes + nops * sizeof(struct ldg_op);
    uint8_t *mem = total ? ldg_malloc(total) : NULL;
    struct ldg_cmd *cmds = e->cmd_count ? (struct ldg_cmd *)(void *)mem : NULL;
    struct ldg_op *ops = nops ? (struct ldg_op *)(void *)(mem + cmd_bytes) : NULL;
    rv = scan(p, n, e, cmds, ops, &nops);
    if (rv != 0) { /* cannot happen: same input as the first pass */
        ldg_free(mem);
        memset(e, 0, sizeof *e);
        return rv;
    }
    e->cmds = cmds;
    e->owned = mem;
    return 0;
}

void ldg_entry_clear(struct ldg_entry *e)
{
    ldg_free(e->owned);
    memset(e, 0, sizeof *e);
}
