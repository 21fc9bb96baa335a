/* stateroot: cost of closing a block (state-root maintenance included) for a
 * vault of --small keys versus --large keys, at the ledger layer.
 *
 * Each size gets a fresh LMDB store in its own temp dir: one entry creating
 * an organization and a vault, then a prefill of keys k0..k<n-1> (100-byte
 * values) in entries of one write of --batch set_entity ops. Then both
 * vaults take --warmup-blocks untimed and --blocks timed entries, each one
 * write of --ops set_entity ops on random prefilled keys (updates),
 * interleaved block by block so machine noise hits both alike. Each entry
 * runs as ldg_ledger_apply in a write txn begun here, so the apply (ops,
 * slot rehash, bucket paths, state root, block) is timed apart from the
 * commit (page writes and fsync: storage, not state-root work). Reported
 * per block: mean/p50/p99 of apply and of apply+commit.
 *
 * Crypto-only baseline: the same number of leaf updates per block done on
 * 256 in-memory bucket trees (src/crypto/state.h): per op one slot hash over
 * the expected number of leaves in a slot at that vault size
 * (1 + n/65536), staged; flush of the touched buckets; one state root. No
 * storage at all.
 *
 * Output: human lines, then one JSON object on the last line. */
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "crypto/state.h"
#include "ledger/entry.h"
#include "ledger/ledger.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/mem.h"

#define ORG 1
#define VAULT 7

struct opts {
    uint64_t small_n, large_n;
    unsigned blocks;
    unsigned warmup_blocks; /* applied first, not timed */
    unsigned ops;
    unsigned batch;
    size_t value_bytes;
    const char *dir;
};

struct stats {
    double mean_us, p50_us, p99_us;
};

