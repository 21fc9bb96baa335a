/* Data directory: lock, node id persistence, ephemeral directories. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "node/datadir.h"
#include "util/mem.h"

static char root[256];

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "%s/ldg-datadir-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return ldg_rmtree(root);
}

static char *path_in(const char *name)
{
    size_t n = strlen(root) + strlen(name) + 2;
    char *p = ldg_malloc(n);
    snprintf(p, n, "%s/%s", root, name);
    return p;
}

static void read_text(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_lock_and_pid(void **state)
{
    (void)state;
    char *data = path_in("a/b/data"); /* parents are created */
    struct ldg_datadir dd, dd2;
    struct ldg_err err = {0};
    assert_int_equal(ldg_datadir_open(&dd, data, &err), 0);
    assert_false(dd.ephemeral);
    assert_true(dd.node_id != 0);

    char lock_path[512], text[64], want[64];
    snprintf(lock_path, sizeof lock_path, "%s/LOCK", data);
    read_text(lock_path, text, sizeof text);
    snprintf(want, sizeof want, "%ld\n", (long)getpid());
    assert_string_equal(text, want);

    /* A second open file description in this process is refused (flock is per
     * description), and the message names the holder's pid. */
    assert_int_equal(ldg_datadir_open(&dd2, data, &err), LDG_ELOCKED);
    snprintf(want, sizeof want, "pid %ld", (long)getpid());
    if (strstr(err.msg, want) == NULL)
        fail_msg("message lacks '%s': %s", want, err.msg);
    assert_non_null(strstr(err.msg, data));
    ldg_datadir_close(&dd2); /* harmless on a failed open */

    /* Another process is refused too. */
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        struct ldg_datadir c;
        struct ldg_err cerr = {0};
        int rv = ldg_datadir_open(&c, data, &cerr);
        _exit(rv == LDG_ELOCKED && strstr(cerr.msg, want) != NULL ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    /* Released on close: open again works. */
    ldg_datadir_close(&dd);
    ldg_datadir_close(&dd); /* twice is fine */
    assert_int_equal(ldg_datadir_open(&dd2, data, &err), 0);
    ldg_datadir_close(&dd2);
    ldg_free(data);
}

static void test_node_id_persists(void **state)
{
    (void)state;
    char *data = path_in("n");
    struct ldg_datadir dd;
    struct ldg_err err = {0};
    uint64_t id;
    assert_int_equal(mkdir(data, 0700), 0);
    assert_int_equal(ldg_datadir_read_node_id(data, &id, &err), LDG_ENOTFOUND);

    assert_int_equal(ldg_datadir_open(&dd, data, &err), 0);
    uint64_t first = dd.node_id;
    assert_true(first != 0);
    ldg_datadir_close(&dd);

    char idpath[512], text[64], want[64];
    snprintf(idpath, sizeof idpath, "%s/node_id", data);
    read_text(idpath, text, sizeof text);
    snprintf(want, sizeof want, "%llu\n", (unsigned long long)first);
    assert_string_equal(text, want);

    assert_int_equal(ldg_datadir_open(&dd, data, &err), 0);
    assert_true(dd.node_id == first);
    ldg_datadir_close(&dd);
    assert_int_equal(ldg_datadir_read_node_id(data, &id, &err), 0);
    assert_true(id == first);

    /* A different directory gets a different identity. */
    char *other = path_in("other");
    assert_int_equal(ldg_datadir_open(&dd, other, &err), 0);
    assert_true(dd.node_id != first);
    ldg_datadir_close(&dd);
    ldg_free(other);

    /* A damaged node_id is an error, never a silent new identity. */
    static const char *const bad[] = {"0\n", "abc\n", "", "123x\n", "-5\n",
                                      "99999999999999999999999\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_text(idpath, bad[i]);
        int rv = ldg_datadir_open(&dd, data, &err);
        if (rv != LDG_ECORRUPT)
            fail_msg("node_id '%s': rv=%d", bad[i], rv);
        assert_non_null(strstr(err.msg, "node_id"));
    }
    /* the failed opens released the lock */
    write_text(idpath, "42\n");
    assert_int_equal(ldg_datadir_open(&dd, data, &err), 0);
    assert_true(dd.node_id == 42);
    ldg_datadir_close(&dd);
    ldg_free(data);
}

static void test_ephemeral(void **state)
{
    (void)state;
    setenv("TMPDIR", root, 1);
    struct ldg_datadir dd;
    struct ldg_err err = {0};
    assert_int_equal(ldg_datadir_open(&dd, NULL, &err), 0);
    unsetenv("TMPDIR");
    assert_true(dd.ephemeral);
    assert_true(strncmp(dd.path, root, strlen(root)) == 0);
    assert_non_null(strstr(dd.path, "/ledger-"));
    char *p = ldg_strdup(dd.path);

    char *sub;
    assert_int_equal(ldg_datadir_subdir(&dd, "state", true, &sub, &err), 0);
    char file[600];
    snprintf(file, sizeof file, "%s/data.mdb", sub);
    write_text(file, "x");
    ldg_free(sub);

    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    ldg_datadir_close(&dd);
    assert_int_equal(stat(p, &st), -1); /* removed recursively */
    ldg_free(p);
}

static void test_subdir_and_not_a_dir(void **state)
{
    (void)state;
    char *data = path_in("s");
    struct ldg_datadir dd;
    struct ldg_err err = {0};
    assert_int_equal(ldg_datadir_open(&dd, data, &err), 0);
    char *sub;
    assert_int_equal(ldg_datadir_subdir(&dd, "raft", false, &sub, &err), 0);
    struct stat st;
    assert_int_equal(stat(sub, &st), -1); /* not created without |create| */
    ldg_free(sub);
    assert_int_equal(ldg_datadir_subdir(&dd, "raft", true, &sub, &err), 0);
    assert_int_equal(stat(sub, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    ldg_free(sub);
    ldg_datadir_close(&dd);
    assert_int_equal(stat(data, &st), 0); /* a real data dir stays */

    char *file = path_in("plainfile");
    write_text(file, "x");
    assert_int_equal(ldg_datadir_open(&dd, file, &err), LDG_EINVAL);
    assert_non_null(strstr(err.msg, "not a directory"));
    ldg_free(file);
    ldg_free(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lock_and_pid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_id_persists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ephemeral, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subdir_and_not_a_dir, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
