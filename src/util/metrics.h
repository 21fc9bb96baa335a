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
 * labels required, else abort: a programming error). */
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

/* |values| has one entry per label name (NULL when the family has none). */
void ldg_metrics_inc(struct ldg_metric_family *f, const char *const *values, double v);
void ldg_metrics_set(struct ldg_metric_family *f, const char *const *values, double v);
void ldg_metrics_observe(struct ldg_metric_family *f, const char *const *values, double v);
/* Drop every series of a gauge family (before re-setting a changing set). */
void ldg_metrics_clear(struct ldg_metric_family *f);

/* Called (under no lock) before each render, to refresh gauges. */
typedef void (*ldg_metrics_collect_cb)(void *arg);
void ldg_metrics_add_collector(ldg_metrics_collect_cb cb, void *arg);

/* Append the whole exposition to |out|. */
void ldg_metrics_render(struct ldg_buf *out);

/* Forget every family and collector (tests). */
void ldg_metrics_reset(void);

#endif
