/* The single TCP port (ARCHITECTURE "Single port"): accept connections and
 * look at their first bytes to decide who serves them.
 *
 *   HTTP/2 client preface "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  -> gRPC server
 *   a registered magic prefix (e.g. the Raft preamble)      -> its accept_cb
 *   an HTTP/1.x request line ("GET ", "POST ", other "PRI") -> a short 400/505
 *       text reply explaining that the port speaks gRPC, then close
 *   anything else                                           -> close
 *
 * Reads while sniffing are exact: libuv gets buffers no larger than the bytes
 * still needed for a decision, so nothing past the prefix is consumed and the
 * next owner reads the stream from exactly there. Registered magics win over
 * the built-in HTTP/1 reply (so "GET " can later be registered for metrics).
 * A connection that does not decide within the handshake timeout is closed;
 * at most max_conns connections (sniffing plus gRPC) are open, others are
 * accepted and closed at once. */
#ifndef LDG_NET_LISTENER_H
#define LDG_NET_LISTENER_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "util/err.h"

struct ldg_grpc_server;
struct ldg_listener;

#define LDG_LISTENER_MAX_MAGIC 32

struct ldg_listener_opts {
    uint64_t handshake_timeout_ms; /* first bytes must decide by then; default 10000 */
    size_t max_conns;              /* open connections; default 1024 */
};

/* A connection for a registered protocol. Takes ownership of |tcp| (allocated
 * with ldg_malloc, reading stopped, tcp->data free for the new owner, who
 * closes it and ldg_frees it in the close cb). |prefix| holds the |n| bytes
 * already read (the magic), valid only during the call. */
typedef void (*ldg_listener_accept_cb)(void *arg, uv_tcp_t *tcp, const uint8_t *prefix,
                                       size_t n);
typedef void (*ldg_listener_close_cb)(void *arg);

/* Parse "ip:port" or "[ipv6]:port" into |out|. Returns 0 or LDG_EINVAL. */
int ldg_listener_parse_addr(const char *addr, struct sockaddr_storage *out);

/* Bind and listen on |addr| ("0.0.0.0:50051", "[::]:50051", port 0 picks one).
 * |opts| may be NULL (defaults); |grpc| (may be NULL: HTTP/2 is then closed)
 * serves HTTP/2 connections and is borrowed: it must outlive the listener.
 * Caller closes with ldg_listener_close. Returns 0, LDG_EINVAL (bad address)
 * or the translated libuv error (ldg_err_from_uv; the message in |err|, which
 * may be NULL, names the libuv error, e.g. "address already in use"). */
int ldg_listener_new(uv_loop_t *loop, const char *addr, const struct ldg_listener_opts *opts,
                     struct ldg_grpc_server *grpc, struct ldg_listener **out,
                     struct ldg_err *err);

/* Route connections starting with |magic| (1..LDG_LISTENER_MAX_MAGIC bytes,
 * copied) to |cb|. Returns 0, LDG_EINVAL (bad length) or LDG_EEXIST (same
 * magic already registered). */
int ldg_listener_add_protocol(struct ldg_listener *l, const uint8_t *magic, size_t magic_len,
                              ldg_listener_accept_cb cb, void *arg);

/* Stop routing connections starting with |magic| (exact same bytes as
 * registered); connections already handed over are not touched. Returns 0
 * or LDG_ENOTFOUND. */
int ldg_listener_remove_protocol(struct ldg_listener *l, const uint8_t *magic,
                                 size_t magic_len);

/* The bound port (useful after binding port 0). */
int ldg_listener_port(const struct ldg_listener *l);

/* Stop accepting, close connections still being sniffed, free the listener
 * and then call |cb| (may be NULL) once, later. Connections already handed
 * over are not touched. */
void ldg_listener_close(struct ldg_listener *l, ldg_listener_close_cb cb, void *arg);

#endif
