/* The cluster object: store + Raft (raft_uv over DATA/raft/, our transport
 * on the shared port) + FSM + batcher + read barriers + watchers.
 *
 * Happy path (start): mkdir raft/ and state/, open the store, read or make
 * the identities (a new log: random log_id in raft/log_id and a new cluster
 * id in DATA/cluster_id, then raft_bootstrap with this node as the only
 * voter), raft_uv_init + raft_init with pre-vote and our timeouts,
 * raft_start (which restores the latest snapshot and replays the log; the
 * FSM skips entries LMDB already holds).
 *
 * Stop: fail queued commands and waiting reads with LDG_ECANCELED, hand
 * leadership to another voter when there is one, raft_close, then
 * raft_uv_close, close our timers, close the store, free, call back.
 *
 * Failure modes at start: every step undoes the previous ones; raft errors
 * are reported with libraft's message. */
#include "cluster/cluster.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "cluster/internal.h"
#include "net/listener.h"
#include "util/log.h"
#include "util/mem.h"

#define DEFAULT_BATCH_SIZE 100
#define DEFAULT_SNAPSHOT_THRESHOLD 8192
#define DEFAULT_SNAPSHOT_TRAILING 2048
#define DEFAULT_ELECTION_MS 500
#define DEFAULT_HEARTBEAT_MS 50

static char *path_join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = ldg_malloc(n);
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

static int ensure_dir(const char *path, struct ldg_err *err)
{
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return ldg_err_set(err, ldg_err_from_errno(errno), "mkdir %s: %s", path,
                           strerror(errno));
    return 0;
}

/* Write |data| to |dir|/|name| durably (tmp file, fsync, rename, fsync dir). */
static int write_file_durable(const char *dir, const char *name, const char *data,
                              struct ldg_err *err)
{
    char *path = path_join(dir, name);
    size_t tn = strlen(path) + 5;
    char *tmp = ldg_malloc(tn);
    snprintf(tmp, tn, "%s.tmp", path);
    int rv = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    size_t len = strlen(data);
    if (fd < 0 || write(fd, data, len) != (ssize_t)len || fsync(fd) != 0 ||
        rename(tmp, path) != 0) {
        rv = ldg_err_set(err, ldg_err_from_errno(errno), "write %s: %s", path, strerror(errno));
        if (fd >= 0)
            unlink(tmp);
    }
    if (fd >= 0)
        close(fd);
    if (rv == 0) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    }
    ldg_free(tmp);
    ldg_free(path);
    return rv;
}

/* Read the first line of |dir|/|name| into |out|. LDG_ENOTFOUND if absent. */
static int read_line(const char *dir, const char *name, char *out, size_t n,
                     struct ldg_err *err)
{
    char *path = path_join(dir, name);
    FILE *f = fopen(path, "r");
    int rv = 0;
    if (f == NULL) {
        rv = errno == ENOENT ? LDG_ENOTFOUND : ldg_err_from_errno(errno);
        ldg_err_set(err, rv, "read %s: %s", path, strerror(errno));
    } else {
        if (fgets(out, (int)n, f) == NULL)
            out[0] = '\0';
        out[strcspn(out, "\r\n")] = '\0';
        fclose(f);
    }
    ldg_free(path);
    return rv;
}

void ldg_cluster_id_format(const uint8_t id[16], char out[37])
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[id[i] >> 4];
        out[o++] = hex[id[i] & 15];
    }
    out[o] = '\0';
}

int ldg_cluster_id_parse(const char *s, uint8_t id[16])
{
    int n = 0;
    for (const char *p = s; *p != '\0'; p++) {
        if (*p == '-')
            continue;
        int v;
        if (*p >= '0' && *p <= '9')
            v = *p - '0';
        else if (*p >= 'a' && *p <= 'f')
            v = *p - 'a' + 10;
        else if (*p >= 'A' && *p <= 'F')
            v = *p - 'A' + 10;
        else
            return LDG_ECORRUPT;
        if (n >= 32)
            return LDG_ECORRUPT;
        if (n % 2 == 0)
            id[n / 2] = (uint8_t)(v << 4);
        else
            id[n / 2] |= (uint8_t)v;
        n++;
    }
    return n == 32 ? 0 : LDG_ECORRUPT;
}

