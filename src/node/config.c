/* Configuration parsing (SPEC §2).
 *
 * The option table below is the single source of truth: the flag parser, the
 * environment and env-file readers, default handling and --help all walk it.
 * Values are first collected as strings per layer (flag, process environment,
 * environment file); then each option takes the value of the highest layer
 * that set it, or its default string, and converts it with the same code, so
 * a default shown by --help is exactly what is parsed. Bootstrap-mode options
 * are resolved as a group (see config.h). */
#include "node/config.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "util/mem.h"

enum kind {
    K_STR,     /* string; empty means "none" */
    K_BOOL,    /* true/false/1/0/yes/no; a bare flag means true */
    K_U32,     /* unsigned integer in [min, max] */
    K_U64,     /* unsigned integer in [min, max] */
    K_SECS,    /* duration in seconds: 0.5, 2s, 500ms, 1m, 24h */
    K_SIZE,    /* byte size: 4194304, 4MiB, 512K */
    K_ADDR,    /* host:port */
    K_LISTEN,  /* host:port, also split into listen_host/listen_port */
    K_METRICS, /* host:port or "off" */
    K_LEVEL,   /* log level */
    K_FORMAT,  /* log format text/json/auto */
    K_SINGLE,  /* mode: boolean */
    K_JOIN,    /* mode: boolean */
    K_CLUSTER, /* mode: cluster size */
    K_ENVFILE, /* the environment file itself (read before the others) */
    K_HELP,
    K_VERSION,
};

struct opt {
    const char *flag;    /* flag name without "--" */
    const char *var;     /* variable suffix after the prefix; NULL: flag only */
    const char *metavar; /* value placeholder; NULL: takes no value (boolean) */
    enum kind kind;
    size_t off;          /* field in struct ldg_config */
    double min, max;     /* numeric range (inclusive) */
    const char *def;     /* default, parsed like an operator's value; NULL: none */
    const char *def_doc; /* default as --help shows it when |def| does not say it */
    const char *help;
};

#define F(field) offsetof(struct ldg_config, field)

