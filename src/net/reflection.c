/* gRPC server reflection over the embedded FileDescriptorSet.
 *
 * The index is built by a small protobuf wire-format walker that reads only
 * the descriptor.proto fields it needs, so no descriptor.proto bindings are
 * compiled:
 *   FileDescriptorSet      file=1
 *   FileDescriptorProto    name=1 package=2 dependency=3 message_type=4
 *                          enum_type=5 service=6 extension=7
 *   DescriptorProto        name=1 field=2 nested_type=3 enum_type=4
 *                          extension=6 oneof_decl=8
 *   FieldDescriptorProto   name=1 extendee=2 number=3
 *   EnumDescriptorProto    name=1 value=2 (EnumValueDescriptorProto name=1)
 *   ServiceDescriptorProto name=1 method=2 (MethodDescriptorProto name=1)
 *   OneofDescriptorProto   name=1
 * Enum values live in the scope enclosing their enum, as in protobuf.
 *
 * The handler is written once over plain views of the request and response;
 * a macro stamps out the v1 and v1alpha adapters, whose generated C types
 * differ only in name. */
#include "net/reflection.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/reflection/v1/reflection.pb-c.h"
#include "grpc/reflection/v1alpha/reflection.pb-c.h"
#include "util/mem.h"

extern const uint8_t ldg_descriptor_set[];
extern const size_t ldg_descriptor_set_len;

#define MAX_DEPTH 64

/* ---- wire walker ---- */

struct wire {
    const uint8_t *p;
    const uint8_t *end;
};

struct wire_field {
    uint32_t num;
    uint32_t type;       /* 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32 */
    uint64_t varint;     /* type 0 */
    const uint8_t *data; /* type 2 */
    size_t len;          /* type 2 */
};

static int wire_varint(struct wire *w, uint64_t *v)
{
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (w->p >= w->end)
            return LDG_ECORRUPT;
        uint8_t b = *w->p++;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return 0;
        }
    }
    return LDG_ECORRUPT;
}

/* Next field: 1 with *f filled, 0 at the end, LDG_ECORRUPT. */
static int wire_next(struct wire *w, struct wire_field *f)
{
    if (w->p >= w->end)
        return 0;
    uint64_t key, v;
    if (wire_varint(w, &key) != 0 || (key >> 3) == 0 || (key >> 3) > 0x1fffffff)
        return LDG_ECORRUPT;
    f->num = (uint32_t)(key >> 3);
    f->type = (uint32_t)(key & 7);
    switch (f->type) {
    case 0:
        if (wire_varint(w, &f->varint) != 0)
            return LDG_ECORRUPT;
        break;
    case 1:
        if (w->end - w->p < 8)
            return LDG_ECORRUPT;
        w->p += 8;
        break;
    case 2:
        if (wire_varint(w, &v) != 0 || v > (uint64_t)(w->end - w->p))
            return LDG_ECORRUPT;
        f->data = w->p;
        f->len = (size_t)v;
        w->p += v;
        break;
    case 5:
        if (w->end - w->p < 4)
            return LDG_ECORRUPT;
        w->p += 4;
        break;
    default: /* groups (3, 4) never appear in descriptors */
        return LDG_ECORRUPT;
    }
    return 1;
}

static struct wire wire_of(const uint8_t *p, size_t len)
{
    struct wire w = {p, p + len};
    return w;
}

/* The string field |num| of a message (the last occurrence), or NULL when
 * absent. Returns 0 or LDG_ECORRUPT. */
static int wire_string(const uint8_t *p, size_t len, uint32_t num, const uint8_t **s,
                       size_t *slen)
{
    struct wire w = wire_of(p, len);
    struct wire_field f;
    int rv;
    *s = NULL;
    *slen = 0;
    while ((rv = wire_next(&w, &f)) == 1) {
        if (f.num == num && f.type == 2) {
            *s = f.data;
            *slen = f.len;
        }
    }
    return rv;
}

/* ---- index ---- */

struct sym {
    char *name;  /* fully qualified, no leading dot */
    size_t file; /* index into files */
    int kind;    /* enum ldg_refl_sym_kind */
};

