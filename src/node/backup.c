/* Backups: manifest JSON, archive, list, restore detection (see backup.h). */
#include "node/backup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "node/datadir.h"
#include "util/log.h"
#include "util/mem.h"

void ldg_backup_manifest_free(struct ldg_backup_manifest *m)
{
    ldg_free(m->tag);
    ldg_free(m->vaults);
    memset(m, 0, sizeof *m);
}

/* ---- encode ---- */

static void json_str(struct ldg_buf *out, const char *s)
{
    ldg_buf_append(out, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            ldg_buf_printf(out, "\\%c", *p);
        } else if (*p < 0x20) {
            ldg_buf_printf(out, "\\u%04x", *p);
        } else {
            ldg_buf_append(out, p, 1);
        }
    }
    ldg_buf_append(out, "\"", 1);
}

static void format_time(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void ldg_backup_manifest_encode(const struct ldg_backup_manifest *m, struct ldg_buf *out)
{
    char ts[32];
    format_time(m->created_at, ts);
    ldg_buf_printf(out, "{\n  \"format\": %d,\n  \"backup_id\": ", LDG_BACKUP_FORMAT);
    json_str(out, m->backup_id);
    ldg_buf_append_str(out, ",\n  \"tag\": ");
    json_str(out, m->tag ? m->tag : "");
    ldg_buf_printf(out, ",\n  \"created_at\": \"%s\",\n  \"created_at_unix\": %" PRId64
                        ",\n  \"tool_version\": ",
                   ts, m->created_at);
    json_str(out, m->tool_version);
    ldg_buf_printf(out, ",\n  \"source_node_id\": \"%" PRIu64 "\",\n  \"source_cluster_id\": ",
                   m->source_node_id);
    json_str(out, m->source_cluster_id);
    ldg_buf_printf(out,
                   ",\n  \"applied\": {\"log_id\": \"%016" PRIx64 "\", \"index\": %" PRIu64
                   ", \"term\": %" PRIu64 "},\n  \"vaults\": [",
                   m->log_id, m->applied_index, m->applied_term);
    for (size_t i = 0; i < m->nvaults; i++) {
        const struct ldg_backup_vault *v = &m->vaults[i];
        char tip[LDG_HASH_HEX_LEN + 1], root[LDG_HASH_HEX_LEN + 1];
        ldg_hash_to_hex(v->tip_hash, tip);
        ldg_hash_to_hex(v->state_root, root);
        ldg_buf_printf(out,
                       "%s\n    {\"organization\": %" PRIu64 ", \"vault\": %" PRIu64
                       ", \"height\": %" PRIu64 ", \"status\": %d, \"tip_hash\": \"%s\", "
                       "\"state_root\": \"%s\"}",
                       i ? "," : "", v->org, v->vault, v->height, v->status, tip, root);
    }
    ldg_buf_append_str(out, m->nvaults ? "\n  ],\n  \"files\": [" : "],\n  \"files\": [");
    for (size_t i = 0; i < m->nfiles; i++) {
        ldg_buf_printf(out, "%s\n    {\"path\": ", i ? "," : "");
        json_str(out, m->files[i].path);
        ldg_buf_printf(out, ", \"size\": %" PRIu64 ", \"sha256\": \"%s\"}", m->files[i].size,
                       m->files[i].sha256);
    }
    ldg_buf_append_str(out, m->nfiles ? "\n  ]\n}\n" : "]\n}\n");
}

/* ---- parse: a small cursor over the JSON text ---- */

struct jp {
    const char *p, *end;
    int depth;
    char why[128];
};

static void jp_ws(struct jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static bool jp_fail(struct jp *j, const char *what)
{
    if (j->why[0] == '\0')
        snprintf(j->why, sizeof j->why, "%s", what);
    return false;
}

static bool jp_lit(struct jp *j, char c)
{
    jp_ws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return true;
    }
    return false;
}

/* A string into |out| (ldg_buf, NUL-terminated); \uXXXX below 0x80 only. */
static bool jp_string(struct jp *j, struct ldg_buf *out)
{
    ldg_buf_reset(out);
    if (!jp_lit(j, '"'))
        return jp_fail(j, "string expected");
    while (j->p < j->end && *j->p != '"') {
        unsigned char c = (unsigned char)*j->p++;
        if (c < 0x20)
            return jp_fail(j, "control character in string");
        if (c != '\\') {
            ldg_buf_append(out, &c, 1);
            continue;
        }
        if (j->p >= j->end)
            return jp_fail(j, "bad escape");
        char e = *j->p++;
        const char *map = "\"\"\\\\//b\bf\fn\nr\rt\t";
        const char *f = NULL;
        for (const char *m = map; *m; m += 2)
            if (*m == e) {
                f = m;
                break;
            }
        if (f != NULL) {
            ldg_buf_append(out, f + 1, 1);
        } else if (e == 'u' && j->end - j->p >= 4) {
            char hex[5] = {j->p[0], j->p[1], j->p[2], j->p[3], 0};
            char *endp = NULL;
            unsigned long v = strtoul(hex, &endp, 16);
            if (*endp != '\0' || v == 0 || v >= 0x80)
                return jp_fail(j, "unsupported \\u escape");
            uint8_t b = (uint8_t)v;
            ldg_buf_append(out, &b, 1);
            j->p += 4;
        } else {
            return jp_fail(j, "bad escape");
        }
    }
    if (j->p >= j->end)
        return jp_fail(j, "unterminated string");
    j->p++;
    ldg_buf_append(out, "", 1);
    return true;
}

static bool jp_u64(struct jp *j, uint64_t *out)
{
    jp_ws(j);
    if (j->p >= j->end || *j->p < '0' || *j->p > '9')
        return jp_fail(j, "unsigned integer expected");
    uint64_t v = 0;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        unsigned d = (unsigned)(*j->p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return jp_fail(j, "integer overflow");
        v = v * 10 + d;
        j->p++;
    }
    *out = v;
    return true;
}

/* Skip any value (nesting bounded). */
static bool jp_skip(struct jp *j)
{
    jp_ws(j);
    if (j->p >= j->end)
        return jp_fail(j, "value expected");
    if (++j->depth > 32)
        return jp_fail(j, "nesting too deep");
    bool ok = true;
    char c = *j->p;
    if (c == '"') {
        struct ldg_buf b;
        ldg_buf_init(&b);
        ok = jp_string(j, &b);
        ldg_buf_close(&b);
    } else if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        j->p++;
        if (!jp_lit(j, close)) {
            do {
                if (c == '{') {
                    struct ldg_buf b;
                    ldg_buf_init(&b);
                    ok = jp_string(j, &b) && jp_lit(j, ':');
                    ldg_buf_close(&b);
                }
                ok = ok && jp_skip(j);
            } while (ok && jp_lit(j, ','));
            ok = ok && (jp_lit(j, close) || jp_fail(j, "bad container"));
        }
    } else {
        const char *s = j->p;
        while (j->p < j->end && strchr("+-.0123456789eEtruefalsn", *j->p) != NULL)
            j->p++;
        ok = j->p > s || jp_fail(j, "bad value");
    }
    j->depth--;
    return ok;
}