static const struct opt opts[] = {
    {"listen", "LISTEN", "ADDR", K_LISTEN, F(listen), 0, 0, "127.0.0.1:50051", NULL,
     "gRPC (and Raft peer) address to bind, host:port"},
    {"advertise", "ADVERTISE", "ADDR", K_ADDR, F(advertise), 0, 0, NULL,
     "the listen address; with a wildcard host, this machine's hostname and the listen port",
     "address other nodes and clients use to reach this node"},
    {"data", "DATA", "DIR", K_STR, F(data_dir), 0, 0, NULL,
     "--single: ephemeral temp dir removed at exit; other modes: required",
     "data directory"},
    {"metrics", "METRICS", "ADDR", K_METRICS, F(metrics), 0, 0, "127.0.0.1:9090", NULL,
     "Prometheus /metrics, /healthz, /readyz HTTP address, or \"off\"; a taken default "
     "address only warns, an explicit one that cannot be bound is fatal"},
    {"single", "SINGLE", NULL, K_SINGLE, 0, 0, 0, "false", NULL,
     "run as a one-node cluster"},
    {"cluster", "CLUSTER", "N", K_CLUSTER, F(cluster_size), 1, 99, "3", NULL,
     "coordinated bootstrap of an N-node cluster (this is the mode when none is given); "
     "1 means --single"},
    {"join", "JOIN", NULL, K_JOIN, 0, 0, 0, "false", NULL,
     "join an existing cluster through --peers"},
    {"peers", "PEERS", "LIST", K_STR, F(peers), 0, 0, NULL, "none",
     "how to find other nodes: host[:port],... or a DNS name or a JSON file path"},
    {"peers-poll", "PEERS_POLL", "SECS", K_SECS, F(peers_poll_s), 0.01, 3600, "2", NULL,
     "discovery poll interval"},
    {"peers-timeout", "PEERS_TIMEOUT", "SECS", K_SECS, F(peers_timeout_s), 0.1, 86400, "60",
     NULL, "deadline for coordinated bootstrap and for joining; startup fails after it"},
    {"batch-size", "BATCH_SIZE", "N", K_U32, F(batch_size), 1, 10000, "100", NULL,
     "max transactions per Raft entry"},
    {"batch-delay", "BATCH_DELAY", "SECS", K_SECS, F(batch_delay_s), 0, 10, "0.002", NULL,
     "max time a write waits for its batch"},
    {"backup-dir", "BACKUP_DIR", "DIR", K_STR, F(backup_dir), 0, 0, NULL, "DATA/backups",
     "where backups are written"},
    {"backup-interval", "BACKUP_INTERVAL", "SECS", K_SECS, F(backup_interval_s), 0,
     31536000, "0", "0 (off)", "periodic automatic backups"},
    {"backup-keep", "BACKUP_KEEP", "N", K_U32, F(backup_keep), 1, 100000, "7", NULL,
     "periodic backups to keep"},
    {"log-format", "LOG_FORMAT", "FORMAT", K_FORMAT, 0, 0, 0, "auto",
     "auto: text on a TTY, else json", "log line format on stderr: text, json or auto"},
    {"log-level", "LOG_LEVEL", "LEVEL", K_LEVEL, 0, 0, 0, "info", NULL,
     "error, warn, info, debug or trace"},
    {"cluster-secret-file", "CLUSTER_SECRET_FILE", "FILE", K_STR, F(cluster_secret_file), 0,
     0, NULL, "none", "shared secret that authenticates peer (Raft) connections"},
    {"tls-cert", "TLS_CERT", "FILE", K_STR, F(tls_cert), 0, 0, NULL, "none (plaintext)",
     "PEM certificate for TLS on the gRPC port (needs --tls-key)"},
    {"tls-key", "TLS_KEY", "FILE", K_STR, F(tls_key), 0, 0, NULL, "none",
     "PEM private key for --tls-cert"},
    {"tls-ca", "TLS_CA", "FILE", K_STR, F(tls_ca), 0, 0, NULL, "none",
     "CA bundle: require and verify client certificates (mutual TLS; needs --tls-cert)"},
    {"admin-token-file", "ADMIN_TOKEN_FILE", "FILE", K_STR, F(admin_token_file), 0, 0, NULL,
     "none", "when set, AdminService calls need `authorization: Bearer <token>`"},
    {"snapshot-threshold", "SNAPSHOT_THRESHOLD", "N", K_U64, F(snapshot_threshold), 16,
     1e9, "8192", NULL, "Raft entries between Raft (log compaction) snapshots"},
    {"scrub-interval", "SCRUB_INTERVAL", "SECS", K_SECS, F(scrub_interval_s), 0, 31536000,
     "0", "0 (off)", "background integrity scrubber interval"},
    {"max-message-bytes", "MAX_MESSAGE_BYTES", "BYTES", K_SIZE, F(max_message_bytes), 65536,
     1073741824, "4MiB", NULL, "largest gRPC message accepted (larger: RESOURCE_EXHAUSTED)"},
    {"allow-fault-injection", "ALLOW_FAULT_INJECTION", NULL, K_BOOL,
     F(allow_fault_injection), 0, 0, "false", NULL,
     "enable SimulateDivergence and test-only hooks"},
    {"env-file", "ENV_FILE", "FILE", K_ENVFILE, 0, 0, 0, NULL,
     LDG_CONFIG_DEFAULT_ENV_FILE " (missing is fine; empty value: none)",
     "environment file of KEY=value lines read under the process environment"},
    {"force", NULL, NULL, K_BOOL, F(force), 0, 0, "false", NULL,
     "with --single: force a new cluster even from a node that was not a voter"},
    {"inspect", NULL, NULL, K_BOOL, F(inspect), 0, 0, "false", NULL,
     "print this data directory's node ID and cluster ID, then exit without serving"},
    {"help", NULL, NULL, K_HELP, 0, 0, 0, NULL, NULL, "print this help and exit"},
    {"version", NULL, NULL, K_VERSION, 0, 0, 0, NULL, NULL, "print the version and exit"},
};

#undef F

#define N_OPTS (sizeof opts / sizeof opts[0])

enum layer { L_FLAG = 0, L_ENV = 1, L_FILE = 2, N_LAYERS = 3 };

struct raw {
    const char *val; /* NULL: not set in this layer */
    int line;        /* env file line number */
};

struct ctx {
    struct raw v[N_LAYERS][N_OPTS];
    char *file_buf;        /* env file contents, values point into it */
    const char *file_path; /* env file read, or NULL */
};

/* ---- small helpers ---- */

static const struct opt *find_flag(const char *name, size_t len)
{
    for (size_t i = 0; i < N_OPTS; i++)
        if (strlen(opts[i].flag) == len && strncmp(opts[i].flag, name, len) == 0)
            return &opts[i];
    return NULL;
}

