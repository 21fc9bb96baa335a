/* The libraft glue on a real loop and temp dirs: single-node bootstrap,
 * writes with results, restart without double apply, barrier, snapshots
 * (restore skip and restore into an empty store), and the peer transport
 * preamble on loopback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>

#include <cmocka.h>

#include "cluster/cluster.h"
#include "cluster/internal.h"
#include "cluster/transport.h"
#include "net/listener.h"
#include "loop_until.h"
#include "util/log.h"
#include "util/mem.h"

#include "tmp_dir.h"

/* ---- helpers ---- */



struct env {
    uv_loop_t loop;
    struct ldg_listener *listener;
    char *dir;
    struct ldg_cluster *c;
    bool listener_closed;
};

static void listener_closed_cb(void *arg)
{
    *(bool *)arg = true;
}

static void env_init(struct env *e)
{
    memset(e, 0, sizeof *e);
    uv_loop_init(&e->loop);
    struct ldg_err err = {0};
    assert_int_equal(ldg_listener_new(&e->loop, "127.0.0.1:0", NULL, NULL, &e->listener, &err),
                     0);
    e->dir = make_tmpdir("cluster");
}

static void env_close(struct env *e)
{
    ldg_listener_close(e->listener, listener_closed_cb, &e->listener_closed);
    assert_true(loop_wait_flag(&e->loop, &e->listener_closed, 5000));
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&e->loop), 0);
    rm_dir(e->dir);
}

static struct ldg_cluster_opts base_opts(struct env *e, char *addr, size_t n)
{
    snprintf(addr, n, "127.0.0.1:%d", ldg_listener_port(e->listener));
    struct ldg_cluster_opts o = {
        .data_dir = e->dir,
        .node_id = 7,
        .address = addr,
        .batch_size = 100,
        .batch_delay_s = 0.001,
        .snapshot_threshold = 8192,
    };
    return o;
}

static bool is_leader(struct ldg_cluster *c)
{
    struct ldg_cluster_status st;
    ldg_cluster_get_status(c, &st);
    return st.is_leader;
}

static void wait_leader(struct env *e)
{
    uint64_t deadline = uv_now(&e->loop) + 5000;
    bool done = false;
    while (!is_leader(e->c) && uv_now(&e->loop) < deadline) {
        loop_wait_flag(&e->loop, &done, 10);
    }
    assert_true(is_leader(e->c));
}

static void start(struct env *e, const struct ldg_cluster_opts *o)
{
    struct ldg_err err = {0};
    int rv = ldg_cluster_start(&e->loop, o, true, e->listener, &e->c, &err);
    if (rv != 0)
        fail_msg("start: %s", err.msg);
    wait_leader(e);
}

static void stopped_cb(void *arg)
{
    *(bool *)arg = true;
}

static void stop(struct env *e)
{
    bool done = false;
    ldg_cluster_stop(e->c, stopped_cb, &done);
    assert_true(loop_wait_flag(&e->loop, &done, 5000));
    e->c = NULL;
}

struct sub {
    bool done;
    int status;
    struct ldg_cmd_result res;
    bool has_block;
    struct ldg_block_made block;
};

static void sub_cb(void *arg, int status, const struct ldg_cmd_result *res,
                   const struct ldg_block_made *block)
{
    struct sub *s = arg;
    assert_false(s->done);
    s->done = true;
    s->status = status;
    if (res) {
        s->res = *res;
        s->res.outcomes = NULL;
        s->res.key = NULL;
        s->res.current_value = NULL;
    }
    if (block) {
        s->has_block = true;
        s->block = *block;
    }
}

static struct ldg_bytes B(const char *s)
{
    struct ldg_bytes b = {(const uint8_t *)s, strlen(s)};
    return b;
}

