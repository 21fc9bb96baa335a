/* Registration of every ledger.v1 method, implemented or not. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "ledger/v1/ledger.pb-c.h"
#include "rpc/forward.h"
#include "rpc/rpc.h"
#include "util/mem.h"

/* What the dispatcher needs to run one implemented method. */
struct ldg_rpc_route {
    struct ldg_rpc_ctx *ctx;
    ldg_grpc_handler_fn handler;
    bool admin; /* AdminService: subject to --admin-token-file */
};

static const ProtobufCServiceDescriptor *const services[] = {
    &ledger__v1__read_service__descriptor,
    &ledger__v1__write_service__descriptor,
    &ledger__v1__admin_service__descriptor,
    &ledger__v1__health_service__descriptor,
    &ledger__v1__system_discovery_service__descriptor,
};

static const struct ldg_rpc_impl *const impl_tables[] = {
    ldg_rpc_health_impls,
    ldg_rpc_admin_cluster_impls,
    ldg_rpc_discovery_impls,
    ldg_rpc_read_impls,
    ldg_rpc_write_impls,
    ldg_rpc_admin_impls,
    ldg_rpc_admin_integrity_impls,
    ldg_rpc_admin_backup_impls,
    ldg_rpc_admin_recover_impls,
};

/* Methods that always run on the leader (SPEC §4: writes and linearizable
 * reads sent to a follower are forwarded). */
static const char *const leader_only[] = {
    "ledger.v1.WriteService/Write",
    "ledger.v1.WriteService/BatchWrite",
    "ledger.v1.AdminService/CreateOrganization",
    "ledger.v1.AdminService/DeleteOrganization",
    "ledger.v1.AdminService/CreateVault",
    "ledger.v1.AdminService/DeleteVault",
    "ledger.v1.AdminService/ForceGc",
    "ledger.v1.AdminService/JoinCluster",
    "ledger.v1.AdminService/LeaveCluster",
};

/* Streaming methods: protobuf-c descriptors do not carry the streaming flag. */
static const char *const server_streaming[] = {
    "ledger.v1.ReadService/WatchBlocks",
};

static const struct ldg_rpc_impl *find_impl(const char *service, const char *method)
{
    for (size_t t = 0; t < LDG_ARRAY_SIZE(impl_tables); t++)
        for (const struct ldg_rpc_impl *i = impl_tables[t]; i->service; i++)
            if (strcmp(i->service, service) == 0 && strcmp(i->method, method) == 0)
                return i;
    return NULL;
}

int ldg_rpc_needs_leader(const char *service, const char *method, const ProtobufCMessage *req)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", service, method);
    for (size_t i = 0; i < LDG_ARRAY_SIZE(leader_only); i++)
        if (strcmp(leader_only[i], path) == 0)
            return 1;
    if (req == NULL)
        return 0;
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(req->descriptor, "consistency");
    if (f == NULL || f->type != PROTOBUF_C_TYPE_ENUM || f->label == PROTOBUF_C_LABEL_REPEATED)
        return 0;
    int v = *(const int *)((const char *)req + f->offset);
    return v == LEDGER__V1__READ_CONSISTENCY__READ_CONSISTENCY_LINEARIZABLE;
}

static enum ldg_grpc_kind kind_of(const char *service, const char *method)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", service, method);
    for (size_t i = 0; i < LDG_ARRAY_SIZE(server_streaming); i++)
        if (strcmp(server_streaming[i], path) == 0)
            return LDG_GRPC_SERVER_STREAM;
    return LDG_GRPC_UNARY;
}

/* "Bearer <token>" must match the configured admin token exactly. */
static bool admin_authorized(const struct ldg_rpc_ctx *ctx, const struct ldg_grpc_call *call)
{
    const char *auth = ldg_grpc_call_header(call, "authorization");
    static const char bearer[] = "Bearer ";
    if (auth == NULL || strncmp(auth, bearer, sizeof bearer - 1) != 0)
        return false;
    auth += sizeof bearer - 1;
    size_t n = strlen(ctx->admin_token);
    return strlen(auth) == n && CRYPTO_memcmp(auth, ctx->admin_token, n) == 0;
}

static void dispatch(struct ldg_grpc_call *call, const ProtobufCMessage *req, void *ud)
{
    struct ldg_rpc_route *r = ud;
    if (r->admin && r->ctx->admin_token != NULL && !admin_authorized(r->ctx, call)) {
        /* Bidi handlers are called again at half-close (req == NULL): the
         * call has already been ended then. */
        if (req != NULL || ldg_grpc_call_method(call)->kind != LDG_GRPC_BIDI_STREAM)
            ldg_grpc_call_fail(call, LDG_GRPC_UNAUTHENTICATED,
                               "AdminService needs 'authorization: Bearer <token>' metadata "
                               "matching --admin-token-file");
        return;
    }
    /* Calls that must run on the leader are forwarded from a follower (raw
     * bytes over one pooled HTTP/2 connection per leader address). */
    const struct ldg_grpc_method *m = ldg_grpc_call_method(call);
    if (m->kind == LDG_GRPC_UNARY && ldg_rpc_needs_leader(m->service, m->method, req) &&
        ldg_rpc_route_to_leader(r->ctx, call))
        return;
    r->handler(call, req, r->ctx);
}

void ldg_rpc_ctx_close(struct ldg_rpc_ctx *ctx)
{
    ldg_rpc_divergence_close(ctx);
    for (size_t i = 0; i < ctx->nroutes; i++)
        ldg_free(ctx->routes[i]);
    ldg_free(ctx->routes);
    ctx->routes = NULL;
    ctx->nroutes = 0;
    ldg_free(ctx->admin_token);
    ctx->admin_token = NULL;
}

static struct ldg_rpc_route *route_new(struct ldg_rpc_ctx *ctx, const char *service,
                                       ldg_grpc_handler_fn handler)
{
    struct ldg_rpc_route *r = ldg_calloc(1, sizeof *r);
    r->ctx = ctx;
    r->handler = handler;
    r->admin = strcmp(service, "ledger.v1.AdminService") == 0;
    ctx->routes = ldg_realloc(ctx->routes, (ctx->nroutes + 1) * sizeof *ctx->routes);
    ctx->routes[ctx->nroutes++] = r;
    return r;
}

int ldg_rpc_register_all(ldg_rpc_add_fn add, void *server, struct ldg_rpc_ctx *ctx)
{
    ldg_rpc_divergence_init(ctx);
    for (size_t s = 0; s < LDG_ARRAY_SIZE(services); s++) {
        const ProtobufCServiceDescriptor *sd = services[s];
        for (unsigned m = 0; m < sd->n_methods; m++) {
            const ProtobufCMethodDescriptor *md = &sd->methods[m];
            const struct ldg_rpc_impl *impl = find_impl(sd->name, md->name);
            char unimpl[256];
            snprintf(unimpl, sizeof unimpl,
                     "%s/%s is not implemented in this version of inferadb-ledger (%s); "
                     "see docs/api.md for the methods available",
                     sd->name, md->name, LDG_VERSION);
            struct ldg_grpc_method gm = {
                .service = sd->name,
                .method = md->name,
                .kind = impl ? impl->kind : kind_of(sd->name, md->name),
                .request = md->input,
                .response = md->output,
                .handler = impl ? dispatch : NULL,
                .ud = impl ? route_new(ctx, sd->name, impl->handler) : NULL,
                .unimplemented = impl ? NULL : unimpl,
            };
            int rv = add(server, &gm);
            if (rv != 0)
                return rv;
        }
    }
    return 0;
}