typedef bool (*jp_member_fn)(struct jp *j, const char *key, void *arg);

static bool jp_object(struct jp *j, jp_member_fn fn, void *arg)
{
    if (!jp_lit(j, '{'))
        return jp_fail(j, "object expected");
    if (jp_lit(j, '}'))
        return true;
    struct ldg_buf key;
    ldg_buf_init(&key);
    bool ok;
    do {
        ok = jp_string(j, &key) && (jp_lit(j, ':') || jp_fail(j, "':' expected")) &&
             fn(j, (const char *)key.data, arg);
    } while (ok && jp_lit(j, ','));
    ldg_buf_close(&key);
    return ok && (jp_lit(j, '}') || jp_fail(j, "'}' expected"));
}

typedef bool (*jp_elem_fn)(struct jp *j, void *arg);

static bool jp_array(struct jp *j, jp_elem_fn fn, void *arg)
{
    if (!jp_lit(j, '['))
        return jp_fail(j, "array expected");
    if (jp_lit(j, ']'))
        return true;
    bool ok;
    do {
        ok = fn(j, arg);
    } while (ok && jp_lit(j, ','));
    return ok && (jp_lit(j, ']') || jp_fail(j, "']' expected"));
}

static bool jp_str_into(struct jp *j, char *dst, size_t cap)
{
    struct ldg_buf b;
    ldg_buf_init(&b);
    bool ok = jp_string(j, &b);
    if (ok && b.len > cap)
        ok = jp_fail(j, "string too long");
    if (ok)
        memcpy(dst, b.data, b.len);
    ldg_buf_close(&b);
    return ok;
}