static void submit_wait(struct env *e, const struct ldg_cmd *cmd, struct sub *s)
{
    memset(s, 0, sizeof *s);
    assert_int_equal(ldg_cluster_submit(e->c, cmd, 5000, sub_cb, s), 0);
    assert_true(loop_wait_flag(&e->loop, &s->done, 5000));
    assert_int_equal(s->status, 0);
}

static uint64_t create_org(struct env *e, const char *name)
{
    struct ldg_cmd cmd = {.type = LDG_CMD_CREATE_ORG, .name = B(name)};
    struct sub s;
    submit_wait(e, &cmd, &s);
    assert_int_equal(s.res.code, LDG_RES_OK);
    assert_true(s.res.org != 0);
    assert_true(s.has_block);
    assert_int_equal(s.block.header.height, 0);
    return s.res.org;
}

static uint64_t create_vault(struct env *e, uint64_t org, const char *name)
{
    struct ldg_cmd cmd = {.type = LDG_CMD_CREATE_VAULT, .org = org, .name = B(name)};
    struct sub s;
    submit_wait(e, &cmd, &s);
    assert_int_equal(s.res.code, LDG_RES_OK);
    assert_true(s.res.vault != 0);
    return s.res.vault;
}

static struct sub write_kv(struct env *e, uint64_t org, uint64_t vault, const char *k,
                           const char *v)
{
    struct ldg_op op = {.type = LDG_OP_SET_ENTITY, .key = B(k), .value = B(v)};
    struct ldg_cmd cmd = {.type = LDG_CMD_WRITE, .org = org, .vault = vault,
                          .client_id = B("test"), .ops = &op, .op_count = 1};
    struct sub s;
    submit_wait(e, &cmd, &s);
    return s;
}

static void get_tip(struct env *e, uint64_t org, uint64_t vault, struct ldg_chain_info *out)
{
    struct ldg_ledger *l = ldg_cluster_ledger(e->c);
    MDB_txn *txn;
    assert_int_equal(ldg_store_txn_begin(l->store, true, &txn), 0);
    assert_int_equal(ldg_ledger_get_chain(l, txn, org, vault, out), 0);
    out->name.data = NULL;
    ldg_store_txn_abort(txn);
}

static bool get_value(struct env *e, uint64_t org, uint64_t vault, const char *k, char *out,
                      size_t n)
{
    struct ldg_ledger *l = ldg_cluster_ledger(e->c);
    MDB_txn *txn;
    assert_int_equal(ldg_store_txn_begin(l->store, true, &txn), 0);
    struct ldg_entity ent;
    int rv = ldg_ledger_get_entity(l, txn, org, vault, B(k), 0, &ent);
    if (rv == 0)
        snprintf(out, n, "%.*s", (int)ent.value.len, (const char *)ent.value.data);
    ldg_store_txn_abort(txn);
    return rv == 0;
}

/* ---- single node ---- */

struct barrier_state {
    bool done;
    int status;
    uint64_t applied_at_cb;
    struct ldg_cluster *c;
};

static void barrier_cb(void *arg, int status)
{
    struct barrier_state *b = arg;
    b->done = true;
    b->status = status;
    struct ldg_cluster_status st;
    ldg_cluster_get_status(b->c, &st);
    b->applied_at_cb = st.applied_index;
}

struct watch_state {
    int blocks;
    uint64_t last_height;
};

static void watch_fn(void *arg, const struct ldg_block_made *b)
{
    struct watch_state *w = arg;
    w->blocks++;
    w->last_height = b->header.height;
}

