"""Backups (SPEC §7, §3.2, §3.4; docs/backups.md): CreateBackup while writes continue,
the archive layout, ListBackups/RestoreBackup answers, and the runbook's restore paths:
`tar -xzf snapshot.tar.gz -C DIR` + `--single --data DIR` (Full Cluster Restore) and a data
dir holding only snapshot.tar.gz + CLUSTER=3 (Regional Failover) that a fresh --join node
joins."""

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import threading
import time

import grpc
import pytest

from cluster_api import Client, msg

ENV = "INFERADB__LEDGER__"


def org_slug(o):
    return msg("OrganizationSlug")(id=o)


def vault_slug(v):
    return msg("VaultSlug")(slug=v)


def create_backup(client, tag="", timeout=60):
    return client.call("AdminService", "CreateBackup", "CreateBackupRequest", "BackupInfo",
                       timeout, tag=tag)


def get_block(client, org, vault, height):
    r = client.call("ReadService", "GetBlock", "GetBlockRequest", "GetBlockResponse", 10,
                    organization_slug=org_slug(org), vault=vault_slug(vault), height=height)
    return r.block.SerializeToString()


def cluster_id(client):
    r = client.call("AdminService", "GetClusterInfo", "GetClusterInfoRequest",
                    "GetClusterInfoResponse", 10)
    return r.cluster_id


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def manifest_of(archive):
    with tarfile.open(archive, "r:gz") as t:
        names = t.getnames()
        m = json.load(t.extractfile("backup.json"))
    return names, m


def populate(client):
    """Two organizations, three vaults, keys in each; returns {(org, vault): {key: value}}."""
    data = {}
    for oname, vnames in (("acme", ("docs", "users")), ("globex", ("main",))):
        org = client.create_org(oname)
        for vname in vnames:
            vault = client.create_vault(org, vname)
            kv = {}
            for i in range(6):
                key = "%s/%s/k%d" % (oname, vname, i)
                value = ("v%d-%s" % (i, vname)).encode()
                client.write(org, vault, key, value, client="setup")
                kv[key] = value
            data[(org, vault)] = kv
    return data


class Writer(threading.Thread):
    """Keeps writing w0, w1, ... to one vault until stopped."""

    def __init__(self, addr, org, vault):
        super().__init__(daemon=True)
        self.client = Client(addr)
        self.org, self.vault = org, vault
        self.done = threading.Event()
        self.acked = 0
        self.error = None

    def run(self):
        try:
            while not self.done.is_set():
                self.client.write(self.org, self.vault, "w%d" % self.acked, b"x",
                                  client="bg-writer")
                self.acked += 1
        except Exception as e:  # surfaced by the test
            self.error = e
        finally:
            self.client.close()

    def stop(self):
        self.done.set()
        self.join(30)


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
            if last:
                return last
        except grpc.RpcError as e:
            last = e
        time.sleep(0.1)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