/* Whether raft_uv holds a snapshot ("snapshot-*" data files). */
static bool has_raft_snapshot(const char *raft_dir)
{
    DIR *d = opendir(raft_dir);
    if (d == NULL)
        return false;
    bool found = false;
    struct dirent *de;
    while (!found && (de = readdir(d)) != NULL)
        found = strncmp(de->d_name, "snapshot-", 9) == 0;
    closedir(d);
    return found;
}

static bool file_exists(const char *dir, const char *name)
{
    char *p = path_join(dir, name);
    struct stat st;
    bool ok = stat(p, &st) == 0;
    ldg_free(p);
    return ok;
}

/* ---- identities ---- */

/* Persist c->cluster_id as DATA/cluster_id. */
static int save_cluster_id(struct ldg_cluster *c, struct ldg_err *err)
{
    char uuid[37], line[64];
    ldg_cluster_id_format(c->cluster_id, uuid);
    snprintf(line, sizeof line, "%s\n", uuid);
    return write_file_durable(c->data_dir, "cluster_id", line, err);
}

/* A fresh random (version 4) cluster id, persisted. */
static int new_cluster_id(struct ldg_cluster *c, struct ldg_err *err)
{
    if (RAND_bytes(c->cluster_id, sizeof c->cluster_id) != 1)
        return ldg_err_set(err, LDG_EIO, "random bytes unavailable");
    c->cluster_id[6] = (uint8_t)((c->cluster_id[6] & 0x0f) | 0x40);
    c->cluster_id[8] = (uint8_t)((c->cluster_id[8] & 0x3f) | 0x80);
    return save_cluster_id(c, err);
}

static int make_identities(struct ldg_cluster *c, struct ldg_err *err)
{
    do {
        if (RAND_bytes((unsigned char *)&c->log_id, sizeof c->log_id) != 1)
            return ldg_err_set(err, LDG_EIO, "random bytes unavailable");
    } while (c->log_id == 0);
    char line[64];
    snprintf(line, sizeof line, "%016" PRIx64 "\n", c->log_id);
    int rv = write_file_durable(c->raft_dir, "log_id", line, err);
    if (rv != 0)
        return rv;
    return new_cluster_id(c, err);
}

static int load_identities(struct ldg_cluster *c, struct ldg_err *err)
{
    char line[128];
    int rv = read_line(c->raft_dir, "log_id", line, sizeof line, err);
    if (rv == 0) {
        char *end = NULL;
        errno = 0;
        c->log_id = strtoull(line, &end, 16);
        if (errno != 0 || end == line || *end != '\0' || c->log_id == 0)
            return ldg_err_set(err, LDG_ECORRUPT, "%s/log_id: not a 64-bit hex id",
                               c->raft_dir);
    } else if (rv == LDG_ENOTFOUND) {
        c->log_id = 0; /* a node that never bootstrapped: learned from entries */
    } else {
        return rv;
    }
    rv = read_line(c->data_dir, "cluster_id", line, sizeof line, err);
    if (rv == 0) {
        if (ldg_cluster_id_parse(line, c->cluster_id) != 0)
            return ldg_err_set(err, LDG_ECORRUPT, "%s/cluster_id: not a UUID", c->data_dir);
    } else if (rv != LDG_ENOTFOUND) {
        return rv;
    }
    return 0;
}

/* ---- FSM hooks ---- */

void ldg_cluster_fsm_applied(struct ldg_cluster *c, const struct ldg_entry *e,
                             struct ldg_apply_result *res)
{
    if (c->log_id == 0)
        c->log_id = e->log_id;
    for (size_t i = 0; i < res->block_count; i++) {
        struct ldg_cluster_watch *w = c->watches;
        while (w != NULL) {
            struct ldg_cluster_watch *next = w->next;
            w->fn(w->arg, &res->blocks[i]);
            w = next;
        }
    }
    ldg_batcher_on_applied(c, e, res);
}

/* ---- start ---- */

