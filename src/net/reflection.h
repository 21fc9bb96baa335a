/* gRPC server reflection: grpc.reflection.v1.ServerReflection and
 * grpc.reflection.v1alpha.ServerReflection (bidi ServerReflectionInfo).
 *
 * The answers come from the FileDescriptorSet that the build embeds as
 * ldg_descriptor_set[] (protoc --include_imports over every proto/ file).
 * It is indexed once: file name -> the exact serialized FileDescriptorProto
 * bytes from the set, and fully-qualified symbol -> file name.
 *
 * Requests and what they answer (one response per request, in order):
 *   list_services                 the names given to ldg_reflection_set_services
 *                                 (every service of the set until it is called)
 *   file_by_filename              the file, then its transitive dependencies
 *   file_containing_symbol        the defining file, then its dependencies;
 *                                 symbols: messages (also nested), enums, enum
 *                                 values, fields, oneofs, services, methods,
 *                                 extensions
 *   file_containing_extension     the file declaring that extension + deps
 *   all_extension_numbers_of_type the extension numbers of a known message
 *                                 type (usually none)
 * Unknown names get error_response NOT_FOUND (5) with a message; a request
 * with no message_request set ends the stream with INVALID_ARGUMENT.
 * valid_host echoes the request's host and original_request echoes the
 * request. Client half-close ends the stream with OK.
 *
 * Everything here runs on the loop thread; the module state is global. */
#ifndef LDG_NET_REFLECTION_H
#define LDG_NET_REFLECTION_H

#include <stddef.h>
#include <stdint.h>

#include "net/grpc.h"
#include "util/err.h"

/* ---- descriptor index (pure; used by the service, usable on its own) ---- */

struct ldg_refl_index;

enum ldg_refl_sym_kind {
    LDG_REFL_SYM_MESSAGE = 1,
    LDG_REFL_SYM_ENUM = 2,
    LDG_REFL_SYM_ENUM_VALUE = 3,
    LDG_REFL_SYM_FIELD = 4,
    LDG_REFL_SYM_ONEOF = 5,
    LDG_REFL_SYM_EXTENSION = 6,
    LDG_REFL_SYM_SERVICE = 7,
    LDG_REFL_SYM_METHOD = 8,
};

/* One file of the set: borrowed from the index, valid while it lives. */
struct ldg_refl_file {
    const char *name;    /* "grpc/health/v1/health.proto" */
    const uint8_t *data; /* serialized FileDescriptorProto, exact bytes of the set */
    size_t len;
};

/* Index the serialized FileDescriptorSet |set| (copied; the caller keeps it).
 * On success *out is the index; free with ldg_refl_index_free.
 * Returns 0, LDG_ECORRUPT (malformed wire data, a file without a name,
 * nesting deeper than 64 levels). A duplicate file name or symbol keeps the
 * first one. */
int ldg_refl_index_new(const uint8_t *set, size_t len, struct ldg_refl_index **out);
/* NULL is a no-op. */
void ldg_refl_index_free(struct ldg_refl_index *idx);

/* Number of files in the set, and file |i| (in set order), borrowed. */
size_t ldg_refl_index_file_count(const struct ldg_refl_index *idx);
const struct ldg_refl_file *ldg_refl_index_file_at(const struct ldg_refl_index *idx, size_t i);
/* The file called |name|, or NULL. */
const struct ldg_refl_file *ldg_refl_index_file(const struct ldg_refl_index *idx,
                                                const char *name);
/* The file defining fully-qualified |symbol| ("pkg.Msg.Nested", no leading
 * dot), or NULL. *kind (may be NULL) receives its enum ldg_refl_sym_kind. */
const struct ldg_refl_file *ldg_refl_index_symbol(const struct ldg_refl_index *idx,
                                                  const char *symbol, int *kind);
/* |file| followed by every file it depends on, transitively, each once
 * (depth-first, in declaration order; dependencies missing from the set are
 * skipped). *out is an array of *n borrowed pointers; caller frees the array
 * with ldg_free. Returns 0 or LDG_ENOTFOUND when |name| is not in the set. */
int ldg_refl_index_closure(const struct ldg_refl_index *idx, const char *name,
                           const struct ldg_refl_file ***out, size_t *n);
/* Services defined in the set (fully-qualified names, set order), borrowed. */
size_t ldg_refl_index_service_count(const struct ldg_refl_index *idx);
const char *ldg_refl_index_service_at(const struct ldg_refl_index *idx, size_t i);
/* The file declaring extension |number| of message |type| (no leading dot),
 * or NULL. */
const struct ldg_refl_file *ldg_refl_index_extension(const struct ldg_refl_index *idx,
                                                     const char *type, int32_t number);
/* Extension numbers declared for message |type|: *nums (caller frees with
 * ldg_free; NULL when *n is 0). Returns 0, or LDG_ENOTFOUND when |type| is
 * not a message of the set. */
int ldg_refl_index_extension_numbers(const struct ldg_refl_index *idx, const char *type,
                                     int32_t **nums, size_t *n);

/* ---- the reflection services ---- */

/* Index the embedded descriptor set. Idempotent (0 when already done).
 * Returns 0 or LDG_ECORRUPT (with a message in |err|, may be NULL). */
int ldg_reflection_init(struct ldg_err *err);
/* Replace the index with one built from |set| (copied) instead of the
 * embedded set: for tests. Returns 0 or LDG_ECORRUPT; on error the previous
 * index stays. */
int ldg_reflection_init_from(const uint8_t *set, size_t len, struct ldg_err *err);
/* The current index (NULL before init), borrowed. */
const struct ldg_refl_index *ldg_reflection_index(void);

/* Set the service names list_services reports (the services registered on
 * the server, reflection itself included): copied. n == 0 clears the list.
 * While the list is empty, list_services reports every service of the
 * descriptor set, which is right when every proto service is registered (as
 * rpc/registry.c does for ledger.v1). Returns 0. */
int ldg_reflection_set_services(const char *const *names, size_t n);
/* Append |name| (copied) unless already listed. Returns 0. */
int ldg_reflection_add_service(const char *name);

/* The methods to register on the server: *out points to a static array of
 * *n = 2 entries (grpc.reflection.v1 and grpc.reflection.v1alpha
 * ServerReflection/ServerReflectionInfo, LDG_GRPC_BIDI_STREAM). Initializes
 * the embedded index if needed. Returns 0 or LDG_ECORRUPT. */
int ldg_reflection_methods(const struct ldg_grpc_method **out, size_t *n);

/* Register both methods through |add| (same shape as ldg_rpc_add_fn in
 * rpc/rpc.h, e.g. the server's add-method function) on |server|. Does not
 * touch the list_services list. Returns 0, LDG_ECORRUPT (index), or the
 * first error of |add|. */
int ldg_reflection_register(int (*add)(void *server, const struct ldg_grpc_method *m),
                            void *server);

/* Free the index and the service list (tests, shutdown). Calls in flight
 * must be over. */
void ldg_reflection_close(void);

#endif
