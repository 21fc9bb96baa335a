/* LMDB environment and table helpers (docs/storage.md). */
#include "store/store.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "util/log.h"
#include "util/mem.h"

#define DEFAULT_MAP_SIZE ((size_t)1 << 30)
#define DEFAULT_MAX_MAP_SIZE ((size_t)1 << 40)
#define MAX_DBS 32

static const char *const table_names[LDG_T_ALL] = {
    [LDG_T_META] = "meta",
    [LDG_T_ORGS] = "orgs",
    [LDG_T_CHAINS] = "chains",
    [LDG_T_VAULT_SLUGS] = "vault_slugs",
    [LDG_T_ENTITIES] = "entities",
    [LDG_T_RELS] = "rels",
    [LDG_T_RELS_BY_SUBJECT] = "rels_by_subject",
    [LDG_T_HISTORY] = "history",
    [LDG_T_BLOCKS] = "blocks",
    [LDG_T_SLOT_LEAVES] = "slot_leaves",
    [LDG_T_TREE] = "tree",
    [LDG_T_CLIENTS] = "clients",
    [LDG_T_IDEM] = "idem",
    [LDG_T_IDEM_BY_TIME] = "idem_by_time",
    [LDG_T_LOCAL_HEALTH] = "local_health",
};

const char *ldg_store_table_name(enum ldg_table t)
{
    if ((int)t < 0 || t >= LDG_T_ALL)
        return "?";
    return table_names[t];
}

/* Translate an LMDB code, remembering MAP_FULL for ldg_store_write. */
static int from_mdb(struct ldg_store *s, int rc)
{
    if (rc == MDB_MAP_FULL && s != NULL)
        s->map_full = true;
    return ldg_err_from_mdb(rc);
}

int ldg_store_open(struct ldg_store *s, const char *path,
                   const struct ldg_store_opts *opts, struct ldg_err *err)
{
    memset(s, 0, sizeof *s);
    s->map_size = opts && opts->map_size ? opts->map_size : DEFAULT_MAP_SIZE;
    s->max_map_size = opts && opts->max_map_size ? opts->max_map_size : DEFAULT_MAX_MAP_SIZE;
    if (s->max_map_size < s->map_size)
        s->max_map_size = s->map_size;
    bool ro = opts && opts->read_only;
    int rv;
    int rc;

    if (!ro && mkdir(path, 0700) != 0 && errno != EEXIST) {
        rv = ldg_err_set(err, ldg_err_from_errno(errno), "open store %s: mkdir: %s", path,
                         strerror(errno));
        goto err;
    }
    rc = mdb_env_create(&s->env);
    if (rc != 0)
        goto err_mdb;
    rc = mdb_env_set_maxdbs(s->env, MAX_DBS);
    if (rc != 0)
        goto err_mdb_env;
    /* Never shrink below what the file already holds: set, open, then read back. */
    rc = mdb_env_set_mapsize(s->env, s->map_size);
    if (rc != 0)
        goto err_mdb_env;
    rc = mdb_env_open(s->env, path, MDB_NOTLS | (ro ? MDB_RDONLY : 0), 0600);
    if (rc != 0)
        goto err_mdb_env;
    MDB_envinfo info;
    rc = mdb_env_info(s->env, &info);
    if (rc != 0)
        goto err_mdb_env;
    if (info.me_mapsize > s->map_size)
        s->map_size = info.me_mapsize;
    if (s->max_map_size < s->map_size)
        s->max_map_size = s->map_size;

    MDB_txn *txn;
    rc = mdb_txn_begin(s->env, NULL, ro ? MDB_RDONLY : 0, &txn);
    if (rc != 0)
        goto err_mdb_env;
    for (int t = 0; t < LDG_T_ALL; t++) {
        rc = mdb_dbi_open(txn, table_names[t], ro ? 0 : MDB_CREATE, &s->dbi[t]);
        if (rc == MDB_NOTFOUND && ro && t >= LDG_T_COUNT) {
            /* A store written before node-local tables existed: nothing to read. */
            s->local_missing = true;
            continue;
        }
        if (rc != 0) {
            mdb_txn_abort(txn);
            goto err_mdb_env;
        }
    }
    rc = mdb_txn_commit(txn);
    if (rc != 0)
        goto err_mdb_env;
    s->path = ldg_strdup(path);
    return 0;

err_mdb_env:
    mdb_env_close(s->env);
    s->env = NULL;
err_mdb:
    rv = ldg_err_set(err, ldg_err_from_mdb(rc), "open store %s: %s", path, mdb_strerror(rc));
err:
    return rv;
}

void ldg_store_close(struct ldg_store *s)
{
    if (s->env != NULL)
        mdb_env_close(s->env);
    ldg_free(s->path);
    memset(s, 0, sizeof *s);
}

int ldg_store_txn_begin(struct ldg_store *s, bool readonly, MDB_txn **txn)
{
    if (!readonly)
        s->map_full = false;
    int rc = mdb_txn_begin(s->env, NULL, readonly ? MDB_RDONLY : 0, txn);
    if (rc == MDB_MAP_RESIZED) {
        /* Another process grew the map: adopt its size and retry. */
        rc = mdb_env_set_mapsize(s->env, 0);
        if (rc == 0)
            rc = mdb_txn_begin(s->env, NULL, readonly ? MDB_RDONLY : 0, txn);
    }
    return from_mdb(s, rc);
}

int ldg_store_txn_child(struct ldg_store *s, MDB_txn *parent, MDB_txn **txn)
{
    return from_mdb(s, mdb_txn_begin(s->env, parent, 0, txn));
}

