/* Prometheus registry: exact exposition text, escaping, histograms, clear,
 * collectors, process metrics, thread safety, and promtool validation. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/buf.h"
#include "util/metrics.h"

static int setup(void **state)
{
    (void)state;
    ldg_metrics_reset();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ldg_metrics_reset();
    return 0;
}

/* Render the registry into a NUL-terminated heap string. */
static char *render(void)
{
    struct ldg_buf b;
    ldg_buf_init(&b);
    ldg_metrics_render(&b);
    ldg_buf_append(&b, "", 1);
    size_t n;
    return (char *)ldg_buf_steal(&b, &n);
}

static void test_counter_gauge_text(void **state)
{
    (void)state;
    static const char *const lbl[] = {"service", "code"};
    struct ldg_metric_family *c =
        ldg_metrics_counter("t_requests_total", "Requests handled.", 2, lbl);
    struct ldg_metric_family *g = ldg_metrics_gauge("t_temperature", "A gauge.", 0, NULL);
    ldg_metrics_inc(c, (const char *[]){"write", "OK"}, 1);
    ldg_metrics_inc(c, (const char *[]){"read", "OK"}, 2);
    ldg_metrics_inc(c, (const char *[]){"read", "NOT_FOUND"}, 1);
    ldg_metrics_inc(c, (const char *[]){"read", "OK"}, 3);
    ldg_metrics_set(g, NULL, 1.5);
    ldg_metrics_inc(g, NULL, -2);
    char *text = render();
    assert_string_equal(text, "# HELP t_requests_total Requests handled.\n"
                              "# TYPE t_requests_total counter\n"
                              "t_requests_total{service=\"read\",code=\"NOT_FOUND\"} 1\n"
                              "t_requests_total{service=\"read\",code=\"OK\"} 5\n"
                              "t_requests_total{service=\"write\",code=\"OK\"} 1\n"
                              "# HELP t_temperature A gauge.\n"
                              "# TYPE t_temperature gauge\n"
                              "t_temperature -0.5\n");
    free(text);
}

static void test_unlabelled_starts_at_zero_and_labelled_empty(void **state)
{
    (void)state;
    static const char *const lbl[] = {"x"};
    ldg_metrics_counter("t_b_total", "B.", 0, NULL);
    ldg_metrics_gauge("t_a", "A.", 1, lbl);
    char *text = render();
    assert_string_equal(text, "# HELP t_a A.\n# TYPE t_a gauge\n"
                              "# HELP t_b_total B.\n# TYPE t_b_total counter\n"
                              "t_b_total 0\n");
    free(text);
}

static void test_label_and_help_escaping(void **state)
{
    (void)state;
    static const char *const lbl[] = {"path"};
    struct ldg_metric_family *g =
        ldg_metrics_gauge("t_escape", "Help with \\ backslash\nand newline \"quoted\".", 1, lbl);
    ldg_metrics_set(g, (const char *[]){"a\\b\"c\nd"}, 7);
    char *text = render();
    assert_string_equal(text,
                        "# HELP t_escape Help with \\\\ backslash\\nand newline \"quoted\".\n"
                        "# TYPE t_escape gauge\n"
                        "t_escape{path=\"a\\\\b\\\"c\\nd\"} 7\n");
    free(text);
}

static void test_histogram_cumulative(void **state)
{
    (void)state;
    static const char *const lbl[] = {"op"};
    static const double buckets[] = {0.5, 1, 2};
    struct ldg_metric_family *h =
        ldg_metrics_histogram("t_latency_seconds", "Latency.", 1, lbl, buckets, 3);
    const char *const put[] = {"put"};
    ldg_metrics_observe(h, put, 0.25);
    ldg_metrics_observe(h, put, 0.5); /* le is inclusive */
    ldg_metrics_observe(h, put, 0.75);
    ldg_metrics_observe(h, put, 4);
    ldg_metrics_observe(h, (const char *[]){"get"}, 1);
    char *text = render();
    assert_string_equal(text, "# HELP t_latency_seconds Latency.\n"
                              "# TYPE t_latency_seconds histogram\n"
                              "t_latency_seconds_bucket{op=\"get\",le=\"0.5\"} 0\n"
                              "t_latency_seconds_bucket{op=\"get\",le=\"1\"} 1\n"
                              "t_latency_seconds_bucket{op=\"get\",le=\"2\"} 1\n"
                              "t_latency_seconds_bucket{op=\"get\",le=\"+Inf\"} 1\n"
                              "t_latency_seconds_sum{op=\"get\"} 1\n"
                              "t_latency_seconds_count{op=\"get\"} 1\n"
                              "t_latency_seconds_bucket{op=\"put\",le=\"0.5\"} 2\n"
                              "t_latency_seconds_bucket{op=\"put\",le=\"1\"} 3\n"
                              "t_latency_seconds_bucket{op=\"put\",le=\"2\"} 3\n"
                              "t_latency_seconds_bucket{op=\"put\",le=\"+Inf\"} 4\n"
                              "t_latency_seconds_sum{op=\"put\"} 5.5\n"
                              "t_latency_seconds_count{op=\"put\"} 4\n");
    free(text);
}

