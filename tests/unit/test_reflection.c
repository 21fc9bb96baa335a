/* Server reflection: the descriptor index over the embedded set and over a
 * hand-encoded set, and the v1/v1alpha handlers through a fake call.
 *
 * With LDG_REFLECTION_DUMP_DIR set, test_dump_responses also writes the
 * ServerReflectionResponse bytes of file_by_filename for every embedded file
 * to that directory, for tests/tools/check_reflection.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fake_grpc_call.h"
#include "grpc/reflection/v1/reflection.pb-c.h"
#include "grpc/reflection/v1alpha/reflection.pb-c.h"
#include "net/reflection.h"
#include "util/buf.h"

extern const uint8_t ldg_descriptor_set[];
extern const size_t ldg_descriptor_set_len;

/* ---- a tiny protobuf encoder for hand-made descriptor sets ---- */

static void put_varint(struct ldg_buf *b, uint64_t v)
{
    while (v >= 0x80) {
        ldg_buf_u8(b, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    ldg_buf_u8(b, (uint8_t)v);
}

static void put_bytes(struct ldg_buf *b, uint32_t field, const void *p, size_t len)
{
    put_varint(b, (uint64_t)field << 3 | 2);
    put_varint(b, len);
    ldg_buf_append(b, p, len);
}

static void put_str(struct ldg_buf *b, uint32_t field, const char *s)
{
    put_bytes(b, field, s, strlen(s));
}

static void put_int(struct ldg_buf *b, uint32_t field, uint64_t v)
{
    put_varint(b, (uint64_t)field << 3);
    put_varint(b, v);
}

/* Append |inner| as field |field| and reset it. */
static void put_msg(struct ldg_buf *b, uint32_t field, struct ldg_buf *inner)
{
    put_bytes(b, field, inner->data, inner->len);
    ldg_buf_reset(inner);
}

/* A message with only a name (field, enum value, method, oneof). */
static void put_named(struct ldg_buf *b, uint32_t field, const char *name)
{
    struct ldg_buf m;
    ldg_buf_init(&m);
    put_str(&m, 1, name);
    put_msg(b, field, &m);
    ldg_buf_close(&m);
}

/* c.proto: package lib; message Time { int64 s = 1; }
 * b.proto: package lib; import c.proto; enum Color { RED = 0; }
 * a.proto: package app; import b.proto; import c.proto;
 *          message Outer { message Inner {} ; int32 x = 1; oneof o {...} }
 *          service Svc { rpc Do(...) }
 *          extend lib.Time { int32 ext = 100; }
 * plus a trailing duplicate of c.proto (must be ignored). */
struct synth {
    struct ldg_buf set;
    struct ldg_buf a, b, c; /* each file's FileDescriptorProto bytes */
};

static void synth_build(struct synth *s)
{
    struct ldg_buf t1, t2;
    ldg_buf_init(&s->set);
    ldg_buf_init(&s->a);
    ldg_buf_init(&s->b);
    ldg_buf_init(&s->c);
    ldg_buf_init(&t1);
    ldg_buf_init(&t2);

    /* c.proto: package before name, to check field order does not matter */
    put_str(&s->c, 2, "lib");
    put_str(&s->c, 1, "c.proto");
    put_str(&t1, 1, "Time");
    put_named(&t1, 2, "s");
    put_msg(&s->c, 4, &t1);
    put_str(&s->c, 12, "proto3"); /* syntax: skipped */

    put_str(&s->b, 1, "b.proto");
    put_str(&s->b, 2, "lib");
    put_str(&s->b, 3, "c.proto");
    put_str(&t1, 1, "Color");
    put_named(&t1, 2, "RED");
    put_msg(&s->b, 5, &t1);

    put_str(&s->a, 1, "a.proto");
    put_str(&s->a, 2, "app");
    put_str(&s->a, 3, "b.proto");
    put_str(&s->a, 3, "c.proto");
    put_str(&t1, 1, "Outer");
    put_named(&t1, 2, "x");
    put_named(&t1, 3, "Inner");
    put_named(&t1, 8, "o");
    put_msg(&s->a, 4, &t1);
    put_str(&t1, 1, "Svc");
    put_named(&t1, 2, "Do");
    put_msg(&s->a, 6, &t1);
    put_str(&t1, 1, "ext");
    put_str(&t1, 2, ".lib.Time");
    put_int(&t1, 3, 100);
    put_msg(&s->a, 7, &t1);

    put_bytes(&s->set, 1, s->c.data, s->c.len);
    put_bytes(&s->set, 1, s->b.data, s->b.len);
    put_bytes(&s->set, 1, s->a.data, s->a.len);
    put_str(&t2, 1, "c.proto");
    put_str(&t2, 2, "other");
    put_named(&t2, 4, "Time");
    put_msg(&s->set, 1, &t2);
    ldg_buf_close(&t1);
    ldg_buf_close(&t2);
}

static void synth_close(struct synth *s)
{
    ldg_buf_close(&s->set);
    ldg_buf_close(&s->a);
    ldg_buf_close(&s->b);
    ldg_buf_close(&s->c);
}

static void assert_file_bytes(const struct ldg_refl_file *f, const struct ldg_buf *want)
{
    assert_non_null(f);
    assert_int_equal(f->len, want->len);
    assert_memory_equal(f->data, want->data, want->len);
}

/* ---- index over the hand-made set ---- */

static void test_index_synthetic(void **state)
{
    (void)state;
    struct synth s;
    synth_build(&s);
    struct ldg_refl_index *idx;
    assert_int_equal(ldg_refl_index_new(s.set.data, s.set.len, &idx), 0);
    assert_int_equal(ldg_refl_index_file_count(idx), 3); /* duplicate c.proto dropped */

    assert_file_bytes(ldg_refl_index_file(idx, "a.proto"), &s.a);
    assert_file_bytes(ldg_refl_index_file(idx, "c.proto"), &s.c);
    assert_null(ldg_refl_index_file(idx, "d.proto"));

    struct {
        const char *sym;
        const char *file;
        int kind;
    } cases[] = {
        {"lib.Time", "c.proto", LDG_REFL_SYM_MESSAGE},
        {"lib.Time.s", "c.proto", LDG_REFL_SYM_FIELD},
        {"lib.Color", "b.proto", LDG_REFL_SYM_ENUM},
        {"lib.RED", "b.proto", LDG_REFL_SYM_ENUM_VALUE},
        {"app.Outer", "a.proto", LDG_REFL_SYM_MESSAGE},
        {"app.Outer.Inner", "a.proto", LDG_REFL_SYM_MESSAGE},
        {"app.Outer.x", "a.proto", LDG_REFL_SYM_FIELD},
        {"app.Outer.o", "a.proto", LDG_REFL_SYM_ONEOF},
        {"app.Svc", "a.proto", LDG_REFL_SYM_SERVICE},
        {"app.Svc.Do", "a.proto", LDG_REFL_SYM_METHOD},
        {"app.ext", "a.proto", LDG_REFL_SYM_EXTENSION},
    };
    for (size_t i = 0; i < LDG_ARRAY_SIZE(cases); i++) {
        int kind = 0;
        const struct ldg_refl_file *f = ldg_refl_index_symbol(idx, cases[i].sym, &kind);
        assert_non_null(f);
        assert_string_equal(f->name, cases[i].file);
        assert_int_equal(kind, cases[i].kind);
    }
    assert_null(ldg_refl_index_symbol(idx, "app.Nope", NULL));
    assert_null(ldg_refl_index_symbol(idx, "other.Time", NULL)); /* from the dropped dup */
    assert_null(ldg_refl_index_symbol(idx, ".app.Outer", NULL));
    assert_null(ldg_refl_index_symbol(idx, "app", NULL));

    /* Transitive closure: a, then b, then c (once, though a and b import it). */
    const struct ldg_refl_file **files;
    size_t n;
    assert_int_equal(ldg_refl_index_closure(idx, "a.proto", &files, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(files[0]->name, "a.proto");
    assert_string_equal(files[1]->name, "b.proto");
    assert_string_equal(files[2]->name, "c.proto");
    ldg_free(files);
    assert_int_equal(ldg_refl_index_closure(idx, "c.proto", &files, &n), 0);
    assert_int_equal(n, 1);
    ldg_free(files);
    assert_int_equal(ldg_refl_index_closure(idx, "zz.proto", &files, &n), LDG_ENOTFOUND);

    assert_int_equal(ldg_refl_index_service_count(idx), 1);
    assert_string_equal(ldg_refl_index_service_at(idx, 0), "app.Svc");

    /* Extensions. */
    const struct ldg_refl_file *f = ldg_refl_index_extension(idx, "lib.Time", 100);
    assert_non_null(f);
    assert_string_equal(f->name, "a.proto");
    assert_null(ldg_refl_index_extension(idx, "lib.Time", 101));
    int32_t *nums;
    assert_int_equal(ldg_refl_index_extension_numbers(idx, "lib.Time", &nums, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(nums[0], 100);
    ldg_free(nums);
    assert_int_equal(ldg_refl_index_extension_numbers(idx, "app.Outer.Inner", &nums, &n), 0);
    assert_int_equal(n, 0);
    ldg_free(nums);
    assert_int_equal(ldg_refl_index_extension_numbers(idx, "app.Svc", &nums, &n),
                     LDG_ENOTFOUND);
    assert_int_equal(ldg_refl_index_extension_numbers(idx, "app.None", &nums, &n),
                     LDG_ENOTFOUND);

    ldg_refl_index_free(idx);
    synth_close(&s);
}

static void test_index_corrupt(void **state)
{
    (void)state;
    struct synth s;
    synth_build(&s);
    struct ldg_refl_index *idx = NULL;
    /* Every strict prefix that cuts a field is rejected; none crashes. */
    for (size_t cut = 1; cut < s.set.len; cut++) {
        int rv = ldg_refl_index_new(s.set.data, cut, &idx);
        if (rv == 0) {
            ldg_refl_index_free(idx);
            continue;
        }
        assert_int_equal(rv, LDG_ECORRUPT);
    }
    assert_int_equal(ldg_refl_index_new(s.set.data, s.set.len - 1, &idx), LDG_ECORRUPT);

    /* A file without a name. */
    struct ldg_buf b, f;
    ldg_buf_init(&b);
    ldg_buf_init(&f);
    put_str(&f, 2, "pkg");
    put_msg(&b, 1, &f);
    assert_int_equal(ldg_refl_index_new(b.data, b.len, &idx), LDG_ECORRUPT);
    /* A group wire type. */
    ldg_buf_reset(&b);
    put_varint(&b, 1 << 3 | 3);
    assert_int_equal(ldg_refl_index_new(b.data, b.len, &idx), LDG_ECORRUPT);
    /* Empty set: valid, no files. */
    assert_int_equal(ldg_refl_index_new(NULL, 0, &idx), 0);
    assert_int_equal(ldg_refl_index_file_count(idx), 0);
    ldg_refl_index_free(idx);
    ldg_buf_close(&b);
    ldg_buf_close(&f);
    synth_close(&s);
}

/* ---- index over the embedded set ---- */

static const void *find_bytes(const void *hay, size_t hlen, const void *needle, size_t nlen)
{
    return memmem(hay, hlen, needle, nlen);
}

static void test_index_embedded(void **state)
{
    (void)state;
    assert_int_equal(ldg_reflection_init(NULL), 0);
    const struct ldg_refl_index *idx = ldg_reflection_index();
    assert_non_null(idx);

    const struct ldg_refl_file *health = ldg_refl_index_file(idx, "grpc/health/v1/health.proto");
    assert_non_null(health);
    /* The exact bytes of the set. */
    assert_non_null(find_bytes(ldg_descriptor_set, ldg_descriptor_set_len, health->data,
                               health->len));

    int kind = 0;
    const struct ldg_refl_file *f = ldg_refl_index_symbol(idx, "grpc.health.v1.Health", &kind);
    assert_ptr_equal(f, health);
    assert_int_equal(kind, LDG_REFL_SYM_SERVICE);
    f = ldg_refl_index_symbol(idx, "grpc.health.v1.Health.Watch", &kind);
    assert_ptr_equal(f, health);
    assert_int_equal(kind, LDG_REFL_SYM_METHOD);
    f = ldg_refl_index_symbol(idx, "grpc.health.v1.HealthCheckResponse.ServingStatus", &kind);
    assert_ptr_equal(f, health);
    assert_int_equal(kind, LDG_REFL_SYM_ENUM);
    f = ldg_refl_index_symbol(idx, "grpc.health.v1.HealthCheckResponse.SERVICE_UNKNOWN", &kind);
    assert_ptr_equal(f, health);
    assert_int_equal(kind, LDG_REFL_SYM_ENUM_VALUE);
    f = ldg_refl_index_symbol(idx, "grpc.reflection.v1.ServerReflectionRequest", &kind);
    assert_non_null(f);
    assert_string_equal(f->name, "grpc/reflection/v1/reflection.proto");
    f = ldg_refl_index_symbol(idx, "grpc.reflection.v1alpha.ServerReflection", &kind);
    assert_non_null(f);
    assert_string_equal(f->name, "grpc/reflection/v1alpha/reflection.proto");
    assert_null(ldg_refl_index_symbol(idx, "grpc.health.v1.Nope", NULL));

    /* The set's services include ours. */
    const char *want[] = {"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
                          "grpc.reflection.v1alpha.ServerReflection"};
    for (size_t i = 0; i < LDG_ARRAY_SIZE(want); i++) {
        size_t j;
        for (j = 0; j < ldg_refl_index_service_count(idx); j++)
            if (strcmp(ldg_refl_index_service_at(idx, j), want[i]) == 0)
                break;
        assert_true(j < ldg_refl_index_service_count(idx));
    }

    /* When the ledger API is in the set, its closure carries its imports
     * (google/protobuf/timestamp.proto is what grpcurl needs). */
    const struct ldg_refl_file *ledger = ldg_refl_index_file(idx, "ledger/v1/ledger.proto");
    if (ledger != NULL) {
        const struct ldg_refl_file **files;
        size_t n, i;
        assert_int_equal(ldg_refl_index_closure(idx, ledger->name, &files, &n), 0);
        assert_ptr_equal(files[0], ledger);
        for (i = 0; i < n; i++)
            if (strcmp(files[i]->name, "google/protobuf/timestamp.proto") == 0)
                break;
        if (ldg_refl_index_file(idx, "google/protobuf/timestamp.proto") != NULL)
            assert_true(i < n);
        ldg_free(files);
    }
}

/* ---- handlers ---- */

struct add_log {
    const struct ldg_grpc_method *m[4];
    size_t n;
    int fail_at; /* return LDG_EIO on this call (1-based), 0: never */
};

static int add_method(void *server, const struct ldg_grpc_method *m)
{
    struct add_log *log = server;
    if (log->n + 1 == (size_t)log->fail_at)
        return LDG_EIO;
    log->m[log->n++] = m;
    return 0;
}

static void test_register(void **state)
{
    (void)state;
    struct add_log log = {{0}, 0, 0};
    assert_int_equal(ldg_reflection_register(add_method, &log), 0);
    assert_int_equal(log.n, 2);
    assert_string_equal(log.m[0]->service, "grpc.reflection.v1.ServerReflection");
    assert_string_equal(log.m[1]->service, "grpc.reflection.v1alpha.ServerReflection");
    assert_ptr_equal(log.m[0]->request, &grpc__reflection__v1__server_reflection_request__descriptor);
    assert_ptr_equal(log.m[1]->response,
                     &grpc__reflection__v1alpha__server_reflection_response__descriptor);
    assert_non_null(ldg_reflection_index());
    struct add_log bad = {{0}, 0, 2};
    assert_int_equal(ldg_reflection_register(add_method, &bad), LDG_EIO);
    assert_int_equal(bad.n, 1);
    ldg_reflection_close();
}

static const struct ldg_grpc_method *method_of(const char *service)
{
    const struct ldg_grpc_method *m;
    size_t n;
    assert_int_equal(ldg_reflection_methods(&m, &n), 0);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(m[i].service, service) == 0) {
            assert_string_equal(m[i].method, "ServerReflectionInfo");
            assert_int_equal(m[i].kind, LDG_GRPC_BIDI_STREAM);
            return &m[i];
        }
    }
    fail_msg("no method for %s", service);
    return NULL;
}

typedef Grpc__Reflection__V1__ServerReflectionRequest Req1;
typedef Grpc__Reflection__V1__ServerReflectionResponse Resp1;

/* Send |req| on |c| and decode the one new response. Caller frees with
 * grpc__reflection__v1__server_reflection_response__free_unpacked. */
static Resp1 *ask_v1(struct ldg_grpc_call *c, Req1 *req)
{
    size_t before = c->n_sent;
    fake_call_invoke(c, &req->base);
    assert_int_equal(c->end_count, 0);
    assert_int_equal(c->n_sent, before + 1);
    Resp1 *r = grpc__reflection__v1__server_reflection_response__unpack(
        NULL, c->sent[before].len, c->sent[before].data);
    assert_non_null(r);
    /* Echoes. */
    assert_string_equal(r->valid_host, req->host);
    assert_non_null(r->original_request);
    assert_int_equal(r->original_request->message_request_case, req->message_request_case);
    return r;
}

static Req1 req_string(int which, const char *s)
{
    Req1 req = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
    req.host = "localhost:50051";
    req.message_request_case = (Grpc__Reflection__V1__ServerReflectionRequest__MessageRequestCase)which;
    switch (which) {
    case 3:
        req.file_by_filename = (char *)s;
        break;
    case 4:
        req.file_containing_symbol = (char *)s;
        break;
    case 6:
        req.all_extension_numbers_of_type = (char *)s;
        break;
    case 7:
        req.list_services = (char *)s;
        break;
    default:
        break;
    }
    return req;
}

static void assert_files(Resp1 *r, const struct ldg_buf *const *want, size_t n)
{
    assert_int_equal(r->message_response_case,
                     GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE);
    assert_int_equal(r->file_descriptor_response->n_file_descriptor_proto, n);
    for (size_t i = 0; i < n; i++) {
        ProtobufCBinaryData *b = &r->file_descriptor_response->file_descriptor_proto[i];
        assert_int_equal(b->len, want[i]->len);
        assert_memory_equal(b->data, want[i]->data, want[i]->len);
    }
}

static void assert_error(Resp1 *r, int code, const char *needle)
{
    assert_int_equal(r->message_response_case,
                     GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE);
    assert_int_equal(r->error_response->error_code, code);
    assert_non_null(strstr(r->error_response->error_message, needle));
}

static void test_handler_v1_synthetic(void **state)
{
    (void)state;
    struct synth s;
    synth_build(&s);
    assert_int_equal(ldg_reflection_init_from(s.set.data, s.set.len, NULL), 0);
    const char *names[] = {"grpc.reflection.v1.ServerReflection",
                           "grpc.reflection.v1alpha.ServerReflection",
                           "grpc.health.v1.Health", "app.Svc"};
    assert_int_equal(ldg_reflection_set_services(names, LDG_ARRAY_SIZE(names)), 0);
    assert_int_equal(ldg_reflection_add_service("app.Svc"), 0); /* already listed */

    struct ldg_grpc_call c;
    fake_call_init(&c, method_of("grpc.reflection.v1.ServerReflection"));
    const struct ldg_buf *abc[] = {&s.a, &s.b, &s.c};

    /* list_services */
    Req1 req = req_string(7, "*");
    Resp1 *r = ask_v1(&c, &req);
    assert_string_equal(r->original_request->list_services, "*");
    assert_int_equal(r->message_response_case,
                     GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE);
    assert_int_equal(r->list_services_response->n_service, LDG_ARRAY_SIZE(names));
    for (size_t i = 0; i < LDG_ARRAY_SIZE(names); i++)
        assert_string_equal(r->list_services_response->service[i]->name, names[i]);
    grpc__reflection__v1__server_reflection_response__free_unpacked(r, NULL);

    /* file_by_filename: the file and its transitive dependencies */
    req = req_string(3, "a.proto");
    r = ask_v1(&c, &req);
    assert_string_equal(r->original_request->file_by_filename, "a.proto");
    assert_files(r, abc, 3);
    grpc__reflection__v1__server_reflection_response__free_unpacked(r, NULL);

    req = req_string(3, "b.proto");
    r = ask_v1(&c, &req);
    assert_files(r, abc + 1, 2);
    grpc__reflection__v1__server_reflection_response__free_unpacked(r, NULL);

    req = req_string(3, "missing.proto");
    r = ask_v1(&c, &req);
    assert_error(r, LDG_GRPC_NOT_FOUND, "missing.proto");
    grpc__reflection__v1__server_reflection_response__free_unpacked(r, NULL);

    /* file_containing_symbol, nested type and method */
    req = req_string(4, "app.Outer.Inner");
    r = ask_v1(&c, &req);
    assert_files(r, abc, 3);
    grpc__reflection__v1__server_reflection_response__free_unpacked(r, NULL);

    req = req_string(4, "app.Svc.Do");
    r = ask_v1(&c, &req);
    assert_files(r, abc, 3);
    grpc__reflection__v1__server_reflection_response__free_unpacked(r, NULL);

    req = req_string(4, "lib.Time");
    r = ask_v1(&c, &req);
    assert_files(r, abc + 2, 1);
    grpc__reflection__v1__server_reflection_response__free_unpacked(r, NULL);

    req = req_string(4, "app.Unknown");
    r = ask_v1(&c, &req);
    assert_error(r, LDG_GRPC_NOT_FOUND, "app.Unknown");
    grpc__reflection__v1__server_reflection_response__free_unpacked(r, NULL);

    /* file_containing_extension */
    Grpc__Reflection__V1__ExtensionRequest er = GRPC__REFLECTION__V1__EXTENSION_REQUEST__INIT;
    er.containing_type = "lib.Time";
    er.extension_number = 100;
    req = req_string(5, NULL);
    req.file_containing_extension = &er;
    r = ask_v1(&c, &req);
    assert_string_equal(r->original_request->file_containing_extension->containing_type,
                        "lib.Time");
    assert_files(r, abc, 3);
    grpc__reflection__v1__server_reflection_response__free_unpacked(r, NULL);
    er.extension_number = 7;
    r = ask_v1(&c, &req);
    assert_error(r, LDG_GRPC_NOT_FOUND, "lib.Time");
    grpc__reflection__v1__server_reflection_response__free_unpacked(r, NULL);

    /* all_extension_numbers_of_type */
    req = req_string(6, "lib.Time");
    r = ask_v1(&c, &req);
    assert_int_equal(r->message_response_case,
                     GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE);
    assert_string_equal(r->all_extension_numbers_response->base_type_name, "lib.Time");
    assert_int_equal(r->all_extension_numbers_response->n_extension_number, 1);
    assert_int_equal(r->all_extension_numbers_response->extension_number[0], 100);
    grpc__reflection__v1__server_reflection_response__free_unpacked(r, NULL);

    req = req_string(6, "app.Outer");
    r = ask_v1(&c, &req);
    assert_int_equal(r->message_response_case,
                     GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE);
    assert_int_equal(r->all_extension_numbers_response->n_extension_number, 0);
    grpc__reflection__v1__server_reflection_response__free_unpacked(r, NULL);

    req = req_string(6, "lib.Nope");
    r = ask_v1(&c, &req);
    assert_error(r, LDG_GRPC_NOT_FOUND, "lib.Nope");
    grpc__reflection__v1__server_reflection_response__free_unpacked(r, NULL);

    /* Client half-close ends the stream OK after 13 answers. */
    assert_int_equal(c.n_sent, 13);
    fake_call_invoke(&c, NULL);
    assert_int_equal(c.end_count, 1);
    assert_int_equal(c.end_code, LDG_GRPC_OK);
    fake_call_close(&c);

    /* No service list set: every service of the set. */
    assert_int_equal(ldg_reflection_set_services(NULL, 0), 0);
    fake_call_init(&c, method_of("grpc.reflection.v1.ServerReflection"));
    req = req_string(7, "");
    r = ask_v1(&c, &req);
    assert_int_equal(r->list_services_response->n_service, 1);
    assert_string_equal(r->list_services_response->service[0]->name, "app.Svc");
    grpc__reflection__v1__server_reflection_response__free_unpacked(r, NULL);
    fake_call_cancel(&c);
    assert_int_equal(c.end_count, 1);
    assert_int_equal(c.end_code, LDG_GRPC_CANCELLED);
    fake_call_close(&c);

    ldg_reflection_close();
    synth_close(&s);
}

static void test_handler_v1_bad_requests(void **state)
{
    (void)state;
    assert_int_equal(ldg_reflection_init(NULL), 0);
    struct ldg_grpc_call c;

    /* No message_request: the stream ends with INVALID_ARGUMENT. */
    fake_call_init(&c, method_of("grpc.reflection.v1.ServerReflection"));
    Req1 req = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
    fake_call_invoke(&c, &req.base);
    assert_int_equal(c.n_sent, 0);
    assert_int_equal(c.end_count, 1);
    assert_int_equal(c.end_code, LDG_GRPC_INVALID_ARGUMENT);
    fake_call_close(&c);

    /* A full send queue ends the stream with RESOURCE_EXHAUSTED. */
    fake_call_init(&c, method_of("grpc.reflection.v1.ServerReflection"));
    c.send_rv = LDG_EFULL;
    req = req_string(7, "");
    fake_call_invoke(&c, &req.base);
    assert_int_equal(c.end_count, 1);
    assert_int_equal(c.end_code, LDG_GRPC_RESOURCE_EXHAUSTED);
    fake_call_close(&c);

    /* A closed stream: no end yet; the cancel callback ends it. */
    fake_call_init(&c, method_of("grpc.reflection.v1.ServerReflection"));
    c.send_rv = LDG_ECLOSED;
    fake_call_invoke(&c, &req.base);
    assert_int_equal(c.end_count, 0);
    fake_call_cancel(&c);
    assert_int_equal(c.end_count, 1);
    assert_int_equal(c.end_code, LDG_GRPC_CANCELLED);
    fake_call_close(&c);

    /* Already cancelled when a request arrives. */
    fake_call_init(&c, method_of("grpc.reflection.v1.ServerReflection"));
    c.cancelled = 1;
    fake_call_invoke(&c, &req.base);
    assert_int_equal(c.n_sent, 0);
    assert_int_equal(c.end_count, 1);
    assert_int_equal(c.end_code, LDG_GRPC_CANCELLED);
    fake_call_close(&c);
    ldg_reflection_close();
}

static void test_handler_embedded(void **state)
{
    (void)state;
    assert_int_equal(ldg_reflection_init(NULL), 0);
    const char *names[] = {"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
                           "grpc.reflection.v1alpha.ServerReflection"};
    ldg_reflection_set_services(names, LDG_ARRAY_SIZE(names));
    const struct ldg_refl_index *idx = ldg_reflection_index();
    const struct ldg_refl_file *health = ldg_refl_index_file(idx, "grpc/health/v1/health.proto");
    const struct ldg_refl_file *ledger = ldg_refl_index_file(idx, "ledger/v1/ledger.proto");
    const struct ldg_refl_file *target = ledger != NULL ? ledger : health;
    assert_non_null(target);

    struct ldg_grpc_call c;
    fake_call_init(&c, method_of("grpc.reflection.v1.ServerReflection"));
    Req1 req = req_string(3, target->name);
    Resp1 *r = ask_v1(&c, &req);
    assert_int_equal(r->message_response_case,
                     GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE);
    assert_true(r->file_descriptor_response->n_file_descriptor_proto >= 1);
    ProtobufCBinaryData *b = &r->file_descriptor_response->file_descriptor_proto[0];
    assert_int_equal(b->len, target->len);
    assert_memory_equal(b->data, target->data, target->len);
    /* ledger.proto's answer carries google/protobuf/timestamp.proto too. */
    const struct ldg_refl_file *ts =
        ldg_refl_index_file(idx, "google/protobuf/timestamp.proto");
    if (ledger != NULL && ts != NULL) {
        size_t i, n = r->file_descriptor_response->n_file_descriptor_proto;
        for (i = 1; i < n; i++) {
            b = &r->file_descriptor_response->file_descriptor_proto[i];
            if (b->len == ts->len && memcmp(b->data, ts->data, ts->len) == 0)
                break;
        }
        assert_true(i < n);
    }
    grpc__reflection__v1__server_reflection_response__free_unpacked(r, NULL);

    if (ledger != NULL) { /* a method of the ledger API resolves to its file */
        req = req_string(4, "ledger.v1.ReadService");
        r = ask_v1(&c, &req);
        assert_int_equal(r->message_response_case,
                         GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE);
        b = &r->file_descriptor_response->file_descriptor_proto[0];
        assert_int_equal(b->len, ledger->len);
        grpc__reflection__v1__server_reflection_response__free_unpacked(r, NULL);
    }

    req = req_string(4, "grpc.health.v1.Health");
    r = ask_v1(&c, &req);
    assert_int_equal(r->file_descriptor_response->n_file_descriptor_proto, 1);
    b = &r->file_descriptor_response->file_descriptor_proto[0];
    assert_int_equal(b->len, health->len);
    assert_memory_equal(b->data, health->data, health->len);
    grpc__reflection__v1__server_reflection_response__free_unpacked(r, NULL);
    fake_call_invoke(&c, NULL);
    assert_int_equal(c.end_code, LDG_GRPC_OK);
    fake_call_close(&c);

    /* v1alpha: same answers with its own generated types. */
    fake_call_init(&c, method_of("grpc.reflection.v1alpha.ServerReflection"));
    Grpc__Reflection__V1alpha__ServerReflectionRequest areq =
        GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__INIT;
    areq.host = "h";
    areq.message_request_case =
        GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES;
    areq.list_services = "";
    fake_call_invoke(&c, &areq.base);
    areq.message_request_case =
        GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL;
    areq.file_containing_symbol = "grpc.health.v1.HealthCheckResponse.ServingStatus";
    fake_call_invoke(&c, &areq.base);
    areq.file_containing_symbol = "no.such.Symbol";
    fake_call_invoke(&c, &areq.base);
    assert_int_equal(c.n_sent, 3);

    Grpc__Reflection__V1alpha__ServerReflectionResponse *ar =
        grpc__reflection__v1alpha__server_reflection_response__unpack(NULL, c.sent[0].len,
                                                                      c.sent[0].data);
    assert_non_null(ar);
    assert_string_equal(ar->valid_host, "h");
    assert_int_equal(ar->list_services_response->n_service, 3);
    for (size_t i = 0; i < 3; i++)
        assert_string_equal(ar->list_services_response->service[i]->name, names[i]);
    grpc__reflection__v1alpha__server_reflection_response__free_unpacked(ar, NULL);

    ar = grpc__reflection__v1alpha__server_reflection_response__unpack(NULL, c.sent[1].len,
                                                                       c.sent[1].data);
    assert_non_null(ar);
    assert_int_equal(ar->message_response_case,
                     GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE);
    assert_int_equal(ar->file_descriptor_response->file_descriptor_proto[0].len, health->len);
    assert_memory_equal(ar->file_descriptor_response->file_descriptor_proto[0].data,
                        health->data, health->len);
    grpc__reflection__v1alpha__server_reflection_response__free_unpacked(ar, NULL);

    ar = grpc__reflection__v1alpha__server_reflection_response__unpack(NULL, c.sent[2].len,
                                                                       c.sent[2].data);
    assert_non_null(ar);
    assert_int_equal(ar->message_response_case,
                     GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE);
    assert_int_equal(ar->error_response->error_code, 5);
    assert_non_null(strstr(ar->error_response->error_message, "no.such.Symbol"));
    grpc__reflection__v1alpha__server_reflection_response__free_unpacked(ar, NULL);
    fake_call_invoke(&c, NULL);
    assert_int_equal(c.end_code, LDG_GRPC_OK);
    fake_call_close(&c);
    ldg_reflection_close();
}

/* The wire bytes of v1 responses for every embedded file, for the Python
 * check (tests/tools/check_reflection.py). Without the variable it still
 * checks that every file of the set is answered. */
static void test_dump_responses(void **state)
{
    (void)state;
    const char *dir = getenv("LDG_REFLECTION_DUMP_DIR");
    assert_int_equal(ldg_reflection_init(NULL), 0);
    const struct ldg_refl_index *idx = ldg_reflection_index();
    struct ldg_grpc_call c;
    fake_call_init(&c, method_of("grpc.reflection.v1.ServerReflection"));
    size_t nfiles = ldg_refl_index_file_count(idx);
    for (size_t i = 0; i < nfiles; i++) {
        Req1 req = req_string(3, ldg_refl_index_file_at(idx, i)->name);
        Resp1 *r = ask_v1(&c, &req);
        assert_int_equal(r->message_response_case,
                         GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE);
        grpc__reflection__v1__server_reflection_response__free_unpacked(r, NULL);
    }
    Req1 req = req_string(7, "");
    grpc__reflection__v1__server_reflection_response__free_unpacked(ask_v1(&c, &req), NULL);
    if (dir != NULL) {
        for (size_t i = 0; i < c.n_sent; i++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/resp_%03zu.bin", dir, i);
            FILE *fp = fopen(path, "wb");
            assert_non_null(fp);
            assert_int_equal(fwrite(c.sent[i].data, 1, c.sent[i].len, fp), c.sent[i].len);
            fclose(fp);
        }
    }
    fake_call_close(&c);
    ldg_reflection_close();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_index_synthetic),
        cmocka_unit_test(test_index_corrupt),
        cmocka_unit_test(test_index_embedded),
        cmocka_unit_test(test_register),
        cmocka_unit_test(test_handler_v1_synthetic),
        cmocka_unit_test(test_handler_v1_bad_requests),
        cmocka_unit_test(test_handler_embedded),
        cmocka_unit_test(test_dump_responses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