int ldg_store_txn_commit(MDB_txn *txn)
{
    return ldg_err_from_mdb(mdb_txn_commit(txn));
}

void ldg_store_txn_abort(MDB_txn *txn)
{
    if (txn != NULL)
        mdb_txn_abort(txn);
}

int ldg_store_grow(struct ldg_store *s)
{
    if (s->map_size >= s->max_map_size)
        return LDG_EFULL;
    size_t next = s->map_size * 2;
    if (next > s->max_map_size || next < s->map_size)
        next = s->max_map_size;
    int rc = mdb_env_set_mapsize(s->env, next);
    if (rc != 0)
        return ldg_err_from_mdb(rc);
    LDG_LOG(LDG_LOG_INFO, "store", "map grown path=%s from=%zu to=%zu", s->path, s->map_size,
            next);
    s->map_size = next;
    return 0;
}

int ldg_store_write(struct ldg_store *s, ldg_store_write_fn fn, void *arg)
{
    for (;;) {
        MDB_txn *txn;
        int rv = ldg_store_txn_begin(s, false, &txn);
        if (rv != 0)
            return rv;
        rv = fn(txn, arg);
        if (rv == 0) {
            int rc = mdb_txn_commit(txn);
            if (rc == 0)
                return 0;
            rv = from_mdb(s, rc);
        } else {
            mdb_txn_abort(txn);
        }
        if (!s->map_full)
            return rv;
        int grv = ldg_store_grow(s);
        if (grv != 0)
            return grv;
    }
}

int ldg_store_get(struct ldg_store *s, MDB_txn *txn, enum ldg_table t,
                  const void *key, size_t klen, MDB_val *val)
{
    MDB_val k = {.mv_size = klen, .mv_data = (void *)key};
    return from_mdb(s, mdb_get(txn, s->dbi[t], &k, val));
}

int ldg_store_put(struct ldg_store *s, MDB_txn *txn, enum ldg_table t,
                  const void *key, size_t klen, const void *val, size_t vlen)
{
    MDB_val k = {.mv_size = klen, .mv_data = (void *)key};
    MDB_val v = {.mv_size = vlen, .mv_data = (void *)val};
    return from_mdb(s, mdb_put(txn, s->dbi[t], &k, &v, 0));
}

int ldg_store_reserve(struct ldg_store *s, MDB_txn *txn, enum ldg_table t,
                      const void *key, size_t klen, size_t vlen, void **out)
{
    MDB_val k = {.mv_size = klen, .mv_data = (void *)key};
    MDB_val v = {.mv_size = vlen, .mv_data = NULL};
    int rc = mdb_put(txn, s->dbi[t], &k, &v, MDB_RESERVE);
    if (rc != 0)
        return from_mdb(s, rc);
    *out = v.mv_data;
    return 0;
}

int ldg_store_del(struct ldg_store *s, MDB_txn *txn, enum ldg_table t,
                  const void *key, size_t klen)
{
    MDB_val k = {.mv_size = klen, .mv_data = (void *)key};
    return from_mdb(s, mdb_del(txn, s->dbi[t], &k, NULL));
}

int ldg_store_iter_init(struct ldg_store_iter *it, struct ldg_store *s, MDB_txn *txn,
                        enum ldg_table t, const void *prefix, size_t plen,
                        const void *start, size_t slen)
{
    memset(it, 0, sizeof *it);
    it->prefix = prefix;
    it->plen = plen;
    it->start = start;
    it->slen = slen;
    return from_mdb(s, mdb_cursor_open(txn, s->dbi[t], &it->cur));
}

static bool has_prefix(const MDB_val *k, const uint8_t *p, size_t plen)
{
    return k->mv_size >= plen && (plen == 0 || memcmp(k->mv_data, p, plen) == 0);
}

int ldg_store_iter_next(struct ldg_store_iter *it)
{
    int rc;
    if (!it->started) {
        it->started = true;
        const uint8_t *from = it->prefix;
        size_t flen = it->plen;
        /* Start at max(prefix, start). */
        if (it->start != NULL) {
            size_t m = flen < it->slen ? flen : it->slen;
            int c = m ? memcmp(it->start, from, m) : 0;
            if (c > 0 || (c == 0 && it->slen >= flen)) {
                from = it->start;
                flen = it->slen;
            }
        }
        it->key.mv_data = (void *)from;
        it->key.mv_size = flen;
        if (flen == 0)
            rc = mdb_cursor_get(it->cur, &it->key, &it->val, MDB_FIRST);
        else
            rc = mdb_cursor_get(it->cur, &it->key, &it->val, MDB_SET_RANGE);
    } else {
        rc = mdb_cursor_get(it->cur, &it->key, &it->val, MDB_NEXT);
    }
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return ldg_err_from_mdb(rc);
    return has_prefix(&it->key, it->prefix, it->plen) ? 1 : 0;
}

void ldg_store_iter_close(struct ldg_store_iter *it)
{
    if (it->cur != NULL)
        mdb_cursor_close(it->cur);
    it->cur = NULL;
}

int64_t ldg_store_del_prefix(struct ldg_store *s, MDB_txn *txn, enum ldg_table t,
                             const void *prefix, size_t plen)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, s->dbi[t], &cur);
    if (rc != 0)
        return from_mdb(s, rc);
    int64_t n = 0;
    MDB_val k, v;
    for (;;) {
        k.mv_size = plen;
        k.mv_data = (void *)prefix;
        rc = plen ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE)
                  : mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        if (rc != 0 || !has_prefix(&k, prefix, plen))
            break;
        rc = mdb_cursor_del(cur, 0);
        if (rc != 0)
            break;
        n++;
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return from_mdb(s, rc);
    return n;
}