struct ext {
    char *extendee; /* fully qualified, no leading dot */
    int32_t number;
    size_t file;
};

struct file_ent {
    struct ldg_refl_file pub;
    char **deps;
    size_t n_deps;
};

struct ldg_refl_index {
    uint8_t *set; /* our copy; pub.data points into it */
    struct file_ent *files;
    size_t n_files;
    struct sym *syms; /* sorted by name after the build */
    size_t n_syms, cap_syms;
    struct ext *exts;
    size_t n_exts, cap_exts;
    char **services; /* fully-qualified service names, set order */
    size_t n_services, cap_services;
};

static char *join_name(const char *scope, const uint8_t *name, size_t len)
{
    size_t sl = strlen(scope);
    char *s = ldg_malloc(sl + 1 + len + 1);
    size_t o = 0;
    if (sl > 0) {
        memcpy(s, scope, sl);
        s[sl] = '.';
        o = sl + 1;
    }
    memcpy(s + o, name, len);
    s[o + len] = '\0';
    return s;
}

/* Takes ownership of |name|. */
static void add_sym(struct ldg_refl_index *idx, char *name, size_t file, int kind)
{
    if (idx->n_syms == idx->cap_syms) {
        idx->cap_syms = idx->cap_syms ? idx->cap_syms * 2 : 64;
        idx->syms = ldg_realloc(idx->syms, idx->cap_syms * sizeof *idx->syms);
    }
    idx->syms[idx->n_syms].name = name;
    idx->syms[idx->n_syms].file = file;
    idx->syms[idx->n_syms].kind = kind;
    idx->n_syms++;
}

/* Add the symbol scope.name of the descriptor |p| (name in field 1): a
 * message, service, field, enum value, method, oneof... When |full| is not
 * NULL it is set to the symbol's name (owned by the index). */
static int index_named(struct ldg_refl_index *idx, size_t file, const char *scope,
                       const uint8_t *p, size_t len, int kind, const char **full)
{
    const uint8_t *name;
    size_t nlen;
    int rv = wire_string(p, len, 1, &name, &nlen);
    if (rv != 0)
        return rv;
    if (name == NULL || nlen == 0)
        return LDG_ECORRUPT;
    char *s = join_name(scope, name, nlen);
    add_sym(idx, s, file, kind); /* index owns |s| now */
    if (full)
        *full = s;
    return 0;
}

/* Index each child descriptor in field 2 of |p| as a |kind| in |scope|. */
static int index_children(struct ldg_refl_index *idx, size_t file, const char *scope,
                          const uint8_t *p, size_t len, int kind)
{
    struct wire w = wire_of(p, len);
    struct wire_field f;
    int rv;
    while ((rv = wire_next(&w, &f)) == 1) {
        if (f.num == 2 && f.type == 2) {
            rv = index_named(idx, file, scope, f.data, f.len, kind, NULL);
            if (rv != 0)
                return rv;
        }
    }
    return rv;
}

static int index_extension(struct ldg_refl_index *idx, size_t file, const char *scope,
                           const uint8_t *p, size_t len)
{
    struct wire w = wire_of(p, len);
    struct wire_field f;
    const uint8_t *extendee = NULL;
    size_t elen = 0;
    int64_t number = -1;
    int rv;
    while ((rv = wire_next(&w, &f)) == 1) {
        if (f.num == 2 && f.type == 2) {
            extendee = f.data;
            elen = f.len;
        } else if (f.num == 3 && f.type == 0) {
            number = (int64_t)(int32_t)f.varint;
        }
    }
    if (rv != 0)
        return rv;
    rv = index_named(idx, file, scope, p, len, LDG_REFL_SYM_EXTENSION, NULL);
    if (rv != 0 || extendee == NULL || number < 0)
        return rv;
    if (elen > 0 && extendee[0] == '.') {
        extendee++;
        elen--;
    }
    if (idx->n_exts == idx->cap_exts) {
        idx->cap_exts = idx->cap_exts ? idx->cap_exts * 2 : 8;
        idx->exts = ldg_realloc(idx->exts, idx->cap_exts * sizeof *idx->exts);
    }
    struct ext *e = &idx->exts[idx->n_exts++];
    e->extendee = join_name("", extendee, elen);
    e->number = (int32_t)number;
    e->file = file;
    return 0;
}

