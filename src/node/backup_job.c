/* Asynchronous backup creation and periodic backups (see backup.h,
 * docs/backups.md §3, §5). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>
#include <openssl/rand.h>

#include "cluster/cluster.h"
#include "ledger/ledger.h"
#include "node/backup.h"
#include "node/datadir.h"
#include "store/store.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/metrics.h"

static bool g_running; /* loop thread only */

static struct ldg_metric_family *m_total, *m_last;

static void metrics_init(void)
{
    static const char *const lbl[] = {"result"};
    if (m_total == NULL)
        m_total = ldg_metrics_counter("ledger_backups_total",
                                      "Backups attempted, by result (ok, error, busy)", 1, lbl);
    if (m_last == NULL)
        m_last = ldg_metrics_gauge("ledger_last_backup_timestamp_seconds",
                                   "Unix time of the last successful backup", 0, NULL);
}

static void count(const char *result)
{
    metrics_init();
    ldg_metrics_inc(m_total, (const char *const[]){result}, 1);
}

bool ldg_backup_running(void)
{
    return g_running;
}

struct job {
    uv_work_t req;
    struct ldg_cluster *cluster; /* held (ldg_cluster_hold) until after_cb */
    MDB_env *env;
    char *backup_dir;
    char tmp[4096];
    char final[4096];
    char archive[4096];
    struct ldg_backup_manifest m;
    int status;
    struct ldg_err err;
    char checksum[LDG_HASH_HEX_LEN + 1];
    uint64_t size;
    ldg_backup_done_cb cb;
    void *arg;
};

static int mkdir_p(const char *path)
{
    char p[4096];
    snprintf(p, sizeof p, "%s", path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0700) != 0 && errno != EEXIST)
            return ldg_err_from_errno(errno);
        *s = '/';
    }
    if (mkdir(p, 0700) != 0 && errno != EEXIST)
        return ldg_err_from_errno(errno);
    return 0;
}

static void fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

static int write_durable(const char *path, const void *p, size_t n, struct ldg_err *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return ldg_err_set(err, ldg_err_from_errno(errno), "%s: %s", path, strerror(errno));
    const uint8_t *q = p;
    while (n > 0) {
        ssize_t w = write(fd, q, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close(fd);
            return ldg_err_set(err, ldg_err_from_errno(e), "%s: %s", path, strerror(e));
        }
        q += w;
        n -= (size_t)w;
    }
    int rv = 0;
    if (fsync(fd) != 0)
        rv = ldg_err_set(err, LDG_EIO, "fsync %s: %s", path, strerror(errno));
    close(fd);
    return rv;
}

static int copy_file(const char *from, const char *to, struct ldg_err *err)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return ldg_err_set(err, ldg_err_from_errno(errno), "%s: %s", from, strerror(errno));
    int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) {
        int e = errno;
        close(in);
        return ldg_err_set(err, ldg_err_from_errno(e), "%s: %s", to, strerror(e));
    }
    uint8_t *buf = ldg_malloc(1 << 20);
    int rv = 0;
    ssize_t got;
    while ((got = read(in, buf, 1 << 20)) > 0) {
        if (write(out, buf, (size_t)got) != got) {
            rv = ldg_err_set(err, LDG_EIO, "%s: %s", to, strerror(errno));
            break;
        }
    }
    if (got < 0 && rv == 0)
        rv = ldg_err_set(err, LDG_EIO, "%s: %s", from, strerror(errno));
    if (rv == 0 && fsync(out) != 0)
        rv = ldg_err_set(err, LDG_EIO, "fsync %s: %s", to, strerror(errno));
    ldg_free(buf);
    close(in);
    close(out);
    return rv;
}

/* latest/<name> := |src| (hard link or copy to a temp name, then rename). */
static int replace_latest(const char *backup_dir, const char *src, const char *name,
                          struct ldg_err *err)
{
    char dir[4096], tmp[4096], dst[4096];
    snprintf(dir, sizeof dir, "%s/%s", backup_dir, LDG_BACKUP_LATEST);
    int rv = mkdir_p(dir);
    if (rv != 0)
        return ldg_err_set(err, rv, "%s: %s", dir, strerror(errno));
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name);
    snprintf(dst, sizeof dst, "%s/%s", dir, name);
    unlink(tmp);
    if (link(src, tmp) != 0) {
        rv = copy_file(src, tmp, err);
        if (rv != 0) {
            unlink(tmp);
            return rv;
        }
    }
    if (rename(tmp, dst) != 0) {
        rv = ldg_err_set(err, ldg_err_from_errno(errno), "rename %s: %s", tmp, strerror(errno));
        unlink(tmp);
        return rv;
    }
    fsync_dir(dir);
    return 0;
}

