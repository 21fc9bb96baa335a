/* Prometheus registry and text exposition (format 0.0.4).
 *
 * One mutex guards everything: the family array (sorted by name) and each
 * family's series array (sorted by label values). Recording is a binary
 * search plus an update under the lock; rendering runs the collectors first
 * (without the lock, so they can record), then prints under the lock.
 * Histogram buckets are stored per bucket and summed while rendering. */
#include "util/metrics.h"

#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "util/assert.h"
#include "util/mem.h"

enum family_type { TYPE_COUNTER, TYPE_GAUGE, TYPE_HISTOGRAM };

static const char *const type_names[] = {"counter", "gauge", "histogram"};

struct series {
    char **values;    /* one copied value per label name */
    double value;     /* counter / gauge */
    uint64_t *counts; /* histogram: per-bucket counts, [nbuckets] is +Inf */
    uint64_t count;   /* histogram: observations */
    double sum;       /* histogram: sum of observations */
};

struct ldg_metric_family {
    char *name;
    char *help;
    enum family_type type;
    size_t nlabels;
    char **labels;          /* label names */
    double *buckets;        /* histogram upper bounds, increasing */
    size_t nbuckets;
    struct series **series; /* sorted by label values */
    size_t nseries;
    size_t cap;
};

struct collector {
    ldg_metrics_collect_cb cb;
    void *arg;
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ldg_metric_family **families; /* sorted by name */
static size_t nfamilies;
static struct collector *collectors;
static size_t ncollectors;

/* Families created by ldg_metrics_grpc_observe / register_process. */
static struct ldg_metric_family *grpc_requests;
static struct ldg_metric_family *grpc_duration;

const double ldg_metrics_latency_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01,
                                              0.025,  0.05,  0.1,    0.25,  0.5,
                                              1,      2.5,   5,      10};
const size_t ldg_metrics_latency_buckets_len = LDG_ARRAY_SIZE(ldg_metrics_latency_buckets);

/* ---- names ---- */

