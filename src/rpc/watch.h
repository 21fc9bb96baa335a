/* ReadService/WatchBlocks: block announcements of one chain from
 * start_height (history read from the store), then live (from
 * ldg_cluster_watch).
 *
 * Backpressure: history is replayed in slices of 256 per loop turn; when
 * the stream's send queue is full during history the replay waits (20 ms
 * steps) for it to drain, for at most 30 s. A live subscriber whose queue
 * is full is ended with RESOURCE_EXHAUSTED naming the height to resume
 * from: nothing is buffered beyond the per-stream send limit. Cancel ends
 * the stream and unsubscribes. */
#ifndef LDG_RPC_WATCH_H
#define LDG_RPC_WATCH_H

#include "net/grpc.h"

/* The WatchBlocks handler (ud: struct ldg_rpc_ctx *, whose loop is used). */
void ldg_rpc_watch_blocks(struct ldg_grpc_call *call, const ProtobufCMessage *req, void *ud);

#endif