static void test_histogram_without_labels(void **state)
{
    (void)state;
    static const double buckets[] = {0.001};
    struct ldg_metric_family *h =
        ldg_metrics_histogram("t_batch_seconds", "Batch.", 0, NULL, buckets, 1);
    ldg_metrics_observe(h, NULL, 0.0005);
    char *text = render();
    assert_string_equal(text, "# HELP t_batch_seconds Batch.\n"
                              "# TYPE t_batch_seconds histogram\n"
                              "t_batch_seconds_bucket{le=\"0.001\"} 1\n"
                              "t_batch_seconds_bucket{le=\"+Inf\"} 1\n"
                              "t_batch_seconds_sum 0.0005\n"
                              "t_batch_seconds_count 1\n");
    free(text);
}

static void test_number_formatting(void **state)
{
    (void)state;
    static const char *const lbl[] = {"k"};
    struct ldg_metric_family *g = ldg_metrics_gauge("t_num", "Numbers.", 1, lbl);
    ldg_metrics_set(g, (const char *[]){"a"}, 0.1);
    ldg_metrics_set(g, (const char *[]){"b"}, 123456789);
    ldg_metrics_set(g, (const char *[]){"c"}, 1e-7);
    ldg_metrics_set(g, (const char *[]){"d"}, NAN);
    ldg_metrics_set(g, (const char *[]){"e"}, INFINITY);
    ldg_metrics_set(g, (const char *[]){"f"}, -INFINITY);
    ldg_metrics_set(g, (const char *[]){"g"}, 1.0 / 3.0);
    ldg_metrics_set(g, (const char *[]){"h"}, 18446744073709551616.0);
    ldg_metrics_set(g, (const char *[]){"i"}, 10);
    ldg_metrics_set(g, (const char *[]){"j"}, 2500000);
    ldg_metrics_set(g, (const char *[]){"k"}, 1e20);
    ldg_metrics_set(g, (const char *[]){"l"}, 0);
    char *text = render();
    assert_non_null(strstr(text, "t_num{k=\"a\"} 0.1\n"));
    assert_non_null(strstr(text, "t_num{k=\"b\"} 123456789\n"));
    assert_non_null(strstr(text, "t_num{k=\"c\"} 1e-07\n"));
    assert_non_null(strstr(text, "t_num{k=\"d\"} NaN\n"));
    assert_non_null(strstr(text, "t_num{k=\"e\"} +Inf\n"));
    assert_non_null(strstr(text, "t_num{k=\"f\"} -Inf\n"));
    assert_non_null(strstr(text, "t_num{k=\"g\"} 0.3333333333333333\n"));
    assert_non_null(strstr(text, "t_num{k=\"h\"} 1.8446744073709552e+19\n"));
    assert_non_null(strstr(text, "t_num{k=\"i\"} 10\n"));
    assert_non_null(strstr(text, "t_num{k=\"j\"} 2500000\n"));
    assert_non_null(strstr(text, "t_num{k=\"k\"} 1e+20\n"));
    assert_non_null(strstr(text, "t_num{k=\"l\"} 0\n"));
    free(text);
}

static void test_clear(void **state)
{
    (void)state;
    static const char *const lbl[] = {"status"};
    struct ldg_metric_family *g = ldg_metrics_gauge("t_vaults", "Vaults.", 1, lbl);
    ldg_metrics_set(g, (const char *[]){"healthy"}, 3);
    ldg_metrics_set(g, (const char *[]){"diverged"}, 1);
    ldg_metrics_clear(g);
    ldg_metrics_set(g, (const char *[]){"healthy"}, 4);
    char *text = render();
    assert_string_equal(text, "# HELP t_vaults Vaults.\n# TYPE t_vaults gauge\n"
                              "t_vaults{status=\"healthy\"} 4\n");
    free(text);
}