def test_backup_while_writing_then_full_cluster_restore(ledger_factory, tmp_path):
    src = ledger_factory("src")
    c = Client(src.addr)
    data = populate(c)
    (worg, wvault) = next(iter(data))
    src_cluster = cluster_id(c)

    writer = Writer(src.addr, worg, wvault)
    writer.start()
    wait_for(lambda: writer.acked >= 20 or writer.error, 30, "background writes")
    info = create_backup(c, tag="nightly")
    acked_after = None
    wait_for(lambda: writer.acked >= 20 + 10 or writer.error, 30, "writes after the backup")
    writer.stop()
    assert writer.error is None, writer.error
    acked_after = writer.acked

    # Archive at BACKUP_DIR/<id>/snapshot.tar.gz and latest/, checksum as sha256sum prints.
    bdir = os.path.join(src.data_dir, "backups")
    archive = os.path.join(bdir, info.backup_id, "snapshot.tar.gz")
    latest = os.path.join(bdir, "latest", "snapshot.tar.gz")
    assert info.backup_path == archive
    assert os.path.isfile(archive) and os.path.isfile(latest)
    assert sha256_file(archive) == info.checksum == sha256_file(latest)
    assert info.size_bytes == os.path.getsize(archive)
    assert info.tag == "nightly" and info.cluster_id == src_cluster

    names, m = manifest_of(archive)
    assert sorted(n.rstrip("/") for n in names) == ["backup.json", "state", "state/data.mdb"]
    assert m["backup_id"] == info.backup_id and m["source_cluster_id"] == src_cluster
    assert m["applied"]["index"] == info.applied_index > 0
    assert m["tag"] == "nightly" and m["files"][0]["path"] == "state/data.mdb"
    vaults = {(v["organization"], v["vault"]): v for v in m["vaults"]}
    for key in data:
        assert key in vaults, "vault %s missing from backup.json" % (key,)

    # The backup was taken while the writer ran: it holds a prefix of its writes.
    wv = vaults[(worg, wvault)]
    assert wv["height"] > 6

    # ListBackups / RestoreBackup answers.
    lb = c.call("AdminService", "ListBackups", "ListBackupsRequest", "ListBackupsResponse", 10)
    assert [b.backup_id for b in lb.backups] == [info.backup_id]
    assert lb.backups[0].checksum == info.checksum
    with pytest.raises(grpc.RpcError) as ei:
        c.call("AdminService", "RestoreBackup", "RestoreBackupRequest",
               "RestoreBackupResponse", 10, backup_id=info.backup_id)
    assert ei.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as ei:
        c.call("AdminService", "RestoreBackup", "RestoreBackupRequest",
               "RestoreBackupResponse", 10, backup_id="no-such-backup", confirm=True)
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND

    # Runbook "Full Cluster Restore": tar -xzf snapshot.tar.gz -C DIR; --single --data DIR.
    dst = ledger_factory("restored", start=False)
    os.makedirs(dst.data_dir)
    subprocess.run(["tar", "-xzf", latest, "-C", dst.data_dir], check=True)
    dst.start()
    assert "restored from backup %s" % info.backup_id in dst.log_text()
    d = Client(dst.addr)
    new_cluster = cluster_id(d)
    assert new_cluster and new_cluster != src_cluster

    for (org, vault), v in vaults.items():
        if vault == 0:
            continue
        h, tip_hash, root = d.tip(org, vault)
        assert (h, tip_hash.hex(), root.hex()) == (v["height"], v["tip_hash"], v["state_root"])
        for height in range(0, v["height"] + 1):  # every block, byte for byte
            assert get_block(d, org, vault, height) == get_block(c, org, vault, height)
        chk = d.call("AdminService", "CheckIntegrity", "CheckIntegrityRequest",
                     "CheckIntegrityResponse", 60, organization_slug=org_slug(org),
                     vault=vault_slug(vault), full_check=True)
        assert chk.healthy and not chk.issues, chk
        assert chk.blocks_checked >= v["height"]
    for (org, vault), kv in data.items():
        for key, value in kv.items():
            assert d.read(org, vault, key) == value
    present = [d.read(worg, wvault, "w%d" % i) is not None for i in range(acked_after)]
    n = sum(present)
    assert present == [True] * n + [False] * (acked_after - n), "not a prefix"
    assert 20 <= n < acked_after

    # New writes work on the restored cluster.
    ok = d.write(worg, wvault, "after-restore", b"yes")
    assert ok.block_height == wv["height"] + 1
    assert d.read(worg, wvault, "after-restore") == b"yes"
    metrics = src.metrics()
    assert 'ledger_backups_total{result="ok"} 1' in metrics
    assert "ledger_last_backup_timestamp_seconds" in metrics
    c.close()
    d.close()

    # A restart of the restored node is an ordinary restart (same cluster id).
    dst.restart()
    d = Client(dst.addr)
    assert cluster_id(d) == new_cluster
    assert d.read(worg, wvault, "after-restore") == b"yes"
    d.close()


def test_regional_failover_lone_archive_cluster3_then_join(ledger_factory):
    src = ledger_factory("src")
    c = Client(src.addr)
    data = populate(c)
    info = create_backup(c)
    src_tips = {k: c.tip(*k) for k in data}
    c.close()
    latest = os.path.join(src.data_dir, "backups", "latest", "snapshot.tar.gz")

    # `aws s3 sync .../latest/ ./data/` yields a data dir holding only snapshot.tar.gz.
    r1 = ledger_factory("r1", start=False, mode_args=(), env={ENV + "CLUSTER": "3"})
    os.makedirs(r1.data_dir)
    shutil.copy(latest, os.path.join(r1.data_dir, "snapshot.tar.gz"))
    r1.start()
    assert "restored from backup %s" % info.backup_id in r1.log_text()
    assert os.path.isfile(os.path.join(r1.data_dir, "backup.json"))
    assert os.path.isdir(os.path.join(r1.data_dir, "raft"))
    a = Client(r1.addr)
    for k, tip in src_tips.items():
        assert a.tip(*k) == tip
    (org, vault) = next(iter(data))
    a.write(org, vault, "failover", b"1")  # writable as the sole voter

    # A fresh node joins it and ends with the same tips (state by snapshot install).
    r2 = ledger_factory("r2", start=False, mode_args=("--join",),
                        env={ENV + "PEERS": r1.addr})
    r2.start()
    b = Client(r2.addr)
    final = {k: a.tip(*k) for k in data}

    def same():
        return all(b.tip(*k) == t for k, t in final.items())

    wait_for(same, 30, "the joiner to reach the restored tips")
    for (o, v), kv in data.items():
        for key, value in kv.items():
            assert b.read(o, v, key) == value
    assert b.read(org, vault, "failover") == b"1"
    assert cluster_id(b) == cluster_id(a) != info.cluster_id
    a.close()
    b.close()