static const struct opt *find_var(const char *name, size_t len)
{
    for (size_t i = 0; i < N_OPTS; i++)
        if (opts[i].var && strlen(opts[i].var) == len && strncmp(opts[i].var, name, len) == 0)
            return &opts[i];
    return NULL;
}

/* A flag-only option looked up by its would-be variable name (FORCE). */
static const struct opt *find_flag_only_by_var(const char *name, size_t len)
{
    for (size_t i = 0; i < N_OPTS; i++) {
        if (opts[i].var)
            continue;
        const char *f = opts[i].flag;
        if (strlen(f) != len)
            continue;
        size_t k = 0;
        for (; k < len; k++) {
            char c = f[k] == '-' ? '_' : (char)(f[k] - 'a' + 'A');
            if (name[k] != c)
                break;
        }
        if (k == len)
            return &opts[i];
    }
    return NULL;
}

static size_t opt_index(const struct opt *o) { return (size_t)(o - opts); }

/* Describe where a value came from, for error messages. */
static const char *origin(const struct ctx *c, enum layer l, const struct opt *o, char *buf,
                          size_t cap)
{
    switch (l) {
    case L_FLAG:
        snprintf(buf, cap, "--%s", o->flag);
        break;
    case L_ENV:
        snprintf(buf, cap, LDG_CONFIG_ENV_PREFIX "%s", o->var);
        break;
    case L_FILE:
        snprintf(buf, cap, LDG_CONFIG_ENV_PREFIX "%s (%s line %d)", o->var, c->file_path,
                 c->v[l][opt_index(o)].line);
        break;
    default:
        snprintf(buf, cap, "default of --%s", o->flag);
        break;
    }
    return buf;
}

static int parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "1", "yes", "on"};
    static const char *const no[] = {"false", "0", "no", "off"};
    for (size_t i = 0; i < LDG_ARRAY_SIZE(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return LDG_EINVAL;
}

static int parse_uint(const char *s, uint64_t *out)
{
    if (*s < '0' || *s > '9')
        return LDG_EINVAL;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return LDG_EINVAL;
    *out = v;
    return 0;
}

/* "2", "0.002", "500ms", "2s", "5m", "24h". */
static int parse_secs(const char *s, double *out)
{
    if (!((*s >= '0' && *s <= '9') || *s == '.'))
        return LDG_EINVAL;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || !isfinite(v))
        return LDG_EINVAL;
    if (*end == '\0' || strcmp(end, "s") == 0)
        ;
    else if (strcmp(end, "ms") == 0)
        v /= 1000.0;
    else if (strcmp(end, "m") == 0)
        v *= 60.0;
    else if (strcmp(end, "h") == 0)
        v *= 3600.0;
    else
        return LDG_EINVAL;
    *out = v;
    return 0;
}

/* "4194304", "4MiB", "4M", "512KiB", "512K", "1GiB" (powers of 1024). */
static int parse_size(const char *s, uint64_t *out)
{
    if (*s < '0' || *s > '9')
        return LDG_EINVAL;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0)
        return LDG_EINVAL;
    uint64_t mult = 1;
    if (*end == '\0' || strcasecmp(end, "b") == 0)
        mult = 1;
    else if (strcasecmp(end, "k") == 0 || strcasecmp(end, "kib") == 0)
        mult = 1024;
    else if (strcasecmp(end, "m") == 0 || strcasecmp(end, "mib") == 0)
        mult = 1024 * 1024;
    else if (strcasecmp(end, "g") == 0 || strcasecmp(end, "gib") == 0)
        mult = 1024 * 1024 * 1024;
    else
        return LDG_EINVAL;
    if (v > UINT64_MAX / mult)
        return LDG_EINVAL;
    *out = v * mult;
    return 0;
}

int ldg_config_split_addr(const char *addr, char *host, size_t host_cap, uint16_t *port)
{
    const char *colon;
    const char *h;
    size_t hlen;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (close == NULL || close[1] != ':')
            return LDG_EINVAL;
        h = addr + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(addr, ':');
        if (colon == NULL)
            return LDG_EINVAL;
        h = addr;
        hlen = (size_t)(colon - addr);
        if (memchr(h, ':', hlen) != NULL) /* bare IPv6 needs brackets */
            return LDG_EINVAL;
    }
    if (hlen == 0 || hlen >= host_cap)
        return LDG_EINVAL;
    for (size_t i = 0; i < hlen; i++)
        if (h[i] == ' ' || h[i] == '\t' || h[i] == '/')
            return LDG_EINVAL;
    uint64_t p;
    if (parse_uint(colon + 1, &p) != 0 || p == 0 || p > 65535)
        return LDG_EINVAL;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (uint16_t)p;
    return 0;
}

