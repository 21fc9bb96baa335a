#include "util/log.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "util/assert.h"
#include "util/err.h"

int ldg_log_level_current = LDG_LOG_INFO;
static enum ldg_log_format log_format = LDG_LOG_TEXT;
static uint64_t log_node;

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

void ldg_log_set_level(enum ldg_log_level level) { ldg_log_level_current = (int)level; }
void ldg_log_set_format(enum ldg_log_format format) { log_format = format; }
void ldg_log_set_node(uint64_t node_id) { log_node = node_id; }

const char *ldg_log_level_name(enum ldg_log_level level)
{
    if ((unsigned)level > LDG_LOG_TRACE)
        return "info";
    return level_names[level];
}

int ldg_log_level_parse(const char *s, enum ldg_log_level *out)
{
    for (int i = 0; i <= LDG_LOG_TRACE; i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (enum ldg_log_level)i;
            return 0;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        *out = LDG_LOG_WARN;
        return 0;
    }
    return LDG_EINVAL;
}

int ldg_log_format_parse(const char *s, enum ldg_log_format *out)
{
    if (strcasecmp(s, "text") == 0)
        *out = LDG_LOG_TEXT;
    else if (strcasecmp(s, "json") == 0)
        *out = LDG_LOG_JSON;
    else
        return LDG_EINVAL;
    return 0;
}

/* Append |s| to |out| as the inside of a JSON string. */
static size_t json_escape(char *out, size_t cap, size_t pos, const char *s)
{
    for (; *s && pos + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[pos++] = '\\';
            out[pos++] = (char)c;
        } else if (c == '\n') {
            out[pos++] = '\\';
            out[pos++] = 'n';
        } else if (c < 0x20) {
            pos += (size_t)snprintf(out + pos, cap - pos, "\\u%04x", c);
        } else {
            out[pos++] = (char)c;
        }
    }
    return pos;
}

void ldg_log_write(enum ldg_log_level level, const char *module, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    size_t n = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + n, sizeof when - n, ".%06ldZ", ts.tv_nsec / 1000);

    char line[4096];
    size_t pos;
    if (log_format == LDG_LOG_JSON) {
        pos = (size_t)snprintf(line, sizeof line,
                               "{\"ts\":\"%s\",\"level\":\"%s\",\"module\":\"", when,
                               ldg_log_level_name(level));
        pos = json_escape(line, sizeof line, pos, module);
        if (log_node)
            pos += (size_t)snprintf(line + pos, sizeof line - pos,
                                    "\",\"node\":\"%" PRIu64, log_node);
        pos += (size_t)snprintf(line + pos, sizeof line - pos, "\",\"msg\":\"");
        pos = json_escape(line, sizeof line, pos, msg);
        pos += (size_t)snprintf(line + pos, sizeof line - pos, "\"}\n");
    } else {
        char upper[8];
        const char *name = ldg_log_level_name(level);
        size_t i = 0;
        for (; name[i] && i < sizeof upper - 1; i++)
            upper[i] = (char)(name[i] - 'a' + 'A');
        upper[i] = '\0';
        if (log_node)
            pos = (size_t)snprintf(line, sizeof line, "%s %-5s %s node=%" PRIu64 " %s\n",
                                   when, upper, module, log_node, msg);
        else
            pos = (size_t)snprintf(line, sizeof line, "%s %-5s %s %s\n", when, upper,
                                   module, msg);
    }
    if (pos >= sizeof line) {
        pos = sizeof line - 1;
        line[pos - 1] = '\n';
    }
    fwrite(line, 1, pos, stderr);
    fflush(stderr);
}

void ldg_assert_fail(const char *expr, const char *file, int line)
{
    ldg_log_write(LDG_LOG_ERROR, "assert", "assertion failed: %s at %s:%d", expr, file, line);
    __builtin_trap();
}
