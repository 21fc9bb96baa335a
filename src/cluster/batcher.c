/* Write batcher: commands submitted on the leader are grouped into one Raft
 * entry (up to batch_size commands, at most batch_delay of waiting).
 *
 * Happy path: submit deep-copies the command (the leader makes the write's
 * tx_id here), queues it and arms the batch timer; the timer (or a full
 * batch) builds the entry (log id, raft_last_index + 1, term, the leader's
 * clock never before the previous entry's stamp, leader id), raft_apply's
 * it, and keeps a struct proposal keyed by (index, term). The FSM finds the
 * proposal when it applies that entry and moves the results into it; the
 * raft_apply callback then calls each command's callback.
 *
 * Failure modes: raft_apply refused (leadership just lost): every command
 * of the batch gets LDG_ENOTLEADER; leadership lost before commit:
 * LDG_ENOTLEADER (the outcome is unknown: the entry may still commit under
 * the next leader; retries with idempotency keys are safe); submit timeout:
 * LDG_ETIMEDOUT at once, the command may still commit; stop: LDG_ECANCELED. */
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "cluster/internal.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/metrics.h"

int64_t ldg_cluster_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- command copies ---- */

static size_t op_bytes(const struct ldg_op *op)
{
    return op->resource.len + op->relation.len + op->subject.len + op->key.len +
           op->value.len + op->cond_value.len;
}

static void copy_bytes(struct ldg_bytes *dst, struct ldg_bytes src, uint8_t **at)
{
    dst->len = src.len;
    if (src.len == 0) {
        dst->data = NULL;
        return;
    }
    memcpy(*at, src.data, src.len);
    dst->data = *at;
    *at += src.len;
}

static void pcmd_copy(struct pcmd *p, const struct ldg_cmd *cmd)
{
    size_t n = cmd->name.len + cmd->client_id.len;
    for (size_t i = 0; i < cmd->op_count; i++)
        n += op_bytes(&cmd->ops[i]);
    p->cmd = *cmd;
    p->mem = ldg_malloc(n);
    uint8_t *at = p->mem;
    copy_bytes(&p->cmd.name, cmd->name, &at);
    copy_bytes(&p->cmd.client_id, cmd->client_id, &at);
    p->ops = NULL;
    if (cmd->op_count > 0) {
        p->ops = ldg_calloc(cmd->op_count, sizeof *p->ops);
        for (size_t i = 0; i < cmd->op_count; i++) {
            const struct ldg_op *s = &cmd->ops[i];
            struct ldg_op *d = &p->ops[i];
            *d = *s;
            copy_bytes(&d->resource, s->resource, &at);
            copy_bytes(&d->relation, s->relation, &at);
            copy_bytes(&d->subject, s->subject, &at);
            copy_bytes(&d->key, s->key, &at);
            copy_bytes(&d->value, s->value, &at);
            copy_bytes(&d->cond_value, s->cond_value, &at);
        }
    }
    p->cmd.ops = p->ops;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return false;
    return true;
}

/* Random 16 bytes in UUIDv4 format. */
static int make_tx_id(uint8_t id[LDG_TX_ID_LEN])
{
    if (RAND_bytes(id, LDG_TX_ID_LEN) != 1)
        return LDG_EIO;
    id[6] = (uint8_t)((id[6] & 0x0f) | 0x40);
    id[8] = (uint8_t)((id[8] & 0x3f) | 0x80);
    return 0;
}

static void pcmd_timer_closed_cb(uv_handle_t *h)
{
    struct pcmd *p = h->data;
    struct ldg_cluster *c = p->c;
    ldg_free(p->mem);
    ldg_free(p->ops);
    ldg_free(p);
    c->closing_handles--;
    ldg_cluster_maybe_finish(c);
}

