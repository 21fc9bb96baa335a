/* Backups: backup.json round trip and rejection, archive member path safety,
 * archive write/extract, restore detection (docs/backups.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <cmocka.h>

#include "node/backup.h"
#include "node/datadir.h"
#include "util/mem.h"

static char root[256];

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "%s/ldg-backup-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return ldg_rmtree(root);
}

static void path_in(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", root, name);
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static void sample(struct ldg_backup_manifest *m)
{
    memset(m, 0, sizeof *m);
    m->format = 1;
    snprintf(m->backup_id, sizeof m->backup_id, "20260101T000000Z-0badcafe");
    m->tag = ldg_strdup("say \"hi\"\\\n\x01");
    m->created_at = 1767225600;
    snprintf(m->tool_version, sizeof m->tool_version, "9.9.9");
    m->source_node_id = UINT64_MAX;
    snprintf(m->source_cluster_id, sizeof m->source_cluster_id,
             "6f1c2e3a-0000-4000-8000-000000000001");
    m->log_id = 0x00ab12cd34ef5678ull;
    m->applied_index = 1234;
    m->applied_term = 7;
    m->nvaults = 2;
    m->vaults = ldg_calloc(2, sizeof *m->vaults);
    m->vaults[0] = (struct ldg_backup_vault){.org = 1, .vault = 0, .height = 3, .status = 1};
    m->vaults[1] = (struct ldg_backup_vault){.org = 1, .vault = 9, .height = 42, .status = 5};
    for (int i = 0; i < LDG_HASH_LEN; i++) {
        m->vaults[1].tip_hash[i] = (uint8_t)i;
        m->vaults[1].state_root[i] = (uint8_t)(255 - i);
    }
    m->nfiles = 1;
    snprintf(m->files[0].path, sizeof m->files[0].path, "state/data.mdb");
    m->files[0].size = 65536;
    memset(m->files[0].sha256, 'a', LDG_HASH_HEX_LEN);
}

static void test_manifest_round_trip(void **state)
{
    (void)state;
    struct ldg_backup_manifest m, back;
    sample(&m);
    struct ldg_buf b;
    ldg_buf_init(&b);
    ldg_backup_manifest_encode(&m, &b);
    struct ldg_err err = {0};
    assert_int_equal(ldg_backup_manifest_parse((const char *)b.data, b.len, &back, &err), 0);
    assert_string_equal(back.backup_id, m.backup_id);
    assert_string_equal(back.tag, m.tag);
    assert_int_equal(back.created_at, m.created_at);
    assert_string_equal(back.tool_version, "9.9.9");
    assert_true(back.source_node_id == UINT64_MAX);
    assert_string_equal(back.source_cluster_id, m.source_cluster_id);
    assert_true(back.log_id == m.log_id);
    assert_int_equal(back.applied_index, 1234);
    assert_int_equal(back.applied_term, 7);
    assert_int_equal(back.nvaults, 2);
    assert_memory_equal(back.vaults, m.vaults, 2 * sizeof *m.vaults);
    assert_int_equal(back.nfiles, 1);
    assert_string_equal(back.files[0].path, "state/data.mdb");
    assert_int_equal(back.files[0].size, 65536);
    assert_string_equal(back.files[0].sha256, m.files[0].sha256);
    /* Encoding the parsed manifest gives the same text. */
    struct ldg_buf b2;
    ldg_buf_init(&b2);
    ldg_backup_manifest_encode(&back, &b2);
    assert_int_equal(b2.len, b.len);
    assert_memory_equal(b2.data, b.data, b.len);
    ldg_buf_close(&b2);
    ldg_buf_close(&b);
    ldg_backup_manifest_free(&back);
    ldg_backup_manifest_free(&m);
}