/* Read the applied position and every chain row of the copied state. */
static int describe_copy(struct job *j, const char *state_dir)
{
    struct ldg_store s;
    memset(&s, 0, sizeof s);
    int rv = ldg_store_open(&s, state_dir, NULL, &j->err);
    if (rv != 0)
        return ldg_err_wrap(&j->err, "open the copied state");
    struct ldg_ledger l;
    ldg_ledger_init(&l, &s);
    MDB_txn *txn = NULL;
    rv = ldg_store_txn_begin(&s, true, &txn);
    if (rv != 0) {
        ldg_err_set(&j->err, rv, "read the copied state: %s", ldg_strerror(rv));
        goto out;
    }
    struct ldg_applied ap;
    rv = ldg_ledger_applied(&l, txn, &ap);
    if (rv == 0) {
        j->m.log_id = ap.log_id;
        j->m.applied_index = ap.index;
        j->m.applied_term = ap.term;
    } else if (rv != LDG_ENOTFOUND) {
        ldg_err_set(&j->err, rv, "applied position: %s", ldg_strerror(rv));
        goto out;
    }
    struct ldg_store_iter it;
    rv = ldg_store_iter_init(&it, &s, txn, LDG_T_CHAINS, NULL, 0, NULL, 0);
    if (rv != 0) {
        ldg_err_set(&j->err, rv, "list chains: %s", ldg_strerror(rv));
        goto out;
    }
    while ((rv = ldg_store_iter_next(&it)) == 1) {
        if (it.key.mv_size != 16)
            continue;
        uint64_t org = ldg_get_u64be(it.key.mv_data);
        uint64_t vault = ldg_get_u64be((const uint8_t *)it.key.mv_data + 8);
        struct ldg_chain_info ci;
        int gr = ldg_ledger_get_chain(&l, txn, org, vault, &ci);
        if (gr != 0)
            continue;
        j->m.vaults = ldg_realloc(j->m.vaults, (j->m.nvaults + 1) * sizeof *j->m.vaults);
        struct ldg_backup_vault *v = &j->m.vaults[j->m.nvaults++];
        v->org = org;
        v->vault = vault;
        v->height = ci.height;
        v->status = ci.status;
        memcpy(v->tip_hash, ci.tip_hash, LDG_HASH_LEN);
        memcpy(v->state_root, ci.state_root, LDG_HASH_LEN);
    }
    ldg_store_iter_close(&it);
    if (rv < 0)
        ldg_err_set(&j->err, rv, "list chains: %s", ldg_strerror(rv));
    else
        rv = 0;
out:
    ldg_store_txn_abort(txn);
    ldg_store_close(&s);
    return rv;
}