static int index_enum(struct ldg_refl_index *idx, size_t file, const char *scope,
                      const uint8_t *p, size_t len)
{
    int rv = index_named(idx, file, scope, p, len, LDG_REFL_SYM_ENUM, NULL);
    if (rv != 0)
        return rv;
    return index_children(idx, file, scope, p, len, LDG_REFL_SYM_ENUM_VALUE);
}

static int index_message(struct ldg_refl_index *idx, size_t file, const char *scope,
                         const uint8_t *p, size_t len, int depth)
{
    if (depth > MAX_DEPTH)
        return LDG_ECORRUPT;
    const char *full;
    int rv = index_named(idx, file, scope, p, len, LDG_REFL_SYM_MESSAGE, &full);
    if (rv != 0)
        return rv;

    struct wire w = wire_of(p, len);
    struct wire_field f;
    while ((rv = wire_next(&w, &f)) == 1) {
        if (f.type != 2)
            continue;
        switch (f.num) {
        case 2:
            rv = index_named(idx, file, full, f.data, f.len, LDG_REFL_SYM_FIELD, NULL);
            break;
        case 3:
            rv = index_message(idx, file, full, f.data, f.len, depth + 1);
            break;
        case 4:
            rv = index_enum(idx, file, full, f.data, f.len);
            break;
        case 6:
            rv = index_extension(idx, file, full, f.data, f.len);
            break;
        case 8:
            rv = index_named(idx, file, full, f.data, f.len, LDG_REFL_SYM_ONEOF, NULL);
            break;
        default:
            rv = 0;
            break;
        }
        if (rv != 0)
            return rv;
    }
    return rv;
}

static int index_service(struct ldg_refl_index *idx, size_t file, const char *scope,
                         const uint8_t *p, size_t len)
{
    const char *full;
    int rv = index_named(idx, file, scope, p, len, LDG_REFL_SYM_SERVICE, &full);
    if (rv != 0)
        return rv;
    if (idx->n_services == idx->cap_services) {
        idx->cap_services = idx->cap_services ? idx->cap_services * 2 : 8;
        idx->services = ldg_realloc(idx->services, idx->cap_services * sizeof(char *));
    }
    idx->services[idx->n_services++] = ldg_strdup(full);
    return index_children(idx, file, full, p, len, LDG_REFL_SYM_METHOD);
}

static const struct file_ent *find_file(const struct ldg_refl_index *idx, const char *name)
{
    for (size_t i = 0; i < idx->n_files; i++)
        if (strcmp(idx->files[i].pub.name, name) == 0)
            return &idx->files[i];
    return NULL;
}

/* Index one FileDescriptorProto as idx->files[idx->n_files] (not added when
 * a file of that name is already there). */
static int index_file(struct ldg_refl_index *idx, const uint8_t *p, size_t len)
{
    const uint8_t *name, *pkg;
    size_t nlen, plen;
    int rv = wire_string(p, len, 1, &name, &nlen);
    if (rv == 0)
        rv = wire_string(p, len, 2, &pkg, &plen);
    if (rv != 0)
        return rv;
    if (name == NULL || nlen == 0)
        return LDG_ECORRUPT;

    size_t fi = idx->n_files;
    struct file_ent *fe = &idx->files[fi];
    memset(fe, 0, sizeof *fe);
    char *fname = join_name("", name, nlen);
    if (find_file(idx, fname) != NULL) {
        ldg_free(fname);
        return 0;
    }
    fe->pub.name = fname;
    fe->pub.data = p;
    fe->pub.len = len;
    idx->n_files++;

    char *scope = join_name("", pkg ? pkg : (const uint8_t *)"", pkg ? plen : 0);
    struct wire w = wire_of(p, len);
    struct wire_field f;
    while ((rv = wire_next(&w, &f)) == 1) {
        if (f.type != 2)
            continue;
        switch (f.num) {
        case 3:
            fe->deps = ldg_realloc(fe->deps, (fe->n_deps + 1) * sizeof(char *));
            fe->deps[fe->n_deps++] = join_name("", f.data, f.len);
            rv = 0;
            break;
        case 4:
            rv = index_message(idx, fi, scope, f.data, f.len, 0);
            break;
        case 5:
            rv = index_enum(idx, fi, scope, f.data, f.len);
            break;
        case 6:
            rv = index_service(idx, fi, scope, f.data, f.len);
            break;
        case 7:
            rv = index_extension(idx, fi, scope, f.data, f.len);
            break;
        default:
            rv = 0;
            break;
        }
        if (rv != 0)
            break;
    }
    ldg_free(scope);
    return rv;
}