static void test_register_twice_returns_same(void **state)
{
    (void)state;
    static const char *const lbl[] = {"a"};
    struct ldg_metric_family *f1 = ldg_metrics_counter("t_x_total", "X.", 1, lbl);
    struct ldg_metric_family *f2 = ldg_metrics_counter("t_x_total", "X again.", 1, lbl);
    assert_ptr_equal(f1, f2);
    ldg_metrics_inc(f2, (const char *[]){"v"}, 1);
    char *text = render();
    assert_non_null(strstr(text, "t_x_total{a=\"v\"} 1\n"));
    free(text);
}

static int collect_calls;

static void collect_cb(void *arg)
{
    collect_calls++;
    ldg_metrics_set(arg, NULL, collect_calls);
}

static void test_collectors(void **state)
{
    (void)state;
    collect_calls = 0;
    struct ldg_metric_family *g = ldg_metrics_gauge("t_collected", "Collected.", 0, NULL);
    ldg_metrics_add_collector(collect_cb, g);
    ldg_metrics_add_collector(collect_cb, g); /* duplicate: kept once */
    char *text = render();
    assert_int_equal(collect_calls, 1);
    assert_non_null(strstr(text, "t_collected 1\n"));
    free(text);
    text = render();
    assert_int_equal(collect_calls, 2);
    assert_non_null(strstr(text, "t_collected 2\n"));
    free(text);
    ldg_metrics_remove_collector(collect_cb, g);
    text = render();
    assert_int_equal(collect_calls, 2);
    assert_non_null(strstr(text, "t_collected 2\n"));
    free(text);
}

static double sample_value(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; (p = strstr(p, series)) != NULL; p++) {
        if ((p == text || p[-1] == '\n') && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    }
    fail_msg("series %s not found in:\n%s", series, text);
    return 0;
}

static void test_process_metrics(void **state)
{
    (void)state;
    ldg_metrics_register_process();
    ldg_metrics_register_process(); /* idempotent */
    /* Burn a little CPU so cpu_seconds can be > 0 on a coarse clock. */
    volatile double x = 0;
    for (int i = 0; i < 3000000; i++)
        x += i * 0.5;
    char *text = render();
    double now = (double)time(NULL);
    double start = sample_value(text, "process_start_time_seconds");
    assert_true(start > now - 3600 && start <= now + 1);
    assert_true(sample_value(text, "process_resident_memory_bytes") > 1024 * 1024);
    assert_true(sample_value(text, "process_virtual_memory_bytes") > 1024 * 1024);
    assert_true(sample_value(text, "process_open_fds") >= 3);
    assert_true(sample_value(text, "process_max_fds") >= 3);
    assert_true(sample_value(text, "process_cpu_seconds_total") >= 0);
    assert_non_null(strstr(text, "# TYPE process_cpu_seconds_total counter\n"));
    assert_true(sample_value(text, "ledger_build_info{version=\"" LDG_VERSION "\"}") == 1);
    assert_non_null(strstr(text, "# TYPE ledger_grpc_requests_total counter\n"));
    assert_non_null(strstr(text, "# TYPE ledger_grpc_request_duration_seconds histogram\n"));
    /* Exactly one collector registered: counting a new fd shows up. */
    double fds = sample_value(text, "process_open_fds");
    free(text);
    int extra = dup(0);
    assert_true(extra >= 0);
    text = render();
    assert_true(sample_value(text, "process_open_fds") == fds + 1);
    free(text);
    close(extra);
}

static void test_grpc_observe(void **state)
{
    (void)state;
    ldg_metrics_grpc_observe("ledger.v1.ReadService", "Read", "OK", 0.003);
    ldg_metrics_grpc_observe("ledger.v1.ReadService", "Read", "OK", 0.02);
    ldg_metrics_grpc_observe("ledger.v1.ReadService", "Read", "NOT_FOUND", 20);
    char *text = render();
    assert_true(sample_value(text, "ledger_grpc_requests_total{service=\"ledger.v1.ReadService\","
                                   "method=\"Read\",code=\"OK\"}") == 2);
    assert_true(sample_value(text, "ledger_grpc_requests_total{service=\"ledger.v1.ReadService\","
                                   "method=\"Read\",code=\"NOT_FOUND\"}") == 1);
    const char *base = "ledger_grpc_request_duration_seconds_bucket{service=\"ledger.v1."
                       "ReadService\",method=\"Read\",le=";
    char series[256];
    snprintf(series, sizeof series, "%s\"0.0025\"}", base);
    assert_true(sample_value(text, series) == 0);
    snprintf(series, sizeof series, "%s\"0.005\"}", base);
    assert_true(sample_value(text, series) == 1);
    snprintf(series, sizeof series, "%s\"0.025\"}", base);
    assert_true(sample_value(text, series) == 2);
    snprintf(series, sizeof series, "%s\"10\"}", base);
    assert_true(sample_value(text, series) == 2);
    snprintf(series, sizeof series, "%s\"+Inf\"}", base);
    assert_true(sample_value(text, series) == 3);
    assert_true(sample_value(text, "ledger_grpc_request_duration_seconds_count{service=\"ledger."
                                   "v1.ReadService\",method=\"Read\"}") == 3);
    free(text);
}