static void test_single_write_restart_barrier(void **state)
{
    (void)state;
    struct env e;
    env_init(&e);
    char addr[64];
    struct ldg_cluster_opts o = base_opts(&e, addr, sizeof addr);
    start(&e, &o);

    struct ldg_cluster_status st;
    ldg_cluster_get_status(e.c, &st);
    assert_int_equal(st.leader_id, 7);
    assert_string_equal(st.leader_address, addr);
    assert_int_equal(st.voters, 1);
    assert_true(st.is_voter);
    assert_true(st.term >= 1);
    assert_true(st.log_id != 0);
    uint64_t log_id = st.log_id;

    struct watch_state ws = {0};
    struct ldg_cluster_watch *w;
    assert_int_equal(ldg_cluster_watch(e.c, watch_fn, &ws, &w), 0);

    uint64_t org = create_org(&e, "acme");
    uint64_t vault = create_vault(&e, org, "main");
    struct sub s1 = write_kv(&e, org, vault, "user:1", "alice");
    assert_int_equal(s1.res.code, LDG_RES_OK);
    assert_int_equal(s1.res.height, 1);
    assert_true(s1.has_block);
    assert_int_equal(s1.block.header.height, 1);
    assert_int_equal(s1.block.header.vault_slug, vault);
    /* the leader made a UUIDv4 tx id */
    assert_int_equal(s1.res.tx_id[6] >> 4, 4);
    assert_int_equal(s1.res.tx_id[8] >> 6, 2);
    /* the entry index is in the block header and is the Raft index */
    ldg_cluster_get_status(e.c, &st);
    assert_true(s1.block.header.committed_index <= st.applied_index);
    assert_true(s1.block.header.committed_index >= 3);
    /* watchers: org genesis, vault genesis, block 1 */
    assert_int_equal(ws.blocks, 3);
    assert_int_equal(ws.last_height, 1);
    ldg_cluster_unwatch(e.c, w);

    /* A client-level failure is a result, not an error. */
    struct ldg_op op = {.type = LDG_OP_SET_ENTITY, .key = B("user:1"), .value = B("x"),
                        .cond = LDG_COND_NOT_EXISTS};
    struct ldg_cmd cmd = {.type = LDG_CMD_WRITE, .org = org, .vault = vault,
                          .client_id = B("test"), .ops = &op, .op_count = 1};
    struct sub s2;
    submit_wait(&e, &cmd, &s2);
    assert_int_equal(s2.res.code, LDG_RES_KEY_EXISTS);
    assert_false(s2.has_block);

    /* Many commands submitted in one turn share one entry (batch). */
    struct sub many[5];
    struct ldg_op ops[5];
    char keys[5][16];
    for (int i = 0; i < 5; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        ops[i] = (struct ldg_op){.type = LDG_OP_SET_ENTITY, .key = B(keys[i]), .value = B("v")};
        struct ldg_cmd c = {.type = LDG_CMD_WRITE, .org = org, .vault = vault,
                            .client_id = B("batch"), .ops = &ops[i], .op_count = 1};
        memset(&many[i], 0, sizeof many[i]);
        assert_int_equal(ldg_cluster_submit(e.c, &c, 5000, sub_cb, &many[i]), 0);
    }
    memset(keys, 0, sizeof keys); /* the cluster copied them */
    assert_true(loop_wait_flag(&e.loop, &many[4].done, 5000));
    for (int i = 0; i < 5; i++) {
        assert_true(many[i].done);
        assert_int_equal(many[i].res.code, LDG_RES_OK);
        assert_int_equal(many[i].res.height, 2);
        assert_int_equal(many[i].res.tx_index, i);
    }

    /* Barrier: fires once everything committed before it is applied. */
    ldg_cluster_get_status(e.c, &st);
    struct barrier_state b1 = {.c = e.c}, b2 = {.c = e.c};
    assert_int_equal(ldg_cluster_barrier(e.c, 5000, barrier_cb, &b1), 0);
    assert_int_equal(ldg_cluster_barrier(e.c, 5000, barrier_cb, &b2), 0);
    assert_true(loop_wait_flag(&e.loop, &b2.done, 5000));
    assert_true(b1.done);
    assert_int_equal(b1.status, 0);
    assert_int_equal(b2.status, 0);
    assert_true(b1.applied_at_cb >= st.commit_index);

    struct ldg_chain_info tip1;
    get_tip(&e, org, vault, &tip1);
    assert_int_equal(tip1.height, 2);
    stop(&e);

    /* Restart on the same directory: state is there, nothing applied twice. */
    start(&e, &o);
    ldg_cluster_get_status(e.c, &st);
    assert_int_equal(st.log_id, log_id);
    struct ldg_chain_info tip2;
    get_tip(&e, org, vault, &tip2);
    assert_int_equal(tip2.height, 2);
    assert_memory_equal(tip1.tip_hash, tip2.tip_hash, 32);
    char val[32];
    assert_true(get_value(&e, org, vault, "user:1", val, sizeof val));
    assert_string_equal(val, "alice");
    struct sub s3 = write_kv(&e, org, vault, "user:2", "bob");
    assert_int_equal(s3.res.code, LDG_RES_OK);
    assert_int_equal(s3.res.height, 3);
    /* Timestamps never go backwards across entries. */
    assert_true(s3.block.header.timestamp_seconds > tip2.last_seconds ||
                (s3.block.header.timestamp_seconds == tip2.last_seconds &&
                 s3.block.header.timestamp_nanos >= tip2.last_nanos));
    assert_int_equal(s3.block.header.timestamp_nanos % 1000, 0);

    /* Stop fails queued commands with ECANCELED. */
    struct sub late;
    memset(&late, 0, sizeof late);
    struct ldg_op op2 = {.type = LDG_OP_SET_ENTITY, .key = B("late"), .value = B("v")};
    struct ldg_cmd c2 = {.type = LDG_CMD_WRITE, .org = org, .vault = vault,
                         .client_id = B("test"), .ops = &op2, .op_count = 1};
    assert_int_equal(ldg_cluster_submit(e.c, &c2, 0, sub_cb, &late), 0);
    assert_false(late.done);
    stop(&e);
    assert_true(late.done);
    assert_int_equal(late.status, LDG_ECANCELED);
    env_close(&e);
}

