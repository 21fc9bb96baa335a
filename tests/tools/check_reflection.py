#!/usr/bin/python3
"""Check by hand that server reflection answers real FileDescriptorProtos.

Runs the unit-test binary test_reflection with LDG_REFLECTION_DUMP_DIR so it
writes the ServerReflectionResponse bytes it got from the v1 handler for
file_by_filename of every embedded file (and a final list_services). Decodes
them with a wire parser that hard-codes the public reflection field numbers
(independent of our .proto), loads every FileDescriptorProto into a fresh
google.protobuf DescriptorPool, and looks up known symbols.

    /usr/bin/python3 tests/tools/check_reflection.py [build/test_reflection]
"""
import os
import subprocess
import sys
import tempfile

from google.protobuf import descriptor_pb2, descriptor_pool


def varint(buf, i):
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def fields(buf):
    """Yield (number, wire_type, value) of a serialized message."""
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            val, i = varint(buf, i)
        elif wt == 2:
            n, i = varint(buf, i)
            val, i = buf[i:i + n], i + n
        elif wt == 1:
            val, i = buf[i:i + 8], i + 8
        elif wt == 5:
            val, i = buf[i:i + 4], i + 4
        else:
            raise ValueError("unexpected wire type %d" % wt)
        yield num, wt, val


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "build/test_reflection"
    files = {}      # name -> FileDescriptorProto
    services = []
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, LDG_REFLECTION_DUMP_DIR=d)
        run = subprocess.run([binary], env=env, capture_output=True, text=True)
        if run.returncode != 0:
            sys.exit("%s failed:\n%s%s" % (binary, run.stdout, run.stderr))
        dumps = sorted(os.listdir(d))
        assert dumps, "no responses dumped"
        for name in dumps:
            with open(os.path.join(d, name), "rb") as f:
                resp = f.read()
            kinds = set()
            for num, wt, val in fields(resp):
                # ServerReflectionResponse: valid_host=1 original_request=2
                # file_descriptor_response=4 list_services_response=6 error=7
                kinds.add(num)
                if num == 4:
                    got = {}
                    for fnum, _, blob in fields(val):   # file_descriptor_proto=1
                        assert fnum == 1
                        fdp = descriptor_pb2.FileDescriptorProto.FromString(blob)
                        assert fdp.name not in got, "file sent twice: " + fdp.name
                        got[fdp.name] = fdp
                        files.setdefault(fdp.name, fdp)
                    # Each answer carries every transitive dependency.
                    for fdp in got.values():
                        for dep in fdp.dependency:
                            assert dep in got, "%s: %s lacks %s" % (name, fdp.name, dep)
                elif num == 6:
                    for snum, _, svc in fields(val):    # service=1
                        assert snum == 1
                        for nnum, _, nm in fields(svc):  # name=1
                            assert nnum == 1
                            services.append(nm.decode())
                elif num == 7:
                    raise AssertionError("error response in %s" % name)
            assert 1 in kinds and 2 in kinds, "valid_host/original_request missing"

    # Add to a fresh pool, dependencies first (the pool insists).
    pool = descriptor_pool.DescriptorPool()
    added = set()

    def add(n):
        if n in added:
            return
        for dep in files[n].dependency:
            add(dep)
        pool.Add(files[n])
        added.add(n)

    for n in files:
        add(n)

    health = pool.FindServiceByName("grpc.health.v1.Health")
    assert [m.name for m in health.methods] == ["Check", "Watch"]
    assert health.methods_by_name["Watch"].output_type.full_name == \
        "grpc.health.v1.HealthCheckResponse"
    for v in ("v1", "v1alpha"):
        svc = pool.FindServiceByName("grpc.reflection.%s.ServerReflection" % v)
        m = svc.methods_by_name["ServerReflectionInfo"]
        req = m.input_type
        assert req.oneofs_by_name["message_request"]
        numbers = {f.name: f.number for f in req.fields}
        assert numbers == {"host": 1, "file_by_filename": 3, "file_containing_symbol": 4,
                           "file_containing_extension": 5,
                           "all_extension_numbers_of_type": 6, "list_services": 7}, numbers
        resp = m.output_type
        numbers = {f.name: f.number for f in resp.fields}
        assert numbers == {"valid_host": 1, "original_request": 2,
                           "file_descriptor_response": 4,
                           "all_extension_numbers_response": 5,
                           "list_services_response": 6, "error_response": 7}, numbers
    pool.FindEnumTypeByName("grpc.health.v1.HealthCheckResponse.ServingStatus")
    if "ledger/v1/ledger.proto" in files:
        pool.FindFileByName("ledger/v1/ledger.proto")
    print("ok: %d files loaded into a DescriptorPool: %s" % (len(files), ", ".join(sorted(files))))
    print("list_services: %s" % ", ".join(services))


if __name__ == "__main__":
    main()