static int sym_cmp(const void *a, const void *b)
{
    const struct sym *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c != 0)
        return c;
    /* Duplicates: the one from the first file sorts first and wins. */
    return x->file < y->file ? -1 : (x->file > y->file);
}

int ldg_refl_index_new(const uint8_t *set, size_t len, struct ldg_refl_index **out)
{
    struct ldg_refl_index *idx = ldg_calloc(1, sizeof *idx);
    idx->set = ldg_memdup(set != NULL ? set : (const uint8_t *)"", len);

    /* Count files first so file entries never move. */
    size_t count = 0;
    struct wire w = wire_of(idx->set, len);
    struct wire_field f;
    int rv;
    while ((rv = wire_next(&w, &f)) == 1)
        if (f.num == 1 && f.type == 2)
            count++;
    if (rv != 0)
        goto err;
    idx->files = ldg_calloc(count ? count : 1, sizeof *idx->files);

    w = wire_of(idx->set, len);
    while ((rv = wire_next(&w, &f)) == 1) {
        if (f.num == 1 && f.type == 2) {
            rv = index_file(idx, f.data, f.len);
            if (rv != 0)
                goto err;
        }
    }
    if (rv != 0)
        goto err;
    if (idx->n_syms > 1)
        qsort(idx->syms, idx->n_syms, sizeof *idx->syms, sym_cmp);
    *out = idx;
    return 0;
err:
    ldg_refl_index_free(idx);
    return LDG_ECORRUPT;
}

void ldg_refl_index_free(struct ldg_refl_index *idx)
{
    if (idx == NULL)
        return;
    for (size_t i = 0; i < idx->n_files; i++) {
        for (size_t j = 0; j < idx->files[i].n_deps; j++)
            ldg_free(idx->files[i].deps[j]);
        ldg_free(idx->files[i].deps);
        ldg_free((char *)idx->files[i].pub.name);
    }
    ldg_free(idx->files);
    for (size_t i = 0; i < idx->n_syms; i++)
        ldg_free(idx->syms[i].name);
    ldg_free(idx->syms);
    for (size_t i = 0; i < idx->n_exts; i++)
        ldg_free(idx->exts[i].extendee);
    ldg_free(idx->exts);
    for (size_t i = 0; i < idx->n_services; i++)
        ldg_free(idx->services[i]);
    ldg_free(idx->services);
    ldg_free(idx->set);
    ldg_free(idx);
}

size_t ldg_refl_index_file_count(const struct ldg_refl_index *idx)
{
    return idx->n_files;
}

const struct ldg_refl_file *ldg_refl_index_file_at(const struct ldg_refl_index *idx, size_t i)
{
    return i < idx->n_files ? &idx->files[i].pub : NULL;
}

const struct ldg_refl_file *ldg_refl_index_file(const struct ldg_refl_index *idx,
                                                const char *name)
{
    const struct file_ent *fe = find_file(idx, name);
    return fe ? &fe->pub : NULL;
}

