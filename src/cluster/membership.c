/* Membership: queued join/leave changes, automatic promotion, leader and
 * membership observation, cluster metrics (see cluster.h).
 *
 * Happy path: a 100 ms tick runs on every node. It notes leader changes
 * (ledger_leader_elections_total, logged) and membership loss (logged: a
 * removed node serves no writes). On the leader, when no change is in
 * flight, it runs the next queued change (raft_add / raft_remove), else the
 * automatic steps: a SPARE becomes STANDBY (starts replicating); a STANDBY
 * that answers and is within CATCHUP_LAG entries of the leader's log becomes
 * VOTER while the cluster has fewer than max_voters voters (libraft then
 * runs its own catch-up round before the configuration entry).
 *
 * Only one change is ever in flight (libraft's RAFT_CANTCHANGE): a change
 * that meets one is put back at the head of the queue and retried on the
 * next tick.
 *
 * Removing the leader itself: leadership is transferred (raft_transfer to
 * any voter), then the request's callback gets LDG_ENOTLEADER so the caller
 * asks the new leader, which removes this node.
 *
 * Failure modes: losing leadership fails every queued change with
 * LDG_ENOTLEADER (the outcome of one in flight is then unknown to the
 * caller; retrying is safe because join and leave are idempotent). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cluster/internal.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/metrics.h"

#define TICK_MS 100
#define CATCHUP_LAG 64

static const char *role_name(int role)
{
    return role == RAFT_VOTER ? "voter" : role == RAFT_STANDBY ? "standby" : "spare";
}

static const struct raft_server *find_server(struct ldg_cluster *c, uint64_t id, unsigned *idx)
{
    const struct raft_configuration *conf = &c->raft.configuration;
    for (unsigned i = 0; i < conf->n; i++)
        if (conf->servers[i].id == id) {
            if (idx)
                *idx = i;
            return &conf->servers[i];
        }
    return NULL;
}

static unsigned count_voters(struct ldg_cluster *c)
{
    unsigned n = 0;
    for (unsigned i = 0; i < c->raft.configuration.n; i++)
        if (c->raft.configuration.servers[i].role == RAFT_VOTER)
            n++;
    return n;
}

static void mchange_done(struct mchange *m, int status, const char *msg)
{
    if (m->cb)
        m->cb(m->arg, status, msg);
    ldg_free(m);
}

static void fail_queue(struct ldg_cluster *c, int status, const char *msg)
{
    struct mchange *m = c->mq_head;
    c->mq_head = c->mq_tail = NULL;
    while (m != NULL) {
        struct mchange *next = m->next;
        mchange_done(m, status, msg);
        m = next;
    }
}

static void enqueue(struct ldg_cluster *c, struct mchange *m, bool front)
{
    if (front) {
        m->next = c->mq_head;
        c->mq_head = m;
        if (c->mq_tail == NULL)
            c->mq_tail = m;
        return;
    }
    m->next = NULL;
    if (c->mq_tail)
        c->mq_tail->next = m;
    else
        c->mq_head = m;
    c->mq_tail = m;
}

/* ---- metrics ---- */

static struct {
    struct ldg_metric_family *quorum, *leader, *term, *commit, *applied, *elections, *members;
} mf;

static void collect(void *arg)
{
    struct ldg_cluster *c = arg;
    struct ldg_cluster_status st;
    ldg_cluster_get_status(c, &st);
    ldg_metrics_set(mf.quorum, NULL, st.leader_id != 0 && st.is_member ? 1 : 0);
    ldg_metrics_set(mf.leader, NULL, st.is_leader ? 1 : 0);
    ldg_metrics_set(mf.term, NULL, (double)st.term);
    ldg_metrics_set(mf.commit, NULL, (double)st.commit_index);
    ldg_metrics_set(mf.applied, NULL, (double)st.applied_index);
    ldg_metrics_set(mf.elections, NULL, (double)st.elections);
    ldg_metrics_set(mf.members, NULL, (double)st.members);
}

static void metrics_register(struct ldg_cluster *c)
{
    mf.quorum = ldg_metrics_gauge("ledger_cluster_quorum_status",
                                  "1 when this node is a member and a leader with a quorum is "
                                  "known, else 0",
                                  0, NULL);
    mf.leader = ldg_metrics_gauge("ledger_is_leader", "1 when this node is the Raft leader", 0,
                                  NULL);
    mf.term = ldg_metrics_gauge("ledger_raft_term", "current Raft term", 0, NULL);
    mf.commit = ldg_metrics_gauge("ledger_raft_commit_index", "Raft commit index known here", 0,
                                  NULL);
    mf.applied = ldg_metrics_gauge("ledger_raft_applied_index", "last Raft index applied here",
                                   0, NULL);
    mf.elections = ldg_metrics_counter("ledger_leader_elections_total",
                                       "leader changes observed by this node", 0, NULL);
    mf.members = ldg_metrics_gauge("ledger_cluster_members",
                                   "servers in the Raft configuration (any role)", 0, NULL);
    ldg_metrics_add_collector(collect, c);
}