static void test_manifest_rejects(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "[]",
        "{\"format\": 2, \"backup_id\": \"x\", \"files\": []}",
        "{\"format\": 1, \"files\": [{\"path\": \"state/data.mdb\", \"sha256\": "
        "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}]}",
        "{\"format\": 1, \"backup_id\": \"x\", \"files\": []}",
        "{\"format\": 1, \"backup_id\": \"x\", \"files\": [{\"path\": \"../etc/passwd\", "
        "\"sha256\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}]}",
        "{\"format\": 1, \"backup_id\": \"x\", \"files\": [{\"path\": \"state/data.mdb\", "
        "\"sha256\": \"not-hex\"}]}",
        "{\"format\": 1, \"backup_id\": \"x\"} trailing",
        "{\"format\": 1, \"backup_id\": \"unterminated",
        "{\"format\": 99999999999999999999999}",
        "{\"a\": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
        "]]]]]]]]]]]]]]]]]]]]]]]]]]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct ldg_backup_manifest m;
        struct ldg_err err = {0};
        assert_int_equal(ldg_backup_manifest_parse(bad[i], strlen(bad[i]), &m, &err),
                         LDG_ECORRUPT);
        assert_non_null(strstr(err.msg, "backup.json"));
        assert_null(m.vaults);
        assert_null(m.tag);
    }
    /* Unknown keys are skipped. */
    const char *ok = "{\"format\": 1, \"future\": {\"x\": [1, true, null, \"s\"]}, "
                     "\"backup_id\": \"id\", \"files\": [{\"path\": \"state/data.mdb\", "
                     "\"size\": 1, \"sha256\": "
                     "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}]}";
    struct ldg_backup_manifest m;
    assert_int_equal(ldg_backup_manifest_parse(ok, strlen(ok), &m, NULL), 0);
    assert_string_equal(m.backup_id, "id");
    assert_string_equal(m.tag, "");
    ldg_backup_manifest_free(&m);
}

static void test_member_ok(void **state)
{
    (void)state;
    const char *clean;
    assert_true(ldg_backup_member_ok("backup.json", &clean));
    assert_string_equal(clean, "backup.json");
    assert_true(ldg_backup_member_ok("./state/data.mdb", &clean));
    assert_string_equal(clean, "state/data.mdb");
    assert_true(ldg_backup_member_ok("state/", &clean));
    assert_true(ldg_backup_member_ok("./", &clean));
    assert_string_equal(clean, "");
    static const char *const no[] = {
        "/etc/passwd", "../x", "state/../../x", "state/..", "state//data.mdb",
        "state/./data.mdb", "raft/metadata1", "node_id", "", "..", "backup.json/..",
        "statefoo", "./../state",
    };
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        assert_false(ldg_backup_member_ok(no[i], &clean));
    assert_false(ldg_backup_member_ok(NULL, &clean));
}

/* Build a tar.gz with the given (name, type, content) members. */
static void make_archive(const char *path, const char *const *names, const int *types,
                         const char *const *contents, size_t n)
{
    struct archive *a = archive_write_new();
    assert_int_equal(archive_write_add_filter_gzip(a), ARCHIVE_OK);
    assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
    assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, names[i]);
        archive_entry_set_filetype(e, (unsigned)types[i]);
        archive_entry_set_perm(e, 0600);
        if (types[i] == AE_IFLNK)
            archive_entry_set_symlink(e, "/etc/passwd");
        size_t len = contents[i] ? strlen(contents[i]) : 0;
        archive_entry_set_size(e, types[i] == AE_IFREG ? (la_int64_t)len : 0);
        assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
        if (types[i] == AE_IFREG && len)
            assert_int_equal(archive_write_data(a, contents[i], len), (la_ssize_t)len);
        archive_entry_free(e);
    }
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
}

static void test_extract_refuses_unsafe(void **state)
{
    (void)state;
    char arch[512], dest[512], p[512];
    path_in(arch, sizeof arch, "a.tar.gz");
    path_in(dest, sizeof dest, "dest");
    struct {
        const char *name;
        int type;
    } cases[] = {
        {"../escape", AE_IFREG},       {"/tmp/ldg-abs-escape", AE_IFREG},
        {"state/../../escape", AE_IFREG}, {"state/link", AE_IFLNK},
        {"other.txt", AE_IFREG},       {"state/fifo", AE_IFIFO},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ldg_rmtree(dest);
        assert_int_equal(mkdir(dest, 0700), 0);
        const char *names[] = {"backup.json", cases[i].name};
        const int types[] = {AE_IFREG, cases[i].type};
        const char *contents[] = {"{}", "evil"};
        make_archive(arch, names, types, contents, 2);
        struct ldg_err err = {0};
        assert_int_equal(ldg_backup_archive_extract(arch, dest, &err), LDG_ECORRUPT);
        assert_non_null(strstr(err.msg, "refusing member"));
        path_in(p, sizeof p, "escape");
        assert_false(exists(p));
        assert_false(exists("/tmp/ldg-abs-escape"));
    }
    /* A safe archive extracts, "./" prefixes accepted. */
    ldg_rmtree(dest);
    assert_int_equal(mkdir(dest, 0700), 0);
    const char *names[] = {"./backup.json", "./state/", "./state/data.mdb"};
    const int types[] = {AE_IFREG, AE_IFDIR, AE_IFREG};
    const char *contents[] = {"{}", NULL, "DATA"};
    make_archive(arch, names, types, contents, 3);
    assert_int_equal(ldg_backup_archive_extract(arch, dest, NULL), 0);
    snprintf(p, sizeof p, "%s/state/data.mdb", dest);
    char hex[LDG_HASH_HEX_LEN + 1];
    uint64_t size = 0;
    assert_int_equal(ldg_backup_file_sha256(p, hex, &size, NULL), 0);
    assert_int_equal(size, 4);
    /* sha256("DATA") */
    assert_string_equal(hex, "c97c29c7a71b392b437ee03fd17f09bb10b75e879466fc0eb757b2c4a78ac938");
}

