/* Fuzz-style tests of the Raft peer transport behind the real listener, on a
 * real loop over loopback (ISSUE 4: "truncated, oversized and forged
 * preambles"). A raw TCP client sends hand-made bytes; the server side is
 * ldg_listener + ldg_transport with a cluster secret. For every refused
 * input: the connection is closed, the client never receives the accept
 * byte, libraft's accept callback never fires and the reason is logged
 * (stderr is captured into a file and searched). After each test the same
 * loop still completes a valid handshake with a real dialing transport. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <uv.h>

#include "cluster/transport.h"
#include "net/listener.h"
#include "loop_until.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/mem.h"

/* Preamble layout (transport.h): magic, version, cluster id, node id,
 * address, nonce, hmac. */
#define P_VERSION LDG_PREAMBLE_MAGIC_LEN
#define P_CLUSTER (P_VERSION + 1)
#define P_NODE (P_CLUSTER + LDG_CLUSTER_ID_LEN)
#define P_ADDR (P_NODE + 8)
#define P_NONCE (P_ADDR + LDG_PREAMBLE_ADDR_LEN)
#define P_HMAC (P_NONCE + LDG_PREAMBLE_NONCE_LEN)

static const char SECRET[] = "fuzz-cluster-secret";
#define CID_BYTE 0xab

/* ---- stderr capture ---- */

static int saved_stderr = -1;
static char cap_path[64];

static void cap_start(void)
{
    fflush(stderr);
    snprintf(cap_path, sizeof cap_path, "/tmp/ldg-tpfuzz-XXXXXX");
    int fd = mkstemp(cap_path);
    assert_true(fd >= 0);
    saved_stderr = dup(2);
    assert_true(saved_stderr >= 0);
    assert_true(dup2(fd, 2) >= 0);
    close(fd);
}

static char *cap_read(size_t *len)
{
    fflush(stderr);
    FILE *f = fopen(cap_path, "rb");
    assert_non_null(f);
    struct ldg_buf b;
    ldg_buf_init(&b);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        ldg_buf_append(&b, chunk, n);
    fclose(f);
    ldg_buf_append(&b, "", 1);
    size_t sz;
    char *s = (char *)ldg_buf_steal(&b, &sz);
    *len = sz - 1;
    return s;
}