static int run_backup(struct job *j)
{
    char state[4096], p[4096];
    int rv = mkdir_p(j->backup_dir);
    if (rv != 0)
        return ldg_err_set(&j->err, rv, "BACKUP_DIR %s: %s", j->backup_dir, strerror(errno));
    snprintf(j->tmp, sizeof j->tmp, "%s/.tmp-%s", j->backup_dir, j->m.backup_id);
    snprintf(state, sizeof state, "%s/state", j->tmp);
    if (mkdir_p(state) != 0)
        return ldg_err_set(&j->err, ldg_err_from_errno(errno), "%s: %s", state,
                           strerror(errno));
    int mrc = mdb_env_copy2(j->env, state, MDB_CP_COMPACT);
    ldg_cluster_reader_done(j->cluster);
    j->env = NULL;
    if (mrc != 0)
        return ldg_err_set(&j->err, ldg_err_from_mdb(mrc), "copy the LMDB environment: %s",
                           mdb_strerror(mrc));
    rv = describe_copy(j, state);
    if (rv != 0)
        return rv;
    snprintf(p, sizeof p, "%s/lock.mdb", state);
    unlink(p);
    snprintf(p, sizeof p, "%s/data.mdb", state);
    struct ldg_backup_file *f = &j->m.files[0];
    snprintf(f->path, sizeof f->path, "state/data.mdb");
    rv = ldg_backup_file_sha256(p, f->sha256, &f->size, &j->err);
    if (rv != 0)
        return rv;
    j->m.nfiles = 1;

    struct ldg_buf json;
    ldg_buf_init(&json);
    ldg_backup_manifest_encode(&j->m, &json);
    snprintf(p, sizeof p, "%s/%s", j->tmp, LDG_BACKUP_MANIFEST);
    rv = write_durable(p, json.data, json.len, &j->err);
    ldg_buf_close(&json);
    if (rv != 0)
        return rv;
    snprintf(p, sizeof p, "%s/%s", j->tmp, LDG_BACKUP_ARCHIVE);
    rv = ldg_backup_archive_write(p, j->tmp, &j->err);
    if (rv != 0)
        return rv;
    ldg_rmtree(state);
    fsync_dir(j->tmp);
    snprintf(j->final, sizeof j->final, "%s/%s", j->backup_dir, j->m.backup_id);
    if (rename(j->tmp, j->final) != 0)
        return ldg_err_set(&j->err, ldg_err_from_errno(errno), "rename %s: %s", j->tmp,
                           strerror(errno));
    j->tmp[0] = '\0';
    fsync_dir(j->backup_dir);
    snprintf(j->archive, sizeof j->archive, "%s/%s", j->final, LDG_BACKUP_ARCHIVE);
    rv = ldg_backup_file_sha256(j->archive, j->checksum, &j->size, &j->err);
    if (rv != 0)
        return rv;
    /* latest/: the manifest first, then the archive (what the runbook syncs). */
    snprintf(p, sizeof p, "%s/%s", j->final, LDG_BACKUP_MANIFEST);
    rv = replace_latest(j->backup_dir, p, LDG_BACKUP_MANIFEST, &j->err);
    if (rv == 0)
        rv = replace_latest(j->backup_dir, j->archive, LDG_BACKUP_ARCHIVE, &j->err);
    return rv;
}

static void work_cb(uv_work_t *req)
{
    struct job *j = LDG_CONTAINER_OF(req, struct job, req);
    j->status = run_backup(j);
    if (j->env != NULL) /* failed before the copy */
        ldg_cluster_reader_done(j->cluster);
    if (j->status != 0 && j->tmp[0] != '\0')
        ldg_rmtree(j->tmp);
}

static void after_cb(uv_work_t *req, int status)
{
    struct job *j = LDG_CONTAINER_OF(req, struct job, req);
    g_running = false;
    ldg_cluster_release(j->cluster);
    if (status != 0 && j->status == 0)
        j->status = ldg_err_set(&j->err, LDG_ECANCELED, "backup canceled");
    if (j->status == 0) {
        count("ok");
        ldg_metrics_set(m_last, NULL, (double)j->m.created_at);
        LDG_LOG(LDG_LOG_INFO, "backup",
                "backup %s created path=%s size=%" PRIu64 " applied_index=%" PRIu64
                " vaults=%zu sha256=%s",
                j->m.backup_id, j->archive, j->size, j->m.applied_index, j->m.nvaults,
                j->checksum);
        struct ldg_backup_result r = {.m = j->m, .archive_path = j->archive,
                                      .size_bytes = j->size};
        memcpy(r.checksum, j->checksum, sizeof r.checksum);
        j->cb(j->arg, 0, &r, "");
    } else {
        count("error");
        LDG_LOG(LDG_LOG_ERROR, "backup", "backup %s failed: %s", j->m.backup_id, j->err.msg);
        j->cb(j->arg, j->status, NULL, j->err.msg);
    }
    ldg_backup_manifest_free(&j->m);
    ldg_free(j->backup_dir);
    ldg_free(j);
}