static void test_submit_errors(void **state)
{
    (void)state;
    struct env e;
    env_init(&e);
    char addr[64];
    struct ldg_cluster_opts o = base_opts(&e, addr, sizeof addr);
    o.batch_delay_s = 0.5;
    start(&e, &o);
    /* invalid op type: refused at submit, cb never called */
    struct ldg_op bad = {.type = 0x7f};
    struct ldg_cmd cmd = {.type = LDG_CMD_WRITE, .org = 1, .vault = 1, .client_id = B("x"),
                          .ops = &bad, .op_count = 1};
    struct sub s;
    memset(&s, 0, sizeof s);
    assert_int_equal(ldg_cluster_submit(e.c, &cmd, 0, sub_cb, &s), LDG_EINVAL);
    /* timeout shorter than the batch delay: ETIMEDOUT, later the entry
     * still commits (the org exists) */
    struct ldg_cmd co = {.type = LDG_CMD_CREATE_ORG, .name = B("slow")};
    memset(&s, 0, sizeof s);
    assert_int_equal(ldg_cluster_submit(e.c, &co, 20, sub_cb, &s), 0);
    assert_true(loop_wait_flag(&e.loop, &s.done, 5000));
    assert_int_equal(s.status, LDG_ETIMEDOUT);
    stop(&e);
    env_close(&e);
}

/* ---- snapshots ---- */

static int count_snapshots(const char *dir)
{
    char p[512];
    snprintf(p, sizeof p, "%s/raft", dir);
    DIR *d = opendir(p);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strncmp(de->d_name, "snapshot-", 9) == 0 && strstr(de->d_name, ".meta") == NULL)
            n++;
    closedir(d);
    return n;
}