/* Occurrences of |needle| in what was logged so far. */
static size_t cap_count(const char *needle)
{
    size_t len;
    char *s = cap_read(&len);
    size_t n = 0;
    for (const char *p = s; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    ldg_free(s);
    return n;
}

/* Put stderr back; echo the tail of the capture (ctest shows it when a
 * test fails, together with cmocka's messages, which went there too). */
static void cap_stop(void)
{
    if (saved_stderr < 0)
        return;
    size_t len;
    char *s = cap_read(&len);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    saved_stderr = -1;
    size_t from = len > 8192 ? len - 8192 : 0;
    fwrite(s + from, 1, len - from, stderr);
    ldg_free(s);
    unlink(cap_path);
}

/* ---- loop helpers ---- */



/* ---- the server: listener + transport ---- */

struct server {
    uv_loop_t loop;
    struct ldg_listener *listener;
    struct raft_uv_transport t;
    char addr[64];
    int accepted;
    raft_id peer_id;
    char peer_addr[LDG_PREAMBLE_ADDR_LEN];
    uv_stream_t *stream; /* last accepted stream (ours to close) */
    bool t_closed, l_closed;
};

static struct server S;

static void srv_accept_cb(struct raft_uv_transport *t, raft_id id, const char *address,
                          struct uv_stream_s *stream)
{
    (void)t;
    S.accepted++;
    S.peer_id = id;
    snprintf(S.peer_addr, sizeof S.peer_addr, "%s", address);
    assert_null(S.stream);
    S.stream = stream;
}

static void raft_stream_closed_cb(uv_handle_t *h)
{
    raft_free(h);
}

static void srv_drop_stream(void)
{
    if (S.stream != NULL)
        uv_close((uv_handle_t *)S.stream, raft_stream_closed_cb);
    S.stream = NULL;
}

static int setup(void **state)
{
    (void)state;
    cap_start();
    memset(&S, 0, sizeof S);
    assert_int_equal(uv_loop_init(&S.loop), 0);
    struct ldg_err err = {0};
    assert_int_equal(ldg_listener_new(&S.loop, "127.0.0.1:0", NULL, NULL, &S.listener, &err), 0);
    snprintf(S.addr, sizeof S.addr, "127.0.0.1:%d", ldg_listener_port(S.listener));
    struct ldg_transport_opts o = {.handshake_timeout_ms = 300};
    memset(o.cluster_id, CID_BYTE, sizeof o.cluster_id);
    o.secret = (const uint8_t *)SECRET;
    o.secret_len = strlen(SECRET);
    assert_int_equal(ldg_transport_init(&S.t, &S.loop, S.listener, &o), 0);
    assert_int_equal(S.t.init(&S.t, 2, S.addr), 0);
    assert_int_equal(S.t.listen(&S.t, srv_accept_cb), 0);
    return 0;
}

static void srv_t_closed_cb(struct raft_uv_transport *t)
{
    (void)t;
    S.t_closed = true;
}

static void srv_l_closed_cb(void *arg)
{
    (void)arg;
    S.l_closed = true;
}

static int teardown(void **state)
{
    (void)state;
    srv_drop_stream();
    S.t.close(&S.t, srv_t_closed_cb);
    bool ok = loop_wait_flag(&S.loop, &S.t_closed, 3000);
    ldg_transport_free(&S.t);
    ldg_listener_close(S.listener, srv_l_closed_cb, NULL);
    ok = loop_wait_flag(&S.loop, &S.l_closed, 3000) && ok;
    uv_run(&S.loop, UV_RUN_DEFAULT);
    int rv = uv_loop_close(&S.loop);
    cap_stop();
    assert_true(ok);
    assert_int_equal(rv, 0);
    return 0;
}

/* ---- a raw TCP client ---- */

struct probe {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    uv_shutdown_t sreq;
    const uint8_t *data;
    size_t len;
    bool eof_after; /* shut our side down after the bytes */
    bool connected, ended, reset, closed;
    size_t got;
    uint8_t rbuf[256];
};

static void probe_write_cb(uv_write_t *w, int status)
{
    (void)w;
    (void)status; /* EPIPE / ECONNRESET once the server closed: fine */
}

static void probe_shutdown_cb(uv_shutdown_t *r, int status)
{
    (void)r;
    (void)status;
}

static void probe_alloc_cb(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    (void)sz;
    struct probe *p = h->data;
    size_t off = p->got < sizeof p->rbuf ? p->got : sizeof p->rbuf - 1;
    *b = uv_buf_init((char *)p->rbuf + off, (unsigned)(sizeof p->rbuf - off));
}

static void probe_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    struct probe *p = s->data;
    if (n > 0) {
        p->got += (size_t)n;
        return;
    }
    if (n < 0) {
        p->ended = true;
        p->reset = n != UV_EOF;
        uv_read_stop(s);
    }
}

static void probe_connect_cb(uv_connect_t *req, int status)
{
    struct probe *p = req->data;
    if (status != 0) {
        fail_msg("probe connect: %s", uv_strerror(status));
        return;
    }
    p->connected = true;
    if (p->len > 0) {
        uv_buf_t b = uv_buf_init((char *)p->data, (unsigned)p->len);
        assert_int_equal(uv_write(&p->wreq, (uv_stream_t *)&p->tcp, &b, 1, probe_write_cb), 0);
    }
    if (p->eof_after)
        assert_int_equal(uv_shutdown(&p->sreq, (uv_stream_t *)&p->tcp, probe_shutdown_cb), 0);
    assert_int_equal(uv_read_start((uv_stream_t *)&p->tcp, probe_alloc_cb, probe_read_cb), 0);
}

/* Connect and send |len| bytes of |data| (must stay valid until
 * probe_close), then EOF when |eof_after|. */