static void pcmd_free(struct pcmd *p)
{
    if (p->has_timer) {
        p->c->closing_handles++;
        uv_close((uv_handle_t *)&p->timer, pcmd_timer_closed_cb);
        return;
    }
    ldg_free(p->mem);
    ldg_free(p->ops);
    ldg_free(p);
}

static void pcmd_finish(struct pcmd *p, int status, const struct ldg_cmd_result *res,
                        const struct ldg_block_made *block)
{
    if (p->finished)
        return;
    p->finished = true;
    if (p->has_timer)
        uv_timer_stop(&p->timer);
    p->cb(p->arg, status, res, block);
}

static void queue_remove(struct ldg_cluster *c, struct pcmd *p)
{
    struct pcmd **pp = &c->queue_head;
    struct pcmd *prev = NULL;
    while (*pp != NULL && *pp != p) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp == NULL)
        return;
    *pp = p->next;
    if (c->queue_tail == p)
        c->queue_tail = prev;
    c->queue_len--;
    p->next = NULL;
}

static void pcmd_timeout_cb(uv_timer_t *t)
{
    struct pcmd *p = t->data;
    pcmd_finish(p, LDG_ETIMEDOUT, NULL, NULL);
    if (!p->in_proposal) {
        queue_remove(p->c, p);
        pcmd_free(p);
    }
}

/* ---- proposals ---- */

static int status_from_raft(struct ldg_cluster *c, int status)
{
    if (c->stopping)
        return LDG_ECANCELED;
    switch (status) {
    case RAFT_NOTLEADER:
    case RAFT_LEADERSHIPLOST:
        return LDG_ENOTLEADER;
    case RAFT_SHUTDOWN:
    case RAFT_CANCELED:
        return LDG_ECANCELED;
    default:
        return LDG_EIO;
    }
}

static const struct ldg_block_made *block_for(const struct ldg_apply_result *res,
                                              const struct ldg_cmd_result *r)
{
    if (r->code != LDG_RES_OK)
        return NULL;
    for (size_t i = 0; i < res->block_count; i++) {
        const struct ldg_block_header *h = &res->blocks[i].header;
        if (h->organization_slug == r->org && h->vault_slug == r->vault &&
            h->height == r->height)
            return &res->blocks[i];
    }
    return NULL;
}

static void proposal_unlink(struct ldg_cluster *c, struct proposal *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        c->proposals = p->next;
    if (p->next)
        p->next->prev = p->prev;
    p->prev = p->next = NULL;
}

static void proposal_finish(struct proposal *p, int status)
{
    struct ldg_cluster *c = p->c;
    size_t i = 0;
    for (struct pcmd *pc = p->cmds; pc != NULL; pc = pc->next, i++) {
        if (p->applied && i < p->res.count)
            pcmd_finish(pc, 0, &p->res.results[i], block_for(&p->res, &p->res.results[i]));
        else
            pcmd_finish(pc, p->applied ? LDG_EINTERNAL : status_from_raft(c, status), NULL,
                        NULL);
    }
    struct pcmd *pc = p->cmds;
    while (pc != NULL) {
        struct pcmd *next = pc->next;
        pcmd_free(pc);
        pc = next;
    }
    ldg_apply_result_free(&p->res);
    ldg_free(p);
}

static void deliver_timer_cb(uv_timer_t *t)
{
    struct ldg_cluster *c = t->data;
    while (c->done_head != NULL) {
        struct proposal *p = c->done_head;
        c->done_head = p->done_next;
        if (c->done_head == NULL)
            c->done_tail = NULL;
        proposal_finish(p, p->raft_status);
    }
}

/* libraft calls this from inside its apply loop: the commands' callbacks
 * run on the next loop turn instead, so they may call back into the
 * cluster (submit, barrier, stop) without re-entering libraft. */