const char *ldg_boot_mode_name(enum ldg_boot_mode mode)
{
    switch (mode) {
    case LDG_MODE_SINGLE:
        return "single";
    case LDG_MODE_JOIN:
        return "join";
    default:
        return "cluster";
    }
}

static char **str_field(struct ldg_config *cfg, const struct opt *o)
{
    return (char **)(void *)((char *)cfg + o->off);
}

static void set_str(char **field, const char *val)
{
    ldg_free(*field);
    *field = ldg_strdup(val);
}

/* Convert |val| for option |o| into |cfg|. Mode options are not handled here. */
static int set_value(struct ldg_config *cfg, const struct opt *o, const char *val,
                     const char *from, struct ldg_err *err)
{
    char *base = (char *)cfg;
    char host[256];
    uint16_t port;
    uint64_t u;
    double d;
    bool b;

    switch (o->kind) {
    case K_STR:
        if (val[0] == '\0') {
            ldg_free(*str_field(cfg, o));
            *str_field(cfg, o) = NULL;
        } else {
            set_str(str_field(cfg, o), val);
        }
        return 0;
    case K_BOOL:
        if (parse_bool(val, &b) != 0)
            return ldg_err_set(err, LDG_EINVAL,
                               "%s: invalid boolean '%s' (use true/false/1/0/yes/no)", from,
                               val);
        *(bool *)(void *)(base + o->off) = b;
        return 0;
    case K_U32:
    case K_U64:
        if (parse_uint(val, &u) != 0)
            return ldg_err_set(err, LDG_EINVAL, "%s: invalid number '%s'", from, val);
        if ((double)u < o->min || (double)u > o->max)
            return ldg_err_set(err, LDG_EINVAL, "%s: %s is out of range %.0f..%.0f", from,
                               val, o->min, o->max);
        if (o->kind == K_U32)
            *(uint32_t *)(void *)(base + o->off) = (uint32_t)u;
        else
            *(uint64_t *)(void *)(base + o->off) = u;
        return 0;
    case K_SECS:
        if (parse_secs(val, &d) != 0)
            return ldg_err_set(err, LDG_EINVAL,
                               "%s: invalid duration '%s' (seconds, or with ms/s/m/h)", from,
                               val);
        if (d < o->min || d > o->max)
            return ldg_err_set(err, LDG_EINVAL, "%s: %s is out of range %g..%g seconds",
                               from, val, o->min, o->max);
        *(double *)(void *)(base + o->off) = d;
        return 0;
    case K_SIZE:
        if (parse_size(val, &u) != 0)
            return ldg_err_set(err, LDG_EINVAL,
                               "%s: invalid size '%s' (bytes, or with K/KiB/M/MiB/G/GiB)",
                               from, val);
        if ((double)u < o->min || (double)u > o->max)
            return ldg_err_set(err, LDG_EINVAL, "%s: %s is out of range %.0f..%.0f bytes",
                               from, val, o->min, o->max);
        *(uint64_t *)(void *)(base + o->off) = u;
        return 0;
    case K_ADDR:
    case K_LISTEN:
    case K_METRICS:
        if (o->kind == K_METRICS && strcasecmp(val, "off") == 0) {
            ldg_free(cfg->metrics);
            ldg_free(cfg->metrics_host);
            cfg->metrics = cfg->metrics_host = NULL;
            cfg->metrics_port = 0;
            return 0;
        }
        if (ldg_config_split_addr(val, host, sizeof host, &port) != 0)
            return ldg_err_set(err, LDG_EINVAL,
                               "%s: invalid address '%s' (want host:port or [v6]:port with "
                               "port 1..65535)",
                               from, val);
        set_str(str_field(cfg, o), val);
        if (o->kind == K_LISTEN) {
            set_str(&cfg->listen_host, host);
            cfg->listen_port = port;
        } else if (o->kind == K_METRICS) {
            set_str(&cfg->metrics_host, host);
            cfg->metrics_port = port;
        }
        return 0;
    case K_LEVEL:
        if (ldg_log_level_parse(val, &cfg->log_level) != 0)
            return ldg_err_set(err, LDG_EINVAL,
                               "%s: invalid log level '%s' (error, warn, info, debug, trace)",
                               from, val);
        return 0;
    case K_FORMAT:
        if (strcasecmp(val, "auto") == 0) {
            cfg->log_format_auto = true;
            cfg->log_format = LDG_LOG_TEXT;
            return 0;
        }
        if (ldg_log_format_parse(val, &cfg->log_format) != 0)
            return ldg_err_set(err, LDG_EINVAL,
                               "%s: invalid log format '%s' (text, json, auto)", from, val);
        cfg->log_format_auto = false;
        return 0;
    default:
        return 0;
    }
}