static void probe_start(struct probe *p, const uint8_t *data, size_t len, bool eof_after)
{
    memset(p, 0, sizeof *p);
    p->data = data;
    p->len = len;
    p->eof_after = eof_after;
    struct sockaddr_storage sa;
    assert_int_equal(ldg_listener_parse_addr(S.addr, &sa), 0);
    assert_int_equal(uv_tcp_init(&S.loop, &p->tcp), 0);
    p->tcp.data = p;
    p->creq.data = p;
    assert_int_equal(
        uv_tcp_connect(&p->creq, &p->tcp, (struct sockaddr *)&sa, probe_connect_cb), 0);
}

static void probe_closed_cb(uv_handle_t *h)
{
    struct probe *p = h->data;
    p->closed = true;
}

static void probe_close(struct probe *p)
{
    uv_close((uv_handle_t *)&p->tcp, probe_closed_cb);
    assert_true(loop_wait_flag(&S.loop, &p->closed, 2000));
}

/* Send |data| then EOF; the server must close the connection without
 * sending anything and without handing a stream to libraft. */
static void expect_refused(const uint8_t *data, size_t len, bool eof_after)
{
    int before = S.accepted;
    struct probe p;
    probe_start(&p, data, len, eof_after);
    if (!loop_wait_flag(&S.loop, &p.ended, 3000))
        fail_msg("connection not closed (len=%zu)", len);
    assert_int_equal(p.got, 0);
    assert_int_equal(S.accepted, before);
    probe_close(&p);
}

/* ---- preambles ---- */

static void hmac_fix(uint8_t *pre, const char *secret)
{
    unsigned len = LDG_PREAMBLE_HMAC_LEN;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), pre, P_HMAC, pre + P_HMAC, &len);
}

static void valid_preamble(uint8_t pre[LDG_PREAMBLE_LEN], raft_id id, const char *addr)
{
    uint8_t cid[LDG_CLUSTER_ID_LEN];
    memset(cid, CID_BYTE, sizeof cid);
    assert_int_equal(ldg_preamble_build(pre, cid, id, addr, (const uint8_t *)SECRET,
                                        strlen(SECRET)),
                     0);
}

/* A dialing transport with the right cluster id and secret completes the
 * handshake with the server, and the stream carries bytes both ways. */
struct dial {
    struct raft_uv_connect req;
    bool done;
    int status;
    uv_stream_t *stream;
};

static void dial_cb(struct raft_uv_connect *req, struct uv_stream_s *stream, int status)
{
    struct dial *d = LDG_CONTAINER_OF(req, struct dial, req);
    d->done = true;
    d->status = status;
    d->stream = stream;
}

static bool client_closed;
static void client_closed_cb(struct raft_uv_transport *t)
{
    (void)t;
    client_closed = true;
}

static void assert_valid_peer_served(void)
{
    struct raft_uv_transport c;
    struct ldg_transport_opts o = {0};
    memset(o.cluster_id, CID_BYTE, sizeof o.cluster_id);
    o.secret = (const uint8_t *)SECRET;
    o.secret_len = strlen(SECRET);
    assert_int_equal(ldg_transport_init(&c, &S.loop, NULL, &o), 0);
    assert_int_equal(c.init(&c, 5, "127.0.0.1:5555"), 0);
    int before = S.accepted;
    srv_drop_stream();
    struct dial d;
    memset(&d, 0, sizeof d);
    assert_int_equal(c.connect(&c, &d.req, 2, S.addr, dial_cb), 0);
    assert_true(loop_wait_flag(&S.loop, &d.done, 3000));
    assert_int_equal(d.status, 0);
    uint64_t deadline = uv_now(&S.loop) + 3000;
    bool never = false;
    while (S.accepted == before && uv_now(&S.loop) < deadline)
        loop_wait_flag(&S.loop, &never, 10);
    assert_int_equal(S.accepted, before + 1);
    assert_int_equal(S.peer_id, 5);
    assert_string_equal(S.peer_addr, "127.0.0.1:5555");
    uv_close((uv_handle_t *)d.stream, raft_stream_closed_cb);
    srv_drop_stream();
    client_closed = false;
    c.close(&c, client_closed_cb);
    assert_true(loop_wait_flag(&S.loop, &client_closed, 3000));
    ldg_transport_free(&c);
}

#define REFUSING "refusing peer connection: "

/* ---- tests ---- */

