/* The replicated ledger: libraft glue (the only place libraft is called).
 *
 * A cluster object owns the Raft instance (raft_uv storage in DATA/raft/),
 * the LMDB store in DATA/state/, the ledger state machine on top of it, the
 * write batcher and the linearizable-read barrier. The rpc layer talks to it
 * through this header only.
 *
 * Write path: ldg_cluster_submit() queues one command; the batcher groups
 * commands (up to batch_size, at most batch_delay) into one Raft entry
 * stamped with the leader's clock, term, index and log id; every node
 * applies it with ldg_ledger_apply in one LMDB transaction; on the proposing
 * node each command's callback gets its ldg_cmd_result.
 *
 * Read path: readers open LMDB read transactions on ldg_cluster_ledger();
 * a linearizable read first waits on ldg_cluster_barrier().
 *
 * Callback contract (STYLE): a function taking a cb either returns an error
 * and never calls it, or returns 0 and calls it exactly once, later, on the
 * loop thread, never re-entrantly. */
#ifndef LDG_CLUSTER_CLUSTER_H
#define LDG_CLUSTER_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <uv.h>

#include "ledger/entry.h"
#include "ledger/ledger.h"
#include "util/err.h"

struct ldg_cluster;
struct ldg_listener;

struct ldg_cluster_opts {
    const char *data_dir;        /* DATA: state/ and raft/ live below it */
    uint64_t node_id;            /* this node's id (DATA/node_id) */
    const char *address;         /* advertised gRPC/Raft address */
    unsigned batch_size;         /* max commands per entry (SPEC BATCH_SIZE) */
    double batch_delay_s;        /* max wait of a command for its batch */
    unsigned snapshot_threshold; /* Raft entries between snapshots */
    unsigned election_timeout_ms;/* default 500 */
    unsigned heartbeat_ms;       /* default 50 */
    /* Additions (cluster branch): */
    unsigned snapshot_trailing;  /* log entries kept behind a snapshot; 0 = 2048 */
    const uint8_t *cluster_secret; /* peer preamble HMAC key (copied); NULL = none */
    size_t cluster_secret_len;
    /* Additions (clustering branch): */
    const uint8_t *join_cluster_id; /* 16 bytes: a data dir without a Raft log joins
                                       this cluster: DATA/cluster_id is written (fsync)
                                       before Raft starts; the node waits to be added */
    bool single;                  /* --single on a data dir that already holds a log:
                                     a multi-node configuration is replaced by this node
                                     alone (raft_recover) under a NEW cluster id */
    bool force;                   /* with single: allowed even if this node was not a voter */
    unsigned max_voters;          /* leader auto-promotes caught-up standbys while the
                                     cluster has fewer voters; 0 = 3; capped at 5 */
    /* Additions (backup branch): */
    bool restored;                /* state/ holds restored backup data that is not in
                                     the log: while raft/ holds no snapshot yet (a new
                                     log, or a crash before the first one), a Raft
                                     snapshot is taken after the next applied entry and
                                     the log behind it dropped (joiners then get the
                                     state by snapshot install); then the configured
                                     threshold and trailing apply (docs/backups.md §4) */
};
/* Defaults applied by ldg_cluster_start for zero fields: batch_size 100,
 * batch_delay_s 0 (flush on the next loop turn; a negative value is 0),
 * snapshot_threshold 8192, election_timeout_ms 500, heartbeat_ms 50.
 *
 * Files: DATA/cluster_id (UUID text, made when a new log is bootstrapped),
 * DATA/raft/log_id (16 hex digits, ditto), DATA/raft/ (raft_uv),
 * DATA/state/ (LMDB). Without |bootstrap_single| an empty raft dir starts a
 * node with no configuration, which waits to be added (no vote). */

/* Open the store, the Raft log and start Raft; with |bootstrap_single| a
 * fresh data dir is bootstrapped as a one-node cluster. With opts->single on
 * a data dir whose last configuration has other members, the configuration
 * is forced to this node alone at opts->address (raft_recover: every entry
 * of the local log is kept and becomes committed) and a new cluster id is
 * written; refused with LDG_EPRECOND when this node was not a voter unless
 * opts->force. A one-node configuration is a plain restart. Peer Raft
 * connections arrive through |listener| (the shared port). Returns 0 or an
 * LDG_E* code with |err| set; on failure nothing is left running. */