const struct ldg_refl_file *ldg_refl_index_symbol(const struct ldg_refl_index *idx,
                                                  const char *symbol, int *kind)
{
    /* Lower bound, so the first of duplicate names wins. */
    size_t lo = 0, hi = idx->n_syms;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(idx->syms[mid].name, symbol) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == idx->n_syms || strcmp(idx->syms[lo].name, symbol) != 0)
        return NULL;
    if (kind != NULL)
        *kind = idx->syms[lo].kind;
    return &idx->files[idx->syms[lo].file].pub;
}

int ldg_refl_index_closure(const struct ldg_refl_index *idx, const char *name,
                           const struct ldg_refl_file ***out, size_t *n)
{
    const struct file_ent *start = find_file(idx, name);
    if (start == NULL)
        return LDG_ENOTFOUND;
    bool *seen = ldg_calloc(idx->n_files, sizeof *seen);
    const struct file_ent **stack = ldg_malloc(idx->n_files * sizeof *stack);
    const struct ldg_refl_file **res = ldg_malloc(idx->n_files * sizeof *res);
    size_t sp = 0, nres = 0;

    seen[start - idx->files] = true;
    stack[sp++] = start;
    while (sp > 0) {
        const struct file_ent *fe = stack[--sp];
        res[nres++] = &fe->pub;
        /* Push in reverse so dependencies come out in declaration order. */
        for (size_t j = fe->n_deps; j-- > 0;) {
            const struct file_ent *dep = find_file(idx, fe->deps[j]);
            if (dep == NULL || seen[dep - idx->files])
                continue;
            seen[dep - idx->files] = true;
            stack[sp++] = dep;
        }
    }
    ldg_free(stack);
    ldg_free(seen);
    *out = res;
    *n = nres;
    return 0;
}

size_t ldg_refl_index_service_count(const struct ldg_refl_index *idx)
{
    return idx->n_services;
}

const char *ldg_refl_index_service_at(const struct ldg_refl_index *idx, size_t i)
{
    return i < idx->n_services ? idx->services[i] : NULL;
}

const struct ldg_refl_file *ldg_refl_index_extension(const struct ldg_refl_index *idx,
                                                     const char *type, int32_t number)
{
    for (size_t i = 0; i < idx->n_exts; i++)
        if (idx->exts[i].number == number && strcmp(idx->exts[i].extendee, type) == 0)
            return &idx->files[idx->exts[i].file].pub;
    return NULL;
}

int ldg_refl_index_extension_numbers(const struct ldg_refl_index *idx, const char *type,
                                     int32_t **nums, size_t *n)
{
    int kind = 0;
    if (ldg_refl_index_symbol(idx, type, &kind) == NULL || kind != LDG_REFL_SYM_MESSAGE)
        return LDG_ENOTFOUND;
    int32_t *res = NULL;
    size_t nres = 0;
    for (size_t i = 0; i < idx->n_exts; i++) {
        if (strcmp(idx->exts[i].extendee, type) != 0)
            continue;
        res = ldg_realloc(res, (nres + 1) * sizeof *res);
        res[nres++] = idx->exts[i].number;
    }
    *nums = res;
    *n = nres;
    return 0;
}

/* ---- module state ---- */

static struct ldg_refl_index *g_index;
static char **g_services;
static size_t g_n_services;

int ldg_reflection_init_from(const uint8_t *set, size_t len, struct ldg_err *err)
{
    struct ldg_refl_index *idx;
    int rv = ldg_refl_index_new(set, len, &idx);
    if (rv != 0)
        return ldg_err_set(err, rv, "reflection: malformed descriptor set (%zu bytes)", len);
    ldg_refl_index_free(g_index);
    g_index = idx;
    return 0;
}

int ldg_reflection_init(struct ldg_err *err)
{
    if (g_index != NULL)
        return 0;
    return ldg_reflection_init_from(ldg_descriptor_set, ldg_descriptor_set_len, err);
}

const struct ldg_refl_index *ldg_reflection_index(void)
{
    return g_index;
}

static void services_clear(void)
{
    for (size_t i = 0; i < g_n_services; i++)
        ldg_free(g_services[i]);
    ldg_free(g_services);
    g_services = NULL;
    g_n_services = 0;
}

