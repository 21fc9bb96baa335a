/* Request validation (SPEC §9). See validate.h. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "rpc/validate.h"
#include "util/err.h"

static int bad(char *msg, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int bad(char *msg, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, cap, fmt, ap);
    va_end(ap);
    return LDG_EINVAL;
}

bool ldg_rpc_utf8_valid(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp;
        if ((c & 0xE0) == 0xC0) {
            len = 2;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000))
            return false; /* overlong */
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

size_t ldg_rpc_utf8_chars(const uint8_t *p, size_t n)
{
    size_t chars = 0;
    for (size_t i = 0; i < n; i++)
        if ((p[i] & 0xC0) != 0x80)
            chars++;
    return chars;
}

static int check_text(const char *field, const char *s, size_t *bytes, size_t *chars, char *msg,
                      size_t cap)
{
    size_t n = strlen(s);
    if (!ldg_rpc_utf8_valid((const uint8_t *)s, n))
        return bad(msg, cap, "%s: not valid UTF-8", field);
    *bytes = n;
    if (chars)
        *chars = ldg_rpc_utf8_chars((const uint8_t *)s, n);
    return 0;
}

int ldg_rpc_check_key(const char *field, const char *key, char *msg, size_t cap)
{
    size_t n = 0;
    int rv = check_text(field, key, &n, NULL, msg, cap);
    if (rv != 0)
        return rv;
    if (n == 0)
        return bad(msg, cap, "%s: must not be empty (1..%d bytes)", field, LDG_RPC_MAX_KEY_BYTES);
    if (n > LDG_RPC_MAX_KEY_BYTES)
        return bad(msg, cap, "%s: %zu bytes, at most %d bytes allowed (key limit)", field, n,
                   LDG_RPC_MAX_KEY_BYTES);
    return 0;
}

int ldg_rpc_check_value(const char *field, size_t len, char *msg, size_t cap)
{
    if (len > LDG_RPC_MAX_VALUE_BYTES)
        return bad(msg, cap, "%s: %zu bytes, at most %u bytes (1 MiB) allowed (value limit)",
                   field, len, LDG_RPC_MAX_VALUE_BYTES);
    return 0;
}

int ldg_rpc_check_relation(const char *field, const char *s, char *msg, size_t cap)
{
    size_t n = 0, chars = 0;
    int rv = check_text(field, s, &n, &chars, msg, cap);
    if (rv != 0)
        return rv;
    if (n == 0)
        return bad(msg, cap, "%s: must not be empty (1..%d chars)", field,
                   LDG_RPC_MAX_RELATION_CHARS);
    if (chars > LDG_RPC_MAX_RELATION_CHARS)
        return bad(msg, cap, "%s: %zu chars, at most %d chars allowed (relation limit)", field,
                   chars, LDG_RPC_MAX_RELATION_CHARS);
    if (strpbrk(s, ":#") != NULL)
        return bad(msg, cap, "%s: must not contain ':' or '#'", field);
    return 0;
}

/* `type:id` with both parts non-empty and no '#'. */
static int check_type_id(const char *field, const char *s, size_t n, char *msg, size_t cap,
                         const char *what)
{
    const char *colon = memchr(s, ':', n);
    if (colon == NULL || colon == s || colon + 1 == s + n)
        return bad(msg, cap, "%s: \"%.64s\" is not in %s form", field, s, what);
    if (memchr(s, '#', n) != NULL)
        return bad(msg, cap, "%s: \"%.64s\" must not contain '#' here (%s form)", field, s, what);
    return 0;
}

static int check_ref_len(const char *field, const char *s, size_t *n, char *msg, size_t cap)
{
    size_t chars;
    int rv = check_text(field, s, n, &chars, msg, cap);
    if (rv != 0)
        return rv;
    if (*n == 0)
        return bad(msg, cap, "%s: must not be empty", field);
    if (chars > LDG_RPC_MAX_REF_CHARS)
        return bad(msg, cap, "%s: %zu chars, at most %d chars allowed (resource/subject limit)",
                   field, chars, LDG_RPC_MAX_REF_CHARS);
    return 0;
}

int ldg_rpc_check_resource(const char *field, const char *s, char *msg, size_t cap)
{
    size_t n = 0;
    int rv = check_ref_len(field, s, &n, msg, cap);
    if (rv != 0)
        return rv;
    return check_type_id(field, s, n, msg, cap, "`type:id`");
}