static void proposal_apply_cb(struct raft_apply *req, int status, void *result)
{
    struct proposal *p = LDG_CONTAINER_OF(req, struct proposal, req);
    struct ldg_cluster *c = p->c;
    proposal_unlink(c, p);
    p->raft_status = status;
    if (c->done_tail)
        c->done_tail->done_next = p;
    else
        c->done_head = p;
    c->done_tail = p;
    if (!c->stopping)
        uv_timer_start(&c->deliver_timer, deliver_timer_cb, 0, 0);
}

void ldg_batcher_init(struct ldg_cluster *c)
{
    uv_timer_init(c->loop, &c->batch_timer);
    c->batch_timer.data = c;
    uv_timer_init(c->loop, &c->deliver_timer);
    c->deliver_timer.data = c;
}

void ldg_batcher_on_applied(struct ldg_cluster *c, const struct ldg_entry *e,
                            struct ldg_apply_result *res)
{
    if (e->leader_id != c->opts.node_id)
        return;
    for (struct proposal *p = c->proposals; p != NULL; p = p->next) {
        if (p->index == e->index && p->term == e->term && !p->applied) {
            p->res = *res;
            memset(res, 0, sizeof *res);
            p->applied = true;
            return;
        }
    }
}

/* Propose up to batch_size queued commands as one entry. */
static void propose_one(struct ldg_cluster *c)
{
    struct proposal *p = ldg_calloc(1, sizeof *p);
    p->c = c;
    struct pcmd **tail = &p->cmds;
    while (c->queue_head != NULL && p->count < c->opts.batch_size) {
        struct pcmd *pc = c->queue_head;
        c->queue_head = pc->next;
        if (c->queue_head == NULL)
            c->queue_tail = NULL;
        c->queue_len--;
        pc->next = NULL;
        pc->in_proposal = true;
        *tail = pc;
        tail = &pc->next;
        p->count++;
    }
    static const double size_buckets[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000};
    static struct ldg_metric_family *batch_size;
    if (batch_size == NULL)
        batch_size = ldg_metrics_histogram("ledger_batch_size",
                                           "Commands per Raft entry proposed by this leader.",
                                           0, NULL, size_buckets, LDG_ARRAY_SIZE(size_buckets));
    ldg_metrics_observe(batch_size, NULL, (double)p->count);

    struct ldg_cmd *cmds = ldg_calloc(p->count, sizeof *cmds);
    size_t i = 0;
    for (struct pcmd *pc = p->cmds; pc != NULL; pc = pc->next)
        cmds[i++] = pc->cmd;

    int64_t ts = ldg_cluster_now_us();
    if (ts < c->last_ts_us)
        ts = c->last_ts_us;
    c->last_ts_us = ts;
    p->index = raft_last_index(&c->raft) + 1;
    p->term = c->raft.current_term;
    struct ldg_entry e = {
        .log_id = c->log_id,
        .index = p->index,
        .term = p->term,
        .ts_seconds = ts / 1000000,
        .ts_nanos = (uint32_t)(ts % 1000000) * 1000,
        .leader_id = c->opts.node_id,
        .cmds = cmds,
        .cmd_count = p->count,
    };
    ldg_buf_reset(&c->scratch);
    int rv = ldg_entry_encode(&e, &c->scratch);
    ldg_free(cmds);
    if (rv != 0) { /* every command was encoded alone at submit: cannot happen */
        LDG_LOG(LDG_LOG_ERROR, "raft", "encode entry: %s", ldg_strerror(rv));
        proposal_finish(p, RAFT_INVALID);
        return;
    }
    struct raft_buffer buf;
    if (ldg_cluster_frame(c->scratch.data, c->scratch.len, &buf) != 0) {
        proposal_finish(p, RAFT_NOMEM);
        return;
    }
    p->req.data = p;
    rv = raft_apply(&c->raft, &p->req, &buf, 1, proposal_apply_cb);
    if (rv != 0) {
        raft_free(buf.base);
        proposal_finish(p, rv);
        return;
    }
    p->next = c->proposals;
    if (c->proposals)
        c->proposals->prev = p;
    c->proposals = p;
}