int ldg_cluster_from_raft(int rv)
{
    switch (rv) {
    case RAFT_NOMEM:
        return LDG_ENOMEM;
    case RAFT_CORRUPT:
        return LDG_ECORRUPT;
    case RAFT_NOTLEADER:
    case RAFT_LEADERSHIPLOST:
        return LDG_ENOTLEADER;
    case RAFT_CANCELED:
    case RAFT_SHUTDOWN:
        return LDG_ECANCELED;
    case RAFT_INVALID:
    case RAFT_BADID:
    case RAFT_BADROLE:
        return LDG_EINVAL;
    case RAFT_NOSPACE:
        return LDG_EFULL;
    case RAFT_BUSY:
    case RAFT_CANTCHANGE:
        return LDG_EBUSY;
    default:
        return LDG_EIO;
    }
}

static void cluster_free(struct ldg_cluster *c)
{
    if (c->store_open)
        ldg_store_close(&c->store);
    ldg_buf_close(&c->scratch);
    ldg_free((void *)c->opts.cluster_secret);
    ldg_free(c->data_dir);
    ldg_free(c->raft_dir);
    ldg_free(c->state_dir);
    ldg_free(c->address);
    ldg_free(c);
}

static void start_fail_raft_closed_cb(struct raft *r)
{
    struct ldg_cluster *c = r->data;
    raft_uv_close(&c->io);
    ldg_transport_free(&c->transport);
    c->raft_closed = true;
}

static void start_fail_timer_closed_cb(uv_handle_t *h)
{
    struct ldg_cluster *c = h->data;
    c->closing_handles--;
}

/* Transport, raft_uv and raft_init with our settings (c->cluster_id goes
 * into the transport's preambles). On failure nothing is left open. */
static int raft_open(struct ldg_cluster *c, struct ldg_listener *listener, struct ldg_err *err)
{
    struct ldg_transport_opts topts = {
        .secret = c->opts.cluster_secret,
        .secret_len = c->opts.cluster_secret_len,
    };
    memcpy(topts.cluster_id, c->cluster_id, sizeof topts.cluster_id);
    ldg_transport_init(&c->transport, c->loop, listener, &topts);
    int rv = raft_uv_init(&c->io, c->loop, c->raft_dir, &c->transport);
    if (rv != 0) {
        ldg_err_set(err, ldg_cluster_from_raft(rv), "raft storage %s: %s", c->raft_dir,
                    c->io.errmsg);
        ldg_transport_free(&c->transport);
        return ldg_cluster_from_raft(rv);
    }
    /* libraft 0.15's raft_uv_init fills async_work (a version 2 field) but
     * leaves version at 1, and raft_init then refuses fsm->snapshot_async
     * (returns -1, "async snapshot requires io->version > 1 ..."): declare
     * the version the struct really has. Shown by test_libraft_bugs.c. */
    if (c->io.async_work != NULL && c->io.version < 2)
        c->io.version = 2;
    ldg_cluster_fsm_init(c);
    rv = raft_init(&c->raft, &c->io, &c->fsm, c->opts.node_id, c->address);
    if (rv != 0) {
        ldg_err_set(err, ldg_cluster_from_raft(rv), "raft init: %s", raft_errmsg(&c->raft));
        raft_uv_close(&c->io);
        ldg_transport_free(&c->transport);
        return ldg_cluster_from_raft(rv);
    }
    c->raft.data = c;
    raft_set_election_timeout(&c->raft, c->opts.election_timeout_ms);
    raft_set_heartbeat_timeout(&c->raft, c->opts.heartbeat_ms);
    raft_set_pre_vote(&c->raft, true);
    raft_set_snapshot_threshold(&c->raft, c->opts.snapshot_threshold);
    raft_set_snapshot_trailing(&c->raft, c->opts.snapshot_trailing);
    return 0;
}

/* raft_close and wait for it by running the loop (start path only). */
static void raft_close_sync(struct ldg_cluster *c)
{
    c->raft_closed = false;
    raft_close(&c->raft, start_fail_raft_closed_cb);
    while (!c->raft_closed)
        uv_run(c->loop, UV_RUN_ONCE);
    c->raft_closed = false;
}

static const char *raft_role_name(int role)
{
    return role == RAFT_VOTER ? "voter" : role == RAFT_STANDBY ? "standby" : "spare";
}

