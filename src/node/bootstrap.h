/* Bootstrap: how a node becomes (or stays) a cluster member (SPEC §3.2).
 *
 * Runs after the network services started (discovery and JoinCluster are
 * served before the node is a member) and ends by starting the replicated
 * ledger (ldg_cluster_start) into serve->rpc.cluster:
 *
 *   data dir holds a Raft log       restart as its member (--single: force a
 *                                   one-node cluster, see cluster.h)
 *   --single, empty                 bootstrap a one-node cluster
 *   --cluster N, empty              poll PEERS every PEERS_POLL with
 *                                   ExchangeNodeInfo; a peer that is a member
 *                                   -> join it; N distinct node ids answered
 *                                   (self included, recognised by id) and
 *                                   ours is the lowest -> bootstrap a ONE-node
 *                                   cluster (the others see it as a member
 *                                   and join: JoinCluster, one change at a
 *                                   time on the leader); otherwise keep polling
 *   --join, empty                   JoinCluster through a member among PEERS
 *
 * A successful JoinCluster reply carries the cluster id, which is persisted
 * before Raft starts. Past PEERS_TIMEOUT without success the node fails
 * (|fail| is called with a message naming who answered and the last error).
 *
 * After the cluster started, a watch runs every 2 s: a node that believes it
 * is a member but has known no leader for 3 s asks the other members of its
 * configuration (GetClusterInfo); one that answers for the same cluster with
 * a leader and a membership without this node means it was removed
 * (ldg_cluster_mark_removed: logged, no writes served).
 *
 * PEERS: comma list of host[:port] (default port 50051), each host resolved
 * to all its A/AAAA records (so a DNS name of the nodes works), or a JSON
 * file (contains '/' or ends in .json): {"peers": [{"addr": "h:p"}, ...]}. */
#ifndef LDG_NODE_BOOTSTRAP_H
#define LDG_NODE_BOOTSTRAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "node/config.h"
#include "util/err.h"

struct ldg_serve;

typedef void (*ldg_bootstrap_fail_cb)(void *arg, const char *msg);

#define LDG_BOOT_MAX_PEERS 64

struct ldg_boot_peer {
    uint64_t id;
    char address[128];       /* where it answered */
    char cluster_id[40];
    bool member;
    char leader_address[128];
};

struct ldg_bootstrap {
    uv_loop_t *loop;
    const struct ldg_config *cfg;
    struct ldg_serve *serve;
    uint64_t node_id;
    const char *data_dir;
    uint8_t *secret;          /* cluster secret file contents, NULL: none */
    size_t secret_len;
    uv_timer_t timer;
    bool timer_init;
    uint64_t deadline_ms;     /* uv_now() deadline */
    int inflight;             /* discovery / join calls in flight */
    bool joining;
    bool stopping;
    bool done;
    struct ldg_boot_peer seen[LDG_BOOT_MAX_PEERS];
    size_t nseen;
    size_t last_logged_count;
    char last_error[256];
    ldg_bootstrap_fail_cb fail;
    void *fail_arg;
    uv_timer_t watch;         /* after start: removed-member detection */
    bool watch_init;
    uint64_t leaderless_since;
    int watch_inflight;
    bool restored;            /* started from restored backup data (SPEC §3.4) */
};

/* Start: either starts the cluster now (existing log, --single) or begins
 * discovery. Returns 0 or an LDG_E* code with |err| set (bad PEERS, no
 * PEERS in a multi-node mode, cluster start failure, unreadable secret). */
int ldg_bootstrap_start(struct ldg_bootstrap *b, uv_loop_t *loop, const struct ldg_config *cfg,
                        struct ldg_serve *serve, uint64_t node_id, const char *data_dir,
                        ldg_bootstrap_fail_cb fail, void *fail_arg, struct ldg_err *err);

/* Stop polling (calls in flight end when the peer pool closes). */
void ldg_bootstrap_stop(struct ldg_bootstrap *b);

/* Release memory after the loop ended. */
void ldg_bootstrap_free(struct ldg_bootstrap *b);

/* Parse PEERS into "host:port" entries (not resolved): a comma list or a
 * JSON file. |*out| is an ldg_malloc'd array of ldg_malloc'd strings.
 * Returns 0 or LDG_EINVAL / LDG_ENOTFOUND with |err| set. */
int ldg_peers_parse(const char *peers, char ***out, size_t *n, struct ldg_err *err);
void ldg_peers_free(char **list, size_t n);

#endif