int ldg_reflection_add_service(const char *name)
{
    for (size_t i = 0; i < g_n_services; i++)
        if (strcmp(g_services[i], name) == 0)
            return 0;
    g_services = ldg_realloc(g_services, (g_n_services + 1) * sizeof(char *));
    g_services[g_n_services++] = ldg_strdup(name);
    return 0;
}

int ldg_reflection_set_services(const char *const *names, size_t n)
{
    services_clear();
    for (size_t i = 0; i < n; i++)
        ldg_reflection_add_service(names[i]);
    return 0;
}

void ldg_reflection_close(void)
{
    services_clear();
    ldg_refl_index_free(g_index);
    g_index = NULL;
}

/* ---- request handling, version-neutral ---- */

struct req_view {
    int kind;            /* message_request field number; 0 when not set */
    const char *arg;     /* filename / symbol / type name */
    const char *ext_type; /* file_containing_extension */
    int32_t ext_number;
};

struct resp_view {
    int kind; /* message_response field number: 4, 5, 6 or 7 */
    /* 4 */
    const struct ldg_refl_file **files; /* owned (ldg_free) */
    size_t n_files;
    /* 5 */
    const char *base_type;
    int32_t *ext_numbers; /* owned */
    size_t n_ext_numbers;
    /* 6 */
    const char *const *services; /* borrowed */
    size_t n_services;
    /* 7 */
    int error_code;
    char error_message[256];
};