static void flush(struct ldg_cluster *c)
{
    if (c->batch_timer_armed) {
        uv_timer_stop(&c->batch_timer);
        c->batch_timer_armed = false;
    }
    while (c->queue_head != NULL)
        propose_one(c);
}

static void batch_timer_cb(uv_timer_t *t)
{
    struct ldg_cluster *c = t->data;
    c->batch_timer_armed = false;
    flush(c);
}

int ldg_batcher_submit(struct ldg_cluster *c, const struct ldg_cmd *cmd, uint64_t timeout_ms,
                       ldg_cluster_submit_cb cb, void *arg)
{
    if (c->stopping)
        return LDG_ECANCELED;
    if (raft_state(&c->raft) != RAFT_LEADER)
        return LDG_ENOTLEADER;
    if (cmd->type < LDG_CMD_CREATE_ORG || cmd->type > LDG_CMD_EXPIRE)
        return LDG_EINVAL;
    struct pcmd *p = ldg_calloc(1, sizeof *p);
    p->c = c;
    p->cb = cb;
    p->arg = arg;
    pcmd_copy(p, cmd);
    int rv = 0;
    if (p->cmd.type == LDG_CMD_WRITE ||
        (p->cmd.type == LDG_CMD_EXPIRE && all_zero(p->cmd.tx_id, LDG_TX_ID_LEN)))
        rv = make_tx_id(p->cmd.tx_id);
    if (rv == 0) {
        /* Encode it alone now, so a bad command fails here, not its batch. */
        struct ldg_entry probe = {.cmds = &p->cmd, .cmd_count = 1};
        ldg_buf_reset(&c->scratch);
        rv = ldg_entry_encode(&probe, &c->scratch);
    }
    if (rv != 0) {
        pcmd_free(p);
        return rv;
    }
    if (timeout_ms > 0) {
        uv_timer_init(c->loop, &p->timer);
        p->timer.data = p;
        p->has_timer = true;
        uv_timer_start(&p->timer, pcmd_timeout_cb, timeout_ms, 0);
    }
    if (c->queue_tail)
        c->queue_tail->next = p;
    else
        c->queue_head = p;
    c->queue_tail = p;
    c->queue_len++;

    if (c->queue_len >= c->opts.batch_size) {
        flush(c);
    } else if (!c->batch_timer_armed) {
        uint64_t ms = (uint64_t)(c->opts.batch_delay_s * 1000.0 + 0.5);
        uv_timer_start(&c->batch_timer, batch_timer_cb, ms, 0);
        c->batch_timer_armed = true;
    }
    return 0;
}

void ldg_batcher_cancel_all(struct ldg_cluster *c, int status)
{
    /* Batches libraft already finished get their real outcome. */
    deliver_timer_cb(&c->deliver_timer);
    if (c->batch_timer_armed) {
        uv_timer_stop(&c->batch_timer);
        c->batch_timer_armed = false;
    }
    while (c->queue_head != NULL) {
        struct pcmd *p = c->queue_head;
        c->queue_head = p->next;
        c->queue_len--;
        p->next = NULL;
        pcmd_finish(p, status, NULL, NULL);
        pcmd_free(p);
    }
    c->queue_tail = NULL;
    /* In-flight proposals: the callers hear now; libraft's callbacks free
     * them later. */
    for (struct proposal *p = c->proposals; p != NULL; p = p->next)
        for (struct pcmd *pc = p->cmds; pc != NULL; pc = pc->next)
            pcmd_finish(pc, status, NULL, NULL);
}

void ldg_batcher_free_leftovers(struct ldg_cluster *c)
{
    deliver_timer_cb(&c->deliver_timer);
    while (c->proposals != NULL) {
        struct proposal *p = c->proposals;
        proposal_unlink(c, p);
        proposal_finish(p, RAFT_SHUTDOWN);
    }
}