/* Every proper prefix of a valid preamble, then EOF. Prefixes shorter than
 * the magic are the listener's (closed as unknown/incomplete); from the
 * magic on the transport refuses each one and says why. */
static void test_every_truncation_then_eof(void **state)
{
    (void)state;
    uint8_t pre[LDG_PREAMBLE_LEN];
    valid_preamble(pre, 9, "127.0.0.1:9");
    for (size_t len = 0; len < LDG_PREAMBLE_LEN; len++)
        expect_refused(pre, len, true);
    assert_int_equal(cap_count(REFUSING "connection closed inside the preamble"),
                     LDG_PREAMBLE_LEN - LDG_PREAMBLE_MAGIC_LEN);
    assert_int_equal(cap_count(REFUSING), LDG_PREAMBLE_LEN - LDG_PREAMBLE_MAGIC_LEN);
    assert_valid_peer_served();
}

/* A truncated preamble and then silence: closed at the handshake timeout. */
static void test_truncated_then_silence(void **state)
{
    (void)state;
    uint8_t pre[LDG_PREAMBLE_LEN];
    valid_preamble(pre, 9, "127.0.0.1:9");
    expect_refused(pre, LDG_PREAMBLE_LEN - 1, false);
    assert_int_equal(cap_count(REFUSING "preamble not received in time"), 1);
    assert_valid_peer_served();
}

struct sink {
    uint8_t *buf;
    size_t len, want;
    bool done;
};

static void sink_alloc_cb(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    struct sink *k = h->data;
    size_t room = k->want + 1 - k->len; /* one spare byte: catches extras */
    *b = uv_buf_init((char *)k->buf + k->len, (unsigned)(room < sz ? room : sz));
}

static void sink_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    struct sink *k = s->data;
    if (n < 0) {
        k->done = true;
        uv_read_stop(s);
        return;
    }
    k->len += (size_t)n;
    if (k->len >= k->want)
        k->done = true;
}

/* A valid preamble with Raft bytes right behind it in the same write: the
 * transport accepts, answers exactly one byte, and every byte after the
 * preamble reaches libraft's side of the stream, in order, none eaten. */
static void test_valid_preamble_with_trailing_bytes(void **state)
{
    (void)state;
    size_t extra = 100000;
    uint8_t *msg = ldg_malloc(LDG_PREAMBLE_LEN + extra);
    valid_preamble(msg, 9, "127.0.0.1:9");
    for (size_t i = 0; i < extra; i++)
        msg[LDG_PREAMBLE_LEN + i] = (uint8_t)(i * 7 + (i >> 8));
    struct probe p;
    probe_start(&p, msg, LDG_PREAMBLE_LEN + extra, false);
    uint64_t deadline = uv_now(&S.loop) + 3000;
    bool never = false;
    while ((S.accepted == 0 || p.got < 1) && uv_now(&S.loop) < deadline)
        loop_wait_flag(&S.loop, &never, 10);
    assert_int_equal(S.accepted, 1);
    assert_int_equal(S.peer_id, 9);
    assert_string_equal(S.peer_addr, "127.0.0.1:9");
    assert_int_equal(p.got, 1);
    assert_int_equal(p.rbuf[0], LDG_PREAMBLE_ACCEPT);

    struct sink k = {.buf = ldg_malloc(extra + 1), .want = extra};
    S.stream->data = &k;
    assert_int_equal(uv_read_start(S.stream, sink_alloc_cb, sink_read_cb), 0);
    assert_true(loop_wait_flag(&S.loop, &k.done, 5000));
    assert_int_equal(k.len, extra);
    assert_memory_equal(k.buf, msg + LDG_PREAMBLE_LEN, extra);
    assert_false(p.ended);
    assert_int_equal(p.got, 1); /* the accept byte and nothing else */
    assert_int_equal(cap_count(REFUSING), 0);
    probe_close(&p);
    ldg_free(k.buf);
    ldg_free(msg);
    assert_valid_peer_served();
}

/* Forged fields, each with a correct HMAC where the field is covered by it
 * so that the check under test is the one that refuses. */