/* After a first raft_start on an existing log: decide whether the
 * configuration must be forced (SPEC §3.2 --single on multi-node data, or a
 * sole voter whose address changed). *recover_out says so; *new_id says a
 * new cluster id is needed. */
static int check_recover(struct ldg_cluster *c, bool *recover_out, bool *new_id,
                         struct ldg_err *err)
{
    const struct raft_configuration *conf = &c->raft.configuration;
    const struct raft_server *self = NULL;
    for (unsigned i = 0; i < conf->n; i++)
        if (conf->servers[i].id == c->opts.node_id)
            self = &conf->servers[i];
    *recover_out = false;
    *new_id = false;
    bool sole_voter = conf->n == 1 && self != NULL && self->role == RAFT_VOTER;
    if (sole_voter) {
        if (strcmp(self->address, c->address) != 0) {
            LDG_LOG(LDG_LOG_WARN, "raft",
                    "this node is the sole voter and its address changed from %s to %s: "
                    "rewriting its membership entry",
                    self->address, c->address);
            *recover_out = true;
        }
        return 0;
    }
    if (!c->opts.single)
        return 0;
    if ((self == NULL || self->role != RAFT_VOTER) && !c->opts.force)
        return ldg_err_set(err, LDG_EPRECOND,
                           "--single refused: this node was not a voter in its last "
                           "configuration (%s), so its log may miss committed entries; pick "
                           "a voter (compare --inspect output) or add --force to accept that",
                           self == NULL ? "not a member" : raft_role_name(self->role));
    *recover_out = true;
    *new_id = true;
    return 0;
}

int ldg_cluster_start(uv_loop_t *loop, const struct ldg_cluster_opts *opts,
                      bool bootstrap_single, struct ldg_listener *listener,
                      struct ldg_cluster **out, struct ldg_err *err)
{
    if (opts->node_id == 0 || opts->data_dir == NULL || opts->address == NULL)
        return ldg_err_set(err, LDG_EINVAL, "cluster: node id, data dir and address needed");
    struct ldg_cluster *c = ldg_calloc(1, sizeof *c);
    c->loop = loop;
    c->opts = *opts;
    c->data_dir = ldg_strdup(opts->data_dir);
    c->raft_dir = path_join(opts->data_dir, "raft");
    c->state_dir = path_join(opts->data_dir, "state");
    c->address = ldg_strdup(opts->address);
    c->opts.data_dir = c->data_dir;
    c->opts.address = c->address;
    c->opts.join_cluster_id = NULL;
    c->opts.cluster_secret =
        opts->cluster_secret ? ldg_memdup(opts->cluster_secret, opts->cluster_secret_len) : NULL;
    if (c->opts.batch_size == 0)
        c->opts.batch_size = DEFAULT_BATCH_SIZE;
    if (!(c->opts.batch_delay_s > 0))
        c->opts.batch_delay_s = 0;
    if (c->opts.snapshot_threshold == 0)
        c->opts.snapshot_threshold = DEFAULT_SNAPSHOT_THRESHOLD;
    if (c->opts.snapshot_trailing == 0)
        c->opts.snapshot_trailing = DEFAULT_SNAPSHOT_TRAILING;
    if (c->opts.election_timeout_ms == 0)
        c->opts.election_timeout_ms = DEFAULT_ELECTION_MS;
    if (c->opts.heartbeat_ms == 0)
        c->opts.heartbeat_ms = DEFAULT_HEARTBEAT_MS;
    if (c->opts.max_voters == 0)
        c->opts.max_voters = 3;
    if (c->opts.max_voters > 5)
        c->opts.max_voters = 5;
    ldg_buf_init(&c->scratch);
    atomic_init(&c->snap_busy, false);
    atomic_init(&c->ext_readers, 0);

    int rv = ensure_dir(c->raft_dir, err);
    if (rv == 0)
        rv = ensure_dir(c->state_dir, err);
    if (rv != 0)
        goto err_free;
    rv = ldg_store_open(&c->store, c->state_dir, NULL, err);
    if (rv != 0)
        goto err_free;
    c->store_open = true;
    ldg_ledger_init(&c->ledger, &c->store);