static void test_snapshot_restore(void **state)
{
    (void)state;
    struct env e;
    env_init(&e);
    char addr[64];
    struct ldg_cluster_opts o = base_opts(&e, addr, sizeof addr);
    o.snapshot_threshold = 8;
    o.snapshot_trailing = 2;
    start(&e, &o);
    uint64_t org = create_org(&e, "acme");
    uint64_t vault = create_vault(&e, org, "main");
    for (int i = 0; i < 40; i++) {
        char k[16];
        snprintf(k, sizeof k, "key%d", i);
        struct sub s = write_kv(&e, org, vault, k, "value");
        assert_int_equal(s.res.code, LDG_RES_OK);
    }
    /* snapshots are written asynchronously: wait for one */
    uint64_t deadline = uv_now(&e.loop) + 5000;
    bool never = false;
    while (count_snapshots(e.dir) == 0 && uv_now(&e.loop) < deadline)
        loop_wait_flag(&e.loop, &never, 20);
    assert_true(count_snapshots(e.dir) > 0);
    struct ldg_chain_info tip1, org1;
    get_tip(&e, org, vault, &tip1);
    get_tip(&e, org, 0, &org1);
    assert_int_equal(tip1.height, 40);
    stop(&e);

    /* Restart: the snapshot is older than LMDB: restore is skipped. */
    start(&e, &o);
    assert_true(e.c->restore_skips >= 1);
    assert_int_equal(e.c->restores, 0);
    struct ldg_chain_info tip2;
    get_tip(&e, org, vault, &tip2);
    assert_int_equal(tip2.height, 40);
    assert_memory_equal(tip1.tip_hash, tip2.tip_hash, 32);
    assert_memory_equal(tip1.state_root, tip2.state_root, 32);
    stop(&e);

    /* An empty store: the snapshot replaces the state, the log tail replays. */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/state'", e.dir);
    assert_int_equal(system(cmd), 0);
    start(&e, &o);
    assert_true(e.c->restores >= 1);
    struct ldg_chain_info tip3, org3;
    get_tip(&e, org, vault, &tip3);
    get_tip(&e, org, 0, &org3);
    assert_int_equal(tip3.height, 40);
    assert_memory_equal(tip1.tip_hash, tip3.tip_hash, 32);
    assert_memory_equal(tip1.state_root, tip3.state_root, 32);
    assert_memory_equal(org1.tip_hash, org3.tip_hash, 32);
    char val[32];
    assert_true(get_value(&e, org, vault, "key39", val, sizeof val));
    assert_true(get_value(&e, org, vault, "key0", val, sizeof val));
    /* and it goes on */
    struct sub s = write_kv(&e, org, vault, "after", "restore");
    assert_int_equal(s.res.height, 41);
    stop(&e);
    env_close(&e);
}

static void test_store_dump_corrupt(void **state)
{
    (void)state;
    char *dir = make_tmpdir("cluster");
    char p[512];
    snprintf(p, sizeof p, "%s/s", dir);
    struct ldg_store s;
    struct ldg_err err = {0};
    assert_int_equal(ldg_store_open(&s, p, NULL, &err), 0);
    MDB_txn *txn;
    assert_int_equal(ldg_store_txn_begin(&s, false, &txn), 0);
    assert_int_equal(ldg_store_put(&s, txn, LDG_T_ORGS, "a", 1, "1", 1), 0);
    assert_int_equal(ldg_store_txn_commit(txn), 0);
    struct ldg_buf b;
    ldg_buf_init(&b);
    assert_int_equal(ldg_store_txn_begin(&s, true, &txn), 0);
    assert_int_equal(ldg_store_dump(&s, txn, &b), 0);
    ldg_store_txn_abort(txn);
    assert_int_equal(ldg_store_dump_check(b.data, b.len), 0);
    b.data[10] ^= 1;
    assert_int_equal(ldg_store_load(&s, b.data, b.len), LDG_ECORRUPT);
    assert_int_equal(ldg_store_load(&s, b.data, 20), LDG_ECORRUPT);
    /* state untouched */
    assert_int_equal(ldg_store_txn_begin(&s, true, &txn), 0);
    MDB_val v;
    assert_int_equal(ldg_store_get(&s, txn, LDG_T_ORGS, "a", 1, &v), 0);
    ldg_store_txn_abort(txn);
    ldg_buf_close(&b);
    ldg_store_close(&s);
    rm_dir(dir);
}

