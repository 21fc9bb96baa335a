/* Configuration: precedence, env file syntax, modes, validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "node/config.h"
#include "util/mem.h"

/* Parse with a NULL-terminated list of flags and one of env entries. When no
 * env entry names ENV_FILE, "INFERADB__LEDGER__ENV_FILE=" (no file) is added
 * so the machine's /etc/default/ledger cannot influence the test. */
static int parse(struct ldg_config *cfg, struct ldg_err *err, const char *const *flags,
                 const char *const *env)
{
    char *argv[64];
    char *envp[64];
    int argc = 0, envc = 0;
    argv[argc++] = "inferadb-ledger";
    for (size_t i = 0; flags && flags[i]; i++)
        argv[argc++] = (char *)flags[i];
    argv[argc] = NULL;
    int has_env_file = 0;
    for (size_t i = 0; env && env[i]; i++) {
        if (strncmp(env[i], "INFERADB__LEDGER__ENV_FILE=", 27) == 0)
            has_env_file = 1;
        envp[envc++] = (char *)env[i];
    }
    if (!has_env_file)
        envp[envc++] = "INFERADB__LEDGER__ENV_FILE=";
    envp[envc++] = "PATH=/usr/bin"; /* unrelated variables are ignored */
    envp[envc] = NULL;
    memset(err, 0, sizeof *err);
    return ldg_config_parse(cfg, argc, argv, envp, err);
}

#define FLAGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define ENV(...) ((const char *const[]){__VA_ARGS__, NULL})

static char file_path[256];
static char file_env[300];