static bool jp_hash(struct jp *j, uint8_t out[LDG_HASH_LEN])
{
    char hex[LDG_HASH_HEX_LEN + 1];
    return jp_str_into(j, hex, sizeof hex) &&
           (ldg_hash_from_hex(hex, out) == 0 || jp_fail(j, "bad hash"));
}

static bool applied_member(struct jp *j, const char *key, void *arg)
{
    struct ldg_backup_manifest *m = arg;
    if (strcmp(key, "log_id") == 0) {
        char hex[24];
        if (!jp_str_into(j, hex, sizeof hex))
            return false;
        char *end = NULL;
        errno = 0;
        m->log_id = strtoull(hex, &end, 16);
        return (errno == 0 && end != hex && *end == '\0') || jp_fail(j, "bad log_id");
    }
    if (strcmp(key, "index") == 0)
        return jp_u64(j, &m->applied_index);
    if (strcmp(key, "term") == 0)
        return jp_u64(j, &m->applied_term);
    return jp_skip(j);
}

static bool vault_member(struct jp *j, const char *key, void *arg)
{
    struct ldg_backup_vault *v = arg;
    uint64_t x;
    if (strcmp(key, "organization") == 0)
        return jp_u64(j, &v->org);
    if (strcmp(key, "vault") == 0)
        return jp_u64(j, &v->vault);
    if (strcmp(key, "height") == 0)
        return jp_u64(j, &v->height);
    if (strcmp(key, "status") == 0) {
        if (!jp_u64(j, &x) || x > 255)
            return jp_fail(j, "bad status");
        v->status = (int)x;
        return true;
    }
    if (strcmp(key, "tip_hash") == 0)
        return jp_hash(j, v->tip_hash);
    if (strcmp(key, "state_root") == 0)
        return jp_hash(j, v->state_root);
    return jp_skip(j);
}

static bool vault_elem(struct jp *j, void *arg)
{
    struct ldg_backup_manifest *m = arg;
    if (m->nvaults >= 1000000)
        return jp_fail(j, "too many vaults");
    m->vaults = ldg_realloc(m->vaults, (m->nvaults + 1) * sizeof *m->vaults);
    struct ldg_backup_vault *v = &m->vaults[m->nvaults++];
    memset(v, 0, sizeof *v);
    return jp_object(j, vault_member, v);
}

static bool file_member(struct jp *j, const char *key, void *arg)
{
    struct ldg_backup_file *f = arg;
    if (strcmp(key, "path") == 0)
        return jp_str_into(j, f->path, sizeof f->path);
    if (strcmp(key, "size") == 0)
        return jp_u64(j, &f->size);
    if (strcmp(key, "sha256") == 0)
        return jp_str_into(j, f->sha256, sizeof f->sha256);
    return jp_skip(j);
}

static bool file_elem(struct jp *j, void *arg)
{
    struct ldg_backup_manifest *m = arg;
    if (m->nfiles >= LDG_BACKUP_MAX_FILES)
        return jp_fail(j, "too many files");
    struct ldg_backup_file *f = &m->files[m->nfiles++];
    memset(f, 0, sizeof *f);
    return jp_object(j, file_member, f);
}