    bool has_log = file_exists(c->raft_dir, "metadata1") || file_exists(c->raft_dir, "metadata2");
    bool bootstrap = bootstrap_single && !has_log;
    rv = bootstrap ? make_identities(c, err) : load_identities(c, err);
    if (rv == 0 && !has_log && !bootstrap && opts->join_cluster_id != NULL) {
        /* SPEC §3.1: persisted before any Raft traffic is accepted. */
        memcpy(c->cluster_id, opts->join_cluster_id, sizeof c->cluster_id);
        rv = save_cluster_id(c, err);
    }
    if (rv != 0)
        goto err_free;

    rv = raft_open(c, listener, err);
    if (rv != 0)
        goto err_free;
    ldg_batcher_init(c);

    if (bootstrap) {
        struct raft_configuration conf;
        raft_configuration_init(&conf);
        rv = raft_configuration_add(&conf, opts->node_id, c->address, RAFT_VOTER);
        if (rv == 0)
            rv = raft_bootstrap(&c->raft, &conf);
        raft_configuration_close(&conf);
        if (rv != 0) {
            ldg_err_set(err, ldg_cluster_from_raft(rv), "raft bootstrap: %s",
                        raft_errmsg(&c->raft));
            rv = ldg_cluster_from_raft(rv);
            goto err_raft;
        }
        char uuid[37];
        ldg_cluster_id_format(c->cluster_id, uuid);
        LDG_LOG(LDG_LOG_INFO, "raft",
                "bootstrapped a new one-node cluster cluster_id=%s log_id=%016" PRIx64, uuid,
                c->log_id);
    }
    if (opts->restored && !has_raft_snapshot(c->raft_dir)) {
        raft_set_snapshot_threshold(&c->raft, 1);
        raft_set_snapshot_trailing(&c->raft, 0);
        c->restore_snap_pending = true;
    }
    rv = raft_start(&c->raft);
    if (rv != 0) {
        ldg_err_set(err, ldg_cluster_from_raft(rv), "raft start: %s", raft_errmsg(&c->raft));
        rv = ldg_cluster_from_raft(rv);
        goto err_raft;
    }
    if (has_log) {
        bool recover = false, new_id = false;
        rv = check_recover(c, &recover, &new_id, err);
        if (rv != 0)
            goto err_raft;
        if (recover) {
            char old_uuid[37];
            ldg_cluster_id_format(c->cluster_id, old_uuid);
            unsigned long long last = (unsigned long long)raft_last_index(&c->raft);
            unsigned long long term = (unsigned long long)c->raft.current_term;
            raft_close_sync(c);
            if (new_id) {
                rv = new_cluster_id(c, err);
                if (rv != 0)
                    goto err_timers;
                char uuid[37];
                ldg_cluster_id_format(c->cluster_id, uuid);
                LDG_LOG(LDG_LOG_WARN, "raft",
                        "FORCING A NEW ONE-NODE CLUSTER from this node's data (--single on a "
                        "multi-node member): old cluster_id=%s last_index=%llu term=%llu -> new "
                        "cluster_id=%s; every entry of the local log becomes committed; nodes "
                        "of the old cluster are refused by this one and must not be restarted "
                        "with their old data (runbook: split-brain warning)",
                        old_uuid, last, term, uuid);
            }
            rv = raft_open(c, listener, err);
            if (rv != 0)
                goto err_timers;
            struct raft_configuration conf;
            raft_configuration_init(&conf);
            rv = raft_configuration_add(&conf, opts->node_id, c->address, RAFT_VOTER);
            if (rv == 0)
                rv = raft_recover(&c->raft, &conf);
            raft_configuration_close(&conf);
            if (rv == 0)
                rv = raft_start(&c->raft);
            if (rv != 0) {
                ldg_err_set(err, ldg_cluster_from_raft(rv), "raft recover: %s",
                            raft_errmsg(&c->raft));
                rv = ldg_cluster_from_raft(rv);
                goto err_raft;
            }
        }
    }
    ldg_membership_init(c);
    {
        char uuid[37];
        ldg_cluster_id_format(c->cluster_id, uuid);
        LDG_LOG(LDG_LOG_INFO, "raft",
                "raft started node_id=%" PRIu64 " address=%s cluster_id=%s last_index=%llu "
                "applied=%llu members=%u",
                opts->node_id, c->address, uuid, (unsigned long long)raft_last_index(&c->raft),
                (unsigned long long)raft_last_applied(&c->raft), c->raft.configuration.n);
    }
    *out = c;
    return 0;

err_raft:
    /* raft_close is asynchronous: run the loop until it is done so that
     * nothing of ours is left on it. */
    raft_close_sync(c);
err_timers:
    c->closing_handles += 2;
    uv_close((uv_handle_t *)&c->batch_timer, start_fail_timer_closed_cb);
    uv_close((uv_handle_t *)&c->deliver_timer, start_fail_timer_closed_cb);
    while (c->closing_handles > 0)
        uv_run(loop, UV_RUN_ONCE);
err_free:
    cluster_free(c);
    return rv;
}