/* ---- transport ---- */

struct tp_side {
    struct raft_uv_transport t;
    bool accepted;
    raft_id peer_id;
    char peer_addr[128];
    uv_stream_t *stream;
    bool closed;
};

static void tp_accept_cb(struct raft_uv_transport *t, raft_id id, const char *address,
                         struct uv_stream_s *stream)
{
    struct tp_side *s = LDG_CONTAINER_OF(t, struct tp_side, t);
    s->accepted = true;
    s->peer_id = id;
    snprintf(s->peer_addr, sizeof s->peer_addr, "%s", address);
    s->stream = stream;
}

struct conn_state {
    struct raft_uv_connect req;
    bool done;
    int status;
    uv_stream_t *stream;
};

static void tp_connect_cb(struct raft_uv_connect *req, struct uv_stream_s *stream, int status)
{
    struct conn_state *c = LDG_CONTAINER_OF(req, struct conn_state, req);
    c->done = true;
    c->status = status;
    c->stream = stream;
}

static void tp_closed_cb(struct raft_uv_transport *t)
{
    struct tp_side *s = LDG_CONTAINER_OF(t, struct tp_side, t);
    s->closed = true;
}

static void tp_side_init(struct tp_side *s, uv_loop_t *loop, struct ldg_listener *l,
                         uint8_t cid_byte, const char *secret, raft_id id, const char *addr)
{
    memset(s, 0, sizeof *s);
    struct ldg_transport_opts o = {.handshake_timeout_ms = 2000};
    memset(o.cluster_id, cid_byte, sizeof o.cluster_id);
    if (secret) {
        o.secret = (const uint8_t *)secret;
        o.secret_len = strlen(secret);
    }
    assert_int_equal(ldg_transport_init(&s->t, loop, l, &o), 0);
    assert_int_equal(s->t.init(&s->t, id, addr), 0);
    if (l)
        assert_int_equal(s->t.listen(&s->t, tp_accept_cb), 0);
}

static void stream_closed_cb(uv_handle_t *h)
{
    raft_free(h);
}

static void tp_side_close(struct tp_side *s, uv_loop_t *loop)
{
    if (s->stream)
        uv_close((uv_handle_t *)s->stream, stream_closed_cb);
    s->t.close(&s->t, tp_closed_cb);
    assert_true(loop_wait_flag(loop, &s->closed, 2000));
    ldg_transport_free(&s->t);
}

struct rd {
    char buf[64];
    size_t len;
    size_t want;
    bool done;
    bool eof;
};

static void rd_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    struct rd *r = h->data;
    *b = uv_buf_init(r->buf + r->len, (unsigned)(sizeof r->buf - r->len));
}

static void rd_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct rd *r = s->data;
    if (n < 0) {
        r->eof = true;
        r->done = true;
        uv_read_stop(s);
        return;
    }
    r->len += (size_t)n;
    if (r->len >= r->want)
        r->done = true;
}

static void write_str(uv_stream_t *s, const char *str)
{
    uv_buf_t b = uv_buf_init((char *)str, (unsigned)strlen(str));
    assert_int_equal(uv_try_write(s, &b, 1), (int)strlen(str));
}

struct tp_env {
    uv_loop_t loop;
    struct ldg_listener *listener;
    bool listener_closed;
    char addr[64];
};

static void tp_env_init(struct tp_env *te)
{
    memset(te, 0, sizeof *te);
    uv_loop_init(&te->loop);
    struct ldg_err err = {0};
    assert_int_equal(
        ldg_listener_new(&te->loop, "127.0.0.1:0", NULL, NULL, &te->listener, &err), 0);
    snprintf(te->addr, sizeof te->addr, "127.0.0.1:%d", ldg_listener_port(te->listener));
}