int ldg_backup_start(uv_loop_t *loop, struct ldg_cluster *cluster, const char *backup_dir,
                     uint64_t node_id, const char *tag, ldg_backup_done_cb cb, void *arg)
{
    metrics_init();
    if (cluster == NULL || backup_dir == NULL)
        return LDG_EINVAL;
    if (g_running) {
        count("busy");
        return LDG_EBUSY;
    }
    struct job *j = ldg_calloc(1, sizeof *j);
    j->cluster = cluster;
    j->env = ldg_cluster_ledger(cluster)->store->env;
    j->backup_dir = ldg_strdup(backup_dir);
    j->cb = cb;
    j->arg = arg;
    struct ldg_backup_manifest *m = &j->m;
    m->format = LDG_BACKUP_FORMAT;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    m->created_at = (int64_t)now.tv_sec;
    uint8_t rnd[4] = {0};
    (void)RAND_bytes(rnd, sizeof rnd);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    char ts[32];
    strftime(ts, sizeof ts, "%Y%m%dT%H%M%S", &tm);
    /* Fixed width, so ids sort by creation time (ListBackups, pruning). */
    snprintf(m->backup_id, sizeof m->backup_id, "%s.%03ldZ-%02x%02x%02x%02x", ts,
             now.tv_nsec / 1000000, rnd[0], rnd[1], rnd[2], rnd[3]);
    m->tag = ldg_strdup(tag ? tag : "");
    snprintf(m->tool_version, sizeof m->tool_version, "%s", LDG_VERSION);
    m->source_node_id = node_id;
    struct ldg_cluster_status st;
    ldg_cluster_get_status(cluster, &st);
    ldg_cluster_id_format(st.cluster_id, m->source_cluster_id);
    ldg_cluster_hold(cluster);
    int rv = uv_queue_work(loop, &j->req, work_cb, after_cb);
    if (rv != 0) {
        ldg_cluster_reader_done(cluster);
        ldg_cluster_release(cluster);
        ldg_backup_manifest_free(&j->m);
        ldg_free(j->backup_dir);
        ldg_free(j);
        count("error");
        return ldg_err_from_uv(rv);
    }
    g_running = true;
    LDG_LOG(LDG_LOG_INFO, "backup", "backup %s started dir=%s tag=%s", m->backup_id, backup_dir,
            m->tag);
    return 0;
}

/* ---- periodic ---- */

static void periodic_done(void *arg, int status, const struct ldg_backup_result *r,
                          const char *msg)
{
    struct ldg_backup_sched *s = arg;
    (void)r;
    (void)msg;
    if (status == 0 && s->init)
        ldg_backup_prune(s->backup_dir, s->keep);
}

static void sched_tick(uv_timer_t *t)
{
    struct ldg_backup_sched *s = t->data;
    struct ldg_cluster *c = *s->cluster;
    if (c == NULL || g_running)
        return;
    struct ldg_cluster_status st;
    ldg_cluster_get_status(c, &st);
    if (!st.is_leader)
        return;
    (void)ldg_backup_start(t->loop, c, s->backup_dir, s->node_id, "periodic", periodic_done, s);
}

void ldg_backup_sched_start(struct ldg_backup_sched *s, uv_loop_t *loop,
                            const struct ldg_config *cfg, const char *data_dir,
                            uint64_t node_id, struct ldg_cluster *const *cluster)
{
    memset(s, 0, sizeof *s);
    metrics_init();
    if (!(cfg->backup_interval_s > 0))
        return;
    s->cluster = cluster;
    s->backup_dir = ldg_backup_dir(cfg, data_dir);
    s->node_id = node_id;
    s->keep = cfg->backup_keep;
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    s->init = true;
    uint64_t ms = (uint64_t)(cfg->backup_interval_s * 1000);
    if (ms == 0)
        ms = 1;
    uv_timer_start(&s->timer, sched_tick, ms, ms);
    LDG_LOG(LDG_LOG_INFO, "backup", "periodic backups every %.3g s into %s keeping %u",
            cfg->backup_interval_s, s->backup_dir, (unsigned)s->keep);
}

static void sched_closed(uv_handle_t *h)
{
    struct ldg_backup_sched *s = h->data;
    ldg_free(s->backup_dir);
    s->backup_dir = NULL;
}

void ldg_backup_sched_stop(struct ldg_backup_sched *s)
{
    if (!s->init)
        return;
    s->init = false;
    if (!uv_is_closing((uv_handle_t *)&s->timer))
        uv_close((uv_handle_t *)&s->timer, sched_closed);
}
