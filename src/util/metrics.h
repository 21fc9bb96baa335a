/* Process-wide Prometheus metrics registry (text exposition format 0.0.4).
 *
 * A family has a name, help, type and a fixed list of label names; series
 * are created on first use from label values. Thread-safe (one mutex): the
 * loop thread and uv_queue_work threads may both record.
 *
 *   static const char *const lbl[] = {"service", "method", "code"};
 *   struct ldg_metric_family *f = ldg_metrics_counter("ledger_grpc_requests_total",
 *       "gRPC requests handled", 3, lbl);
 *   ldg_metrics_inc(f, (const char *[]){"ledger.v1.ReadService", "Read", "OK"}, 1);
 *
 * Registering the same name twice returns the existing family (same type and
 * labels required, else abort: a programming error). Names are asserted valid
 * (metric [a-zA-Z_:][a-zA-Z0-9_:]*, label [a-zA-Z_][a-zA-Z0-9_]*, no "__"
 * prefix, no "le" label); counter names must end in "_total".
 *
 * Exposition: families sorted by name, each with "# HELP" and "# TYPE";
 * series sorted by label values; a family without labels has its one series
 * (value 0) from registration on. Histograms render cumulative
 * name_bucket{...,le="..."} lines ending with le="+Inf", then name_sum and
 * name_count. Label values escape backslash, double quote and newline; help
 * text escapes backslash and newline. Numbers use the shortest form that
 * reads back exactly ("0.1", "42", "+Inf", "NaN").
 *
 * Family pointers stay valid until ldg_metrics_reset (tests only). */
#ifndef LDG_UTIL_METRICS_H
#define LDG_UTIL_METRICS_H

#include <stddef.h>

#include "util/buf.h"

struct ldg_metric_family;

/* Default latency buckets in seconds (0.0005 .. 10). */
extern const double ldg_metrics_latency_buckets[];
extern const size_t ldg_metrics_latency_buckets_len;

struct ldg_metric_family *ldg_metrics_counter(const char *name, const char *help,
                                              size_t nlabels, const char *const *labels);
struct ldg_metric_family *ldg_metrics_gauge(const char *name, const char *help,
                                            size_t nlabels, const char *const *labels);
/* |buckets| are upper bounds in increasing order (+Inf is implicit); copied. */
struct ldg_metric_family *ldg_metrics_histogram(const char *name, const char *help,
                                                size_t nlabels, const char *const *labels,
                                                const double *buckets, size_t nbuckets);

/* |values| has one entry per label name (NULL when the family has none);
 * values are copied. inc: counters and gauges (counters assert v >= 0).
 * set: gauges and counters (a counter mirrored from an external source,
 * e.g. CPU time). observe: histograms only. */
void ldg_metrics_inc(struct ldg_metric_family *f, const char *const *values, double v);
void ldg_metrics_set(struct ldg_metric_family *f, const char *const *values, double v);
void ldg_metrics_observe(struct ldg_metric_family *f, const char *const *values, double v);
/* Drop every series of a gauge family (before re-setting a changing set).
 * Also allowed on other types; a family without labels then renders no
 * sample until it is set/incremented again. */
void ldg_metrics_clear(struct ldg_metric_family *f);

/* Called (under no lock) before each render, to refresh gauges. */
typedef void (*ldg_metrics_collect_cb)(void *arg);
void ldg_metrics_add_collector(ldg_metrics_collect_cb cb, void *arg);

/* Append the whole exposition to |out|. */
void ldg_metrics_render(struct ldg_buf *out);

/* Remove a collector added with the same |cb| and |arg| (no-op when absent).
 * Call it before freeing |arg|. Adding the same pair twice keeps one entry. */
void ldg_metrics_remove_collector(ldg_metrics_collect_cb cb, void *arg);

/* Register the standard process metrics and build info (idempotent):
 *   process_start_time_seconds     gauge    Unix time the process started
 *   process_cpu_seconds_total      counter  user + system CPU time
 *   process_resident_memory_bytes  gauge    resident set size
 *   process_virtual_memory_bytes   gauge    virtual memory size
 *   process_open_fds               gauge    open file descriptors
 *   process_max_fds                gauge    RLIMIT_NOFILE soft limit
 *   ledger_build_info{version}     gauge    always 1, version = LDG_VERSION
 * and the two gRPC families recorded by ldg_metrics_grpc_observe, so they are
 * listed (HELP/TYPE) before the first request. Values come from /proc/self
 * through a collector refreshed at each render. */
void ldg_metrics_register_process(void);

/* Record one finished gRPC call:
 *   ledger_grpc_requests_total{service,method,code} += 1
 *   ledger_grpc_request_duration_seconds{service,method} observes |seconds|
 * |code| is the status name ("OK", "NOT_FOUND", ...). Registers the families
 * on first use. Thread-safe. */
void ldg_metrics_grpc_observe(const char *service, const char *method, const char *code,
                              double seconds);

/* Forget every family and collector (tests). Family pointers obtained before
 * become invalid. */
void ldg_metrics_reset(void);

#endif