/* ---- changes ---- */

static void change_cb(struct raft_change *req, int status)
{
    struct ldg_cluster *c = req->data;
    c->change_busy = false;
    struct mchange *m = c->change_cur;
    c->change_cur = NULL;
    char msg[256];
    if (status != 0)
        snprintf(msg, sizeof msg, "membership change failed: %s", raft_strerror(status));
    else if (m != NULL && m->kind == MCHANGE_ADD)
        snprintf(msg, sizeof msg, "node %" PRIu64 " added at %s; it is promoted to voter once "
                 "caught up while the cluster has fewer than %u voters",
                 m->id, m->address, c->opts.max_voters);
    else if (m != NULL)
        snprintf(msg, sizeof msg, "node %" PRIu64 " removed", m->id);
    else
        snprintf(msg, sizeof msg, "ok");
    if (status != 0)
        LDG_LOG(LDG_LOG_WARN, "raft", "%s", msg);
    else if (m != NULL)
        LDG_LOG(LDG_LOG_INFO, "raft", "membership: %s", msg);
    if (m != NULL)
        mchange_done(m, status != 0 ? ldg_cluster_from_raft(status) : 0, msg);
}

static void leave_transfer_cb(struct raft_transfer *req)
{
    struct ldg_cluster *c = req->data;
    ldg_free(req);
    c->leave_transfer = NULL;
    raft_id id = 0;
    const char *addr = NULL;
    raft_leader(&c->raft, &id, &addr);
    bool moved = raft_state(&c->raft) != RAFT_LEADER;
    char msg[256];
    if (moved)
        snprintf(msg, sizeof msg, "leadership transferred to %" PRIu64 "; the new leader "
                 "removes this node", (uint64_t)id);
    else
        snprintf(msg, sizeof msg, "leadership transfer did not complete; retry");
    LDG_LOG(LDG_LOG_INFO, "raft", "leaving the cluster: %s", msg);
    struct mchange *m = c->leave_waiters;
    c->leave_waiters = NULL;
    while (m != NULL) {
        struct mchange *next = m->next;
        mchange_done(m, moved ? LDG_ENOTLEADER : LDG_EBUSY, msg);
        m = next;
    }
}

/* Run the head of the queue. Returns true when a change was started (or
 * the queue must wait). */
static bool run_queued(struct ldg_cluster *c)
{
    while (c->mq_head != NULL) {
        struct mchange *m = c->mq_head;
        c->mq_head = m->next;
        if (c->mq_head == NULL)
            c->mq_tail = NULL;
        m->next = NULL;
        const struct raft_server *s = find_server(c, m->id, NULL);
        int rv;
        c->change_req.data = c;
        if (m->kind == MCHANGE_ADD) {
            if (s != NULL && strcmp(s->address, m->address) == 0) {
                mchange_done(m, 0, "already a member at this address");
                continue;
            }
            if (s != NULL) {
                char msg[256];
                snprintf(msg, sizeof msg, "node %" PRIu64 " is already a member at %s; remove "
                         "it with LeaveCluster first", m->id, s->address);
                mchange_done(m, LDG_EEXIST, msg);
                continue;
            }
            rv = raft_add(&c->raft, &c->change_req, m->id, m->address, change_cb);
            if (rv == 0)
                LDG_LOG(LDG_LOG_INFO, "raft", "membership: adding node %" PRIu64 " at %s",
                        m->id, m->address);
        } else {
            if (s == NULL) {
                mchange_done(m, 0, "not a member (already removed)");
                continue;
            }
            if (s->role == RAFT_VOTER && count_voters(c) <= 1) {
                mchange_done(m, LDG_EPRECOND, "refused: it is the last voter of the cluster");
                continue;
            }
            if (m->id == c->opts.node_id) {
                if (c->leave_transfer == NULL) {
                    struct raft_transfer *t = ldg_calloc(1, sizeof *t);
                    t->data = c;
                    rv = raft_transfer(&c->raft, t, 0, leave_transfer_cb);
                    if (rv != 0) {
                        ldg_free(t);
                        char msg[256];
                        snprintf(msg, sizeof msg, "cannot transfer leadership: %s",
                                 raft_strerror(rv));
                        mchange_done(m, LDG_EBUSY, msg);
                        continue;
                    }
                    c->leave_transfer = t;
                    LDG_LOG(LDG_LOG_INFO, "raft",
                            "membership: removing the leader itself: transferring leadership "
                            "first");
                }
                m->next = c->leave_waiters;
                c->leave_waiters = m;
                continue;
            }
            int role = s->role; /* |s| does not survive the change */
            rv = raft_remove(&c->raft, &c->change_req, m->id, change_cb);
            if (rv == 0)
                LDG_LOG(LDG_LOG_INFO, "raft", "membership: removing node %" PRIu64 " (%s)",
                        m->id, role_name(role));
        }
        if (rv == RAFT_CANTCHANGE) {
            enqueue(c, m, true);
            return true;
        }
        if (rv != 0) {
            char msg[256];
            snprintf(msg, sizeof msg, "membership change refused by raft: %s",
                     raft_strerror(rv));
            mchange_done(m, ldg_cluster_from_raft(rv), msg);
            continue;
        }
        c->change_busy = true;
        c->change_cur = m;
        return true;
    }
    return false;
}