static void tp_env_close(struct tp_env *te)
{
    ldg_listener_close(te->listener, listener_closed_cb, &te->listener_closed);
    assert_true(loop_wait_flag(&te->loop, &te->listener_closed, 2000));
    uv_run(&te->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&te->loop), 0);
}

static void test_transport_handshake(void **state)
{
    (void)state;
    struct tp_env te;
    tp_env_init(&te);
    struct tp_side server, client;
    tp_side_init(&server, &te.loop, te.listener, 0xab, "s3cret", 2, te.addr);
    tp_side_init(&client, &te.loop, NULL, 0xab, "s3cret", 1, "127.0.0.1:1111");

    struct conn_state cs;
    memset(&cs, 0, sizeof cs);
    assert_int_equal(client.t.connect(&client.t, &cs.req, 2, te.addr, tp_connect_cb), 0);
    assert_true(loop_wait_flag(&te.loop, &cs.done, 3000));
    assert_int_equal(cs.status, 0);
    assert_non_null(cs.stream);
    assert_true(loop_wait_flag(&te.loop, &server.accepted, 3000));
    assert_int_equal(server.peer_id, 1);
    assert_string_equal(server.peer_addr, "127.0.0.1:1111");

    /* Bytes after the handshake reach the other side intact, both ways:
     * neither side consumed more than its preamble / accept byte. */
    struct rd srv_rd = {.want = 5}, cli_rd = {.want = 3};
    server.stream->data = &srv_rd;
    cs.stream->data = &cli_rd;
    write_str(cs.stream, "hello");
    write_str(server.stream, "abc");
    assert_int_equal(uv_read_start(server.stream, rd_alloc, rd_read), 0);
    assert_int_equal(uv_read_start(cs.stream, rd_alloc, rd_read), 0);
    assert_true(loop_wait_flag(&te.loop, &srv_rd.done, 3000));
    assert_true(loop_wait_flag(&te.loop, &cli_rd.done, 3000));
    assert_int_equal(srv_rd.len, 5);
    assert_memory_equal(srv_rd.buf, "hello", 5);
    assert_int_equal(cli_rd.len, 3);
    assert_memory_equal(cli_rd.buf, "abc", 3);

    client.stream = cs.stream;
    tp_side_close(&client, &te.loop);
    tp_side_close(&server, &te.loop);
    tp_env_close(&te);
}

static void refused_case(uint8_t client_cid, const char *client_secret)
{
    struct tp_env te;
    tp_env_init(&te);
    struct tp_side server, client;
    tp_side_init(&server, &te.loop, te.listener, 0xab, "s3cret", 2, te.addr);
    tp_side_init(&client, &te.loop, NULL, client_cid, client_secret, 1, "127.0.0.1:1111");
    struct conn_state cs;
    memset(&cs, 0, sizeof cs);
    assert_int_equal(client.t.connect(&client.t, &cs.req, 2, te.addr, tp_connect_cb), 0);
    assert_true(loop_wait_flag(&te.loop, &cs.done, 3000));
    assert_int_equal(cs.status, RAFT_NOCONNECTION);
    assert_null(cs.stream);
    assert_false(server.accepted);
    tp_side_close(&client, &te.loop);
    tp_side_close(&server, &te.loop);
    tp_env_close(&te);
}

static void test_transport_wrong_cluster(void **state)
{
    (void)state;
    refused_case(0xcd, "s3cret");
}

static void test_transport_wrong_secret(void **state)
{
    (void)state;
    refused_case(0xab, "other");
    refused_case(0xab, NULL);
}

struct raw {
    uv_tcp_t tcp;
    uv_connect_t creq;
    bool connected;
    struct rd rd;
};

static void raw_connect_cb(uv_connect_t *req, int status)
{
    struct raw *r = req->data;
    assert_int_equal(status, 0);
    r->connected = true;
}

