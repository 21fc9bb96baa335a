/* TTL expiry (SPEC §5 "TTL"): the leader proposes expire_entity
 * transactions (actor system:gc, sequence 0) for entities whose expires_at
 * has passed, so every removal is recorded on the chain.
 *
 * ldg_ttl_run is one pass (ForceGc calls it directly); struct ldg_ttl is
 * the periodic leader job that runs a pass every interval while this node
 * is the leader and no pass is in flight. */
#ifndef LDG_NODE_TTL_H
#define LDG_NODE_TTL_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

struct ldg_cluster;

/* Ops per expire transaction, and expired entities taken per chain and pass. */
#define LDG_TTL_OPS_PER_TX 1000
#define LDG_TTL_MAX_PER_CHAIN 10000
#define LDG_TTL_DEFAULT_INTERVAL_MS 60000

struct ldg_ttl_stats {
    uint64_t expired;        /* expire_entity ops that removed a leaf */
    uint64_t chains_scanned; /* chains looked at */
    uint64_t submitted;      /* expire transactions proposed */
};

/* Called once when every proposed transaction finished; |status| is 0 or
 * the first cluster error (LDG_ENOTLEADER, LDG_ETIMEDOUT, ...). */
typedef void (*ldg_ttl_done_cb)(void *arg, int status, const struct ldg_ttl_stats *st);

/* One pass at time |now_s| over every live chain, or only (org, vault) when
 * |org| != 0 (then vault 0 = the organization chain, and |all_vaults| also
 * scans that organization's vaults). Returns:
 *   0  transactions were proposed; |cb| fires later, exactly once;
 *   1  nothing to expire: |*now_out| holds the stats, |cb| is never called;
 *   <0 LDG_ENOTLEADER (not the leader), LDG_ENOTFOUND (unknown chain), or a
 *      storage error; |cb| is never called. */
int ldg_ttl_run(struct ldg_cluster *c, uint64_t org, uint64_t vault, bool all_vaults,
                int64_t now_s, uint64_t timeout_ms, ldg_ttl_done_cb cb, void *arg,
                struct ldg_ttl_stats *now_out);

/* The periodic job. Caller owns the storage. */
struct ldg_ttl {
    uv_timer_t timer;
    struct ldg_cluster *cluster;   /* borrowed */
    uint64_t interval_ms;
    bool running;                  /* a pass is in flight */
    bool closing;
    bool closed;                   /* the timer handle is closed */
    void (*stop_cb)(void *arg);
    void *stop_arg;
    uint64_t passes;               /* passes started (tests, metrics) */
};

/* Start the job on |loop|: every |interval_ms| (0: default 60 s), if |c|
 * reports this node as leader, run a pass at the wall clock time. */
void ldg_ttl_start(struct ldg_ttl *t, uv_loop_t *loop, struct ldg_cluster *c,
                   uint64_t interval_ms);

/* Stop; |cb| fires once, later, when the timer is closed and no pass is in
 * flight (the storage may then be freed). */
void ldg_ttl_stop(struct ldg_ttl *t, void (*cb)(void *arg), void *arg);

#endif