static void test_forged_fields(void **state)
{
    (void)state;
    uint8_t pre[LDG_PREAMBLE_LEN + 1000];

    /* Address field without a NUL: 128 bytes of 'A', then 1000 more as if
     * the address went on. */
    valid_preamble(pre, 9, "127.0.0.1:9");
    memset(pre + P_ADDR, 'A', LDG_PREAMBLE_ADDR_LEN);
    hmac_fix(pre, SECRET);
    memset(pre + LDG_PREAMBLE_LEN, 'A', 1000);
    expect_refused(pre, LDG_PREAMBLE_LEN, true);
    expect_refused(pre, LDG_PREAMBLE_LEN + 1000, true);
    expect_refused(pre, LDG_PREAMBLE_LEN + 1000, false);
    assert_int_equal(cap_count(REFUSING "bad sender address"), 3);

    /* Empty address. */
    valid_preamble(pre, 9, "127.0.0.1:9");
    memset(pre + P_ADDR, 0, LDG_PREAMBLE_ADDR_LEN);
    hmac_fix(pre, SECRET);
    expect_refused(pre, LDG_PREAMBLE_LEN, true);
    assert_int_equal(cap_count(REFUSING "bad sender address"), 4);

    /* Node id 0. */
    valid_preamble(pre, 9, "127.0.0.1:9");
    memset(pre + P_NODE, 0, 8);
    hmac_fix(pre, SECRET);
    expect_refused(pre, LDG_PREAMBLE_LEN, true);
    assert_int_equal(cap_count(REFUSING "node id 0"), 1);

    /* Unknown versions. */
    const uint8_t versions[] = {0, 2, 0x7f, 0xff};
    for (size_t i = 0; i < LDG_ARRAY_SIZE(versions); i++) {
        valid_preamble(pre, 9, "127.0.0.1:9");
        pre[P_VERSION] = versions[i];
        hmac_fix(pre, SECRET);
        expect_refused(pre, LDG_PREAMBLE_LEN, true);
    }
    assert_int_equal(cap_count(REFUSING "unsupported preamble version"),
                     LDG_ARRAY_SIZE(versions));

    /* Another cluster id, signed with the right secret. */
    valid_preamble(pre, 9, "127.0.0.1:9");
    pre[P_CLUSTER + 3] ^= 0x01;
    hmac_fix(pre, SECRET);
    expect_refused(pre, LDG_PREAMBLE_LEN, true);
    assert_int_equal(cap_count(REFUSING "different cluster id"), 1);

    /* Right cluster id, forged HMACs: random, zero (no secret), another
     * secret, a valid one for other content (replayed onto a changed node
     * id), and one flipped bit. */
    valid_preamble(pre, 9, "127.0.0.1:9");
    for (size_t i = 0; i < LDG_PREAMBLE_HMAC_LEN; i++)
        pre[P_HMAC + i] = (uint8_t)(i * 37 + 11);
    expect_refused(pre, LDG_PREAMBLE_LEN, true);
    memset(pre + P_HMAC, 0, LDG_PREAMBLE_HMAC_LEN);
    expect_refused(pre, LDG_PREAMBLE_LEN, true);
    hmac_fix(pre, "some-other-secret");
    expect_refused(pre, LDG_PREAMBLE_LEN, true);
    valid_preamble(pre, 9, "127.0.0.1:9");
    pre[P_NODE + 7] = 10;
    expect_refused(pre, LDG_PREAMBLE_LEN, true);
    valid_preamble(pre, 9, "127.0.0.1:9");
    pre[P_HMAC + LDG_PREAMBLE_HMAC_LEN - 1] ^= 0x80;
    expect_refused(pre, LDG_PREAMBLE_LEN, true);
    assert_int_equal(cap_count(REFUSING "bad HMAC"), 5);

    /* Wrong magic: the listener does not route these to the transport. */
    static const char *const magics[] = {"LDGX", "ldgr", "LDG\0", "RGDL"};
    for (size_t i = 0; i < LDG_ARRAY_SIZE(magics); i++) {
        valid_preamble(pre, 9, "127.0.0.1:9");
        memcpy(pre, magics[i], 4);
        expect_refused(pre, LDG_PREAMBLE_LEN, true);
    }
    /* 3 + 1 + 1 + 4 + 1 + 5 refusals by the transport, none for the magics. */
    assert_int_equal(cap_count(REFUSING), 15);
    assert_int_equal(S.accepted, 0);
    assert_valid_peer_served();
}