int ldg_rpc_check_subject(const char *field, const char *s, char *msg, size_t cap)
{
    size_t n = 0;
    int rv = check_ref_len(field, s, &n, msg, cap);
    if (rv != 0)
        return rv;
    const char *hash = memchr(s, '#', n);
    size_t base = hash ? (size_t)(hash - s) : n;
    if (hash) {
        const char *rel = hash + 1;
        size_t rn = n - base - 1;
        if (rn == 0 || memchr(rel, '#', rn) != NULL || memchr(rel, ':', rn) != NULL)
            return bad(msg, cap, "%s: \"%.64s\" is not in `type:id` or `type:id#relation` form",
                       field, s);
        if (ldg_rpc_utf8_chars((const uint8_t *)rel, rn) > LDG_RPC_MAX_RELATION_CHARS)
            return bad(msg, cap, "%s: relation after '#' longer than %d chars (relation limit)",
                       field, LDG_RPC_MAX_RELATION_CHARS);
    }
    return check_type_id(field, s, base, msg, cap, "`type:id` or `type:id#relation`");
}

int ldg_rpc_check_client_id(const Ledger__V1__ClientId *c, char *msg, size_t cap)
{
    if (c == NULL || c->id == NULL || c->id[0] == '\0')
        return bad(msg, cap, "client_id: required (1..%d bytes)", LDG_RPC_MAX_CLIENT_ID_BYTES);
    size_t n = 0;
    int rv = check_text("client_id", c->id, &n, NULL, msg, cap);
    if (rv != 0)
        return rv;
    if (n > LDG_RPC_MAX_CLIENT_ID_BYTES)
        return bad(msg, cap, "client_id: %zu bytes, at most %d bytes allowed", n,
                   LDG_RPC_MAX_CLIENT_ID_BYTES);
    return 0;
}

int ldg_rpc_check_idempotency_key(ProtobufCBinaryData k, uint8_t out[16], char *msg, size_t cap)
{
    memset(out, 0, 16);
    if (k.len == 0)
        return 0;
    if (k.len != 16)
        return bad(msg, cap, "idempotency_key: %zu bytes, must be exactly 16 bytes (or empty)",
                   k.len);
    static const uint8_t zero[16];
    if (memcmp(k.data, zero, 16) == 0)
        return bad(msg, cap, "idempotency_key: must not be all zero bytes");
    memcpy(out, k.data, 16);
    return 0;
}

int ldg_rpc_check_limit(uint32_t limit, size_t dflt, size_t *out, char *msg, size_t cap)
{
    if (limit > LDG_RPC_MAX_PAGE)
        return bad(msg, cap, "limit: %" PRIu32 ", at most %d allowed (page size limit)", limit,
                   LDG_RPC_MAX_PAGE);
    *out = limit ? limit : dflt;
    return 0;
}

int ldg_rpc_check_chain(const Ledger__V1__OrganizationSlug *o, const Ledger__V1__VaultSlug *v,
                        uint64_t *org, uint64_t *vault, char *msg, size_t cap)
{
    if (o == NULL || o->id == 0)
        return bad(msg, cap, "organization_slug: required, a non-zero id (e.g. {\"id\": \"1\"})");
    *org = o->id;
    *vault = v ? v->slug : 0;
    return 0;
}

int ldg_rpc_check_name(const char *field, const char *s, bool allow_empty, char *msg, size_t cap)
{
    size_t n = 0;
    int rv = check_text(field, s, &n, NULL, msg, cap);
    if (rv != 0)
        return rv;
    if (n == 0 && !allow_empty)
        return bad(msg, cap, "%s: required (1..%d bytes)", field, LDG_RPC_MAX_NAME_BYTES);
    if (n > LDG_RPC_MAX_NAME_BYTES)
        return bad(msg, cap, "%s: %zu bytes, at most %d bytes allowed", field, n,
                   LDG_RPC_MAX_NAME_BYTES);
    return 0;
}

static int rel_op(const char *f, const char *res, const char *rel, const char *sub,
                  struct ldg_op *op, char *msg, size_t cap)
{
    char name[96];
    snprintf(name, sizeof name, "%s.resource", f);
    int rv = ldg_rpc_check_resource(name, res, msg, cap);
    if (rv == 0) {
        snprintf(name, sizeof name, "%s.relation", f);
        rv = ldg_rpc_check_relation(name, rel, msg, cap);
    }
    if (rv == 0) {
        snprintf(name, sizeof name, "%s.subject", f);
        rv = ldg_rpc_check_subject(name, sub, msg, cap);
    }
    op->resource = ldg_bytes_str(res);
    op->relation = ldg_bytes_str(rel);
    op->subject = ldg_bytes_str(sub);
    return rv;
}

