/* Data directory: creation, exclusive lock, node identity, ephemeral dirs.
 *
 * Happy path: mkdir -p DATA; open DATA/LOCK; flock(LOCK_EX|LOCK_NB); write
 * our pid; read DATA/node_id or write a new one (tmp file, fsync, rename,
 * fsync DATA).
 * Failure modes: the lock is held (EWOULDBLOCK) -> LDG_ELOCKED naming the pid
 * found in LOCK; node_id unreadable or malformed -> LDG_ECORRUPT, never a
 * silent new identity. */
#include "node/datadir.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "util/mem.h"

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + 1 + strlen(name) + 1;
    char *p = ldg_malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int sys_err(struct ldg_err *err, int e, const char *what, const char *path)
{
    return ldg_err_set(err, ldg_err_from_errno(e), "%s %s: %s", what, path, strerror(e));
}

/* mkdir -p with mode 0700 for the directories we create. */
static int mkdirs(const char *path, struct ldg_err *err)
{
    char *p = ldg_strdup(path);
    int rv = 0;
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char saved = *s;
        *s = '\0';
        if (mkdir(p, 0700) != 0 && errno != EEXIST) {
            rv = sys_err(err, errno, "create directory", p);
            break;
        }
        *s = saved;
        if (saved == '\0')
            break;
    }
    if (rv == 0) {
        struct stat st;
        if (stat(path, &st) != 0)
            rv = sys_err(err, errno, "stat", path);
        else if (!S_ISDIR(st.st_mode))
            rv = ldg_err_set(err, LDG_EINVAL, "data directory %s: not a directory", path);
    }
    ldg_free(p);
    return rv;
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    int rv = (flag == FTW_DP) ? rmdir(p) : unlink(p);
    return rv != 0 && errno != ENOENT ? -1 : 0;
}

int ldg_rmtree(const char *path)
{
    if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return errno == ENOENT ? 0 : ldg_err_from_errno(errno);
    return 0;
}

/* Take DATA/LOCK and write our pid into it. */
static int lock_dir(struct ldg_datadir *dd, struct ldg_err *err)
{
    char *lock_path = join(dd->path, "LOCK");
    int rv = 0;
    int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        rv = sys_err(err, errno, "open lock file", lock_path);
        goto out;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        if (e != EWOULDBLOCK) {
            rv = sys_err(err, e, "lock", lock_path);
            goto err_opened;
        }
        char buf[32] = "";
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        buf[n > 0 ? n : 0] = '\0';
        long pid = strtol(buf, NULL, 10);
        if (pid > 0)
            rv = ldg_err_set(err, LDG_ELOCKED,
                             "data directory %s is in use by another process (pid %ld holds "
                             "%s); stop it first",
                             dd->path, pid, lock_path);
        else
            rv = ldg_err_set(err, LDG_ELOCKED,
                             "data directory %s is in use by another process (it holds %s)",
                             dd->path, lock_path);
        goto err_opened;
    }
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
        rv = sys_err(err, errno, "write lock file", lock_path);
        goto err_opened;
    }
    dd->lock_fd = fd;
    goto out;
err_opened:
    close(fd);
out:
    ldg_free(lock_path);
    return rv;
}

int ldg_datadir_read_node_id(const char *path, uint64_t *node_id, struct ldg_err *err)
{
    char *p = join(path, "node_id");
    int rv = 0;
    FILE *f = fopen(p, "r");
    if (f == NULL) {
        rv = errno == ENOENT ? ldg_err_set(err, LDG_ENOTFOUND, "%s: no node id yet", p)
                             : sys_err(err, errno, "open", p);
        goto out;
    }
    char buf[64];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    char *end = NULL;
    errno = 0;
    unsigned long long v = (buf[0] >= '1' && buf[0] <= '9') ? strtoull(buf, &end, 10) : 0;
    if (v == 0 || errno != 0 || end == NULL || *end != '\0') {
        rv = ldg_err_set(err, LDG_ECORRUPT,
                         "%s: not a node id (want a non-zero decimal 64-bit number); "
                         "refusing to invent a new identity",
                         p);
        goto out;
    }
    *node_id = v;
out:
    ldg_free(p);
    return rv;
}