static bool top_member(struct jp *j, const char *key, void *arg)
{
    struct ldg_backup_manifest *m = arg;
    uint64_t x;
    if (strcmp(key, "format") == 0) {
        if (!jp_u64(j, &x))
            return false;
        m->format = x > 1000 ? 1000 : (int)x;
        return true;
    }
    if (strcmp(key, "backup_id") == 0)
        return jp_str_into(j, m->backup_id, sizeof m->backup_id);
    if (strcmp(key, "tag") == 0) {
        struct ldg_buf b;
        ldg_buf_init(&b);
        bool ok = jp_string(j, &b);
        if (ok) {
            ldg_free(m->tag);
            m->tag = ldg_strdup((const char *)b.data);
        }
        ldg_buf_close(&b);
        return ok;
    }
    if (strcmp(key, "created_at_unix") == 0) {
        if (!jp_u64(j, &x) || x > INT64_MAX)
            return jp_fail(j, "bad created_at_unix");
        m->created_at = (int64_t)x;
        return true;
    }
    if (strcmp(key, "tool_version") == 0)
        return jp_str_into(j, m->tool_version, sizeof m->tool_version);
    if (strcmp(key, "source_node_id") == 0) {
        char dec[24];
        if (!jp_str_into(j, dec, sizeof dec))
            return false;
        m->source_node_id = strtoull(dec, NULL, 10);
        return true;
    }
    if (strcmp(key, "source_cluster_id") == 0)
        return jp_str_into(j, m->source_cluster_id, sizeof m->source_cluster_id);
    if (strcmp(key, "applied") == 0)
        return jp_object(j, applied_member, m);
    if (strcmp(key, "vaults") == 0)
        return jp_array(j, vault_elem, m);
    if (strcmp(key, "files") == 0)
        return jp_array(j, file_elem, m);
    return jp_skip(j);
}

int ldg_backup_manifest_parse(const char *p, size_t n, struct ldg_backup_manifest *m,
                              struct ldg_err *err)
{
    memset(m, 0, sizeof *m);
    struct jp j = {.p = p, .end = p + n};
    bool ok = jp_object(&j, top_member, m);
    jp_ws(&j);
    if (ok && j.p != j.end)
        ok = jp_fail(&j, "trailing data");
    if (ok && m->format != LDG_BACKUP_FORMAT)
        ok = jp_fail(&j, "unsupported format (expected 1)");
    if (ok && m->backup_id[0] == '\0')
        ok = jp_fail(&j, "backup_id missing");
    if (ok && m->nfiles == 0)
        ok = jp_fail(&j, "files missing");
    for (size_t i = 0; ok && i < m->nfiles; i++) {
        const char *clean;
        uint8_t h[LDG_HASH_LEN];
        if (!ldg_backup_member_ok(m->files[i].path, &clean) || clean[0] == '\0' ||
            ldg_hash_from_hex(m->files[i].sha256, h) != 0)
            ok = jp_fail(&j, "bad files entry");
    }
    if (!ok) {
        size_t at = (size_t)(j.p - p);
        ldg_err_set(err, LDG_ECORRUPT, "backup.json: %s (near byte %zu)",
                    j.why[0] ? j.why : "malformed", at);
        ldg_backup_manifest_free(m);
        return LDG_ECORRUPT;
    }
    if (m->tag == NULL)
        m->tag = ldg_strdup("");
    return 0;
}

static int read_small_file(const char *path, struct ldg_buf *out, size_t max, struct ldg_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ldg_err_set(err, errno == ENOENT ? LDG_ENOTFOUND : ldg_err_from_errno(errno),
                           "%s: %s", path, strerror(errno));
    char chunk[8192];
    ssize_t got;
    while ((got = read(fd, chunk, sizeof chunk)) > 0) {
        ldg_buf_append(out, chunk, (size_t)got);
        if (out->len > max) {
            close(fd);
            return ldg_err_set(err, LDG_ETOOBIG, "%s: larger than %zu bytes", path, max);
        }
    }
    int e = errno;
    close(fd);
    if (got < 0)
        return ldg_err_set(err, ldg_err_from_errno(e), "%s: %s", path, strerror(e));
    return 0;
}

int ldg_backup_manifest_load(const char *path, struct ldg_backup_manifest *m,
                             struct ldg_err *err)
{
    memset(m, 0, sizeof *m);
    struct ldg_buf b;
    ldg_buf_init(&b);
    int rv = read_small_file(path, &b, 64u << 20, err);
    if (rv == 0) {
        rv = ldg_backup_manifest_parse((const char *)b.data, b.len, m, err);
        if (rv != 0)
            ldg_err_wrap(err, "%s", path);
    }
    ldg_buf_close(&b);
    return rv;
}