static int set_op(const char *f, const Ledger__V1__SetEntity *s, struct ldg_op *op, char *msg,
                  size_t cap)
{
    char name[96];
    snprintf(name, sizeof name, "%s.key", f);
    int rv = ldg_rpc_check_key(name, s->key, msg, cap);
    if (rv != 0)
        return rv;
    snprintf(name, sizeof name, "%s.value", f);
    rv = ldg_rpc_check_value(name, s->value.len, msg, cap);
    if (rv != 0)
        return rv;
    op->type = LDG_OP_SET_ENTITY;
    op->key = ldg_bytes_str(s->key);
    op->value = ldg_bytes_of(s->value.data, s->value.len);
    op->expires_at = s->optional_expires_at_case ==
                             LEDGER__V1__SET_ENTITY__OPTIONAL_EXPIRES_AT_EXPIRES_AT
                         ? s->expires_at
                         : 0;
    op->cond = LDG_COND_NONE;
    const Ledger__V1__SetCondition *c = s->condition;
    if (c == NULL)
        return 0;
    switch (c->condition_case) {
    case LEDGER__V1__SET_CONDITION__CONDITION__NOT_SET:
        break;
    case LEDGER__V1__SET_CONDITION__CONDITION_NOT_EXISTS:
        if (!c->not_exists)
            return bad(msg, cap, "%s.condition.not_exists: only true is meaningful", f);
        op->cond = LDG_COND_NOT_EXISTS;
        break;
    case LEDGER__V1__SET_CONDITION__CONDITION_MUST_EXIST:
        if (!c->must_exist)
            return bad(msg, cap, "%s.condition.must_exist: only true is meaningful", f);
        op->cond = LDG_COND_MUST_EXIST;
        break;
    case LEDGER__V1__SET_CONDITION__CONDITION_VERSION:
        op->cond = LDG_COND_VERSION;
        op->cond_version = c->version;
        break;
    case LEDGER__V1__SET_CONDITION__CONDITION_VALUE_EQUALS:
        snprintf(name, sizeof name, "%s.condition.value_equals", f);
        rv = ldg_rpc_check_value(name, c->value_equals.len, msg, cap);
        if (rv != 0)
            return rv;
        op->cond = LDG_COND_VALUE_EQUALS;
        op->cond_value = ldg_bytes_of(c->value_equals.data, c->value_equals.len);
        break;
    default:
        return bad(msg, cap, "%s.condition: unknown condition", f);
    }
    return 0;
}

int ldg_rpc_ops_from_proto(Ledger__V1__Operation *const *ops, size_t n, const char *field,
                           struct ldg_op *out, char *msg, size_t cap)
{
    for (size_t i = 0; i < n; i++) {
        const Ledger__V1__Operation *o = ops[i];
        struct ldg_op *op = &out[i];
        memset(op, 0, sizeof *op);
        char f[80];
        int rv = 0;
        char name[96];
        switch (o->op_case) {
        case LEDGER__V1__OPERATION__OP_CREATE_RELATIONSHIP:
            snprintf(f, sizeof f, "%s[%zu].create_relationship", field, i);
            op->type = LDG_OP_CREATE_RELATIONSHIP;
            rv = rel_op(f, o->create_relationship->resource, o->create_relationship->relation,
                        o->create_relationship->subject, op, msg, cap);
            break;
        case LEDGER__V1__OPERATION__OP_DELETE_RELATIONSHIP:
            snprintf(f, sizeof f, "%s[%zu].delete_relationship", field, i);
            op->type = LDG_OP_DELETE_RELATIONSHIP;
            rv = rel_op(f, o->delete_relationship->resource, o->delete_relationship->relation,
                        o->delete_relationship->subject, op, msg, cap);
            break;
        case LEDGER__V1__OPERATION__OP_SET_ENTITY:
            snprintf(f, sizeof f, "%s[%zu].set_entity", field, i);
            rv = set_op(f, o->set_entity, op, msg, cap);
            break;
        case LEDGER__V1__OPERATION__OP_DELETE_ENTITY:
            snprintf(name, sizeof name, "%s[%zu].delete_entity.key", field, i);
            op->type = LDG_OP_DELETE_ENTITY;
            rv = ldg_rpc_check_key(name, o->delete_entity->key, msg, cap);
            op->key = ldg_bytes_str(o->delete_entity->key);
            break;
        case LEDGER__V1__OPERATION__OP_EXPIRE_ENTITY:
            snprintf(name, sizeof name, "%s[%zu].expire_entity.key", field, i);
            op->type = LDG_OP_EXPIRE_ENTITY;
            rv = ldg_rpc_check_key(name, o->expire_entity->key, msg, cap);
            op->key = ldg_bytes_str(o->expire_entity->key);
            op->expired_at = o->expire_entity->expired_at;
            break;
        default:
            rv = bad(msg, cap,
                     "%s[%zu]: no operation set (one of create_relationship, "
                     "delete_relationship, set_entity, delete_entity, expire_entity)",
                     field, i);
        }
        if (rv != 0)
            return rv;
    }
    return 0;
}