struct size_result {
    uint64_t keys;
    double prefill_s;
    struct stats apply, total, crypto;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static struct stats summarize(uint64_t *ns, size_t n)
{
    struct stats s = {0};
    if (n == 0)
        return s;
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += (double)ns[i];
    qsort(ns, n, sizeof *ns, cmp_u64);
    s.mean_us = sum / (double)n / 1e3;
    s.p50_us = (double)ns[n / 2] / 1e3;
    size_t i99 = (size_t)((double)n * 0.99);
    s.p99_us = (double)ns[i99 < n ? i99 : n - 1] / 1e3;
    return s;
}

/* ---- ledger ---- */

struct writer {
    struct ldg_ledger *l;
    uint64_t index;
    int64_t ts;
    uint64_t rng;
    uint8_t *value;
    size_t value_bytes;
    struct ldg_op *ops;
    char (*keys)[24];
};

static void entry_init(struct writer *w, struct ldg_entry *e, const struct ldg_cmd *cmds,
                       size_t n)
{
    *e = (struct ldg_entry){
        .log_id = 1, .index = ++w->index, .term = 1, .ts_seconds = ++w->ts,
        .leader_id = 1, .cmds = cmds, .cmd_count = n,
    };
}

static void write_cmd(struct writer *w, struct ldg_cmd *c, size_t n_ops)
{
    *c = (struct ldg_cmd){
        .type = LDG_CMD_WRITE, .org = ORG, .vault = VAULT,
        .client_id = {(const uint8_t *)"bench", 5}, .ops = w->ops, .op_count = n_ops,
    };
    for (int i = 0; i < 2; i++) {
        uint64_t r = rng_next(&w->rng);
        memcpy(c->tx_id + 8 * i, &r, 8);
    }
}

static void set_op(struct writer *w, size_t i, uint64_t key)
{
    int len = snprintf(w->keys[i], sizeof w->keys[i], "k%" PRIu64, key);
    w->ops[i] = (struct ldg_op){
        .type = LDG_OP_SET_ENTITY,
        .key = {(const uint8_t *)w->keys[i], (size_t)len},
        .value = {w->value, w->value_bytes},
    };
}

static int check_result(const struct ldg_apply_result *r, const char *what)
{
    for (size_t i = 0; i < r->count; i++) {
        if (r->results[i].code != LDG_RES_OK) {
            fprintf(stderr, "stateroot: %s: command %zu: %s\n", what, i,
                    ldg_result_code_name(r->results[i].code));
            return -1;
        }
    }
    return 0;
}

/* One vault size: its own store in its own temp dir. */
struct vault_run {
    uint64_t n;
    char path[4096];
    bool have_dir;
    struct ldg_store st;
    struct ldg_ledger l;
    struct writer w;
    uint64_t *apply_ns, *total_ns;
    double prefill_s;
};

static void vr_close(struct vault_run *vr)
{
    ldg_store_close(&vr->st);
    if (vr->have_dir) {
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", vr->path);
        if (system(cmd) != 0)
            fprintf(stderr, "stateroot: could not remove %s\n", vr->path);
    }
    ldg_free(vr->w.keys);
    ldg_free(vr->w.ops);
    ldg_free(vr->w.value);
    ldg_free(vr->total_ns);
    ldg_free(vr->apply_ns);
    memset(vr, 0, sizeof *vr);
}

/* Create the store, the organization and vault, and prefill n keys. */
static int vr_open(const struct opts *o, uint64_t n, struct vault_run *vr)
{
    struct ldg_err err = {0};
    struct ldg_store_opts so = {.map_size = (size_t)4 << 30};
    struct ldg_apply_result res = {0};
    struct ldg_entry e;
    size_t max_ops = o->batch > o->ops ? o->batch : o->ops;

    memset(vr, 0, sizeof *vr);
    vr->n = n;
    vr->w = (struct writer){.l = &vr->l, .rng = 0x1234567ULL + n, .value_bytes = o->value_bytes};
    vr->w.value = ldg_malloc(o->value_bytes ? o->value_bytes : 1);
    for (size_t i = 0; i < o->value_bytes; i++)
        vr->w.value[i] = (uint8_t)('a' + i % 26);
    vr->w.ops = ldg_calloc(max_ops, sizeof *vr->w.ops);
    vr->w.keys = ldg_calloc(max_ops, sizeof *vr->w.keys);
    vr->apply_ns = ldg_calloc(o->blocks, sizeof *vr->apply_ns);
    vr->total_ns = ldg_calloc(o->blocks, sizeof *vr->total_ns);

    snprintf(vr->path, sizeof vr->path, "%s/ldg-stateroot-XXXXXX", o->dir);
    if (mkdtemp(vr->path) == NULL) {
        perror("stateroot: mkdtemp");
        return -1;
    }
    vr->have_dir = true;
    if (ldg_store_open(&vr->st, vr->path, &so, &err) != 0) {
        fprintf(stderr, "stateroot: open %s: %s\n", vr->path, err.msg);
        return -1;
    }
    ldg_ledger_init(&vr->l, &vr->st);

    struct ldg_cmd setup[2] = {
        {.type = LDG_CMD_CREATE_ORG, .slug = ORG, .name = {(const uint8_t *)"bench", 5}},
        {.type = LDG_CMD_CREATE_VAULT, .org = ORG, .slug = VAULT,
         .name = {(const uint8_t *)"bench", 5}},
    };
    entry_init(&vr->w, &e, setup, 2);
    int r = ldg_ledger_apply_entry(&vr->l, &e, &res);
    if (r != 0 || check_result(&res, "setup") != 0)
        goto fail;
    ldg_apply_result_free(&res);

    uint64_t t0 = now_ns();
    for (uint64_t k = 0; k < n;) {
        size_t m = n - k < o->batch ? (size_t)(n - k) : o->batch;
        for (size_t i = 0; i < m; i++)
            set_op(&vr->w, i, k + i);
        struct ldg_cmd c;
        write_cmd(&vr->w, &c, m);
        entry_init(&vr->w, &e, &c, 1);
        r = ldg_ledger_apply_entry(&vr->l, &e, &res);
        if (r != 0 || check_result(&res, "prefill") != 0)
            goto fail;
        ldg_apply_result_free(&res);
        k += m;
    }
    vr->prefill_s = (double)(now_ns() - t0) / 1e9;
    return 0;
fail:
    if (r != 0)
        fprintf(stderr, "stateroot: apply: %s\n", ldg_strerror(r));
    ldg_apply_result_free(&res);
    return -1;
}

/* Apply one block of o->ops updates of random prefilled keys; record its
 * times at |slot| when timed. */
static int vr_block(const struct opts *o, struct vault_run *vr, bool timed, unsigned slot)
{
    struct ldg_apply_result res = {0};
    struct ldg_entry e;
    struct ldg_cmd c;
    for (size_t i = 0; i < o->ops; i++)
        set_op(&vr->w, i, rng_next(&vr->w.rng) % vr->n);
    write_cmd(&vr->w, &c, o->ops);
    entry_init(&vr->w, &e, &c, 1);
    for (;;) {
        MDB_txn *txn;
        uint64_t a = now_ns();
        int r = ldg_store_txn_begin(&vr->st, false, &txn);
        if (r == 0) {
            r = ldg_ledger_apply(&vr->l, txn, &e, &res);
            if (r != 0)
                ldg_store_txn_abort(txn);
        }
        uint64_t applied = now_ns();
        if (r == 0)
            r = ldg_store_txn_commit(txn);
        uint64_t done = now_ns();
        if (r == LDG_EFULL) {
            ldg_apply_result_free(&res);
            if ((r = ldg_store_grow(&vr->st)) == 0)
                continue;
        }
        if (r != 0) {
            fprintf(stderr, "stateroot: block apply: %s\n", ldg_strerror(r));
            ldg_apply_result_free(&res);
            return -1;
        }
        if (timed) {
            vr->apply_ns[slot] = applied - a;
            vr->total_ns[slot] = done - a;
        }
        break;
    }
    int rv = check_result(&res, "block");
    ldg_apply_result_free(&res);
    return rv;
}

/* ---- crypto only ---- */

static struct stats run_crypto(const struct opts *o, uint64_t n)
{
    struct ldg_bucket_tree *trees = ldg_malloc(LDG_STATE_BUCKETS * sizeof *trees);
    uint8_t(*roots)[LDG_HASH_LEN] = ldg_malloc(LDG_STATE_BUCKETS * LDG_HASH_LEN);
    uint64_t *ns = ldg_calloc(o->blocks, sizeof *ns);
    unsigned per_slot = 1 + (unsigned)((n + 32768) / 65536);
    uint64_t rng = 0xC0FFEEULL + n;
    struct ldg_buf key;
    ldg_buf_init(&key);
    for (unsigned b = 0; b < LDG_STATE_BUCKETS; b++)
        ldg_bucket_tree_init(&trees[b]);
    uint8_t vh[LDG_HASH_LEN] = {0};

