"""Helpers for ledger.v1 integration tests.

- err(node, method, body): run a call expected to fail; returns (code, message)
  as grpcurl prints them ("NotFound", "organization 9 not found ...").
- messages(): ledger.v1 message classes built from the descriptor set the
  build embeds for reflection (build/gen/descriptors.pb), for grpcio calls
  that grpcurl cannot make (concurrent streaming, cancel).
- setup_vault(node): a fresh organization and vault; returns (org, vault).
"""

import base64
import os
import re

import conftest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

DESCRIPTORS = os.path.join(os.path.dirname(conftest.LEDGER_BIN), "gen", "descriptors.pb")


def err(node, method, body=None, stdin=None):
    if stdin is not None:
        r = node.grpcurl(method, data="@", input=stdin)
    else:
        r = node.grpcurl(method, data=body if body is not None else {})
    assert r.returncode != 0, "%s unexpectedly succeeded: %s" % (method, r.stdout)
    code = re.search(r"Code: (\w+)", r.stderr)
    msg = re.search(r"Message: (.*)", r.stderr)
    assert code, r.stderr
    return code.group(1), msg.group(1) if msg else ""


_classes = None


def messages():
    global _classes
    if _classes is None:
        with open(DESCRIPTORS, "rb") as f:
            fds = descriptor_pb2.FileDescriptorSet.FromString(f.read())
        pool = descriptor_pool.DescriptorPool()
        for fd in fds.file:
            pool.Add(fd)
        factory = message_factory.MessageFactory(pool)

        class M:
            def __getattr__(self, name):
                return factory.GetPrototype(pool.FindMessageTypeByName("ledger.v1." + name))

        _classes = M()
    return _classes


def b64(s):
    return base64.b64encode(s if isinstance(s, bytes) else s.encode()).decode()


def setup_vault(node, name="acme"):
    org = node.call("ledger.v1.AdminService/CreateOrganization", {"name": name})["slug"]["id"]
    vault = node.call("ledger.v1.AdminService/CreateVault",
                      {"organization_slug": {"id": org}, "name": "main"})["vault"]["slug"]
    return org, vault


def chain(org, vault=None):
    c = {"organization_slug": {"id": org}}
    if vault is not None:
        c["vault"] = {"slug": vault}
    return c


def write(node, org, vault, ops, client="app-1", idem=None, proof=False):
    body = dict(chain(org, vault), client_id={"id": client}, operations=ops)
    if idem is not None:
        body["idempotency_key"] = b64(idem)
    if proof:
        body["include_tx_proof"] = True
    return node.call("ledger.v1.WriteService/Write", body)


def set_op(key, value, **kw):
    op = {"key": key, "value": b64(value)}
    op.update(kw)
    return {"set_entity": op}
