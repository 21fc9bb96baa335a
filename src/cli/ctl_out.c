/* ledgerctl: text tables, JSON output and small formatting helpers. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/ctl.h"
#include "util/mem.h"

void ldg_ctl_table_init(struct ldg_ctl_table *t, const struct ldg_ctl_col *cols, size_t n_cols)
{
    memset(t, 0, sizeof *t);
    t->cols = cols;
    t->n_cols = n_cols;
}

void ldg_ctl_table_free(struct ldg_ctl_table *t)
{
    for (size_t i = 0; i < t->n_rows * t->n_cols; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof *t);
}

void ldg_ctl_cell(struct ldg_ctl_table *t, const char *fmt, ...)
{
    if (t->filled == 0) {
        if (t->n_rows == t->cap) {
            t->cap = t->cap ? t->cap * 2 : 8;
            t->cells = ldg_realloc(t->cells, t->cap * t->n_cols * sizeof *t->cells);
        }
        t->n_rows++;
    }
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        abort();
    va_end(ap);
    t->cells[(t->n_rows - 1) * t->n_cols + t->filled] = s;
    if (++t->filled == t->n_cols)
        t->filled = 0;
}

const char *ldg_ctl_table_get(const struct ldg_ctl_table *t, size_t row, size_t col)
{
    return t->cells[row * t->n_cols + col];
}

static void print_upper(FILE *f, const char *s)
{
    for (; *s; s++)
        fputc(toupper((unsigned char)*s), f);
}

void ldg_ctl_table_print(const struct ldg_ctl_table *t, FILE *f)
{
    size_t *w = ldg_malloc(t->n_cols * sizeof *w);
    for (size_t c = 0; c < t->n_cols; c++) {
        w[c] = strlen(t->cols[c].key);
        for (size_t r = 0; r < t->n_rows; r++) {
            size_t l = strlen(ldg_ctl_table_get(t, r, c));
            if (l > w[c])
                w[c] = l;
        }
    }
    for (size_t c = 0; c < t->n_cols; c++) {
        print_upper(f, t->cols[c].key);
        if (c + 1 < t->n_cols)
            fprintf(f, "%*s", (int)(w[c] - strlen(t->cols[c].key) + 2), "");
    }
    fputc('\n', f);
    for (size_t r = 0; r < t->n_rows; r++) {
        for (size_t c = 0; c < t->n_cols; c++) {
            const char *s = ldg_ctl_table_get(t, r, c);
            if (c + 1 < t->n_cols)
                fprintf(f, "%-*s  ", (int)w[c], s);
            else
                fputs(s, f);
        }
        fputc('\n', f);
    }
    free(w);
}

void ldg_ctl_table_print_record(const struct ldg_ctl_table *t, size_t row, FILE *f)
{
    size_t w = 0;
    for (size_t c = 0; c < t->n_cols; c++)
        if (strlen(t->cols[c].key) > w)
            w = strlen(t->cols[c].key);
    for (size_t c = 0; c < t->n_cols; c++)
        fprintf(f, "%-*s  %s\n", (int)w + 1, t->cols[c].key, ldg_ctl_table_get(t, row, c));
}

void ldg_ctl_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

void ldg_ctl_table_json_row(const struct ldg_ctl_table *t, size_t row, FILE *f)
{
    fputc('{', f);
    for (size_t c = 0; c < t->n_cols; c++) {
        if (c > 0)
            fputs(", ", f);
        ldg_ctl_json_str(f, t->cols[c].key);
        fputs(": ", f);
        const char *s = ldg_ctl_table_get(t, row, c);
        if (t->cols[c].kind == LDG_CTL_STR)
            ldg_ctl_json_str(f, s);
        else if (t->cols[c].kind == LDG_CTL_NUM && strcmp(s, "-") == 0)
            fputs("null", f);
        else
            fputs(s, f);
    }
    fputc('}', f);
}

void ldg_ctl_table_json(const struct ldg_ctl_table *t, FILE *f)
{
    fputc('[', f);
    for (size_t r = 0; r < t->n_rows; r++) {
        fputs(r ? ",\n " : "", f);
        ldg_ctl_table_json_row(t, r, f);
    }
    fputc(']', f);
}

const char *ldg_ctl_hash_hex(const Ledger__V1__Hash *h, char *out)
{
    if (h == NULL || h->value.len == 0) {
        strcpy(out, "-");
        return out;
    }
    size_t n = h->value.len > 32 ? 32 : h->value.len;
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", h->value.data[i]);
    out[2 * n] = '\0';
    return out;
}

const char *ldg_ctl_enum_name(const ProtobufCEnumDescriptor *d, int value, const char *prefix)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(d, value);
    if (v == NULL)
        return "UNKNOWN";
    size_t pl = strlen(prefix);
    return strncmp(v->name, prefix, pl) == 0 ? v->name + pl : v->name;
}

const char *ldg_ctl_time(const Google__Protobuf__Timestamp *ts, char *out)
{
    if (ts == NULL || (ts->seconds == 0 && ts->nanos == 0)) {
        strcpy(out, "-");
        return out;
    }
    time_t t = (time_t)ts->seconds;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, 32, "%" PRId64, ts->seconds);
    return out;
}

bool ldg_ctl_parse_u64(const char *s, uint64_t *out)
{
    if (s == NULL || *s < '0' || *s > '9')
        return false;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = v;
    return true;
}