/* ---- stop ---- */

void ldg_cluster_maybe_finish(struct ldg_cluster *c)
{
    if (!c->stopping || !c->raft_closed || c->closing_handles > 0 || c->holds > 0 ||
        c->close_cb == NULL)
        return;
    ldg_cluster_close_cb cb = c->close_cb;
    void *arg = c->close_arg;
    c->close_cb = NULL;
    LDG_LOG(LDG_LOG_INFO, "raft", "cluster stopped");
    cluster_free(c);
    cb(arg);
}

static void stop_timer_closed_cb(uv_handle_t *h)
{
    struct ldg_cluster *c = h->data;
    c->closing_handles--;
    ldg_cluster_maybe_finish(c);
}

static void stop_raft_closed_cb(struct raft *r)
{
    struct ldg_cluster *c = r->data;
    raft_uv_close(&c->io);
    ldg_transport_free(&c->transport);
    ldg_batcher_free_leftovers(c);
    if (c->snap_txn != NULL) {
        ldg_store_txn_abort(c->snap_txn);
        c->snap_txn = NULL;
    }
    c->raft_closed = true;
    ldg_cluster_maybe_finish(c);
}

static void barrier_cancel_all(struct ldg_cluster *c);

static void stop_close_raft(struct ldg_cluster *c)
{
    raft_close(&c->raft, stop_raft_closed_cb);
}

static void stop_transfer_cb(struct raft_transfer *req)
{
    struct ldg_cluster *c = req->data;
    ldg_free(req);
    stop_close_raft(c);
}

void ldg_cluster_stop(struct ldg_cluster *c, ldg_cluster_close_cb cb, void *arg)
{
    if (c->stopping)
        return;
    c->stopping = true;
    c->close_cb = cb;
    c->close_arg = arg;
    ldg_batcher_cancel_all(c, LDG_ECANCELED);
    barrier_cancel_all(c);
    ldg_membership_stop(c);
    c->closing_handles += 2;
    uv_close((uv_handle_t *)&c->batch_timer, stop_timer_closed_cb);
    uv_close((uv_handle_t *)&c->deliver_timer, stop_timer_closed_cb);

    struct ldg_cluster_status st;
    ldg_cluster_get_status(c, &st);
    if (st.is_leader && st.voters > 1) {
        struct raft_transfer *t = ldg_calloc(1, sizeof *t);
        t->data = c;
        if (raft_transfer(&c->raft, t, 0, stop_transfer_cb) == 0) {
            LDG_LOG(LDG_LOG_INFO, "raft", "stopping: transferring leadership");
            return;
        }
        ldg_free(t);
    }
    stop_close_raft(c);
}

void ldg_cluster_hold(struct ldg_cluster *c)
{
    c->holds++;
    atomic_fetch_add(&c->ext_readers, 1);
}

void ldg_cluster_reader_done(struct ldg_cluster *c)
{
    atomic_fetch_sub(&c->ext_readers, 1);
}

void ldg_cluster_release(struct ldg_cluster *c)
{
    c->holds--;
    ldg_cluster_maybe_finish(c);
}

void ldg_cluster_listener_closing(struct ldg_cluster *c)
{
    ldg_transport_detach_listener(&c->transport);
}

/* ---- writes, reads ---- */

int ldg_cluster_submit(struct ldg_cluster *c, const struct ldg_cmd *cmd, uint64_t timeout_ms,
                       ldg_cluster_submit_cb cb, void *arg)
{
    return ldg_batcher_submit(c, cmd, timeout_ms, cb, arg);
}