int ldg_backup_file_sha256(const char *path, char hex[LDG_HASH_HEX_LEN + 1], uint64_t *size,
                           struct ldg_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ldg_err_set(err, errno == ENOENT ? LDG_ENOTFOUND : ldg_err_from_errno(errno),
                           "%s: %s", path, strerror(errno));
    struct ldg_sha256_ctx ctx;
    ldg_sha256_init(&ctx);
    uint8_t *chunk = ldg_malloc(1 << 20);
    uint64_t total = 0;
    ssize_t got;
    while ((got = read(fd, chunk, 1 << 20)) > 0) {
        ldg_sha256_update(&ctx, chunk, (size_t)got);
        total += (uint64_t)got;
    }
    int e = errno;
    ldg_free(chunk);
    close(fd);
    if (got < 0)
        return ldg_err_set(err, ldg_err_from_errno(e), "%s: %s", path, strerror(e));
    uint8_t h[LDG_HASH_LEN];
    ldg_sha256_final(&ctx, h);
    ldg_hash_to_hex(h, hex);
    if (size != NULL)
        *size = total;
    return 0;
}

/* ---- archive ---- */

bool ldg_backup_member_ok(const char *name, const char **clean)
{
    if (name == NULL || name[0] == '/' || name[0] == '\0')
        return false;
    while (name[0] == '.' && name[1] == '/')
        name += 2;
    *clean = name;
    if (name[0] == '\0' || strcmp(name, ".") == 0) {
        *clean = "";
        return true;
    }
    /* Every component: non-empty (a trailing '/' of a directory is fine),
     * not "." or "..". */
    const char *p = name;
    while (*p) {
        const char *s = strchr(p, '/');
        size_t l = s ? (size_t)(s - p) : strlen(p);
        if (l == 0 || (l == 1 && p[0] == '.') || (l == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        if (s == NULL)
            break;
        p = s + 1;
    }
    if (strcmp(name, LDG_BACKUP_MANIFEST) == 0 || strcmp(name, "state") == 0 ||
        strncmp(name, "state/", 6) == 0)
        return true;
    return false;
}

static int add_file(struct archive *a, const char *disk, const char *name, struct ldg_err *err)
{
    int fd = open(disk, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ldg_err_set(err, ldg_err_from_errno(errno), "%s: %s", disk, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return ldg_err_set(err, ldg_err_from_errno(e), "%s: %s", disk, strerror(e));
    }
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, name);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0600);
    archive_entry_set_size(e, st.st_size);
    archive_entry_set_mtime(e, st.st_mtime, 0);
    int rv = 0;
    if (archive_write_header(a, e) != ARCHIVE_OK) {
        rv = ldg_err_set(err, LDG_EIO, "archive %s: %s", name, archive_error_string(a));
        goto out;
    }
    uint8_t *buf = ldg_malloc(1 << 20);
    ssize_t got;
    while ((got = read(fd, buf, 1 << 20)) > 0) {
        if (archive_write_data(a, buf, (size_t)got) != got) {
            rv = ldg_err_set(err, LDG_EIO, "archive %s: %s", name, archive_error_string(a));
            break;
        }
    }
    if (got < 0 && rv == 0)
        rv = ldg_err_set(err, ldg_err_from_errno(errno), "%s: %s", disk, strerror(errno));
    ldg_free(buf);
out:
    archive_entry_free(e);
    close(fd);
    return rv;
}

static int fsync_path(const char *path, bool dir)
{
    int fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
    if (fd < 0)
        return ldg_err_from_errno(errno);
    int rv = fsync(fd) == 0 ? 0 : ldg_err_from_errno(errno);
    close(fd);
    return rv;
}

int ldg_backup_archive_write(const char *archive_path, const char *src_dir, struct ldg_err *err)
{
    char p[4096];
    struct archive *a = archive_write_new();
    int rv = 0;
    if (archive_write_add_filter_gzip(a) != ARCHIVE_OK ||
        archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
        archive_write_open_filename(a, archive_path) != ARCHIVE_OK) {
        rv = ldg_err_set(err, LDG_EIO, "%s: %s", archive_path, archive_error_string(a));
        archive_write_free(a);
        return rv;
    }
    snprintf(p, sizeof p, "%s/%s", src_dir, LDG_BACKUP_MANIFEST);
    rv = add_file(a, p, LDG_BACKUP_MANIFEST, err);
    if (rv == 0) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, "state/");
        archive_entry_set_filetype(e, AE_IFDIR);
        archive_entry_set_perm(e, 0700);
        archive_entry_set_mtime(e, time(NULL), 0);
        if (archive_write_header(a, e) != ARCHIVE_OK)
            rv = ldg_err_set(err, LDG_EIO, "archive state/: %s", archive_error_string(a));
        archive_entry_free(e);
    }
    if (rv == 0) {
        snprintf(p, sizeof p, "%s/state/data.mdb", src_dir);
        rv = add_file(a, p, "state/data.mdb", err);
    }
    if (archive_write_close(a) != ARCHIVE_OK && rv == 0)
        rv = ldg_err_set(err, LDG_EIO, "%s: %s", archive_path, archive_error_string(a));
    archive_write_free(a);
    if (rv == 0 && fsync_path(archive_path, false) != 0)
        rv = ldg_err_set(err, LDG_EIO, "fsync %s: %s", archive_path, strerror(errno));
    return rv;
}

