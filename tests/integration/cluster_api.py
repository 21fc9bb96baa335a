"""Direct grpcio access to ledger.v1 for the cluster tests (concurrent writers
with deadlines; grpcurl subprocesses are too slow for load). Message classes
come from the descriptor set the build embeds (build/gen/descriptors.pb)."""

import os

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

import conftest

DESCRIPTORS = os.path.join(os.path.dirname(conftest.LEDGER_BIN), "gen", "descriptors.pb")
_pool = None
_factory = None


def msg(name):
    global _pool, _factory
    if _pool is None:
        with open(DESCRIPTORS, "rb") as f:
            fds = descriptor_pb2.FileDescriptorSet.FromString(f.read())
        _pool = descriptor_pool.DescriptorPool()
        for fd in fds.file:
            _pool.Add(fd)
        _factory = message_factory.MessageFactory(_pool)
    return _factory.GetPrototype(_pool.FindMessageTypeByName("ledger.v1." + name))


class Client:
    """One channel to one node."""

    def __init__(self, addr):
        self.addr = addr
        self.ch = grpc.insecure_channel(addr)

    def close(self):
        self.ch.close()

    def call(self, service, method, req_name, resp_name, timeout=5, **fields):
        req = msg(req_name)(**fields)
        stub = self.ch.unary_unary("/ledger.v1.%s/%s" % (service, method),
                                   request_serializer=lambda m: m.SerializeToString(),
                                   response_deserializer=msg(resp_name).FromString)
        return stub(req, timeout=timeout)

    def create_org(self, name, timeout=10):
        r = self.call("AdminService", "CreateOrganization", "CreateOrganizationRequest",
                      "CreateOrganizationResponse", timeout, name=name)
        return r.slug.id

    def create_vault(self, org, name, timeout=10):
        r = self.call("AdminService", "CreateVault", "CreateVaultRequest", "CreateVaultResponse",
                      timeout, organization_slug=msg("OrganizationSlug")(id=org), name=name)
        return r.vault.slug

    def write(self, org, vault, key, value, client="w", idem=None, timeout=5):
        op = msg("Operation")(set_entity=msg("SetEntity")(key=key, value=value))
        fields = dict(organization_slug=msg("OrganizationSlug")(id=org),
                      vault=msg("VaultSlug")(slug=vault),
                      client_id=msg("ClientId")(id=client), operations=[op])
        if idem is not None:
            fields["idempotency_key"] = idem
        r = self.call("WriteService", "Write", "WriteRequest", "WriteResponse", timeout, **fields)
        if r.WhichOneof("result") != "success":
            raise AssertionError("write failed: %s" % r)
        return r.success

    def read(self, org, vault, key, linearizable=False, timeout=5):
        c = 2 if linearizable else 1
        r = self.call("ReadService", "Read", "ReadRequest", "ReadResponse", timeout,
                      organization_slug=msg("OrganizationSlug")(id=org),
                      vault=msg("VaultSlug")(slug=vault), key=key, consistency=c)
        return r.value if r.found else None

    def tip(self, org, vault, timeout=5):
        r = self.call("ReadService", "GetTip", "GetTipRequest", "GetTipResponse", timeout,
                      organization_slug=msg("OrganizationSlug")(id=org),
                      vault=msg("VaultSlug")(slug=vault))
        return (r.height, bytes(r.block_hash.value), bytes(r.state_root.value))


def write_api_available(addr):
    """False while WriteService/Write answers UNIMPLEMENTED (rpc not merged)."""
    c = Client(addr)
    try:
        c.write(1, 1, "probe", b"x", timeout=5)
    except grpc.RpcError as e:
        return e.code() != grpc.StatusCode.UNIMPLEMENTED
    except AssertionError:
        return True
    finally:
        c.close()
    return True