struct ldg_ledger *ldg_cluster_ledger(struct ldg_cluster *c)
{
    return &c->ledger;
}

/* ---- barrier ---- */

static void waiter_closed_cb(uv_handle_t *h)
{
    struct barrier_waiter *w = h->data;
    struct ldg_cluster *c = w->c;
    ldg_free(w);
    c->closing_handles--;
    ldg_cluster_maybe_finish(c);
}

static void waiter_free(struct barrier_waiter *w)
{
    if (w->has_timer) {
        w->c->closing_handles++;
        uv_close((uv_handle_t *)&w->timer, waiter_closed_cb);
        return;
    }
    ldg_free(w);
}

static void waiter_finish(struct barrier_waiter *w, int status)
{
    if (w->finished)
        return;
    w->finished = true;
    if (w->has_timer)
        uv_timer_stop(&w->timer);
    w->cb(w->arg, status);
}

static void waiter_timeout_cb(uv_timer_t *t)
{
    waiter_finish(t->data, LDG_ETIMEDOUT);
}

static void barrier_start_next(struct ldg_cluster *c);

static void barrier_done_cb(struct raft_barrier *req, int status)
{
    struct barrier_group *g = req->data;
    struct ldg_cluster *c = g->c;
    c->barrier_running = NULL;
    int st = 0;
    if (c->stopping)
        st = LDG_ECANCELED;
    else if (status != 0)
        st = ldg_cluster_from_raft(status) == LDG_ECANCELED ? LDG_ECANCELED : LDG_ENOTLEADER;
    struct barrier_waiter *w = g->waiters;
    while (w != NULL) {
        struct barrier_waiter *next = w->next;
        waiter_finish(w, st);
        waiter_free(w);
        w = next;
    }
    ldg_free(g);
    if (!c->stopping)
        barrier_start_next(c);
}

/* Start one barrier for every read waiting now. */
static void barrier_start_next(struct ldg_cluster *c)
{
    if (c->barrier_running != NULL || c->barrier_next == NULL)
        return;
    struct barrier_group *g = ldg_calloc(1, sizeof *g);
    g->c = c;
    g->waiters = c->barrier_next;
    c->barrier_next = NULL;
    g->req.data = g;
    int rv = raft_barrier(&c->raft, &g->req, barrier_done_cb);
    if (rv != 0) {
        struct barrier_waiter *w = g->waiters;
        while (w != NULL) {
            struct barrier_waiter *next = w->next;
            waiter_finish(w, LDG_ENOTLEADER);
            waiter_free(w);
            w = next;
        }
        ldg_free(g);
        return;
    }
    c->barrier_running = g;
}

static void barrier_cancel_all(struct ldg_cluster *c)
{
    struct barrier_waiter *w = c->barrier_next;
    c->barrier_next = NULL;
    while (w != NULL) {
        struct barrier_waiter *next = w->next;
        waiter_finish(w, LDG_ECANCELED);
        waiter_free(w);
        w = next;
    }
    if (c->barrier_running != NULL)
        for (w = c->barrier_running->waiters; w != NULL; w = w->next)
            waiter_finish(w, LDG_ECANCELED);
}

int ldg_cluster_barrier(struct ldg_cluster *c, uint64_t timeout_ms, ldg_cluster_barrier_cb cb,
                        void *arg)
{
    if (c->stopping)
        return LDG_ECANCELED;
    if (raft_state(&c->raft) != RAFT_LEADER)
        return LDG_ENOTLEADER;
    struct barrier_waiter *w = ldg_calloc(1, sizeof *w);
    w->c = c;
    w->cb = cb;
    w->arg = arg;
    if (c->barrier_running != NULL) {
        /* Reads arriving while a barrier runs wait for the next one: the
         * running barrier may sit before a write they must see. */
        w->next = c->barrier_next;
        c->barrier_next = w;
    } else {
        struct barrier_group *g = ldg_calloc(1, sizeof *g);
        g->c = c;
        g->waiters = w;
        g->req.data = g;
        if (raft_barrier(&c->raft, &g->req, barrier_done_cb) != 0) {
            ldg_free(g);
            ldg_free(w);
            return LDG_ENOTLEADER;
        }
        c->barrier_running = g;
    }
    if (timeout_ms > 0) {
        uv_timer_init(c->loop, &w->timer);
        w->timer.data = w;
        w->has_timer = true;
        uv_timer_start(&w->timer, waiter_timeout_cb, timeout_ms, 0);
    }
    return 0;
}