static int mkdirs(const char *base, const char *rel)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", base, rel);
    size_t bl = strlen(base) + 1;
    for (char *s = p + bl; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0700) != 0 && errno != EEXIST)
            return ldg_err_from_errno(errno);
        *s = '/';
    }
    if (mkdir(p, 0700) != 0 && errno != EEXIST)
        return ldg_err_from_errno(errno);
    return 0;
}

int ldg_backup_archive_extract(const char *archive_path, const char *dest_dir,
                               struct ldg_err *err)
{
    struct archive *a = archive_read_new();
    archive_read_support_filter_gzip(a);
    archive_read_support_format_tar(a);
    int rv = 0;
    if (archive_read_open_filename(a, archive_path, 1 << 16) != ARCHIVE_OK) {
        rv = ldg_err_set(err, LDG_ECORRUPT, "%s: %s", archive_path, archive_error_string(a));
        archive_read_free(a);
        return rv;
    }
    struct archive_entry *e;
    uint8_t *buf = ldg_malloc(1 << 16);
    int r;
    while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
        const char *name = archive_entry_pathname(e), *clean;
        if (!ldg_backup_member_ok(name, &clean)) {
            rv = ldg_err_set(err, LDG_ECORRUPT,
                             "%s: refusing member \"%s\" (absolute, '..', or outside "
                             "backup.json and state/)",
                             archive_path, name ? name : "(null)");
            break;
        }
        char rel[1024];
        snprintf(rel, sizeof rel, "%s", clean);
        size_t rl = strlen(rel);
        while (rl > 0 && rel[rl - 1] == '/')
            rel[--rl] = '\0';
        mode_t type = archive_entry_filetype(e);
        if (type == AE_IFDIR) {
            if (rl > 0 && mkdirs(dest_dir, rel) != 0) {
                rv = ldg_err_set(err, LDG_EIO, "%s/%s: %s", dest_dir, rel, strerror(errno));
                break;
            }
            continue;
        }
        if (type != AE_IFREG || rl == 0 || archive_entry_hardlink(e) != NULL ||
            archive_entry_symlink(e) != NULL) {
            rv = ldg_err_set(err, LDG_ECORRUPT,
                             "%s: refusing member \"%s\" (only regular files and directories)",
                             archive_path, name);
            break;
        }
        char *slash = strrchr(rel, '/');
        if (slash != NULL) {
            *slash = '\0';
            int mr = mkdirs(dest_dir, rel);
            *slash = '/';
            if (mr != 0) {
                rv = ldg_err_set(err, LDG_EIO, "%s/%s: %s", dest_dir, rel, strerror(errno));
                break;
            }
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dest_dir, rel);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) {
            rv = ldg_err_set(err, ldg_err_from_errno(errno), "%s: %s", path, strerror(errno));
            break;
        }
        la_ssize_t got;
        while ((got = archive_read_data(a, buf, 1 << 16)) > 0) {
            const uint8_t *q = buf;
            size_t left = (size_t)got;
            while (left > 0) {
                ssize_t w = write(fd, q, left);
                if (w < 0) {
                    if (errno == EINTR)
                        continue;
                    rv = ldg_err_set(err, ldg_err_from_errno(errno), "%s: %s", path,
                                     strerror(errno));
                    break;
                }
                q += w;
                left -= (size_t)w;
            }
            if (rv != 0)
                break;
        }
        if (got < 0 && rv == 0)
            rv = ldg_err_set(err, LDG_ECORRUPT, "%s: %s", archive_path,
                             archive_error_string(a));
        if (rv == 0 && fsync(fd) != 0)
            rv = ldg_err_set(err, LDG_EIO, "fsync %s: %s", path, strerror(errno));
        close(fd);
        if (rv != 0)
            break;
    }
    if (rv == 0 && r != ARCHIVE_EOF)
        rv = ldg_err_set(err, LDG_ECORRUPT, "%s: %s", archive_path, archive_error_string(a));
    ldg_free(buf);
    archive_read_free(a);
    return rv;
}