    for (unsigned blk = 0; blk < o->blocks; blk++) {
        uint64_t t0 = now_ns();
        uint8_t touched[LDG_STATE_BUCKETS] = {0};
        for (unsigned i = 0; i < o->ops; i++) {
            char k[32];
            int klen = snprintf(k, sizeof k, "k%" PRIu64, rng_next(&rng) % n);
            ldg_buf_reset(&key);
            ldg_leaf_key_entity(&key, (struct ldg_bytes){(const uint8_t *)k, (size_t)klen});
            struct ldg_bytes lk = {key.data, key.len};
            uint8_t bucket, slot;
            ldg_leaf_key_locate(lk, &bucket, &slot);
            /* the slot's leaves: this one plus synthetic neighbours that
             * sort after it (same encoding size as real ones) */
            struct ldg_slot_hasher h;
            ldg_slot_hasher_init(&h);
            for (unsigned j = 0; j < per_slot; j++) {
                vh[0] = (uint8_t)j;
                struct ldg_leaf leaf = {.key = lk, .version = blk + 2};
                memcpy(leaf.value_hash, vh, LDG_HASH_LEN);
                ldg_slot_hasher_add(&h, &leaf);
            }
            uint8_t sh[LDG_HASH_LEN];
            ldg_slot_hasher_final(&h, sh);
            ldg_bucket_tree_stage_slot(&trees[bucket], slot, sh);
            touched[bucket] = 1;
        }
        for (unsigned b = 0; b < LDG_STATE_BUCKETS; b++)
            if (touched[b])
                ldg_bucket_tree_flush(&trees[b]);
        for (unsigned b = 0; b < LDG_STATE_BUCKETS; b++)
            memcpy(roots[b], ldg_bucket_tree_root(&trees[b]), LDG_HASH_LEN);
        uint8_t sr[LDG_HASH_LEN];
        ldg_state_root((const uint8_t(*)[LDG_HASH_LEN])roots, sr);
        ns[blk] = now_ns() - t0;
    }
    struct stats s = summarize(ns, o->blocks);
    ldg_buf_close(&key);
    ldg_free(ns);
    ldg_free(roots);
    ldg_free(trees);
    return s;
}

/* ---- main ---- */

static void usage(FILE *f)
{
    fprintf(f, "usage: stateroot [--small N] [--large N] [--blocks N] [--warmup-blocks N] [--ops N] [--batch N]\n"
               "                 [--value-bytes N] [--dir DIR]\n"
               "defaults: --small 10000 --large 1000000 --blocks 500 --warmup-blocks 50 --ops 10 --batch 10000\n"
               "          --value-bytes 100 --dir $TMPDIR or /tmp\n");
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {
        {"small", required_argument, NULL, 's'}, {"large", required_argument, NULL, 'l'},
        {"blocks", required_argument, NULL, 'b'}, {"warmup-blocks", required_argument, NULL, 'w'}, {"ops", required_argument, NULL, 'o'},
        {"batch", required_argument, NULL, 'B'}, {"value-bytes", required_argument, NULL, 'v'},
        {"dir", required_argument, NULL, 'd'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *tmp = getenv("TMPDIR");
    *o = (struct opts){.small_n = 10000, .large_n = 1000000, .blocks = 500, .warmup_blocks = 50, .ops = 10,
                       .batch = 10000, .value_bytes = 100, .dir = tmp && *tmp ? tmp : "/tmp"};
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            exit(0);
        }
        if (c == 'd') {
            o->dir = optarg;
            continue;
        }
        if (c == '?')
            goto bad;
        char *end;
        unsigned long long v = strtoull(optarg, &end, 10);
        if (*optarg == '\0' || *optarg == '-' || *end != '\0' || (v == 0 && c != 'w') ||
            v > 100000000ULL)
            goto bad;
        switch (c) {
        case 's': o->small_n = v; break;
        case 'l': o->large_n = v; break;
        case 'b': o->blocks = (unsigned)v; break;
        case 'w': o->warmup_blocks = (unsigned)v; break;
        case 'o': o->ops = (unsigned)v; break;
        case 'B': o->batch = (unsigned)v; break;
        case 'v': o->value_bytes = (size_t)v; break;
        default: goto bad;
        }
    }
    if (optind != argc)
        goto bad;
    return 0;
bad:
    usage(stderr);
    return -1;
}

static void print_stats(const char *name, const struct stats *s)
{
    printf("  %-22s mean %9.1f us  p50 %9.1f us  p99 %9.1f us\n", name, s->mean_us, s->p50_us,
           s->p99_us);
}

static void json_stats(const char *name, const struct stats *s, const char *sep)
{
    printf("\"%s\":{\"mean_us\":%.1f,\"p50_us\":%.1f,\"p99_us\":%.1f}%s", name, s->mean_us,
           s->p50_us, s->p99_us, sep);
}

int main(int argc, char **argv)
{
    struct opts o;
    if (parse_opts(argc, argv, &o) != 0)
        return 64;
    struct size_result r[2] = {{0}};
    struct vault_run vr[2];
    uint64_t sizes[2] = {o.small_n, o.large_n};
    int rv = 1;
    memset(vr, 0, sizeof vr);
    for (int i = 0; i < 2; i++) {
        fprintf(stderr, "stateroot: prefill %" PRIu64 " keys\n", sizes[i]);
        if (vr_open(&o, sizes[i], &vr[i]) != 0)
            goto cleanup;
    }
    /* Interleave the two vaults block by block (alternating which goes
     * first) so machine noise hits both alike. */
    fprintf(stderr, "stateroot: %u+%u blocks of %u ops each\n", o.warmup_blocks, o.blocks,
            o.ops);
    for (unsigned k = 0; k < o.warmup_blocks + o.blocks; k++) {
        bool timed = k >= o.warmup_blocks;
        unsigned slot = timed ? k - o.warmup_blocks : 0;
        for (int j = 0; j < 2; j++)
            if (vr_block(&o, &vr[(k + (unsigned)j) % 2], timed, slot) != 0)
                goto cleanup;
    }
    for (int i = 0; i < 2; i++) {
        r[i].keys = sizes[i];
        r[i].prefill_s = vr[i].prefill_s;
        r[i].apply = summarize(vr[i].apply_ns, o.blocks);
        r[i].total = summarize(vr[i].total_ns, o.blocks);
        r[i].crypto = run_crypto(&o, sizes[i]);
    }
    double ratio_apply = r[0].apply.mean_us > 0 ? r[1].apply.mean_us / r[0].apply.mean_us : 0;
    double ratio_apply_p50 = r[0].apply.p50_us > 0 ? r[1].apply.p50_us / r[0].apply.p50_us : 0;
    double ratio_total = r[0].total.mean_us > 0 ? r[1].total.mean_us / r[0].total.mean_us : 0;
    double ratio_crypto =
        r[0].crypto.mean_us > 0 ? r[1].crypto.mean_us / r[0].crypto.mean_us : 0;

    printf("stateroot: %u blocks of %u set_entity ops (%zu-byte values) per vault size\n",
           o.blocks, o.ops, o.value_bytes);
    for (int i = 0; i < 2; i++) {
        printf("%" PRIu64 " keys (prefill %.1f s):\n", r[i].keys, r[i].prefill_s);
        print_stats("apply (no commit)", &r[i].apply);
        print_stats("apply + commit", &r[i].total);
        print_stats("crypto only", &r[i].crypto);
    }
    printf("ratio large/small: apply mean %.2fx, apply p50 %.2fx, apply+commit mean %.2fx, "
           "crypto mean %.2fx\n",
           ratio_apply, ratio_apply_p50, ratio_total, ratio_crypto);
    printf("{\"blocks\":%u,\"ops_per_block\":%u,\"value_bytes\":%zu,", o.blocks, o.ops,
           o.value_bytes);
    const char *label[2] = {"small", "large"};
    for (int i = 0; i < 2; i++) {
        printf("\"%s\":{\"keys\":%" PRIu64 ",\"prefill_s\":%.2f,", label[i], r[i].keys,
               r[i].prefill_s);
        json_stats("apply", &r[i].apply, ",");
        json_stats("apply_commit", &r[i].total, ",");
        json_stats("crypto", &r[i].crypto, "},");
    }
    printf("\"ratio_apply_mean\":%.3f,\"ratio_apply_p50\":%.3f,\"ratio_apply_commit_mean\":%.3f,"
           "\"ratio_crypto_mean\":%.3f}\n",
           ratio_apply, ratio_apply_p50, ratio_total, ratio_crypto);
    rv = 0;
cleanup:
    vr_close(&vr[0]);
    vr_close(&vr[1]);
    return rv;
}