/* 2000 seeded random inputs: pure noise, "LDGR" + noise, and valid
 * preambles with 1-4 bytes changed, each truncated or extended at random,
 * then EOF. Every one is refused; each that reached the transport (starts
 * with the magic) is logged with a reason decided from its content, never
 * by the timeout. */
static void test_random_inputs(void **state)
{
    (void)state;
    uint64_t seed = 0x5eed1234abcdULL;
    const char *env = getenv("LDG_FUZZ_SEED");
    if (env != NULL)
        seed = strtoull(env, NULL, 0);
    printf("seed 0x%llx (LDG_FUZZ_SEED to replay)\n", (unsigned long long)seed);
    uint64_t x = seed;
#define RND() (x ^= x << 13, x ^= x >> 7, x ^= x << 17, x)
    size_t to_transport = 0;
    uint8_t buf[2 * LDG_PREAMBLE_LEN + 64];
    for (int i = 0; i < 2000; i++) {
        size_t len = (size_t)(RND() % sizeof buf);
        for (size_t j = 0; j < sizeof buf; j++)
            buf[j] = (uint8_t)RND();
        switch (RND() % 3) {
        case 0: /* noise */
            break;
        case 1:
            memcpy(buf, LDG_PREAMBLE_MAGIC, LDG_PREAMBLE_MAGIC_LEN);
            break;
        default: {
            valid_preamble(buf, 1 + RND() % 1000, "127.0.0.1:7000");
            uint8_t orig[LDG_PREAMBLE_LEN];
            memcpy(orig, buf, sizeof orig);
            unsigned muts = 1 + (unsigned)(RND() % 4);
            for (unsigned m = 0; m < muts; m++) {
                size_t at = LDG_PREAMBLE_MAGIC_LEN +
                            (size_t)(RND() % (LDG_PREAMBLE_LEN - LDG_PREAMBLE_MAGIC_LEN));
                buf[at] ^= (uint8_t)(1 + RND() % 255);
            }
            if (memcmp(orig, buf, sizeof orig) == 0) /* two changes cancelled out */
                buf[P_HMAC] ^= 0x01;
            if (RND() % 2)
                len = LDG_PREAMBLE_LEN + (size_t)(RND() % (sizeof buf - LDG_PREAMBLE_LEN));
            break;
        }
        }
        if (len >= LDG_PREAMBLE_MAGIC_LEN &&
            memcmp(buf, LDG_PREAMBLE_MAGIC, LDG_PREAMBLE_MAGIC_LEN) == 0)
            to_transport++;
        int before = S.accepted;
        struct probe p;
        probe_start(&p, buf, len, true);
        if (!loop_wait_flag(&S.loop, &p.ended, 3000))
            fail_msg("input %d (len %zu) not closed", i, len);
        /* Noise that happens to start like an HTTP/1 request gets the
         * listener's text reply; nothing ever gets the accept byte. */
        if (p.got > 0)
            assert_int_not_equal(p.rbuf[0], LDG_PREAMBLE_ACCEPT);
        if (len >= LDG_PREAMBLE_MAGIC_LEN &&
            memcmp(buf, LDG_PREAMBLE_MAGIC, LDG_PREAMBLE_MAGIC_LEN) == 0)
            assert_int_equal(p.got, 0);
        assert_int_equal(S.accepted, before);
        probe_close(&p);
    }
#undef RND
    assert_true(to_transport > 1000);
    assert_int_equal(cap_count(REFUSING), to_transport);
    assert_int_equal(cap_count(REFUSING "preamble not received in time"), 0);
    assert_int_equal(S.accepted, 0);
    assert_valid_peer_served();
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    ldg_log_set_level(LDG_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_every_truncation_then_eof, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_then_silence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_valid_preamble_with_trailing_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forged_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_inputs, setup, teardown),
    };
    return cmocka_run_group_tests_name("transport_fuzz", tests, NULL, NULL);
}