/* ---- restore detection ---- */

static bool path_exists(const char *dir, const char *name, bool want_dir)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    struct stat st;
    if (stat(p, &st) != 0)
        return false;
    return want_dir ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode);
}

/* Only snapshot.tar.gz plus what our own startup made. */
static int lone_archive(const char *data_dir, bool *lone)
{
    *lone = false;
    DIR *d = opendir(data_dir);
    if (d == NULL)
        return ldg_err_from_errno(errno);
    bool archive = false, other = false;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *n = de->d_name;
        if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0 || strcmp(n, "LOCK") == 0 ||
            strcmp(n, "node_id") == 0 || strcmp(n, ".write-probe") == 0)
            continue;
        if (strcmp(n, LDG_BACKUP_ARCHIVE) == 0)
            archive = true;
        else
            other = true;
    }
    closedir(d);
    *lone = archive && !other;
    return 0;
}

static int unpack_in_place(const char *data_dir, struct ldg_err *err)
{
    char archive[4096], tmp[4096], from[4096], to[4096];
    snprintf(archive, sizeof archive, "%s/%s", data_dir, LDG_BACKUP_ARCHIVE);
    snprintf(tmp, sizeof tmp, "%s/.restore-tmp", data_dir);
    ldg_rmtree(tmp);
    if (mkdir(tmp, 0700) != 0)
        return ldg_err_set(err, ldg_err_from_errno(errno), "%s: %s", tmp, strerror(errno));
    LDG_LOG(LDG_LOG_WARN, "backup", "data directory holds only %s: unpacking it in place",
            archive);
    int rv = ldg_backup_archive_extract(archive, tmp, err);
    if (rv == 0 && (!path_exists(tmp, LDG_BACKUP_MANIFEST, false) ||
                    !path_exists(tmp, "state", true)))
        rv = ldg_err_set(err, LDG_ECORRUPT,
                         "%s: not a backup archive (backup.json and state/ expected at its top "
                         "level)",
                         archive);
    if (rv != 0) {
        ldg_rmtree(tmp);
        return rv;
    }
    static const char *const names[] = {"state", LDG_BACKUP_MANIFEST};
    for (size_t i = 0; i < 2; i++) {
        snprintf(from, sizeof from, "%s/%s", tmp, names[i]);
        snprintf(to, sizeof to, "%s/%s", data_dir, names[i]);
        if (rename(from, to) != 0) {
            rv = ldg_err_set(err, ldg_err_from_errno(errno), "rename %s: %s", from,
                             strerror(errno));
            ldg_rmtree(tmp);
            return rv;
        }
    }
    ldg_rmtree(tmp);
    snprintf(to, sizeof to, "%s/restored-%s", data_dir, LDG_BACKUP_ARCHIVE);
    if (rename(archive, to) != 0)
        return ldg_err_set(err, ldg_err_from_errno(errno), "rename %s: %s", archive,
                           strerror(errno));
    fsync_path(data_dir, true);
    return 0;
}