/* Archive round trip + restore detection: lone archive unpacked, checksum
 * verified, damaged data refused. */
static void test_restore_prepare(void **state)
{
    (void)state;
    char src[512], data[512], p[512];
    path_in(src, sizeof src, "src");
    path_in(data, sizeof data, "data");
    snprintf(p, sizeof p, "%s/state", src);
    assert_int_equal(mkdir(src, 0700), 0);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/state/data.mdb", src);
    write_file(p, "pretend-lmdb", 12);

    struct ldg_backup_manifest m;
    sample(&m);
    assert_int_equal(ldg_backup_file_sha256(p, m.files[0].sha256, &m.files[0].size, NULL), 0);
    struct ldg_buf b;
    ldg_buf_init(&b);
    ldg_backup_manifest_encode(&m, &b);
    snprintf(p, sizeof p, "%s/backup.json", src);
    write_file(p, b.data, b.len);
    ldg_buf_close(&b);

    /* Not restored data: empty dir, and a dir with other files. */
    assert_int_equal(mkdir(data, 0700), 0);
    struct ldg_backup_manifest got;
    assert_int_equal(ldg_backup_restore_prepare(data, &got, NULL), 0);

    snprintf(p, sizeof p, "%s/snapshot.tar.gz", data);
    assert_int_equal(ldg_backup_archive_write(p, src, NULL), 0);
    snprintf(p, sizeof p, "%s/node_id", data);
    write_file(p, "5\n", 2); /* made by our own startup: ignored */
    struct ldg_err err = {0};
    assert_int_equal(ldg_backup_restore_prepare(data, &got, &err), 1);
    assert_string_equal(got.backup_id, m.backup_id);
    assert_int_equal(got.applied_index, 1234);
    snprintf(p, sizeof p, "%s/restored-snapshot.tar.gz", data);
    assert_true(exists(p));
    snprintf(p, sizeof p, "%s/.restore-tmp", data);
    assert_false(exists(p));
    ldg_backup_manifest_free(&got);
    /* Detected again as restored (state/ + backup.json). */
    assert_int_equal(ldg_backup_restore_prepare(data, &got, NULL), 1);
    ldg_backup_manifest_free(&got);

    /* Damage the state: refused. */
    snprintf(p, sizeof p, "%s/state/data.mdb", data);
    write_file(p, "pretend-lmdX", 12);
    assert_int_equal(ldg_backup_restore_prepare(data, &got, &err), LDG_ECORRUPT);
    assert_non_null(strstr(err.msg, "backup verification failed"));

    /* An archive next to other data is not "only an archive": left alone. */
    char data2[512];
    path_in(data2, sizeof data2, "data2");
    assert_int_equal(mkdir(data2, 0700), 0);
    snprintf(p, sizeof p, "%s/snapshot.tar.gz", data2);
    assert_int_equal(ldg_backup_archive_write(p, src, NULL), 0);
    snprintf(p, sizeof p, "%s/cluster_id", data2);
    write_file(p, "x\n", 2);
    assert_int_equal(ldg_backup_restore_prepare(data2, &got, NULL), 0);
    snprintf(p, sizeof p, "%s/state", data2);
    assert_false(exists(p));
    ldg_backup_manifest_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_manifest_round_trip),
        cmocka_unit_test(test_manifest_rejects),
        cmocka_unit_test(test_member_ok),
        cmocka_unit_test_setup_teardown(test_extract_refuses_unsafe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore_prepare, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