/* Write an env file and return the env entry that points at it. */
static const char *env_file(const char *text)
{
    snprintf(file_path, sizeof file_path, "%s/ldg-test-env-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    int fd = mkstemp(file_path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    snprintf(file_env, sizeof file_env, "INFERADB__LEDGER__ENV_FILE=%s", file_path);
    return file_env;
}

static void env_file_done(void) { unlink(file_path); }

/* Expect a parse failure whose message contains |needle|. */
static void expect_error(const char *const *flags, const char *const *env, const char *needle)
{
    struct ldg_config cfg;
    struct ldg_err err;
    int rv = parse(&cfg, &err, flags, env);
    if (rv == 0 || strstr(err.msg, needle) == NULL)
        fail_msg("want error containing '%s', got rv=%d msg='%s'", needle, rv, err.msg);
    ldg_config_free(&cfg);
}

static void test_defaults(void **state)
{
    (void)state;
    struct ldg_config cfg;
    struct ldg_err err;
    assert_int_equal(parse(&cfg, &err, FLAGS("--single"), NULL), 0);
    assert_string_equal(cfg.listen, "127.0.0.1:50051");
    assert_string_equal(cfg.listen_host, "127.0.0.1");
    assert_int_equal(cfg.listen_port, 50051);
    assert_string_equal(cfg.advertise, "127.0.0.1:50051");
    assert_null(cfg.data_dir);
    assert_string_equal(cfg.metrics, "127.0.0.1:9090");
    assert_int_equal(cfg.metrics_port, 9090);
    assert_false(cfg.metrics_explicit);
    assert_int_equal(cfg.mode, LDG_MODE_SINGLE);
    assert_int_equal(cfg.cluster_size, 1);
    assert_null(cfg.peers);
    assert_int_equal(cfg.batch_size, 100);
    assert_true(cfg.batch_delay_s > 0.0019 && cfg.batch_delay_s < 0.0021);
    assert_null(cfg.backup_dir);
    assert_true(cfg.backup_interval_s == 0.0);
    assert_int_equal(cfg.backup_keep, 7);
    assert_true(cfg.log_format_auto);
    assert_int_equal(cfg.log_level, LDG_LOG_INFO);
    assert_false(cfg.allow_fault_injection);
    assert_false(cfg.force);
    assert_false(cfg.inspect);
    assert_true(cfg.peers_poll_s == 2.0);
    assert_true(cfg.peers_timeout_s == 60.0);
    assert_int_equal(cfg.snapshot_threshold, 8192);
    assert_true(cfg.scrub_interval_s == 0.0);
    assert_int_equal(cfg.max_message_bytes, 4 * 1024 * 1024);
    assert_null(cfg.env_file);
    assert_null(cfg.tls_cert);
    ldg_config_free(&cfg);

    /* No mode at all: cluster of 3, which needs DATA. */
    assert_int_equal(parse(&cfg, &err, FLAGS("--data", "/tmp/x"), NULL), 0);
    assert_int_equal(cfg.mode, LDG_MODE_CLUSTER);
    assert_false(cfg.mode_explicit);
    assert_int_equal(cfg.cluster_size, 3);
    ldg_config_free(&cfg);
}

static void test_precedence(void **state)
{
    (void)state;
    struct ldg_config cfg;
    struct ldg_err err;
    const char *f = env_file("INFERADB__LEDGER__BATCH_SIZE=10\n"
                             "INFERADB__LEDGER__PEERS=file-peer\n"
                             "INFERADB__LEDGER__LOG_LEVEL=debug\n"
                             "INFERADB__LEDGER__SINGLE=true\n");
    /* flag > env > file */
    assert_int_equal(parse(&cfg, &err, FLAGS("--batch-size", "30"),
                           ENV(f, "INFERADB__LEDGER__BATCH_SIZE=20",
                               "INFERADB__LEDGER__PEERS=env-peer")),
                     0);
    assert_int_equal(cfg.batch_size, 30);
    assert_string_equal(cfg.peers, "env-peer");
    assert_int_equal(cfg.log_level, LDG_LOG_DEBUG); /* only in the file */
    assert_string_equal(cfg.env_file, file_path);
    ldg_config_free(&cfg);
    /* env > file */
    assert_int_equal(parse(&cfg, &err, NULL, ENV(f, "INFERADB__LEDGER__BATCH_SIZE=20")), 0);
    assert_int_equal(cfg.batch_size, 20);
    assert_string_equal(cfg.peers, "file-peer");
    ldg_config_free(&cfg);
    /* file > default */
    assert_int_equal(parse(&cfg, &err, NULL, ENV(f)), 0);
    assert_int_equal(cfg.batch_size, 10);
    ldg_config_free(&cfg);
    /* default */
    assert_int_equal(parse(&cfg, &err, FLAGS("--single"), NULL), 0);
    assert_int_equal(cfg.batch_size, 100);
    ldg_config_free(&cfg);
    /* an explicit empty value clears a string set lower down */
    assert_int_equal(parse(&cfg, &err, FLAGS("--peers="), ENV(f)), 0);
    assert_null(cfg.peers);
    ldg_config_free(&cfg);
    env_file_done();
}

static void test_unknown(void **state)
{
    (void)state;
    expect_error(FLAGS("--single", "--bogus-flag"), NULL, "--bogus-flag");
    expect_error(FLAGS("--single", "--bogus-flag=3"), NULL, "'--bogus-flag'");
    expect_error(FLAGS("--single"), ENV("INFERADB__LEDGER__BOGUS_VAR=1"),
                 "INFERADB__LEDGER__BOGUS_VAR");
    const char *f = env_file("# comment\nINFERADB__LEDGER__SINGLE=true\n"
                             "INFERADB__LEDGER__NOT_AN_OPTION=1\n");
    expect_error(NULL, ENV(f), "INFERADB__LEDGER__NOT_AN_OPTION");
    expect_error(NULL, ENV(f), "line 3");
    env_file_done();
    /* flag-only options have no variable */
    expect_error(FLAGS("--single"), ENV("INFERADB__LEDGER__FORCE=true"), "flag only");
    expect_error(FLAGS("--single", "stray"), NULL, "unexpected argument 'stray'");
    expect_error(FLAGS("--single", "-x"), NULL, "'-x'");
}

static void test_booleans(void **state)
{
    (void)state;
    static const char *const truthy[] = {"true", "1", "yes", "TRUE", "Yes"};
    static const char *const falsy[] = {"false", "0", "no", "FALSE", "No"};
    char buf[128];
    struct ldg_config cfg;
    struct ldg_err err;
    for (size_t i = 0; i < 5; i++) {
        snprintf(buf, sizeof buf, "INFERADB__LEDGER__ALLOW_FAULT_INJECTION=%s", truthy[i]);
        assert_int_equal(parse(&cfg, &err, FLAGS("--single"), ENV(buf)), 0);
        assert_true(cfg.allow_fault_injection);
        ldg_config_free(&cfg);
        snprintf(buf, sizeof buf, "INFERADB__LEDGER__ALLOW_FAULT_INJECTION=%s", falsy[i]);
        assert_int_equal(parse(&cfg, &err, FLAGS("--single"), ENV(buf)), 0);
        assert_false(cfg.allow_fault_injection);
        ldg_config_free(&cfg);
    }
    /* bare flag is true; --flag=false overrides env true */
    assert_int_equal(parse(&cfg, &err, FLAGS("--single", "--allow-fault-injection"), NULL), 0);
    assert_true(cfg.allow_fault_injection);
    ldg_config_free(&cfg);
    assert_int_equal(parse(&cfg, &err, FLAGS("--single", "--allow-fault-injection=false"),
                           ENV("INFERADB__LEDGER__ALLOW_FAULT_INJECTION=yes")),
                     0);
    assert_false(cfg.allow_fault_injection);
    ldg_config_free(&cfg);
    expect_error(FLAGS("--single"), ENV("INFERADB__LEDGER__ALLOW_FAULT_INJECTION=maybe"),
                 "INFERADB__LEDGER__ALLOW_FAULT_INJECTION: invalid boolean 'maybe'");
    expect_error(NULL, ENV("INFERADB__LEDGER__SINGLE=sure"), "invalid boolean 'sure'");
    /* a boolean flag does not swallow the next argument */
    assert_int_equal(parse(&cfg, &err, FLAGS("--single", "--batch-size", "5"), NULL), 0);
    assert_int_equal(cfg.batch_size, 5);
    ldg_config_free(&cfg);
}

static void test_modes(void **state)
{
    (void)state;
    struct ldg_config cfg;
    struct ldg_err err;
    /* conflicts */
    expect_error(FLAGS("--single", "--join"), NULL, "conflicting bootstrap modes");
    expect_error(FLAGS("--cluster", "3", "--join", "--data", "/d"), NULL, "--join");
    expect_error(FLAGS("--data", "/d"),
                 ENV("INFERADB__LEDGER__SINGLE=true", "INFERADB__LEDGER__JOIN=true"),
                 "conflicting bootstrap modes");
    /* CLUSTER=1 means single (no DATA needed) */
    assert_int_equal(parse(&cfg, &err, NULL, ENV("INFERADB__LEDGER__CLUSTER=1")), 0);
    assert_int_equal(cfg.mode, LDG_MODE_SINGLE);
    assert_int_equal(cfg.cluster_size, 1);
    ldg_config_free(&cfg);
    assert_int_equal(parse(&cfg, &err, FLAGS("--cluster", "1", "--single"), NULL), 0);
    assert_int_equal(cfg.mode, LDG_MODE_SINGLE);
    ldg_config_free(&cfg);
    assert_int_equal(parse(&cfg, &err, FLAGS("--data", "/d"),
                           ENV("INFERADB__LEDGER__CLUSTER=5")),
                     0);
    assert_int_equal(cfg.mode, LDG_MODE_CLUSTER);
    assert_true(cfg.mode_explicit);
    assert_int_equal(cfg.cluster_size, 5);
    ldg_config_free(&cfg);
    /* a mode flag overrides mode settings from the environment */
    assert_int_equal(parse(&cfg, &err, FLAGS("--single"),
                           ENV("INFERADB__LEDGER__JOIN=true", "INFERADB__LEDGER__DATA=/d")),
                     0);
    assert_int_equal(cfg.mode, LDG_MODE_SINGLE);
    ldg_config_free(&cfg);
    assert_int_equal(parse(&cfg, &err, FLAGS("--cluster", "3"),
                           ENV("INFERADB__LEDGER__SINGLE=true", "INFERADB__LEDGER__DATA=/d")),
                     0);
    assert_int_equal(cfg.mode, LDG_MODE_CLUSTER);
    assert_int_equal(cfg.cluster_size, 3);
    ldg_config_free(&cfg);
    /* runbook: env file of a cluster node, process env says JOIN=true */
    const char *f = env_file("INFERADB__LEDGER__DATA=/data\nINFERADB__LEDGER__CLUSTER=5\n"
                             "INFERADB__LEDGER__SINGLE=yes\n");
    assert_int_equal(parse(&cfg, &err, NULL, ENV(f, "INFERADB__LEDGER__JOIN=true")), 0);
    assert_int_equal(cfg.mode, LDG_MODE_JOIN);
    assert_int_equal(cfg.cluster_size, 5); /* still the target size */
    ldg_config_free(&cfg);
    /* runbook "scale back": CLUSTER=3 in env beats SINGLE in the file */
    assert_int_equal(parse(&cfg, &err, NULL, ENV(f, "INFERADB__LEDGER__CLUSTER=3")), 0);
    assert_int_equal(cfg.mode, LDG_MODE_CLUSTER);
    assert_int_equal(cfg.cluster_size, 3);
    assert_string_equal(cfg.data_dir, "/data");
    ldg_config_free(&cfg);
    /* SINGLE=false in env masks SINGLE=yes in the file; file CLUSTER=5 applies */
    assert_int_equal(parse(&cfg, &err, NULL, ENV(f, "INFERADB__LEDGER__SINGLE=false")), 0);
    assert_int_equal(cfg.mode, LDG_MODE_CLUSTER);
    assert_int_equal(cfg.cluster_size, 5);
    ldg_config_free(&cfg);
    env_file_done();
    expect_error(FLAGS("--cluster", "0", "--data", "/d"), NULL, "out of range");
    expect_error(FLAGS("--force", "--data", "/d"), NULL, "--force");
}

static void test_env_file_syntax(void **state)
{
    (void)state;
    struct ldg_config cfg;
    struct ldg_err err;
    const char *f = env_file("# systemd EnvironmentFile for ledger\n"
                             "\n"
                             "   \n"
                             "; also a comment\n"
                             "OTHER_PROGRAM_VAR=ignored\n"
                             "export INFERADB__LEDGER__DATA=/var/lib/ledger\n"
                             "INFERADB__LEDGER__PEERS='node1, node2'\n"
                             "INFERADB__LEDGER__BACKUP_DIR=\"/srv/with \\\"quote\\\"\"\n"
                             "  INFERADB__LEDGER__LISTEN = 10.0.0.1:7000   \n"
                             "INFERADB__LEDGER__LOG_FORMAT=json\r\n"
                             "INFERADB__LEDGER__METRICS=off");
    assert_int_equal(parse(&cfg, &err, NULL, ENV(f)), 0);
    assert_string_equal(cfg.data_dir, "/var/lib/ledger");
    assert_string_equal(cfg.peers, "node1, node2");
    assert_string_equal(cfg.backup_dir, "/srv/with \"quote\"");
    assert_string_equal(cfg.listen, "10.0.0.1:7000");
    assert_string_equal(cfg.advertise, "10.0.0.1:7000");
    assert_false(cfg.log_format_auto);
    assert_int_equal(cfg.log_format, LDG_LOG_JSON);
    assert_null(cfg.metrics);
    assert_true(cfg.metrics_explicit);
    ldg_config_free(&cfg);
    env_file_done();

    f = env_file("INFERADB__LEDGER__SINGLE=true\nthis line has no equals\n");
    expect_error(NULL, ENV(f), "line 2: expected KEY=value");
    env_file_done();
    f = env_file("INFERADB__LEDGER__PEERS=\"unterminated\n");
    expect_error(FLAGS("--single"), ENV(f), "unbalanced quotes");
    env_file_done();
    f = env_file("INFERADB__LEDGER__ENV_FILE=/other\n");
    expect_error(FLAGS("--single"), ENV(f), "cannot be set inside");
    env_file_done();

    /* a named env file must exist; --env-file beats the variable */
    expect_error(FLAGS("--single"), ENV("INFERADB__LEDGER__ENV_FILE=/nonexistent/ledger.env"),
                 "/nonexistent/ledger.env");
    expect_error(FLAGS("--single", "--env-file", "/nonexistent/flag.env"), NULL,
                 "/nonexistent/flag.env");
}

static void test_flag_forms_and_validation(void **state)
{
    (void)state;
    struct ldg_config cfg;
    struct ldg_err err;
    assert_int_equal(parse(&cfg, &err,
                           FLAGS("--single", "--batch-size=42", "--batch-delay=500ms",
                                 "--max-message-bytes", "8MiB", "--listen=0.0.0.0:1234",
                                 "--metrics=[::1]:9191", "--backup-interval", "24h",
                                 "--data=/tmp/d", "--log-level=warn", "--log-format", "text"),
                           NULL),
                     0);
    assert_int_equal(cfg.batch_size, 42);
    assert_true(cfg.batch_delay_s > 0.4999 && cfg.batch_delay_s < 0.5001);
    assert_int_equal(cfg.max_message_bytes, 8 * 1024 * 1024);
    assert_int_equal(cfg.listen_port, 1234);
    assert_string_equal(cfg.listen_host, "0.0.0.0");
    char host[256], want[300];
    assert_int_equal(gethostname(host, sizeof host), 0);
    snprintf(want, sizeof want, "%s:1234", host);
    assert_string_equal(cfg.advertise, want);
    assert_string_equal(cfg.metrics_host, "::1");
    assert_int_equal(cfg.metrics_port, 9191);
    assert_true(cfg.metrics_explicit);
    assert_true(cfg.backup_interval_s == 86400.0);
    assert_string_equal(cfg.data_dir, "/tmp/d");
    assert_int_equal(cfg.log_level, LDG_LOG_WARN);
    assert_false(cfg.log_format_auto);
    assert_int_equal(cfg.log_format, LDG_LOG_TEXT);
    ldg_config_free(&cfg);

    expect_error(FLAGS("--single", "--listen", "127.0.0.1:0"), NULL, "--listen: invalid address");
    expect_error(FLAGS("--single", "--listen", "127.0.0.1:70000"), NULL, "invalid address");
    expect_error(FLAGS("--single", "--listen", "localhost"), NULL, "invalid address");
    expect_error(FLAGS("--single", "--advertise", "::1:50051"), NULL, "--advertise");
    expect_error(FLAGS("--single", "--batch-size", "0"), NULL, "out of range 1..10000");
    expect_error(FLAGS("--single", "--batch-size", "10001"), NULL, "out of range 1..10000");
    expect_error(FLAGS("--single", "--batch-size", "-1"), NULL, "invalid number '-1'");
    expect_error(FLAGS("--single", "--batch-size", "12abc"), NULL, "invalid number");
    expect_error(FLAGS("--single"), ENV("INFERADB__LEDGER__BATCH_SIZE="), "invalid number ''");
    expect_error(FLAGS("--single", "--batch-delay", "2x"), NULL, "invalid duration");
    expect_error(FLAGS("--single", "--batch-delay", "-1"), NULL, "invalid duration");
    expect_error(FLAGS("--single", "--batch-delay", "nan"), NULL, "invalid duration");
    expect_error(FLAGS("--single", "--max-message-bytes", "4TB"), NULL, "invalid size");
    expect_error(FLAGS("--single", "--log-level", "loud"), NULL, "invalid log level");
    expect_error(FLAGS("--single", "--log-format", "xml"), NULL, "invalid log format");
    expect_error(FLAGS("--single", "--data"), NULL, "--data needs a value");
    expect_error(FLAGS("--data", "--single"), NULL, "--data needs a value");
    expect_error(FLAGS("--join"), NULL, "no data directory in join mode");
    expect_error(FLAGS("--cluster", "3"), NULL, "no data directory");
    expect_error(FLAGS("--single", "--inspect"), NULL, "--inspect needs a data directory");
    expect_error(FLAGS("--single", "--tls-cert", "/c.pem"), NULL, "--tls-key");
    expect_error(FLAGS("--single", "--tls-ca", "/ca.pem"), NULL, "--tls-ca needs");
    /* the error from the env file names the file and line */
    const char *f = env_file("\nINFERADB__LEDGER__BATCH_SIZE=99999\n");
    expect_error(FLAGS("--single"), ENV(f), "BATCH_SIZE (");
    expect_error(FLAGS("--single"), ENV(f), "line 2): 99999 is out of range");
    env_file_done();
}

static void test_help_version(void **state)
{
    (void)state;
    struct ldg_config cfg;
    struct ldg_err err;
    /* --help wins even over otherwise bad input */
    assert_int_equal(parse(&cfg, &err, FLAGS("--bogus", "--help"),
                           ENV("INFERADB__LEDGER__BOGUS=1")),
                     0);
    assert_true(cfg.help);
    ldg_config_free(&cfg);
    assert_int_equal(parse(&cfg, &err, FLAGS("--version"), NULL), 0);
    assert_true(cfg.version);
    ldg_config_free(&cfg);

    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    ldg_config_print_help(m);
    fclose(m);
    static const char *const vars[] = {
        "LISTEN", "ADVERTISE", "DATA", "METRICS", "SINGLE", "CLUSTER", "JOIN", "PEERS",
        "BATCH_SIZE", "BATCH_DELAY", "BACKUP_DIR", "BACKUP_INTERVAL", "LOG_FORMAT",
        "LOG_LEVEL", "CLUSTER_SECRET_FILE", "ALLOW_FAULT_INJECTION", "PEERS_POLL",
        "PEERS_TIMEOUT", "BACKUP_KEEP", "TLS_CERT", "TLS_KEY", "TLS_CA", "ADMIN_TOKEN_FILE",
        "SNAPSHOT_THRESHOLD", "SCRUB_INTERVAL", "MAX_MESSAGE_BYTES", "ENV_FILE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        char want[128];
        snprintf(want, sizeof want, "variable: INFERADB__LEDGER__%s\n", vars[i]);
        if (strstr(text, want) == NULL)
            fail_msg("help lacks %s", want);
    }
    assert_non_null(strstr(text, "  --force\n"));
    assert_non_null(strstr(text, "  --inspect\n"));
    assert_non_null(strstr(text, "  --batch-size N\n"));
    assert_non_null(strstr(text, "default: 100\n"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_unknown),
        cmocka_unit_test(test_booleans),
        cmocka_unit_test(test_modes),
        cmocka_unit_test(test_env_file_syntax),
        cmocka_unit_test(test_flag_forms_and_validation),
        cmocka_unit_test(test_help_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