/* ---- layer collection ---- */

static int collect_flags(struct ctx *c, int argc, char **argv, struct ldg_err *err)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0')
            return ldg_err_set(err, LDG_EINVAL, "unexpected argument '%s' (see --help)", a);
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const struct opt *o = find_flag(name, len);
        if (o == NULL)
            return ldg_err_set(err, LDG_EINVAL, "unknown flag '--%.*s' (see --help)",
                               (int)len, name);
        const char *val;
        if (eq != NULL) {
            val = eq + 1;
        } else if (o->metavar == NULL) {
            val = "true";
        } else {
            if (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0)
                return ldg_err_set(err, LDG_EINVAL, "--%s needs a value (%s)", o->flag,
                                   o->metavar);
            val = argv[++i];
        }
        c->v[L_FLAG][opt_index(o)].val = val;
    }
    return 0;
}

/* Record one INFERADB__LEDGER__* assignment "NAME=value" in layer |l|. */
static int collect_var(struct ctx *c, enum layer l, const char *name, size_t len,
                       const char *val, int line, struct ldg_err *err)
{
    char where[300] = "";
    if (l == L_FILE)
        snprintf(where, sizeof where, " (%s line %d)", c->file_path, line);
    const struct opt *o = find_var(name, len);
    if (o == NULL) {
        const struct opt *fo = find_flag_only_by_var(name, len);
        if (fo != NULL)
            return ldg_err_set(err, LDG_EINVAL,
                               "variable " LDG_CONFIG_ENV_PREFIX
                               "%.*s%s is not supported: --%s is a flag only",
                               (int)len, name, where, fo->flag);
        return ldg_err_set(err, LDG_EINVAL,
                           "unknown variable " LDG_CONFIG_ENV_PREFIX "%.*s%s (see --help)",
                           (int)len, name, where);
    }
    if (o->kind == K_ENVFILE && l == L_FILE)
        return ldg_err_set(err, LDG_EINVAL,
                           LDG_CONFIG_ENV_PREFIX "ENV_FILE%s: cannot be set inside an "
                           "environment file",
                           where);
    c->v[l][opt_index(o)].val = val;
    c->v[l][opt_index(o)].line = line;
    return 0;
}

static int collect_env(struct ctx *c, char **envp, struct ldg_err *err)
{
    const size_t plen = strlen(LDG_CONFIG_ENV_PREFIX);
    for (size_t i = 0; envp && envp[i]; i++) {
        const char *e = envp[i];
        if (strncmp(e, LDG_CONFIG_ENV_PREFIX, plen) != 0)
            continue;
        const char *name = e + plen;
        const char *eq = strchr(name, '=');
        if (eq == NULL)
            continue;
        int rv = collect_var(c, L_ENV, name, (size_t)(eq - name), eq + 1, 0, err);
        if (rv != 0)
            return rv;
    }
    return 0;
}

/* Unquote a value in place: 'literal', "with \" \\ \n escapes", or bare
 * (trailing blanks removed). Returns 0 or LDG_EINVAL. */
static int unquote(char *v)
{
    size_t n = strlen(v);
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r'))
        v[--n] = '\0';
    if (n == 0 || (v[0] != '"' && v[0] != '\''))
        return 0;
    char q = v[0];
    if (n < 2 || v[n - 1] != q)
        return LDG_EINVAL;
    size_t w = 0;
    for (size_t r = 1; r < n - 1; r++) {
        char ch = v[r];
        if (q == '"' && ch == '\\' && r + 1 < n - 1) {
            char nx = v[++r];
            ch = nx == 'n' ? '\n' : nx == 't' ? '\t' : nx;
        } else if (ch == q) {
            return LDG_EINVAL;
        }
        v[w++] = ch;
    }
    v[w] = '\0';
    return 0;
}