int ldg_cluster_start(uv_loop_t *loop, const struct ldg_cluster_opts *opts,
                      bool bootstrap_single, struct ldg_listener *listener,
                      struct ldg_cluster **out, struct ldg_err *err);

/* Stop: fail queued commands with LDG_ECANCELED, transfer leadership when
 * other voters exist, close Raft and the store; |cb| fires once, later, after
 * which the object is freed. */
typedef void (*ldg_cluster_close_cb)(void *arg);
void ldg_cluster_stop(struct ldg_cluster *c, ldg_cluster_close_cb cb, void *arg);

/* The shared listener is about to close: unregister the Raft protocol from
 * it (call before ldg_listener_close; peer streams already accepted stay). */
void ldg_cluster_listener_closing(struct ldg_cluster *c);

/* ---- writes ---- */

/* Result of one submitted command. |status| is 0 when the command was
 * applied (then |res| is its result: res->code may still be a client-level
 * failure such as KEY_EXISTS), or LDG_ENOTLEADER / LDG_ENOLEADER /
 * LDG_ETIMEDOUT / LDG_ECANCELED / LDG_EIO with |res| NULL. |block| is the
 * block (header + hash) that holds the command's transaction, or NULL.
 * Everything is borrowed for the duration of the callback. */
typedef void (*ldg_cluster_submit_cb)(void *arg, int status, const struct ldg_cmd_result *res,
                                      const struct ldg_block_made *block);

/* Queue |cmd| (deep-copied; the leader fills tx_id for writes, and for
 * expire commands whose tx_id is all zero) for the next batch. |timeout_ms|
 * bounds the wait (0 = none); on timeout the cb gets LDG_ETIMEDOUT at once
 * and the command may still commit. Returns 0, or LDG_ENOTLEADER when this
 * node is not the leader, LDG_EINVAL for a command that cannot be encoded
 * (unknown type, invalid op), LDG_ECANCELED while stopping (never calls cb
 * then). LDG_ENOTLEADER in the cb means leadership was lost before the
 * entry committed here: the outcome is unknown. */
int ldg_cluster_submit(struct ldg_cluster *c, const struct ldg_cmd *cmd, uint64_t timeout_ms,
                       ldg_cluster_submit_cb cb, void *arg);

/* ---- reads ---- */

/* The ledger (state machine) for read transactions: ldg_store_txn_begin on
 * ldg_cluster_ledger(c)->store. Valid until ldg_cluster_stop. */
struct ldg_ledger *ldg_cluster_ledger(struct ldg_cluster *c);

/* Linearizable read: |cb| fires with 0 once this node is confirmed leader
 * and has applied everything committed before the call (one raft barrier is
 * shared by every read waiting at that moment), or with LDG_ENOTLEADER /
 * LDG_ETIMEDOUT / LDG_ECANCELED. */
typedef void (*ldg_cluster_barrier_cb)(void *arg, int status);
int ldg_cluster_barrier(struct ldg_cluster *c, uint64_t timeout_ms, ldg_cluster_barrier_cb cb,
                        void *arg);

/* A thread-pool job reading the LMDB environment directly (a backup's
 * mdb_env_copy2) brackets its use:
 *   ldg_cluster_hold     loop thread, before queueing: the store stays open
 *                        past ldg_cluster_stop until the release, and map
 *                        growth waits until ldg_cluster_reader_done
 *   ldg_cluster_reader_done  any thread, when the job stopped reading
 *   ldg_cluster_release  loop thread, after the job (may finish a stop) */
void ldg_cluster_hold(struct ldg_cluster *c);
void ldg_cluster_reader_done(struct ldg_cluster *c);
void ldg_cluster_release(struct ldg_cluster *c);

/* ---- block announcements (WatchBlocks) ---- */

/* Called on the loop thread for every block applied on this node, after its
 * LMDB transaction committed. */
typedef void (*ldg_cluster_block_fn)(void *arg, const struct ldg_block_made *b);
struct ldg_cluster_watch;
int ldg_cluster_watch(struct ldg_cluster *c, ldg_cluster_block_fn fn, void *arg,
                      struct ldg_cluster_watch **out);