static void auto_step(struct ldg_cluster *c)
{
    struct raft *r = &c->raft;
    const struct raft_configuration *conf = &r->configuration;
    raft_index last = raft_last_index(r);
    unsigned voters = count_voters(c);
    int rv;
    c->change_req.data = c;
    for (unsigned i = 0; i < conf->n; i++) {
        if (conf->servers[i].role != RAFT_SPARE)
            continue;
        uint64_t id = conf->servers[i].id; /* |conf| changes with the assign */
        rv = raft_assign(r, &c->change_req, id, RAFT_STANDBY, change_cb);
        if (rv == 0) {
            LDG_LOG(LDG_LOG_INFO, "raft", "membership: node %" PRIu64 " spare -> standby", id);
            c->change_busy = true;
        }
        return;
    }
    if (voters >= c->opts.max_voters || r->leader_state.progress == NULL)
        return;
    for (unsigned i = 0; i < conf->n; i++) {
        if (conf->servers[i].role != RAFT_STANDBY)
            continue;
        const struct raft_progress *p = &r->leader_state.progress[i];
        if (!p->recent_recv || p->match_index + CATCHUP_LAG < last)
            continue;
        uint64_t id = conf->servers[i].id; /* |conf| and |p| change with the assign */
        unsigned long long match = p->match_index;
        rv = raft_assign(r, &c->change_req, id, RAFT_VOTER, change_cb);
        if (rv == 0) {
            LDG_LOG(LDG_LOG_INFO, "raft",
                    "membership: node %" PRIu64 " caught up (match %llu of %llu): standby -> "
                    "voter (%u voters, target %u)",
                    id, match, (unsigned long long)last, voters + 1, c->opts.max_voters);
            c->change_busy = true;
        }
        return;
    }
}

static void tick_cb(uv_timer_t *t)
{
    struct ldg_cluster *c = t->data;
    if (c->stopping)
        return;
    raft_id lid = 0;
    const char *laddr = NULL;
    raft_leader(&c->raft, &lid, &laddr);
    if (lid != 0 && lid != c->last_leader_seen) {
        c->elections++;
        c->last_leader_seen = lid;
        LDG_LOG(LDG_LOG_INFO, "raft", "leader is now %" PRIu64 " at %s term=%llu%s",
                (uint64_t)lid, laddr ? laddr : "?", (unsigned long long)c->raft.current_term,
                lid == c->opts.node_id ? " (this node)" : "");
    }
    bool member = find_server(c, c->opts.node_id, NULL) != NULL && !c->removed;
    if (c->was_member && !member) {
        char uuid[37];
        ldg_cluster_id_format(c->cluster_id, uuid);
        LDG_LOG(LDG_LOG_WARN, "raft",
                "this node is no longer a member of cluster %s (removed); it serves no writes. "
                "To use it again, wipe its data directory and join with --join",
                uuid);
    }
    c->was_member = member;

    if (raft_state(&c->raft) != RAFT_LEADER) {
        if (c->mq_head != NULL)
            fail_queue(c, LDG_ENOTLEADER, "leadership lost before the change ran; retry");
        return;
    }
    if (c->change_busy)
        return;
    if (run_queued(c))
        return;
    auto_step(c);
}