def _repack(src_archive, dst_archive, mutate):
    """Copy a tar.gz member by member, letting mutate(name, data) change data."""
    with tarfile.open(src_archive, "r:gz") as t, tarfile.open(dst_archive, "w:gz") as out:
        for m in t.getmembers():
            if m.isfile():
                blob = mutate(m.name, t.extractfile(m).read())
                m.size = len(blob)
                out.addfile(m, io.BytesIO(blob))
            else:
                out.addfile(m)


def _start_expect_failure(node, timeout=20):
    node.start(wait=False)
    try:
        rc = node.proc.wait(timeout)
    finally:
        if node.proc.poll() is None:
            node.proc.kill()
    node._finish()
    return rc


def test_damaged_or_unsafe_archive_refused(ledger_factory, tmp_path):
    src = ledger_factory("src")
    c = Client(src.addr)
    populate(c)
    create_backup(c)
    c.close()
    latest = os.path.join(src.data_dir, "backups", "latest", "snapshot.tar.gz")

    def flip(name, blob):
        if name == "state/data.mdb":
            blob = bytearray(blob)
            blob[len(blob) // 2] ^= 0xFF
            return bytes(blob)
        return blob

    bad = ledger_factory("bad", start=False)
    os.makedirs(bad.data_dir)
    _repack(latest, os.path.join(bad.data_dir, "snapshot.tar.gz"), flip)
    assert _start_expect_failure(bad) != 0
    assert "backup verification failed" in bad.log_text()
    assert not os.path.exists(os.path.join(bad.data_dir, "raft", "metadata1"))

    evil = ledger_factory("evil", start=False)
    os.makedirs(evil.data_dir)
    path = os.path.join(evil.data_dir, "snapshot.tar.gz")
    with tarfile.open(path, "w:gz") as out:
        blob = b"pwned"
        ti = tarfile.TarInfo("../escaped.txt")
        ti.size = len(blob)
        out.addfile(ti, io.BytesIO(blob))
    assert _start_expect_failure(evil) != 0
    assert "refusing member" in evil.log_text()
    assert not os.path.exists(os.path.join(os.path.dirname(evil.data_dir), "escaped.txt"))


def test_periodic_backups_keep_newest(ledger_factory):
    node = ledger_factory("p", env={ENV + "BACKUP_INTERVAL": "0.2", ENV + "BACKUP_KEEP": "2"})
    c = Client(node.addr)
    org = c.create_org("acme")
    vault = c.create_vault(org, "v")
    c.write(org, vault, "k", b"v")
    manual = create_backup(c, tag="manual")
    bdir = os.path.join(node.data_dir, "backups")

    def periodic_count():
        return int(node.metrics().split('ledger_backups_total{result="ok"} ')[1].split()[0]) >= 5

    wait_for(periodic_count, 30, "five successful backups")
    lb = c.call("AdminService", "ListBackups", "ListBackupsRequest", "ListBackupsResponse", 10)
    tags = [b.tag for b in lb.backups]
    assert tags.count("periodic") == 2  # BACKUP_KEEP=2 (pruned right after each success)
    assert manual.backup_id in [b.backup_id for b in lb.backups]  # manual ones never pruned
    ids = [b.backup_id for b in lb.backups]
    assert ids == sorted(ids, reverse=True)
    # Pagination: one per page, each page older than the token.
    p1 = c.call("AdminService", "ListBackups", "ListBackupsRequest", "ListBackupsResponse", 10,
                limit=1)
    assert len(p1.backups) == 1 and p1.next_page_token == p1.backups[0].backup_id
    p2 = c.call("AdminService", "ListBackups", "ListBackupsRequest", "ListBackupsResponse", 10,
                limit=1, page_token=p1.next_page_token)
    assert len(p2.backups) == 1 and p2.backups[0].backup_id < p1.backups[0].backup_id
    on_disk = [d for d in os.listdir(bdir) if not d.startswith(".") and d != "latest"]
    assert len(on_disk) == 3, on_disk
    c.close()


def test_stop_during_backup_is_clean(ledger_factory):
    """SIGTERM right after CreateBackup was accepted: the node waits for the copy (the
    store stays open until the job ends) and exits 0; the data dir restarts fine."""
    node = ledger_factory("s")
    c = Client(node.addr)
    org = c.create_org("acme")
    vault = c.create_vault(org, "v")
    for i in range(50):
        c.write(org, vault, "k%d" % i, b"x" * 1000)
    req = msg("CreateBackupRequest")(tag="t")
    stub = c.ch.unary_unary("/ledger.v1.AdminService/CreateBackup",
                            request_serializer=lambda m: m.SerializeToString(),
                            response_deserializer=msg("BackupInfo").FromString)
    fut = stub.future(req, timeout=30)
    wait_for(lambda: "backup " in node.log_text() and " started " in node.log_text(), 10,
             "the backup to start")
    assert node.stop() == 0
    try:
        fut.result()
    except grpc.RpcError:
        pass  # the stop may end the call first; the exit status is what matters
    c.close()
    node.start()
    c = Client(node.addr)
    assert c.read(org, vault, "k49") == b"x" * 1000
    c.close()