void ldg_cluster_unwatch(struct ldg_cluster *c, struct ldg_cluster_watch *w);

/* ---- status ---- */

/* UUID text of a cluster id (36 chars + NUL) and back (LDG_EINVAL). */
void ldg_cluster_id_format(const uint8_t id[16], char out[37]);
int ldg_cluster_id_parse(const char *s, uint8_t id[16]);

struct ldg_cluster_status {
    bool is_leader;
    uint64_t leader_id;         /* 0 when unknown */
    const char *leader_address; /* NULL when unknown; valid until the next loop turn */
    uint64_t term;
    uint64_t commit_index;
    uint64_t applied_index;
    uint64_t last_index;
    unsigned voters;
    bool is_voter;
    /* Additions (cluster branch): */
    int role;                   /* 0 unavailable, 1 follower, 2 candidate, 3 leader */
    uint64_t log_id;            /* this node's Raft log id (0 = not known yet) */
    uint8_t cluster_id[16];
    /* Additions (clustering branch): */
    bool is_member;             /* this node is in its current configuration */
    unsigned members;           /* servers in the configuration (any role) */
    uint64_t elections;         /* leader changes seen by this node */
};
void ldg_cluster_get_status(struct ldg_cluster *c, struct ldg_cluster_status *out);

/* ---- membership (membership.c) ---- */

enum ldg_member_role {
    LDG_MEMBER_VOTER = 1,
    LDG_MEMBER_STANDBY = 2, /* replicates, does not vote (shown as LEARNER) */
    LDG_MEMBER_SPARE = 3,   /* just added, not replicating yet (shown as LEARNER) */
};

struct ldg_cluster_member {
    uint64_t id;
    char address[128];
    enum ldg_member_role role;
    bool is_leader;
    bool reachable;       /* leader: heard from it within an election timeout;
                             follower: true for itself and the leader it follows */
    uint64_t match_index; /* leader only (0 elsewhere); the leader's own = last index */
};

/* Current configuration as this node knows it; |*out| is ldg_malloc'd
 * (caller frees), |*n| its length. */
void ldg_cluster_members(struct ldg_cluster *c, struct ldg_cluster_member **out, size_t *n);

/* Result of a membership change; |msg| is a human explanation (borrowed). */
typedef void (*ldg_cluster_change_cb)(void *arg, int status, const char *msg);

/* Leader only: add node |id| at |address| (libraft SPARE; then the leader
 * makes it STANDBY and, once caught up, VOTER while voters < max_voters).
 * |cb| fires when the addition is committed (0; also when it was already a
 * member at that address) or failed. Changes are queued and run one at a
 * time. Returns 0, LDG_ENOTLEADER, LDG_EEXIST (member at another address:
 * it must leave first), LDG_EINVAL (bad id/address), LDG_ECANCELED. */
int ldg_cluster_join(struct ldg_cluster *c, uint64_t id, const char *address,
                     ldg_cluster_change_cb cb, void *arg);

/* Leader only: remove node |id| (which may be down). Removing the leader
 * itself first transfers leadership; |cb| then gets LDG_ENOTLEADER and the
 * caller asks the new leader. Returns 0, LDG_ENOTLEADER, LDG_ENOTFOUND (not
 * a member), LDG_EPRECOND (it is the last voter), LDG_ECANCELED. */
int ldg_cluster_leave(struct ldg_cluster *c, uint64_t id, ldg_cluster_change_cb cb, void *arg);

/* The node layer learned from a peer that the cluster's current membership
 * no longer includes this node: log it once and report is_member false from
 * now on (requests needing the leader are then refused). */
void ldg_cluster_mark_removed(struct ldg_cluster *c);

/* ---- inspection (--inspect) ---- */

/* Print what DATA says about the replicated log without starting anything:
 * "raft_log_id: <hex>|none", "applied: log_id=<hex> index=N term=N" (from
 * the LMDB state, opened read-only) and "raft_snapshots: N". Returns 0 or
 * an LDG_E* code with |err| set (a missing raft/ or state/ is not an
 * error: "none" is printed). */
int ldg_cluster_inspect(const char *data_dir, FILE *out, struct ldg_err *err);

#endif
