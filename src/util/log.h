/* One line per event on stderr, text or JSON (SPEC §8).
 *
 *   LDG_LOG(LDG_LOG_INFO, "raft", "leader elected term=%llu", term);
 *
 * The message is free text; by convention it is a short phrase followed by
 * key=value pairs. The level is checked before any argument is evaluated.
 * Text:  2026-11-26T00:00:00.123456Z INFO  raft node=123 leader elected term=4
 * JSON:  {"ts":"...","level":"info","module":"raft","node":"123","msg":"..."} */
#ifndef LDG_UTIL_LOG_H
#define LDG_UTIL_LOG_H

#include <stdint.h>

enum ldg_log_level {
    LDG_LOG_ERROR = 0,
    LDG_LOG_WARN = 1,
    LDG_LOG_INFO = 2,
    LDG_LOG_DEBUG = 3,
    LDG_LOG_TRACE = 4,
};

enum ldg_log_format {
    LDG_LOG_TEXT = 0,
    LDG_LOG_JSON = 1,
};

extern int ldg_log_level_current;

#define LDG_LOG(level, module, ...)                       \
    do {                                                  \
        if ((int)(level) <= ldg_log_level_current)        \
            ldg_log_write((level), (module), __VA_ARGS__); \
    } while (0)

void ldg_log_write(enum ldg_log_level level, const char *module,
                   const char *fmt, ...) __attribute__((format(printf, 3, 4)));

void ldg_log_set_level(enum ldg_log_level level);
void ldg_log_set_format(enum ldg_log_format format);
/* Node id included in every line (0: omitted). */
void ldg_log_set_node(uint64_t node_id);

/* Parse "error|warn|info|debug|trace" / "text|json". Return 0 or LDG_EINVAL. */
int ldg_log_level_parse(const char *s, enum ldg_log_level *out);
int ldg_log_format_parse(const char *s, enum ldg_log_format *out);
const char *ldg_log_level_name(enum ldg_log_level level);

#endif
