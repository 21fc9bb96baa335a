/* Raft peer transport on the shared gRPC port (SPEC §3.6): a custom
 * struct raft_uv_transport for raft_uv.
 *
 * A peer connection starts with a fixed-size preamble (LDG_PREAMBLE_LEN
 * bytes, integers big-endian):
 *   "LDGR" ‖ version u8 (1) ‖ cluster_id[16] ‖ sender node id u64 ‖
 *   sender address[128] (NUL padded) ‖ nonce[16] ‖ hmac[32]
 * hmac = HMAC-SHA256(secret, all bytes before it) when a cluster secret is
 * configured, else 32 zero bytes. The listener (net/listener.h) routes
 * "LDGR" connections here having read exactly those 4 bytes; the transport
 * reads exactly the rest, checks version, cluster id and hmac, answers one
 * accept byte 0x01 and hands the stream to libraft. Any failure closes the
 * connection and logs why. The dialing side sends the preamble, waits for
 * the accept byte (reading exactly one byte) and hands the stream to
 * libraft. No Raft byte is consumed by either side.
 *
 * Limits: the nonce is not remembered, so a recorded preamble can be
 * replayed by someone who can also reach the port (it only opens a
 * connection whose Raft messages still need the peer's keyless trust; use
 * the secret plus a private network, SPEC §9).
 *
 * Memory: streams handed to libraft are freed by libraft with raft_free;
 * inbound handles come from the listener (ldg_malloc), which is the same
 * libc heap as raft's default allocator (the process never calls
 * raft_heap_set). */
#ifndef LDG_CLUSTER_TRANSPORT_H
#define LDG_CLUSTER_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

struct ldg_listener;

#define LDG_CLUSTER_ID_LEN 16
#define LDG_PREAMBLE_MAGIC "LDGR"
#define LDG_PREAMBLE_MAGIC_LEN 4
#define LDG_PREAMBLE_VERSION 1
#define LDG_PREAMBLE_ADDR_LEN 128
#define LDG_PREAMBLE_NONCE_LEN 16
#define LDG_PREAMBLE_HMAC_LEN 32
#define LDG_PREAMBLE_LEN                                                              \
    (LDG_PREAMBLE_MAGIC_LEN + 1 + LDG_CLUSTER_ID_LEN + 8 + LDG_PREAMBLE_ADDR_LEN +    \
     LDG_PREAMBLE_NONCE_LEN + LDG_PREAMBLE_HMAC_LEN)
#define LDG_PREAMBLE_ACCEPT 0x01

struct ldg_transport_opts {
    uint8_t cluster_id[LDG_CLUSTER_ID_LEN];
    const uint8_t *secret;         /* NULL = no secret; copied */
    size_t secret_len;
    uint64_t handshake_timeout_ms; /* preamble / accept byte deadline; 0 = 5000 */
    uint64_t connect_timeout_ms;   /* dial deadline; 0 = 5000 */
};

/* Fill |t| (zeroed by the caller or not) with our implementation. Peer
 * connections arrive through |listener| once libraft calls listen (may be
 * NULL: then listen fails with RAFT_IOERR and only dialing works).
 * Returns 0. Free with ldg_transport_free after libraft closed it (after
 * raft_uv_close, or after t->close's callback when used directly). */
int ldg_transport_init(struct raft_uv_transport *t, uv_loop_t *loop,
                       struct ldg_listener *listener, const struct ldg_transport_opts *o);
void ldg_transport_free(struct raft_uv_transport *t);

/* The listener is going away: unregister from it now and never touch it
 * again (connections already accepted go on). */
void ldg_transport_detach_listener(struct raft_uv_transport *t);

/* Build a preamble (exposed for tests and tools). |address| longer than
 * 127 bytes is LDG_EINVAL. Returns 0. */
int ldg_preamble_build(uint8_t out[LDG_PREAMBLE_LEN], const uint8_t cluster_id[LDG_CLUSTER_ID_LEN],
                       uint64_t node_id, const char *address, const uint8_t *secret,
                       size_t secret_len);

#endif
