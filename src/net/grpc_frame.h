/* gRPC wire pieces with no I/O: length-prefixed message framing, the
 * grpc-message percent-encoding and grpc-timeout parsing (gRPC "PROTOCOL-HTTP2").
 *
 * A message on the wire is: 1 byte compressed flag, 4 bytes big-endian
 * length, then the bytes. Messages may be split across, or share, DATA frames,
 * so the deframer is fed arbitrary chunks. It never buffers more than the
 * declared length, and rejects a too-large message as soon as its 5-byte
 * prefix is complete. */
#ifndef LDG_NET_GRPC_FRAME_H
#define LDG_NET_GRPC_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

#define LDG_GRPC_PREFIX_LEN 5

/* Called once per complete message. |msg| is valid only during the call.
 * Return 0 to continue; any other value stops the feed and is returned by
 * ldg_grpc_deframer_feed. */
typedef int (*ldg_grpc_msg_cb)(void *arg, const uint8_t *msg, size_t len);

struct ldg_grpc_deframer {
    uint8_t prefix[LDG_GRPC_PREFIX_LEN]; /* prefix bytes gathered so far */
    size_t prefix_len;                   /* 0..5 */
    uint32_t msg_len;                    /* declared length of the current message */
    uint8_t flags;                       /* compressed flag of the current message */
    struct ldg_buf msg;                  /* body gathered so far */
    size_t max_len;                      /* largest accepted message */
    int failed;                          /* a feed failed: further feeds fail too */
};

/* Initialise with a message size limit. */
void ldg_grpc_deframer_init(struct ldg_grpc_deframer *d, size_t max_len);
/* Free buffered bytes; |d| may be initialised again. */
void ldg_grpc_deframer_close(struct ldg_grpc_deframer *d);
/* Feed |len| bytes, calling |cb| for each complete message.
 * Returns 0; LDG_ETOOBIG when a prefix declares more than max_len (the
 * declared size is in d->msg_len); LDG_EUNIMPL when a message has the
 * compressed flag set; LDG_EPROTO when the flag byte is neither 0 nor 1; or
 * the non-zero value returned by |cb|. After a failure every feed fails with
 * LDG_EPROTO. */
int ldg_grpc_deframer_feed(struct ldg_grpc_deframer *d, const uint8_t *data, size_t len,
                           ldg_grpc_msg_cb cb, void *arg);
/* Non-zero while a partial message (or prefix) is buffered. */
int ldg_grpc_deframer_partial(const struct ldg_grpc_deframer *d);

/* Append the 5-byte prefix (uncompressed) and |len| bytes of |msg| to |out|. */
void ldg_grpc_frame_append(struct ldg_buf *out, const uint8_t *msg, size_t len);

/* Append |s| percent-encoded as grpc-message requires: bytes outside
 * 0x20..0x7E and '%' become %XX (upper-case hex). A NUL terminator is
 * appended but not counted in out->len. */
void ldg_grpc_percent_encode(struct ldg_buf *out, const char *s);
/* Decode |len| bytes of |s| into |out| (NUL-terminated, not counted).
 * Malformed escapes are copied literally, as the gRPC spec asks. */
void ldg_grpc_percent_decode(struct ldg_buf *out, const char *s, size_t len);

/* Parse a grpc-timeout value ("1S", "250m", "100n": 1-8 digits and a unit of
 * H M S m u n) into milliseconds, rounding up so that a positive timeout
 * never becomes 0. Returns 0 or LDG_EINVAL. */
int ldg_grpc_timeout_parse(const char *s, int64_t *out_ms);
/* Format |ms| (> 0) as a grpc-timeout value into |out| (at least 16 bytes). */
void ldg_grpc_timeout_format(int64_t ms, char *out, size_t out_len);

#endif
