/* gRPC message framing, grpc-message percent-encoding, grpc-timeout values. */
#include "net/grpc_frame.h"

#include <stdio.h>
#include <string.h>

#include "util/err.h"

static const uint8_t empty_msg[1];

void ldg_grpc_deframer_init(struct ldg_grpc_deframer *d, size_t max_len)
{
    memset(d, 0, sizeof *d);
    ldg_buf_init(&d->msg);
    d->max_len = max_len;
}

void ldg_grpc_deframer_close(struct ldg_grpc_deframer *d)
{
    ldg_buf_close(&d->msg);
    d->prefix_len = 0;
}

int ldg_grpc_deframer_partial(const struct ldg_grpc_deframer *d)
{
    return d->prefix_len > 0;
}

/* The prefix is complete: validate it. */
static int prefix_done(struct ldg_grpc_deframer *d)
{
    d->flags = d->prefix[0];
    d->msg_len = ldg_get_u32be(d->prefix + 1);
    if (d->flags == 1)
        return LDG_EUNIMPL;
    if (d->flags != 0)
        return LDG_EPROTO;
    if (d->msg_len > d->max_len)
        return LDG_ETOOBIG;
    ldg_buf_reset(&d->msg);
    return 0;
}

static int deliver(struct ldg_grpc_deframer *d, const uint8_t *msg, size_t len,
                   ldg_grpc_msg_cb cb, void *arg)
{
    d->prefix_len = 0;
    return cb(arg, len ? msg : empty_msg, len);
}

int ldg_grpc_deframer_feed(struct ldg_grpc_deframer *d, const uint8_t *data, size_t len,
                           ldg_grpc_msg_cb cb, void *arg)
{
    int rv;

    if (d->failed)
        return LDG_EPROTO;
    while (len > 0) {
        if (d->prefix_len < LDG_GRPC_PREFIX_LEN) {
            size_t take = LDG_GRPC_PREFIX_LEN - d->prefix_len;
            if (take > len)
                take = len;
            memcpy(d->prefix + d->prefix_len, data, take);
            d->prefix_len += take;
            data += take;
            len -= take;
            if (d->prefix_len < LDG_GRPC_PREFIX_LEN)
                break;
            rv = prefix_done(d);
            if (rv != 0)
                goto fail;
        }
        size_t want = d->msg_len - d->msg.len;
        if (d->msg.len == 0 && len >= want) {
            /* Whole body in this chunk: no copy. */
            const uint8_t *body = data;
            data += want;
            len -= want;
            rv = deliver(d, body, want, cb, arg);
            if (rv != 0)
                goto fail;
            continue;
        }
        size_t take = want < len ? want : len;
        ldg_buf_append(&d->msg, data, take);
        data += take;
        len -= take;
        if (d->msg.len < d->msg_len)
            break;
        rv = deliver(d, d->msg.data, d->msg.len, cb, arg);
        ldg_buf_reset(&d->msg);
        if (rv != 0)
            goto fail;
    }
    return 0;
fail:
    d->failed = 1;
    ldg_buf_close(&d->msg);
    return rv;
}

void ldg_grpc_frame_append(struct ldg_buf *out, const uint8_t *msg, size_t len)
{
    ldg_buf_u8(out, 0);
    ldg_buf_u32be(out, (uint32_t)len);
    if (len > 0)
        ldg_buf_append(out, msg, len);
}

/* ---- grpc-message ---- */

void ldg_grpc_percent_encode(struct ldg_buf *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p >= 0x20 && *p <= 0x7e && *p != '%') {
            ldg_buf_u8(out, *p);
        } else {
            uint8_t esc[3] = {'%', (uint8_t)hex[*p >> 4], (uint8_t)hex[*p & 15]};
            ldg_buf_append(out, esc, 3);
        }
    }
    ldg_buf_reserve(out, 1);
    out->data[out->len] = 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

void ldg_grpc_percent_decode(struct ldg_buf *out, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%' && i + 2 < len && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            ldg_buf_u8(out, (uint8_t)(hexval(s[i + 1]) << 4 | hexval(s[i + 2])));
            i += 2;
        } else {
            ldg_buf_u8(out, (uint8_t)s[i]);
        }
    }
    ldg_buf_reserve(out, 1);
    out->data[out->len] = 0;
}

/* ---- grpc-timeout ---- */

int ldg_grpc_timeout_parse(const char *s, int64_t *out_ms)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 2 || n > 9)
        return LDG_EINVAL;
    int64_t v = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return LDG_EINVAL;
        v = v * 10 + (s[i] - '0');
    }
    int64_t ms;
    switch (s[n - 1]) {
    case 'H': ms = v * 3600 * 1000; break;
    case 'M': ms = v * 60 * 1000; break;
    case 'S': ms = v * 1000; break;
    case 'm': ms = v; break;
    case 'u': ms = (v + 999) / 1000; break;
    case 'n': ms = (v + 999999) / 1000000; break;
    default: return LDG_EINVAL;
    }
    *out_ms = ms;
    return 0;
}

void ldg_grpc_timeout_format(int64_t ms, char *out, size_t out_len)
{
    /* At most 8 digits: pick the finest unit that fits. */
    if (ms < 0)
        ms = 0;
    if (ms <= 99999999)
        snprintf(out, out_len, "%lldm", (long long)ms);
    else if (ms / 1000 <= 99999999)
        snprintf(out, out_len, "%lldS", (long long)((ms + 999) / 1000));
    else
        snprintf(out, out_len, "%lldM", (long long)((ms / 1000 + 59) / 60));
}