#define THREADS 4
#define PER_THREAD 20000

static void *inc_thread(void *arg)
{
    struct ldg_metric_family *c = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        ldg_metrics_inc(c, (const char *[]){(i & 1) ? "odd" : "even"}, 1);
        if (i % 1000 == 0) {
            struct ldg_buf b;
            ldg_buf_init(&b);
            ldg_metrics_render(&b);
            ldg_buf_close(&b);
        }
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    static const char *const lbl[] = {"parity"};
    struct ldg_metric_family *c = ldg_metrics_counter("t_threads_total", "T.", 1, lbl);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, inc_thread, c), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    char *text = render();
    assert_true(sample_value(text, "t_threads_total{parity=\"even\"}") ==
                THREADS * PER_THREAD / 2);
    assert_true(sample_value(text, "t_threads_total{parity=\"odd\"}") ==
                THREADS * PER_THREAD / 2);
    free(text);
}

/* ---- promtool ---- */

#define PROMTOOL "/usr/bin/promtool"

/* Run "promtool check metrics" on |text|; returns its exit status and puts
 * its combined output in |log| (NUL-terminated). */
static int promtool_check(const char *text, char *log, size_t log_len)
{
    char in_path[] = "/tmp/ldg_metrics_XXXXXX";
    int fd = mkstemp(in_path);
    assert_true(fd >= 0);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s check metrics < %s 2>&1", PROMTOOL, in_path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t got = fread(log, 1, log_len - 1, p);
    log[got] = '\0';
    int st = pclose(p);
    unlink(in_path);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_promtool_accepts_exposition(void **state)
{
    (void)state;
    if (access(PROMTOOL, X_OK) != 0) {
        print_message("SKIP: %s not found; cannot validate the exposition\n", PROMTOOL);
        skip();
    }
    ldg_metrics_register_process();
    ldg_metrics_grpc_observe("ledger.v1.WriteService", "Write", "OK", 0.004);
    ldg_metrics_grpc_observe("ledger.v1.WriteService", "Write", "UNAVAILABLE", 0.2);
    ldg_metrics_grpc_observe("ledger.v1.ReadService", "Read", "OK", 0.0001);
    static const char *const lbl[] = {"organization", "vault"};
    struct ldg_metric_family *c = ldg_metrics_counter(
        "ledger_test_events_total", "Events with \\ odd \"help\"\ntext.", 2, lbl);
    ldg_metrics_inc(c, (const char *[]){"org \"a\"", "v\\1\nx"}, 3);
    struct ldg_metric_family *g = ldg_metrics_gauge("ledger_test_ratio", "Ratio.", 0, NULL);
    ldg_metrics_set(g, NULL, NAN);
    char *text = render();
    char log[8192];
    int rc = promtool_check(text, log, sizeof log);
    if (rc != 0)
        fail_msg("promtool exit %d:\n%s\n--- exposition ---\n%s", rc, log, text);
    free(text);

    /* The check is real: promtool rejects a broken exposition. */
    rc = promtool_check("# TYPE x counter\nx{a=\"1} 1\n", log, sizeof log);
    assert_int_not_equal(rc, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_counter_gauge_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unlabelled_starts_at_zero_and_labelled_empty, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_label_and_help_escaping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_histogram_cumulative, setup, teardown),
        cmocka_unit_test_setup_teardown(test_histogram_without_labels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_number_formatting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clear, setup, teardown),
        cmocka_unit_test_setup_teardown(test_register_twice_returns_same, setup, teardown),
        cmocka_unit_test_setup_teardown(test_collectors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_process_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grpc_observe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_promtool_accepts_exposition, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