int ldg_backup_restore_prepare(const char *data_dir, struct ldg_backup_manifest *m,
                               struct ldg_err *err)
{
    memset(m, 0, sizeof *m);
    bool lone = false;
    int rv = lone_archive(data_dir, &lone);
    if (rv != 0)
        return ldg_err_set(err, rv, "%s: %s", data_dir, strerror(errno));
    if (lone) {
        rv = unpack_in_place(data_dir, err);
        if (rv != 0)
            return rv;
    }
    if (!path_exists(data_dir, "state", true) ||
        !path_exists(data_dir, LDG_BACKUP_MANIFEST, false))
        return 0;
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", data_dir, LDG_BACKUP_MANIFEST);
    rv = ldg_backup_manifest_load(p, m, err);
    if (rv != 0)
        return ldg_err_wrap(err, "restored data directory");
    for (size_t i = 0; i < m->nfiles; i++) {
        const struct ldg_backup_file *f = &m->files[i];
        char hex[LDG_HASH_HEX_LEN + 1];
        uint64_t size = 0;
        snprintf(p, sizeof p, "%s/%s", data_dir, f->path);
        rv = ldg_backup_file_sha256(p, hex, &size, err);
        if (rv != 0) {
            ldg_backup_manifest_free(m);
            return ldg_err_wrap(err, "backup %s: verify", f->path);
        }
        if (strcmp(hex, f->sha256) != 0 || size != f->size) {
            LDG_LOG(LDG_LOG_ERROR, "backup",
                    "verification of %s failed: sha256 %s size %" PRIu64
                    ", backup.json says sha256 %s size %" PRIu64,
                    p, hex, size, f->sha256, f->size);
            ldg_err_set(err, LDG_ECORRUPT,
                        "backup verification failed: %s has sha256 %.16s... but backup.json "
                        "says %.16s...: damaged backup, refusing to start",
                        f->path, hex, f->sha256);
            ldg_backup_manifest_free(m);
            return LDG_ECORRUPT;
        }
    }
    return 1;
}

/* ---- list / prune ---- */

char *ldg_backup_dir(const struct ldg_config *cfg, const char *data_dir)
{
    if (cfg != NULL && cfg->backup_dir != NULL && cfg->backup_dir[0] != '\0')
        return ldg_strdup(cfg->backup_dir);
    size_t n = strlen(data_dir) + sizeof "/backups";
    char *p = ldg_malloc(n);
    snprintf(p, n, "%s/backups", data_dir);
    return p;
}

static int entry_cmp(const void *a, const void *b)
{
    const struct ldg_backup_entry *x = a, *y = b;
    return -strcmp(x->m.backup_id, y->m.backup_id);
}

int ldg_backup_list(const char *backup_dir, struct ldg_backup_entry **out, size_t *n,
                    struct ldg_err *err)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(backup_dir);
    if (d == NULL) {
        if (errno == ENOENT)
            return 0;
        return ldg_err_set(err, ldg_err_from_errno(errno), "%s: %s", backup_dir,
                           strerror(errno));
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        if (name[0] == '.' || strcmp(name, LDG_BACKUP_LATEST) == 0)
            continue;
        char mp[4096], ap[4096];
        snprintf(mp, sizeof mp, "%s/%s/%s", backup_dir, name, LDG_BACKUP_MANIFEST);
        snprintf(ap, sizeof ap, "%s/%s/%s", backup_dir, name, LDG_BACKUP_ARCHIVE);
        struct stat st;
        if (stat(ap, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        struct ldg_backup_manifest m;
        if (ldg_backup_manifest_load(mp, &m, NULL) != 0)
            continue;
        if (strcmp(m.backup_id, name) != 0) {
            ldg_backup_manifest_free(&m);
            continue;
        }
        *out = ldg_realloc(*out, (*n + 1) * sizeof **out);
        struct ldg_backup_entry *e = &(*out)[(*n)++];
        e->m = m;
        e->archive_path = ldg_strdup(ap);
        e->size_bytes = (uint64_t)st.st_size;
    }
    closedir(d);
    if (*n > 1)
        qsort(*out, *n, sizeof **out, entry_cmp);
    return 0;
}

void ldg_backup_list_free(struct ldg_backup_entry *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ldg_backup_manifest_free(&list[i].m);
        ldg_free(list[i].archive_path);
    }
    ldg_free(list);
}

int ldg_backup_prune(const char *backup_dir, uint32_t keep)
{
    struct ldg_backup_entry *list;
    size_t n;
    if (ldg_backup_list(backup_dir, &list, &n, NULL) != 0)
        return 0;
    uint32_t kept = 0;
    int removed = 0;
    for (size_t i = 0; i < n; i++) { /* newest first */
        if (strcmp(list[i].m.tag, "periodic") != 0)
            continue;
        if (kept < keep) {
            kept++;
            continue;
        }
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", backup_dir, list[i].m.backup_id);
        if (ldg_rmtree(p) == 0) {
            removed++;
            LDG_LOG(LDG_LOG_INFO, "backup", "pruned periodic backup %s (BACKUP_KEEP=%u)",
                    list[i].m.backup_id, (unsigned)keep);
        }
    }
    ldg_backup_list_free(list, n);
    return removed;
}