/* ---- watch ---- */

int ldg_cluster_watch(struct ldg_cluster *c, ldg_cluster_block_fn fn, void *arg,
                      struct ldg_cluster_watch **out)
{
    struct ldg_cluster_watch *w = ldg_calloc(1, sizeof *w);
    w->fn = fn;
    w->arg = arg;
    w->next = c->watches;
    if (c->watches)
        c->watches->prev = w;
    c->watches = w;
    *out = w;
    return 0;
}

void ldg_cluster_unwatch(struct ldg_cluster *c, struct ldg_cluster_watch *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        c->watches = w->next;
    if (w->next)
        w->next->prev = w->prev;
    ldg_free(w);
}

/* ---- status ---- */

void ldg_cluster_get_status(struct ldg_cluster *c, struct ldg_cluster_status *out)
{
    memset(out, 0, sizeof *out);
    struct raft *r = &c->raft;
    out->role = raft_state(r);
    out->is_leader = out->role == RAFT_LEADER;
    raft_id id = 0;
    const char *addr = NULL;
    raft_leader(r, &id, &addr);
    out->leader_id = id;
    out->leader_address = addr;
    out->term = r->current_term;
    out->commit_index = r->commit_index;
    out->applied_index = raft_last_applied(r);
    out->last_index = raft_last_index(r);
    for (unsigned i = 0; i < r->configuration.n; i++) {
        if (r->configuration.servers[i].role != RAFT_VOTER)
            continue;
        out->voters++;
        if (r->configuration.servers[i].id == c->opts.node_id)
            out->is_voter = true;
    }
    out->log_id = c->log_id;
    memcpy(out->cluster_id, c->cluster_id, sizeof out->cluster_id);
    out->members = r->configuration.n;
    for (unsigned i = 0; i < r->configuration.n; i++)
        if (r->configuration.servers[i].id == c->opts.node_id)
            out->is_member = !c->removed;
    out->elections = c->elections;
}

/* ---- inspection ---- */

int ldg_cluster_inspect(const char *data_dir, FILE *out, struct ldg_err *err)
{
    char *raft_dir = path_join(data_dir, "raft");
    char *state_dir = path_join(data_dir, "state");
    char line[128];
    int rv = read_line(raft_dir, "log_id", line, sizeof line, NULL);
    fprintf(out, "raft_log_id: %s\n", rv == 0 ? line : "none");
    int snaps = 0;
    DIR *d = opendir(raft_dir);
    if (d != NULL) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL)
            if (strncmp(de->d_name, "snapshot-", 9) == 0 && strstr(de->d_name, ".meta") == NULL)
                snaps++;
        closedir(d);
    }
    fprintf(out, "raft_snapshots: %d\n", snaps);
    rv = 0;
    if (file_exists(state_dir, "data.mdb")) {
        struct ldg_store st;
        struct ldg_store_opts so = {.read_only = true};
        rv = ldg_store_open(&st, state_dir, &so, err);
        if (rv == 0) {
            struct ldg_ledger l;
            ldg_ledger_init(&l, &st);
            MDB_txn *txn;
            struct ldg_applied ap;
            rv = ldg_store_txn_begin(&st, true, &txn);
            if (rv == 0) {
                rv = ldg_ledger_applied(&l, txn, &ap);
                ldg_store_txn_abort(txn);
            }
            if (rv == 0)
                fprintf(out, "applied: log_id=%016" PRIx64 " index=%" PRIu64 " term=%" PRIu64 "\n",
                        ap.log_id, ap.index, ap.term);
            else
                ldg_err_set(err, rv, "read applied position in %s: %s", state_dir,
                            ldg_strerror(rv));
            ldg_store_close(&st);
        }
    } else {
        fprintf(out, "applied: none\n");
    }
    ldg_free(raft_dir);
    ldg_free(state_dir);
    return rv;
}