static void test_transport_truncated(void **state)
{
    (void)state;
    struct tp_env te;
    tp_env_init(&te);
    struct tp_side server;
    tp_side_init(&server, &te.loop, te.listener, 0xab, NULL, 2, te.addr);

    struct raw r;
    memset(&r, 0, sizeof r);
    uv_tcp_init(&te.loop, &r.tcp);
    r.tcp.data = &r.rd;
    r.creq.data = &r;
    struct sockaddr_storage sa;
    assert_int_equal(ldg_listener_parse_addr(te.addr, &sa), 0);
    assert_int_equal(uv_tcp_connect(&r.creq, &r.tcp, (struct sockaddr *)&sa, raw_connect_cb), 0);
    assert_true(loop_wait_flag(&te.loop, &r.connected, 2000));
    /* A valid-looking preamble cut short, then EOF. */
    uint8_t pre[LDG_PREAMBLE_LEN];
    uint8_t cid[16];
    memset(cid, 0xab, sizeof cid);
    assert_int_equal(ldg_preamble_build(pre, cid, 9, "127.0.0.1:9", NULL, 0), 0);
    uv_buf_t b = uv_buf_init((char *)pre, 40);
    assert_int_equal(uv_try_write((uv_stream_t *)&r.tcp, &b, 1), 40);
    uv_shutdown_t sreq;
    assert_int_equal(uv_shutdown(&sreq, (uv_stream_t *)&r.tcp, NULL), 0);
    r.rd.want = 1;
    assert_int_equal(uv_read_start((uv_stream_t *)&r.tcp, rd_alloc, rd_read), 0);
    assert_true(loop_wait_flag(&te.loop, &r.rd.done, 3000));
    /* closed by the server without an accept byte */
    assert_true(r.rd.eof);
    assert_int_equal(r.rd.len, 0);
    assert_false(server.accepted);
    uv_close((uv_handle_t *)&r.tcp, NULL);
    tp_side_close(&server, &te.loop);
    tp_env_close(&te);
}

static void test_transport_dead_peer(void **state)
{
    (void)state;
    struct tp_env te;
    tp_env_init(&te);
    struct tp_side client;
    tp_side_init(&client, &te.loop, NULL, 0xab, NULL, 1, "127.0.0.1:1111");
    /* a port nobody listens on: take one from the listener, then close it */
    struct conn_state cs;
    memset(&cs, 0, sizeof cs);
    assert_int_equal(client.t.connect(&client.t, &cs.req, 2, "127.0.0.1:1", tp_connect_cb), 0);
    assert_true(loop_wait_flag(&te.loop, &cs.done, 3000));
    assert_int_equal(cs.status, RAFT_NOCONNECTION);
    /* close with a connect pending: its cb gets RAFT_CANCELED */
    struct conn_state cs2;
    memset(&cs2, 0, sizeof cs2);
    assert_int_equal(client.t.connect(&client.t, &cs2.req, 3, "10.255.255.1:50051",
                                      tp_connect_cb), 0);
    client.t.close(&client.t, tp_closed_cb);
    assert_true(cs2.done);
    assert_int_equal(cs2.status, RAFT_CANCELED);
    assert_true(loop_wait_flag(&te.loop, &client.closed, 3000));
    ldg_transport_free(&client.t);
    tp_env_close(&te);
}

int main(void)
{
    ldg_log_set_level(LDG_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transport_handshake),
        cmocka_unit_test(test_transport_wrong_cluster),
        cmocka_unit_test(test_transport_wrong_secret),
        cmocka_unit_test(test_transport_truncated),
        cmocka_unit_test(test_transport_dead_peer),
        cmocka_unit_test(test_store_dump_corrupt),
        cmocka_unit_test(test_single_write_restart_barrier),
        cmocka_unit_test(test_submit_errors),
        cmocka_unit_test(test_snapshot_restore),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