void ldg_membership_init(struct ldg_cluster *c)
{
    uv_timer_init(c->loop, &c->member_timer);
    c->member_timer.data = c;
    c->member_timer_init = true;
    uv_timer_start(&c->member_timer, tick_cb, TICK_MS, TICK_MS);
    c->was_member = find_server(c, c->opts.node_id, NULL) != NULL;
    if (!c->was_member && c->raft.configuration.n > 0) {
        char uuid[37];
        ldg_cluster_id_format(c->cluster_id, uuid);
        LDG_LOG(LDG_LOG_WARN, "raft",
                "this node is not a member of cluster %s (it was removed); it serves no "
                "writes. To use it again, wipe its data directory and join with --join",
                uuid);
    }
    metrics_register(c);
}

static void member_timer_closed_cb(uv_handle_t *h)
{
    struct ldg_cluster *c = h->data;
    c->closing_handles--;
    ldg_cluster_maybe_finish(c);
}

void ldg_membership_stop(struct ldg_cluster *c)
{
    ldg_metrics_remove_collector(collect, c);
    fail_queue(c, LDG_ECANCELED, "node stopping");
    if (c->member_timer_init) {
        c->member_timer_init = false;
        c->closing_handles++;
        uv_close((uv_handle_t *)&c->member_timer, member_timer_closed_cb);
    }
}

/* ---- API ---- */

void ldg_cluster_mark_removed(struct ldg_cluster *c)
{
    if (c->removed)
        return;
    c->removed = true;
    char uuid[37];
    ldg_cluster_id_format(c->cluster_id, uuid);
    LDG_LOG(LDG_LOG_WARN, "raft",
            "this node is no longer a member of cluster %s (a member reports a membership "
            "without it); it serves no writes. To use it again, wipe its data directory and "
            "join with --join",
            uuid);
    c->was_member = false;
}

int ldg_cluster_join(struct ldg_cluster *c, uint64_t id, const char *address,
                     ldg_cluster_change_cb cb, void *arg)
{
    if (c->stopping)
        return LDG_ECANCELED;
    if (id == 0 || address == NULL || address[0] == '\0' || strlen(address) >= 128 ||
        strchr(address, ':') == NULL)
        return LDG_EINVAL;
    if (raft_state(&c->raft) != RAFT_LEADER)
        return LDG_ENOTLEADER;
    const struct raft_server *s = find_server(c, id, NULL);
    if (s != NULL && strcmp(s->address, address) != 0)
        return LDG_EEXIST;
    struct mchange *m = ldg_calloc(1, sizeof *m);
    m->kind = MCHANGE_ADD;
    m->id = id;
    snprintf(m->address, sizeof m->address, "%s", address);
    m->cb = cb;
    m->arg = arg;
    enqueue(c, m, false);
    return 0;
}

int ldg_cluster_leave(struct ldg_cluster *c, uint64_t id, ldg_cluster_change_cb cb, void *arg)
{
    if (c->stopping)
        return LDG_ECANCELED;
    if (raft_state(&c->raft) != RAFT_LEADER)
        return LDG_ENOTLEADER;
    const struct raft_server *s = find_server(c, id, NULL);
    if (s == NULL)
        return LDG_ENOTFOUND;
    if (s->role == RAFT_VOTER && count_voters(c) <= 1)
        return LDG_EPRECOND;
    struct mchange *m = ldg_calloc(1, sizeof *m);
    m->kind = MCHANGE_REMOVE;
    m->id = id;
    m->cb = cb;
    m->arg = arg;
    enqueue(c, m, false);
    return 0;
}

void ldg_cluster_members(struct ldg_cluster *c, struct ldg_cluster_member **out, size_t *n)
{
    struct raft *r = &c->raft;
    const struct raft_configuration *conf = &r->configuration;
    raft_id lid = 0;
    const char *laddr = NULL;
    raft_leader(r, &lid, &laddr);
    bool leader = raft_state(r) == RAFT_LEADER;
    struct ldg_cluster_member *m = ldg_calloc(conf->n ? conf->n : 1, sizeof *m);
    for (unsigned i = 0; i < conf->n; i++) {
        const struct raft_server *s = &conf->servers[i];
        m[i].id = s->id;
        snprintf(m[i].address, sizeof m[i].address, "%s", s->address);
        m[i].role = s->role == RAFT_VOTER     ? LDG_MEMBER_VOTER
                    : s->role == RAFT_STANDBY ? LDG_MEMBER_STANDBY
                                              : LDG_MEMBER_SPARE;
        m[i].is_leader = s->id == lid;
        if (s->id == c->opts.node_id) {
            m[i].reachable = true;
            m[i].match_index = leader ? raft_last_index(r) : 0;
        } else if (leader && r->leader_state.progress != NULL) {
            m[i].reachable = r->leader_state.progress[i].recent_recv;
            m[i].match_index = r->leader_state.progress[i].match_index;
        } else {
            m[i].reachable = s->id == lid;
        }
    }
    *out = m;
    *n = conf->n;
}