/* Write a fresh random node id atomically. */
static int create_node_id(struct ldg_datadir *dd, struct ldg_err *err)
{
    uint64_t id = 0;
    while (id == 0)
        if (RAND_bytes((unsigned char *)&id, sizeof id) != 1)
            return ldg_err_set(err, LDG_EINTERNAL, "node id: no randomness from OpenSSL");
    char *tmp = join(dd->path, "node_id.tmp");
    char *dst = join(dd->path, "node_id");
    int rv = 0;
    char text[32];
    int len = snprintf(text, sizeof text, "%" PRIu64 "\n", id);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rv = sys_err(err, errno, "create", tmp);
        goto out;
    }
    if (write(fd, text, (size_t)len) != len || fsync(fd) != 0) {
        rv = sys_err(err, errno, "write", tmp);
        close(fd);
        unlink(tmp);
        goto out;
    }
    close(fd);
    if (rename(tmp, dst) != 0) {
        rv = sys_err(err, errno, "rename to", dst);
        unlink(tmp);
        goto out;
    }
    int dfd = open(dd->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    dd->node_id = id;
out:
    ldg_free(tmp);
    ldg_free(dst);
    return rv;
}

int ldg_datadir_open(struct ldg_datadir *dd, const char *path, struct ldg_err *err)
{
    int rv;
    memset(dd, 0, sizeof *dd);
    dd->lock_fd = -1;
    if (path == NULL) {
        const char *tmpdir = getenv("TMPDIR");
        if (tmpdir == NULL || tmpdir[0] == '\0')
            tmpdir = "/tmp";
        char *tmpl = join(tmpdir, "ledger-XXXXXX");
        if (mkdtemp(tmpl) == NULL) {
            rv = sys_err(err, errno, "create ephemeral data directory in", tmpdir);
            ldg_free(tmpl);
            return rv;
        }
        dd->path = tmpl;
        dd->ephemeral = true;
    } else {
        if (path[0] == '\0')
            return ldg_err_set(err, LDG_EINVAL, "data directory: empty path");
        dd->path = ldg_strdup(path);
        rv = mkdirs(path, err);
        if (rv != 0)
            goto err_path;
    }
    rv = lock_dir(dd, err);
    if (rv != 0)
        goto err_path;
    rv = ldg_datadir_read_node_id(dd->path, &dd->node_id, err);
    if (rv == LDG_ENOTFOUND)
        rv = create_node_id(dd, err);
    if (rv != 0)
        goto err_locked;
    return 0;
err_locked:
    close(dd->lock_fd);
    dd->lock_fd = -1;
err_path:
    if (dd->ephemeral)
        ldg_rmtree(dd->path);
    ldg_free(dd->path);
    dd->path = NULL;
    return rv;
}

void ldg_datadir_close(struct ldg_datadir *dd)
{
    if (dd->path == NULL)
        return; /* never opened, failed to open, or already closed */
    if (dd->ephemeral)
        ldg_rmtree(dd->path);
    if (dd->lock_fd >= 0)
        close(dd->lock_fd);
    dd->lock_fd = -1;
    ldg_free(dd->path);
    dd->path = NULL;
    dd->ephemeral = false;
}

int ldg_datadir_subdir(const struct ldg_datadir *dd, const char *name, bool create,
                       char **out, struct ldg_err *err)
{
    char *p = join(dd->path, name);
    if (create && mkdir(p, 0700) != 0 && errno != EEXIST) {
        int rv = sys_err(err, errno, "create directory", p);
        ldg_free(p);
        return rv;
    }
    *out = p;
    return 0;
}