static int read_file(const char *path, char **out, struct ldg_err *err)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return ldg_err_set(err, ldg_err_from_errno(errno), "open environment file %s: %s",
                           path, strerror(errno));
    size_t cap = 4096, len = 0;
    char *buf = ldg_malloc(cap);
    for (;;) {
        if (len + 1 >= cap) {
            if (cap >= (size_t)1 << 20) {
                fclose(f);
                ldg_free(buf);
                return ldg_err_set(err, LDG_ETOOBIG, "environment file %s: larger than 1 MiB",
                                   path);
            }
            cap *= 2;
            buf = ldg_realloc(buf, cap);
        }
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0)
            break;
    }
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        ldg_free(buf);
        return ldg_err_set(err, LDG_EIO, "read environment file %s: I/O error", path);
    }
    buf[len] = '\0';
    *out = buf;
    return 0;
}

static int collect_file(struct ctx *c, const char *path, bool must_exist, struct ldg_err *err)
{
    if (access(path, F_OK) != 0 && errno == ENOENT && !must_exist)
        return 0;
    int rv = read_file(path, &c->file_buf, err);
    if (rv != 0)
        return rv;
    c->file_path = path;
    const size_t plen = strlen(LDG_CONFIG_ENV_PREFIX);
    char *p = c->file_buf;
    for (int line = 1; p != NULL && *p != '\0'; line++) {
        char *nl = strchr(p, '\n');
        if (nl != NULL)
            *nl = '\0';
        char *s = p;
        p = nl ? nl + 1 : NULL;
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s == '\0' || *s == '\r' || *s == '#' || *s == ';')
            continue;
        if (strncmp(s, "export", 6) == 0 && (s[6] == ' ' || s[6] == '\t')) {
            s += 6;
            while (*s == ' ' || *s == '\t')
                s++;
        }
        char *eq = strchr(s, '=');
        if (eq == NULL)
            return ldg_err_set(err, LDG_EINVAL,
                               "environment file %s line %d: expected KEY=value", path, line);
        char *kend = eq;
        while (kend > s && (kend[-1] == ' ' || kend[-1] == '\t'))
            kend--;
        for (char *k = s; k < kend; k++) {
            char ch = *k;
            if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                  (ch >= '0' && ch <= '9') || ch == '_'))
                return ldg_err_set(err, LDG_EINVAL,
                                   "environment file %s line %d: invalid variable name", path,
                                   line);
        }
        if (kend == s)
            return ldg_err_set(err, LDG_EINVAL,
                               "environment file %s line %d: missing variable name", path,
                               line);
        char *val = eq + 1;
        while (*val == ' ' || *val == '\t')
            val++;
        if (unquote(val) != 0)
            return ldg_err_set(err, LDG_EINVAL,
                               "environment file %s line %d: unbalanced quotes", path, line);
        size_t klen = (size_t)(kend - s);
        if (klen <= plen || strncmp(s, LDG_CONFIG_ENV_PREFIX, plen) != 0)
            continue; /* other programs' variables share the file */
        rv = collect_var(c, L_FILE, s + plen, klen - plen, val, line, err);
        if (rv != 0)
            return rv;
    }
    return 0;
}

/* ---- resolution ---- */

static const struct opt *opt_by_kind(enum kind k)
{
    for (size_t i = 0; i < N_OPTS; i++)
        if (opts[i].kind == k)
            return &opts[i];
    return NULL;
}

/* Decide the bootstrap mode: the highest layer with a positive mode setting
 * wins; an explicit "false" in a higher layer masks the same variable below. */