static int valid_name(const char *s, int colon_ok)
{
    if (s == NULL || *s == '\0')
        return 0;
    for (const char *p = s; *p; p++) {
        char c = *p;
        int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                    (colon_ok && c == ':');
        if (!alpha && !(p != s && c >= '0' && c <= '9'))
            return 0;
    }
    return 1;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* ---- lookup (reg_mu held) ---- */

static size_t family_pos(const char *name, int *found)
{
    size_t lo = 0, hi = nfamilies;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(families[mid]->name, name);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = 0;
    return lo;
}

static int values_cmp(size_t n, char *const *a, const char *const *b)
{
    for (size_t i = 0; i < n; i++) {
        int c = strcmp(a[i], b[i]);
        if (c != 0)
            return c;
    }
    return 0;
}

static struct series *series_new(const struct ldg_metric_family *f, const char *const *values)
{
    struct series *s = ldg_calloc(1, sizeof *s);
    if (f->nlabels > 0) {
        s->values = ldg_calloc(f->nlabels, sizeof *s->values);
        for (size_t i = 0; i < f->nlabels; i++)
            s->values[i] = ldg_strdup(values[i]);
    }
    if (f->type == TYPE_HISTOGRAM)
        s->counts = ldg_calloc(f->nbuckets + 1, sizeof *s->counts);
    return s;
}

static void series_free(const struct ldg_metric_family *f, struct series *s)
{
    for (size_t i = 0; i < f->nlabels; i++)
        ldg_free(s->values[i]);
    ldg_free(s->values);
    ldg_free(s->counts);
    ldg_free(s);
}

/* The series for |values|, created on first use. */
static struct series *series_get(struct ldg_metric_family *f, const char *const *values)
{
    if (f->nlabels > 0)
        for (size_t i = 0; i < f->nlabels; i++)
            LDG_ASSERT(values != NULL && values[i] != NULL);
    size_t lo = 0, hi = f->nseries;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = values_cmp(f->nlabels, f->series[mid]->values, values);
        if (c == 0)
            return f->series[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (f->nseries == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 4;
        f->series = ldg_realloc(f->series, f->cap * sizeof *f->series);
    }
    memmove(f->series + lo + 1, f->series + lo, (f->nseries - lo) * sizeof *f->series);
    f->series[lo] = series_new(f, values);
    f->nseries++;
    return f->series[lo];
}

static void family_free(struct ldg_metric_family *f)
{
    for (size_t i = 0; i < f->nseries; i++)
        series_free(f, f->series[i]);
    for (size_t i = 0; i < f->nlabels; i++)
        ldg_free(f->labels[i]);
    ldg_free(f->labels);
    ldg_free(f->series);
    ldg_free(f->buckets);
    ldg_free(f->name);
    ldg_free(f->help);
    ldg_free(f);
}

/* ---- registration ---- */

static int same_shape(const struct ldg_metric_family *f, enum family_type type, size_t nlabels,
                      const char *const *labels, const double *buckets, size_t nbuckets)
{
    if (f->type != type || f->nlabels != nlabels || f->nbuckets != nbuckets)
        return 0;
    for (size_t i = 0; i < nlabels; i++)
        if (strcmp(f->labels[i], labels[i]) != 0)
            return 0;
    for (size_t i = 0; i < nbuckets; i++)
        if (f->buckets[i] != buckets[i])
            return 0;
    return 1;
}

static struct ldg_metric_family *family_register(const char *name, const char *help,
                                                 enum family_type type, size_t nlabels,
                                                 const char *const *labels,
                                                 const double *buckets, size_t nbuckets)
{
    LDG_ASSERT(valid_name(name, 1));
    LDG_ASSERT(help != NULL);
    LDG_ASSERT(type != TYPE_COUNTER || ends_with(name, "_total"));
    for (size_t i = 0; i < nlabels; i++) {
        LDG_ASSERT(valid_name(labels[i], 0));
        LDG_ASSERT(strncmp(labels[i], "__", 2) != 0);
        LDG_ASSERT(type != TYPE_HISTOGRAM || strcmp(labels[i], "le") != 0);
        for (size_t j = 0; j < i; j++)
            LDG_ASSERT(strcmp(labels[i], labels[j]) != 0);
    }
    for (size_t i = 0; i < nbuckets; i++) {
        LDG_ASSERT(isfinite(buckets[i]));
        LDG_ASSERT(i == 0 || buckets[i - 1] < buckets[i]);
    }

    pthread_mutex_lock(&reg_mu);
    int found;
    size_t pos = family_pos(name, &found);
    if (found) {
        struct ldg_metric_family *f = families[pos];
        LDG_ASSERT(same_shape(f, type, nlabels, labels, buckets, nbuckets));
        pthread_mutex_unlock(&reg_mu);
        return f;
    }
    struct ldg_metric_family *f = ldg_calloc(1, sizeof *f);
    f->name = ldg_strdup(name);
    f->help = ldg_strdup(help);
    f->type = type;
    f->nlabels = nlabels;
    if (nlabels > 0) {
        f->labels = ldg_calloc(nlabels, sizeof *f->labels);
        for (size_t i = 0; i < nlabels; i++)
            f->labels[i] = ldg_strdup(labels[i]);
    }
    if (nbuckets > 0)
        f->buckets = ldg_memdup(buckets, nbuckets * sizeof *buckets);
    f->nbuckets = nbuckets;
    if (nlabels == 0)
        series_get(f, NULL);
    families = ldg_realloc(families, (nfamilies + 1) * sizeof *families);
    memmove(families + pos + 1, families + pos, (nfamilies - pos) * sizeof *families);
    families[pos] = f;
    nfamilies++;
    pthread_mutex_unlock(&reg_mu);
    return f;
}

struct ldg_metric_family *ldg_metrics_counter(const char *name, const char *help,
                                              size_t nlabels, const char *const *labels)
{
    return family_register(name, help, TYPE_COUNTER, nlabels, labels, NULL, 0);
}

struct ldg_metric_family *ldg_metrics_gauge(const char *name, const char *help,
                                            size_t nlabels, const char *const *labels)
{
    return family_register(name, help, TYPE_GAUGE, nlabels, labels, NULL, 0);
}

struct ldg_metric_family *ldg_metrics_histogram(const char *name, const char *help,
                                                size_t nlabels, const char *const *labels,
                                                const double *buckets, size_t nbuckets)
{
    return family_register(name, help, TYPE_HISTOGRAM, nlabels, labels, buckets, nbuckets);
}

/* ---- recording ---- */

void ldg_metrics_inc(struct ldg_metric_family *f, const char *const *values, double v)
{
    LDG_ASSERT(f->type != TYPE_HISTOGRAM);
    LDG_ASSERT(f->type != TYPE_COUNTER || v >= 0);
    pthread_mutex_lock(&reg_mu);
    series_get(f, values)->value += v;
    pthread_mutex_unlock(&reg_mu);
}

void ldg_metrics_set(struct ldg_metric_family *f, const char *const *values, double v)
{
    LDG_ASSERT(f->type != TYPE_HISTOGRAM);
    pthread_mutex_lock(&reg_mu);
    series_get(f, values)->value = v;
    pthread_mutex_unlock(&reg_mu);
}

void ldg_metrics_observe(struct ldg_metric_family *f, const char *const *values, double v)
{
    LDG_ASSERT(f->type == TYPE_HISTOGRAM);
    size_t b = 0;
    while (b < f->nbuckets && !(v <= f->buckets[b]))
        b++;
    pthread_mutex_lock(&reg_mu);
    struct series *s = series_get(f, values);
    s->counts[b]++;
    s->count++;
    s->sum += v;
    pthread_mutex_unlock(&reg_mu);
}

void ldg_metrics_clear(struct ldg_metric_family *f)
{
    pthread_mutex_lock(&reg_mu);
    for (size_t i = 0; i < f->nseries; i++)
        series_free(f, f->series[i]);
    f->nseries = 0;
    pthread_mutex_unlock(&reg_mu);
}

/* ---- collectors ---- */

void ldg_metrics_add_collector(ldg_metrics_collect_cb cb, void *arg)
{
    LDG_ASSERT(cb != NULL);
    pthread_mutex_lock(&reg_mu);
    for (size_t i = 0; i < ncollectors; i++) {
        if (collectors[i].cb == cb && collectors[i].arg == arg) {
            pthread_mutex_unlock(&reg_mu);
            return;
        }
    }
    collectors = ldg_realloc(collectors, (ncollectors + 1) * sizeof *collectors);
    collectors[ncollectors].cb = cb;
    collectors[ncollectors].arg = arg;
    ncollectors++;
    pthread_mutex_unlock(&reg_mu);
}

void ldg_metrics_remove_collector(ldg_metrics_collect_cb cb, void *arg)
{
    pthread_mutex_lock(&reg_mu);
    for (size_t i = 0; i < ncollectors; i++) {
        if (collectors[i].cb == cb && collectors[i].arg == arg) {
            memmove(collectors + i, collectors + i + 1,
                    (ncollectors - i - 1) * sizeof *collectors);
            ncollectors--;
            break;
        }
    }
    pthread_mutex_unlock(&reg_mu);
}

/* ---- rendering ---- */

/* Shortest decimal that reads back as |v| (Go's strconv 'g', -1 in spirit). */
static void fmt_double(char *out, size_t cap, double v)
{
    if (isnan(v)) {
        snprintf(out, cap, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(out, cap, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    int prec = 1;
    for (; prec < 17; prec++) {
        snprintf(out, cap, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            break;
    }
    /* %g switches to an exponent once the exponent reaches the precision;
     * keep whole numbers below 1e17 plain ("10", not "1e+01"). */
    char e[40];
    snprintf(e, sizeof e, "%.*e", prec - 1, v);
    const char *x = strchr(e, 'e');
    int exp10 = x ? atoi(x + 1) : 0;
    if (exp10 >= prec && exp10 < 17)
        prec = exp10 + 1;
    snprintf(out, cap, "%.*g", prec, v);
}

static void put_double(struct ldg_buf *out, double v)
{
    char tmp[40];
    fmt_double(tmp, sizeof tmp, v);
    ldg_buf_append_str(out, tmp);
}

/* HELP text: escape backslash and newline. */
static void put_help(struct ldg_buf *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            ldg_buf_append(out, "\\\\", 2);
        else if (*s == '\n')
            ldg_buf_append(out, "\\n", 2);
        else
            ldg_buf_append(out, s, 1);
    }
}

/* Label value: escape backslash, double quote and newline. */
static void put_label_value(struct ldg_buf *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            ldg_buf_append(out, "\\\\", 2);
        else if (*s == '"')
            ldg_buf_append(out, "\\\"", 2);
        else if (*s == '\n')
            ldg_buf_append(out, "\\n", 2);
        else
            ldg_buf_append(out, s, 1);
    }
}

/* "name{a="x",b="y"" without the closing brace, or just "name" when there are
 * no labels and no |le|. |le| (may be NULL) is appended as the last label. */
static void put_series_name(struct ldg_buf *out, const struct ldg_metric_family *f,
                            const struct series *s, const char *suffix, const char *le)
{
    ldg_buf_append_str(out, f->name);
    if (suffix)
        ldg_buf_append_str(out, suffix);
    if (f->nlabels == 0 && le == NULL) {
        ldg_buf_append(out, " ", 1);
        return;
    }
    ldg_buf_append(out, "{", 1);
    for (size_t i = 0; i < f->nlabels; i++) {
        if (i > 0)
            ldg_buf_append(out, ",", 1);
        ldg_buf_append_str(out, f->labels[i]);
        ldg_buf_append(out, "=\"", 2);
        put_label_value(out, s->values[i]);
        ldg_buf_append(out, "\"", 1);
    }
    if (le != NULL) {
        if (f->nlabels > 0)
            ldg_buf_append(out, ",", 1);
        ldg_buf_append(out, "le=\"", 4);
        ldg_buf_append_str(out, le);
        ldg_buf_append(out, "\"", 1);
    }
    ldg_buf_append(out, "} ", 2);
}

static void render_family(struct ldg_buf *out, const struct ldg_metric_family *f)
{
    ldg_buf_printf(out, "# HELP %s ", f->name);
    put_help(out, f->help);
    ldg_buf_printf(out, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
    for (size_t i = 0; i < f->nseries; i++) {
        const struct series *s = f->series[i];
        if (f->type != TYPE_HISTOGRAM) {
            put_series_name(out, f, s, NULL, NULL);
            put_double(out, s->value);
            ldg_buf_append(out, "\n", 1);
            continue;
        }
        uint64_t cumulative = 0;
        for (size_t b = 0; b <= f->nbuckets; b++) {
            char le[40];
            if (b < f->nbuckets)
                fmt_double(le, sizeof le, f->buckets[b]);
            else
                snprintf(le, sizeof le, "+Inf");
            cumulative += s->counts[b];
            put_series_name(out, f, s, "_bucket", le);
            ldg_buf_printf(out, "%" PRIu64 "\n", cumulative);
        }
        put_series_name(out, f, s, "_sum", NULL);
        put_double(out, s->sum);
        ldg_buf_append(out, "\n", 1);
        put_series_name(out, f, s, "_count", NULL);
        ldg_buf_printf(out, "%" PRIu64 "\n", s->count);
    }
}

void ldg_metrics_render(struct ldg_buf *out)
{
    /* Snapshot the collectors so they run without the lock (they record). */
    pthread_mutex_lock(&reg_mu);
    size_t n = ncollectors;
    struct collector *snap = n ? ldg_memdup(collectors, n * sizeof *collectors) : NULL;
    pthread_mutex_unlock(&reg_mu);
    for (size_t i = 0; i < n; i++)
        snap[i].cb(snap[i].arg);
    ldg_free(snap);

    pthread_mutex_lock(&reg_mu);
    for (size_t i = 0; i < nfamilies; i++)
        render_family(out, families[i]);
    pthread_mutex_unlock(&reg_mu);
}

void ldg_metrics_reset(void)
{
    pthread_mutex_lock(&reg_mu);
    for (size_t i = 0; i < nfamilies; i++)
        family_free(families[i]);
    ldg_free(families);
    families = NULL;
    nfamilies = 0;
    ldg_free(collectors);
    collectors = NULL;
    ncollectors = 0;
    grpc_requests = NULL;
    grpc_duration = NULL;
    pthread_mutex_unlock(&reg_mu);
}

/* ---- gRPC ---- */

static void grpc_families(void)
{
    static const char *const req_labels[] = {"service", "method", "code"};
    static const char *const dur_labels[] = {"service", "method"};
    struct ldg_metric_family *req = ldg_metrics_counter(
        "ledger_grpc_requests_total", "gRPC requests handled, by final status code.", 3,
        req_labels);
    struct ldg_metric_family *dur = ldg_metrics_histogram(
        "ledger_grpc_request_duration_seconds",
        "Time from a gRPC request's arrival to its final status.", 2, dur_labels,
        ldg_metrics_latency_buckets, ldg_metrics_latency_buckets_len);
    pthread_mutex_lock(&reg_mu);
    grpc_requests = req;
    grpc_duration = dur;
    pthread_mutex_unlock(&reg_mu);
}

void ldg_metrics_grpc_observe(const char *service, const char *method, const char *code,
                              double seconds)
{
    pthread_mutex_lock(&reg_mu);
    struct ldg_metric_family *req = grpc_requests, *dur = grpc_duration;
    pthread_mutex_unlock(&reg_mu);
    if (req == NULL || dur == NULL) {
        grpc_families();
        pthread_mutex_lock(&reg_mu);
        req = grpc_requests;
        dur = grpc_duration;
        pthread_mutex_unlock(&reg_mu);
    }
    ldg_metrics_inc(req, (const char *const[]){service, method, code}, 1);
    ldg_metrics_observe(dur, (const char *const[]){service, method}, seconds);
}

/* ---- process ---- */

struct proc_stat {
    double cpu_seconds;    /* utime + stime */
    double start_ticks;    /* since boot */
    double vsize_bytes;
    double rss_pages;
};

/* Parse /proc/self/stat. The command name may hold spaces and parentheses,
 * so fields are counted from the last ')'. Returns 0 or -1. */
static int read_proc_stat(struct proc_stat *ps)
{
    char text[1024];
    FILE *fp = fopen("/proc/self/stat", "re");
    if (fp == NULL)
        return -1;
    size_t n = fread(text, 1, sizeof text - 1, fp);
    fclose(fp);
    text[n] = '\0';
    char *p = strrchr(text, ')');
    if (p == NULL)
        return -1;
    p++;
    /* Field 3 (state) is the first token after ')'. */
    double field[25] = {0};
    int idx = 3;
    char *save = NULL;
    for (char *tok = strtok_r(p, " \n", &save); tok && idx <= 24;
         tok = strtok_r(NULL, " \n", &save), idx++)
        field[idx] = strtod(tok, NULL);
    if (idx <= 24)
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    if (hz <= 0)
        hz = 100;
    ps->cpu_seconds = (field[14] + field[15]) / (double)hz;
    ps->start_ticks = field[22];
    ps->vsize_bytes = field[23];
    ps->rss_pages = field[24];
    return 0;
}

static double boot_time_seconds(void)
{
    FILE *fp = fopen("/proc/stat", "re");
    if (fp == NULL)
        return -1;
    char line[256];
    double btime = -1;
    while (fgets(line, sizeof line, fp)) {
        if (strncmp(line, "btime ", 6) == 0) {
            btime = strtod(line + 6, NULL);
            break;
        }
    }
    fclose(fp);
    return btime;
}

static double process_start_time(void)
{
    struct proc_stat ps;
    double btime = boot_time_seconds();
    long hz = sysconf(_SC_CLK_TCK);
    if (btime >= 0 && hz > 0 && read_proc_stat(&ps) == 0)
        return btime + ps.start_ticks / (double)hz;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int count_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory stream's own descriptor */
}

struct process_families {
    struct ldg_metric_family *cpu, *rss, *vsize, *fds, *max_fds;
};

static struct process_families proc_fams;

static void process_collect(void *arg)
{
    const struct process_families *pf = arg;
    struct proc_stat ps;
    if (read_proc_stat(&ps) == 0) {
        long page = sysconf(_SC_PAGESIZE);
        ldg_metrics_set(pf->cpu, NULL, ps.cpu_seconds);
        ldg_metrics_set(pf->vsize, NULL, ps.vsize_bytes);
        ldg_metrics_set(pf->rss, NULL, ps.rss_pages * (double)(page > 0 ? page : 4096));
    }
    int fds = count_open_fds();
    if (fds >= 0)
        ldg_metrics_set(pf->fds, NULL, fds);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        ldg_metrics_set(pf->max_fds, NULL, (double)rl.rlim_cur);
}

void ldg_metrics_register_process(void)
{
    struct ldg_metric_family *start = ldg_metrics_gauge(
        "process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
        0, NULL);
    ldg_metrics_set(start, NULL, process_start_time());
    proc_fams.cpu = ldg_metrics_counter("process_cpu_seconds_total",
                                        "Total user and system CPU time spent in seconds.", 0,
                                        NULL);
    proc_fams.rss = ldg_metrics_gauge("process_resident_memory_bytes",
                                      "Resident memory size in bytes.", 0, NULL);
    proc_fams.vsize = ldg_metrics_gauge("process_virtual_memory_bytes",
                                        "Virtual memory size in bytes.", 0, NULL);
    proc_fams.fds = ldg_metrics_gauge("process_open_fds", "Number of open file descriptors.",
                                      0, NULL);
    proc_fams.max_fds = ldg_metrics_gauge("process_max_fds",
                                          "Maximum number of open file descriptors.", 0, NULL);
    static const char *const build_labels[] = {"version"};
    struct ldg_metric_family *build = ldg_metrics_gauge(
        "ledger_build_info", "Build information; the value is always 1.", 1, build_labels);
    ldg_metrics_set(build, (const char *const[]){LDG_VERSION}, 1);
    grpc_families();
    ldg_metrics_add_collector(process_collect, &proc_fams);
}
