/* A fake struct ldg_grpc_call for unit-testing service handlers without the
 * HTTP/2 server: it records every message sent (packed bytes), how the call
 * ended, and lets the test cancel it.
 *
 * This header DEFINES the ldg_grpc_call_* functions of net/grpc.h, so include
 * it in exactly one source file of a test binary that does not use the real
 * server. (It is a header, not a .c file under tests/lib, so it is not linked into
 * every test binary.) Must be included after <cmocka.h>.
 *
 * Checks enforced with cmocka: each message sent has the method's response
 * type; a call is ended exactly once; nothing is sent after the end. */
#ifndef LDG_TESTS_FAKE_GRPC_CALL_H
#define LDG_TESTS_FAKE_GRPC_CALL_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/grpc.h"
#include "util/err.h"
#include "util/mem.h"

struct fake_msg {
    uint8_t *data;
    size_t len;
};

struct ldg_grpc_call {
    const struct ldg_grpc_method *method;
    struct fake_msg *sent; /* messages sent or replied, in order */
    size_t n_sent;
    int end_count;         /* times the call was ended (must end at 1) */
    int end_code;          /* gRPC status of the end */
    char end_msg[256];
    ldg_grpc_cancel_fn cancel_cb;
    void *cancel_arg;
    int cancelled;
    int send_rv;           /* what ldg_grpc_call_send returns (0 by default) */
};

static inline void fake_call_init(struct ldg_grpc_call *c, const struct ldg_grpc_method *m)
{
    memset(c, 0, sizeof *c);
    c->method = m;
    c->end_code = -1;
}

static inline void fake_call_close(struct ldg_grpc_call *c)
{
    for (size_t i = 0; i < c->n_sent; i++)
        ldg_free(c->sent[i].data);
    ldg_free(c->sent);
    c->sent = NULL;
    c->n_sent = 0;
}

/* Client cancels: fires the cancel callback if the call has not ended. */
static inline void fake_call_cancel(struct ldg_grpc_call *c)
{
    c->cancelled = 1;
    if (c->end_count == 0 && c->cancel_cb != NULL) {
        ldg_grpc_cancel_fn cb = c->cancel_cb;
        c->cancel_cb = NULL;
        cb(c, c->cancel_arg);
    }
}

/* Invoke the method handler like the server does (|req| may be NULL for a
 * bidi half-close). */
static inline void fake_call_invoke(struct ldg_grpc_call *c, const ProtobufCMessage *req)
{
    if (req != NULL)
        assert_ptr_equal(req->descriptor, c->method->request);
    c->method->handler(c, req, c->method->ud);
}

static inline void fake_record(struct ldg_grpc_call *c, const uint8_t *data, size_t len)
{
    c->sent = ldg_realloc(c->sent, (c->n_sent + 1) * sizeof *c->sent);
    c->sent[c->n_sent].data = ldg_memdup(len ? data : (const uint8_t *)"", len);
    c->sent[c->n_sent].len = len;
    c->n_sent++;
}

static inline void fake_record_msg(struct ldg_grpc_call *c, const ProtobufCMessage *m)
{
    assert_int_equal(c->end_count, 0);
    assert_ptr_equal(m->descriptor, c->method->response);
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = ldg_malloc(len ? len : 1);
    assert_int_equal(protobuf_c_message_pack(m, buf), len);
    fake_record(c, buf, len);
    ldg_free(buf);
}

static inline void fake_end(struct ldg_grpc_call *c, int code, const char *msg)
{
    c->end_count++;
    assert_int_equal(c->end_count, 1);
    c->end_code = code;
    snprintf(c->end_msg, sizeof c->end_msg, "%s", msg ? msg : "");
}

void ldg_grpc_call_reply(struct ldg_grpc_call *c, const ProtobufCMessage *resp)
{
    assert_int_equal(c->method->kind, LDG_GRPC_UNARY);
    fake_record_msg(c, resp);
    fake_end(c, LDG_GRPC_OK, NULL);
}

void ldg_grpc_call_reply_raw(struct ldg_grpc_call *c, const uint8_t *data, size_t len)
{
    assert_int_equal(c->end_count, 0);
    fake_record(c, data, len);
    fake_end(c, LDG_GRPC_OK, NULL);
}

void ldg_grpc_call_fail(struct ldg_grpc_call *c, int code, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    assert_int_not_equal(code, LDG_GRPC_OK);
    fake_end(c, code, msg);
}

int ldg_grpc_call_send(struct ldg_grpc_call *c, const ProtobufCMessage *msg)
{
    assert_int_not_equal(c->method->kind, LDG_GRPC_UNARY);
    if (c->send_rv != 0)
        return c->send_rv;
    fake_record_msg(c, msg);
    return 0;
}

void ldg_grpc_call_finish(struct ldg_grpc_call *c, int code, const char *msg)
{
    fake_end(c, code, msg);
}

void ldg_grpc_call_on_cancel(struct ldg_grpc_call *c, ldg_grpc_cancel_fn cb, void *arg)
{
    c->cancel_cb = cb;
    c->cancel_arg = arg;
}

int ldg_grpc_call_is_cancelled(const struct ldg_grpc_call *c)
{
    return c->cancelled;
}

int64_t ldg_grpc_call_remaining_ms(const struct ldg_grpc_call *c)
{
    return -1;
}

const char *ldg_grpc_call_header(const struct ldg_grpc_call *c, const char *name)
{
    return NULL;
}

int ldg_grpc_call_header_at(const struct ldg_grpc_call *c, size_t i, const char **name,
                            const char **value)
{
    return 0;
}

const char *ldg_grpc_call_path(const struct ldg_grpc_call *c)
{
    return "/fake/Call";
}

const struct ldg_grpc_method *ldg_grpc_call_method(const struct ldg_grpc_call *c)
{
    return c->method;
}

const uint8_t *ldg_grpc_call_request_bytes(const struct ldg_grpc_call *c, size_t *len)
{
    *len = 0;
    return NULL;
}

const char *ldg_grpc_call_peer(const struct ldg_grpc_call *c)
{
    return "127.0.0.1:1";
}

void ldg_grpc_call_add_trailer(struct ldg_grpc_call *c, const char *name, const char *value)
{
}

#endif