static int resolve_mode(struct ldg_config *cfg, struct ctx *c, struct ldg_err *err)
{
    const struct opt *mo[3] = {opt_by_kind(K_SINGLE), opt_by_kind(K_JOIN),
                               opt_by_kind(K_CLUSTER)};
    bool seen[3] = {false, false, false};
    for (int l = L_FLAG; l < N_LAYERS; l++) {
        int found = -1;        /* mode chosen in this layer */
        const struct opt *by = NULL;
        for (int k = 0; k < 3; k++) {
            const struct raw *r = &c->v[l][opt_index(mo[k])];
            if (r->val == NULL || seen[k])
                continue;
            seen[k] = true;
            char from[320];
            origin(c, (enum layer)l, mo[k], from, sizeof from);
            int mode = -1;
            if (mo[k]->kind == K_CLUSTER) {
                int rv = set_value(cfg, &(struct opt){.flag = mo[k]->flag, .kind = K_U32,
                                                      .off = mo[k]->off, .min = mo[k]->min,
                                                      .max = mo[k]->max},
                                   r->val, from, err);
                if (rv != 0)
                    return rv;
                mode = cfg->cluster_size == 1 ? LDG_MODE_SINGLE : LDG_MODE_CLUSTER;
            } else {
                bool b;
                if (parse_bool(r->val, &b) != 0)
                    return ldg_err_set(err, LDG_EINVAL,
                                       "%s: invalid boolean '%s' (use true/false/1/0/yes/no)",
                                       from, r->val);
                if (b)
                    mode = mo[k]->kind == K_SINGLE ? LDG_MODE_SINGLE : LDG_MODE_JOIN;
            }
            if (mode < 0)
                continue;
            if (found >= 0 && found != mode) {
                char other[320];
                origin(c, (enum layer)l, by, other, sizeof other);
                return ldg_err_set(err, LDG_EINVAL,
                                   "conflicting bootstrap modes: %s (%s) and %s (%s); choose "
                                   "one of --single, --join, --cluster",
                                   other, ldg_boot_mode_name((enum ldg_boot_mode)found), from,
                                   ldg_boot_mode_name((enum ldg_boot_mode)mode));
            }
            found = mode;
            by = mo[k];
        }
        if (found >= 0) {
            cfg->mode = (enum ldg_boot_mode)found;
            cfg->mode_explicit = true;
            return 0;
        }
    }
    cfg->mode = LDG_MODE_CLUSTER;
    return 0;
}

/* The CLUSTER size in force regardless of which layer chose the mode. */
static int resolve_cluster_size(struct ldg_config *cfg, struct ctx *c, struct ldg_err *err)
{
    const struct opt *o = opt_by_kind(K_CLUSTER);
    const struct opt as_u32 = {.flag = o->flag, .kind = K_U32, .off = o->off, .min = o->min,
                               .max = o->max};
    char from[320];
    for (int l = L_FLAG; l < N_LAYERS; l++) {
        const char *v = c->v[l][opt_index(o)].val;
        if (v != NULL)
            return set_value(cfg, &as_u32, v, origin(c, (enum layer)l, o, from, sizeof from),
                             err);
    }
    return set_value(cfg, &as_u32, o->def, origin(c, N_LAYERS, o, from, sizeof from), err);
}

static int default_advertise(struct ldg_config *cfg, struct ldg_err *err)
{
    const char *h = cfg->listen_host;
    bool wildcard = strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0 || strcmp(h, "*") == 0;
    char buf[300];
    if (!wildcard) {
        set_str(&cfg->advertise, cfg->listen);
        return 0;
    }
    char name[256];
    if (gethostname(name, sizeof name) != 0 || name[0] == '\0')
        return ldg_err_set(err, LDG_EINVAL,
                           "--listen %s has a wildcard host and the hostname is unknown: "
                           "set --advertise",
                           cfg->listen);
    name[sizeof name - 1] = '\0';
    snprintf(buf, sizeof buf, "%s:%u", name, (unsigned)cfg->listen_port);
    set_str(&cfg->advertise, buf);
    return 0;
}

static int validate(struct ldg_config *cfg, struct ldg_err *err)
{
    if (cfg->mode == LDG_MODE_SINGLE)
        cfg->cluster_size = 1;
    if (cfg->data_dir == NULL && cfg->inspect)
        return ldg_err_set(err, LDG_EINVAL,
                           "--inspect needs a data directory (--data or " LDG_CONFIG_ENV_PREFIX
                           "DATA)");
    if (cfg->data_dir == NULL && cfg->mode != LDG_MODE_SINGLE)
        return ldg_err_set(err, LDG_EINVAL,
                           "no data directory in %s mode: set --data or " LDG_CONFIG_ENV_PREFIX
                           "DATA (an ephemeral directory is allowed only with --single)",
                           ldg_boot_mode_name(cfg->mode));
    if (cfg->force && cfg->mode != LDG_MODE_SINGLE)
        return ldg_err_set(err, LDG_EINVAL, "--force is only meaningful with --single");
    if ((cfg->tls_cert == NULL) != (cfg->tls_key == NULL))
        return ldg_err_set(err, LDG_EINVAL, "--tls-cert and --tls-key must be given together");
    if (cfg->tls_ca != NULL && cfg->tls_cert == NULL)
        return ldg_err_set(err, LDG_EINVAL, "--tls-ca needs --tls-cert and --tls-key");
    return 0;
}

static bool has_flag(int argc, char **argv, const char *name)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return true;
    return false;
}