static void resp_error(struct resp_view *rs, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void resp_error(struct resp_view *rs, int code, const char *fmt, ...)
{
    va_list ap;
    rs->kind = 7;
    rs->error_code = code;
    va_start(ap, fmt);
    vsnprintf(rs->error_message, sizeof rs->error_message, fmt, ap);
    va_end(ap);
}

static void resp_files(struct resp_view *rs, const char *file)
{
    if (ldg_refl_index_closure(g_index, file, &rs->files, &rs->n_files) != 0) {
        resp_error(rs, LDG_GRPC_NOT_FOUND, "file not found: %s", file);
        return;
    }
    rs->kind = 4;
}

/* Fill |rs| for |rq| (kind != 0). */
static void answer(const struct req_view *rq, struct resp_view *rs)
{
    const struct ldg_refl_file *f;
    memset(rs, 0, sizeof *rs);
    if (g_index == NULL) {
        resp_error(rs, LDG_GRPC_UNAVAILABLE, "reflection index not loaded");
        return;
    }
    switch (rq->kind) {
    case 3: /* file_by_filename */
        resp_files(rs, rq->arg);
        break;
    case 4: /* file_containing_symbol */
        f = ldg_refl_index_symbol(g_index, rq->arg, NULL);
        if (f == NULL)
            resp_error(rs, LDG_GRPC_NOT_FOUND, "symbol not found: %s", rq->arg);
        else
            resp_files(rs, f->name);
        break;
    case 5: /* file_containing_extension */
        f = ldg_refl_index_extension(g_index, rq->ext_type, rq->ext_number);
        if (f == NULL)
            resp_error(rs, LDG_GRPC_NOT_FOUND, "extension not found: %s %d", rq->ext_type,
                       (int)rq->ext_number);
        else
            resp_files(rs, f->name);
        break;
    case 6: /* all_extension_numbers_of_type */
        if (ldg_refl_index_extension_numbers(g_index, rq->arg, &rs->ext_numbers,
                                             &rs->n_ext_numbers) != 0) {
            resp_error(rs, LDG_GRPC_NOT_FOUND, "type not found: %s", rq->arg);
        } else {
            rs->kind = 5;
            rs->base_type = rq->arg;
        }
        break;
    case 7: /* list_services */
        rs->kind = 6;
        if (g_n_services > 0) {
            rs->services = (const char *const *)g_services;
            rs->n_services = g_n_services;
        } else {
            rs->services = (const char *const *)g_index->services;
            rs->n_services = g_index->n_services;
        }
        break;
    default:
        resp_error(rs, LDG_GRPC_UNIMPLEMENTED, "unknown request kind %d", rq->kind);
        break;
    }
}

static void resp_view_free(struct resp_view *rs)
{
    ldg_free(rs->files);
    ldg_free(rs->ext_numbers);
}

static void refl_cancel_cb(struct ldg_grpc_call *call, void *arg)
{
    ldg_grpc_call_finish(call, LDG_GRPC_CANCELLED, "cancelled");
}

/* Common start of a handler invocation. Returns true when the handler should
 * go on with the request. */
static bool refl_begin(struct ldg_grpc_call *call, const ProtobufCMessage *req)
{
    if (req == NULL) { /* client half-closed: every request is answered */
        ldg_grpc_call_finish(call, LDG_GRPC_OK, NULL);
        return false;
    }
    if (ldg_grpc_call_is_cancelled(call)) {
        ldg_grpc_call_finish(call, LDG_GRPC_CANCELLED, "cancelled");
        return false;
    }
    ldg_grpc_call_on_cancel(call, refl_cancel_cb, NULL);
    return true;
}

static void refl_sent(struct ldg_grpc_call *call, int rv)
{
    /* LDG_ECLOSED: the stream is gone and the cancel callback will end it. */
    if (rv == LDG_EFULL)
        ldg_grpc_call_finish(call, LDG_GRPC_RESOURCE_EXHAUSTED,
                             "reflection client is not reading its responses");
}

/* ---- v1 / v1alpha adapters ---- */

#define REFL_ADAPTER(fn, T, U)                                                          \
    static void fn(struct ldg_grpc_call *call, const ProtobufCMessage *msg, void *ud)  \
    {                                                                                   \
        if (!refl_begin(call, msg))                                                     \
            return;                                                                     \
        const T##ServerReflectionRequest *req = (const T##ServerReflectionRequest *)msg; \
        struct req_view rq = {0};                                                       \
        rq.kind = (int)req->message_request_case;                                       \
        switch (req->message_request_case) {                                            \
        case U##SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:             \
            rq.arg = req->file_by_filename;                                             \
            break;                                                                      \
        case U##SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:       \
            rq.arg = req->file_containing_symbol;                                       \
            break;                                                                      \
        case U##SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION:    \
            if (req->file_containing_extension != NULL) {                               \
                rq.ext_type = req->file_containing_extension->containing_type;          \
                rq.ext_number = req->file_containing_extension->extension_number;       \
            }                                                                           \
            break;                                                                      \
        case U##SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE: \
            rq.arg = req->all_extension_numbers_of_type;                                \
            break;                                                                      \
        case U##SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:                \
            rq.arg = req->list_services;                                                \
            break;                                                                      \
        default:                                                                        \
            ldg_grpc_call_fail(call, LDG_GRPC_INVALID_ARGUMENT,                         \
                               "ServerReflectionRequest has no message_request");       \
            return;                                                                     \
        }                                                                               \
        if (rq.arg == NULL)                                                             \
            rq.arg = "";                                                                \
        if (rq.ext_type == NULL)                                                        \
            rq.ext_type = "";                                                           \
                                                                                        \
        struct resp_view rs;                                                            \
        answer(&rq, &rs);                                                               \
                                                                                        \
        T##ServerReflectionResponse resp = U##SERVER_REFLECTION_RESPONSE__INIT;         \
        T##FileDescriptorResponse fdr = U##FILE_DESCRIPTOR_RESPONSE__INIT;              \
        T##ExtensionNumberResponse enr = U##EXTENSION_NUMBER_RESPONSE__INIT;            \
        T##ListServiceResponse lsr = U##LIST_SERVICE_RESPONSE__INIT;                    \
        T##ErrorResponse er = U##ERROR_RESPONSE__INIT;                                  \
        ProtobufCBinaryData *blobs = NULL;                                              \
        T##ServiceResponse *svc = NULL;                                                 \
        T##ServiceResponse **svcp = NULL;                                               \
        resp.valid_host = req->host ? req->host : (char *)"";                           \
        resp.original_request = (T##ServerReflectionRequest *)req;                      \
        switch (rs.kind) {                                                              \
        case 4:                                                                         \
            blobs = ldg_calloc(rs.n_files ? rs.n_files : 1, sizeof *blobs);             \
            for (size_t i = 0; i < rs.n_files; i++) {                                   \
                blobs[i].data = (uint8_t *)rs.files[i]->data;                           \
                blobs[i].len = rs.files[i]->len;                                        \
            }                                                                           \
            fdr.n_file_descriptor_proto = rs.n_files;                                   \
            fdr.file_descriptor_proto = blobs;                                          \
            resp.message_response_case =                                                \
                U##SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE; \
            resp.file_descriptor_response = &fdr;                                       \
            break;                                                                      \
        case 5:                                                                         \
            enr.base_type_name = (char *)rs.base_type;                                  \
            enr.n_extension_number = rs.n_ext_numbers;                                  \
            enr.extension_number = rs.ext_numbers;                                      \
            resp.message_response_case =                                                \
                U##SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE; \
            resp.all_extension_numbers_response = &enr;                                 \
            break;                                                                      \
        case 6:                                                                         \
            svc = ldg_calloc(rs.n_services ? rs.n_services : 1, sizeof *svc);           \
            svcp = ldg_calloc(rs.n_services ? rs.n_services : 1, sizeof *svcp);         \
            for (size_t i = 0; i < rs.n_services; i++) {                                \
                T##ServiceResponse init = U##SERVICE_RESPONSE__INIT;                    \
                svc[i] = init;                                                          \
                svc[i].name = (char *)rs.services[i];                                   \
                svcp[i] = &svc[i];                                                      \
            }                                                                           \
            lsr.n_service = rs.n_services;                                              \
            lsr.service = svcp;                                                         \
            resp.message_response_case =                                                \
                U##SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE; \
            resp.list_services_response = &lsr;                                         \
            break;                                                                      \
        default:                                                                        \
            er.error_code = rs.error_code;                                              \
            er.error_message = rs.error_message;                                        \
            resp.message_response_case =                                                \
                U##SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;         \
            resp.error_response = &er;                                                  \
            break;                                                                      \
        }                                                                               \
        refl_sent(call, ldg_grpc_call_send(call, &resp.base));                          \
        ldg_free(svcp);                                                                 \
        ldg_free(svc);                                                                  \
        ldg_free(blobs);                                                                \
        resp_view_free(&rs);                                                            \
    }

REFL_ADAPTER(refl_v1_handler, Grpc__Reflection__V1__, GRPC__REFLECTION__V1__)
REFL_ADAPTER(refl_v1alpha_handler, Grpc__Reflection__V1alpha__, GRPC__REFLECTION__V1ALPHA__)

static const struct ldg_grpc_method refl_methods[] = {
    {
        .service = "grpc.reflection.v1.ServerReflection",
        .method = "ServerReflectionInfo",
        .kind = LDG_GRPC_BIDI_STREAM,
        .request = &grpc__reflection__v1__server_reflection_request__descriptor,
        .response = &grpc__reflection__v1__server_reflection_response__descriptor,
        .handler = refl_v1_handler,
    },
    {
        .service = "grpc.reflection.v1alpha.ServerReflection",
        .method = "ServerReflectionInfo",
        .kind = LDG_GRPC_BIDI_STREAM,
        .request = &grpc__reflection__v1alpha__server_reflection_request__descriptor,
        .response = &grpc__reflection__v1alpha__server_reflection_response__descriptor,
        .handler = refl_v1alpha_handler,
    },
};

int ldg_reflection_methods(const struct ldg_grpc_method **out, size_t *n)
{
    int rv = ldg_reflection_init(NULL);
    if (rv != 0)
        return rv;
    *out = refl_methods;
    *n = LDG_ARRAY_SIZE(refl_methods);
    return 0;
}

int ldg_reflection_register(int (*add)(void *server, const struct ldg_grpc_method *m),
                            void *server)
{
    const struct ldg_grpc_method *m;
    size_t n;
    int rv = ldg_reflection_methods(&m, &n);
    for (size_t i = 0; rv == 0 && i < n; i++)
        rv = add(server, &m[i]);
    return rv;
}