int ldg_config_parse(struct ldg_config *cfg, int argc, char **argv, char **envp,
                     struct ldg_err *err)
{
    memset(cfg, 0, sizeof *cfg);
    if (has_flag(argc, argv, "--help") || has_flag(argc, argv, "-h")) {
        cfg->help = true;
        return 0;
    }
    if (has_flag(argc, argv, "--version")) {
        cfg->version = true;
        return 0;
    }

    struct ctx *c = ldg_calloc(1, sizeof *c);
    int rv = collect_flags(c, argc, argv, err);
    if (rv != 0)
        goto out;
    rv = collect_env(c, envp, err);
    if (rv != 0)
        goto out;

    /* The environment file: --env-file > ENV_FILE > the default path. */
    const struct opt *ef = opt_by_kind(K_ENVFILE);
    const char *path = c->v[L_FLAG][opt_index(ef)].val;
    if (path == NULL)
        path = c->v[L_ENV][opt_index(ef)].val;
    if (path == NULL)
        rv = collect_file(c, LDG_CONFIG_DEFAULT_ENV_FILE, false, err);
    else if (path[0] != '\0')
        rv = collect_file(c, path, true, err);
    if (rv != 0)
        goto out;
    if (c->file_path != NULL)
        cfg->env_file = ldg_strdup(c->file_path);

    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt *o = &opts[i];
        if (o->kind >= K_SINGLE)
            continue;
        char from[320];
        int l = L_FLAG;
        while (l < N_LAYERS && c->v[l][i].val == NULL)
            l++;
        const char *val = l < N_LAYERS ? c->v[l][i].val : o->def;
        if (val == NULL)
            continue;
        if (l < N_LAYERS && o->kind == K_METRICS)
            cfg->metrics_explicit = true;
        rv = set_value(cfg, o, val, origin(c, (enum layer)l, o, from, sizeof from), err);
        if (rv != 0)
            goto out;
    }
    rv = resolve_cluster_size(cfg, c, err);
    if (rv != 0)
        goto out;
    rv = resolve_mode(cfg, c, err);
    if (rv != 0)
        goto out;
    if (cfg->advertise == NULL) {
        rv = default_advertise(cfg, err);
        if (rv != 0)
            goto out;
    }
    rv = validate(cfg, err);
out:
    ldg_free(c->file_buf);
    ldg_free(c);
    if (rv != 0)
        ldg_config_free(cfg);
    return rv;
}

void ldg_config_free(struct ldg_config *cfg)
{
    char **strs[] = {&cfg->listen,    &cfg->listen_host,         &cfg->advertise,
                     &cfg->data_dir,  &cfg->metrics,             &cfg->metrics_host,
                     &cfg->peers,     &cfg->backup_dir,          &cfg->cluster_secret_file,
                     &cfg->tls_cert,  &cfg->tls_key,             &cfg->tls_ca,
                     &cfg->admin_token_file, &cfg->env_file};
    for (size_t i = 0; i < LDG_ARRAY_SIZE(strs); i++)
        ldg_free(*strs[i]);
    memset(cfg, 0, sizeof *cfg);
}

void ldg_config_print_help(FILE *out)
{
    fprintf(out,
            "Usage: inferadb-ledger [OPTIONS]\n"
            "\n"
            "InferaDB Ledger server. Every option is a flag (--name VALUE or --name=VALUE)\n"
            "and, unless marked flag-only, an environment variable " LDG_CONFIG_ENV_PREFIX
            "NAME.\n"
            "Precedence: flag > process environment > environment file > default.\n"
            "Booleans accept true/false/1/0/yes/no. Durations are seconds (0.5, 2s, 500ms,\n"
            "5m, 24h); sizes are bytes (4194304, 4MiB, 512K).\n"
            "\n"
            "Options:\n");
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt *o = &opts[i];
        if (o->metavar)
            fprintf(out, "  --%s %s\n", o->flag, o->metavar);
        else
            fprintf(out, "  --%s\n", o->flag);
        fprintf(out, "      %s.\n", o->help);
        if (o->var)
            fprintf(out, "      variable: " LDG_CONFIG_ENV_PREFIX "%s\n", o->var);
        else if (o->kind != K_HELP && o->kind != K_VERSION)
            fprintf(out, "      variable: none (flag only)\n");
        const char *def = o->def_doc ? o->def_doc : o->def;
        if (def)
            fprintf(out, "      default: %s\n", def);
    }
}
