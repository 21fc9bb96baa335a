"""Tests of tests/tools/grpcurl itself, against an in-process Python gRPC
server (grpc_test_server.FakeServer); our own server is not needed."""

import json
import socket
import subprocess
import time

import pytest

from grpc_test_server import TOOL, FakeServer, load_tool_module

ECHO = "test.v1.EchoService/Echo"


def run(*argv, input=None, timeout=30):
    return subprocess.run([TOOL, *argv], input=input, capture_output=True, text=True, timeout=timeout)


def json_stream(text):
    """Parse concatenated JSON documents (grpcurl prints one per message)."""
    dec = json.JSONDecoder()
    out, i = [], 0
    text = text.strip()
    while i < len(text):
        obj, i = dec.raw_decode(text, i)
        out.append(obj)
        while i < len(text) and text[i].isspace():
            i += 1
    return out


@pytest.fixture(scope="module")
def server():
    s = FakeServer(reflection_versions=("v1alpha",))
    yield s
    s.stop()


# --- argument parsing (no server involved) ---------------------------------

def test_flag_after_address_is_too_many_arguments_and_contacts_nothing():
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    lsock.setblocking(False)
    addr = "127.0.0.1:%d" % lsock.getsockname()[1]
    try:
        r = run("-plaintext", addr, "-d", "{}", "svc.v1.Svc/Method")
        assert r.returncode == 2
        assert r.stderr.startswith("Too many arguments.\n")
        assert "Try 'grpcurl -help' for more details." in r.stderr
        assert r.stdout == ""
        with pytest.raises(BlockingIOError):
            lsock.accept()  # nobody connected
    finally:
        lsock.close()


def test_runbook_style_leave_cluster_command_is_rejected():
    r = run("-plaintext", "127.0.0.1:1", "-d", '{"node_id": {"id": "X"}}',
            "ledger.v1.AdminService/LeaveCluster")
    assert r.returncode == 2
    assert "Too many arguments." in r.stderr


def test_unknown_flag_exits_2():
    r = run("-bogus", "127.0.0.1:1", "list")
    assert r.returncode == 2
    assert r.stderr.startswith("flag provided but not defined: -bogus\n")


def test_flag_missing_value_exits_2():
    r = run("-plaintext", "-d")
    assert r.returncode == 2
    assert "flag needs an argument: -d" in r.stderr


def test_bad_float_value_exits_2():
    r = run("-max-time", "soon", "127.0.0.1:1", "list")
    assert r.returncode == 2
    assert 'invalid value "soon" for flag -max-time' in r.stderr


def test_too_few_arguments():
    for argv in (["-plaintext"], ["-plaintext", "127.0.0.1:1"]):
        r = run(*argv)
        assert r.returncode == 2
        assert r.stderr.startswith("Too few arguments.\n")


def test_help_exits_0():
    r = run("-help")
    assert r.returncode == 0
    assert "Usage:" in r.stderr and "-plaintext" in r.stderr


def test_unsupported_format_rejected():
    r = run("-format", "text", "127.0.0.1:1", "list")
    assert r.returncode == 2


def test_connection_refused_fails_fast():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    t0 = time.monotonic()
    r = run("-plaintext", "127.0.0.1:%d" % port, "list")
    assert r.returncode == 1
    assert r.stderr.startswith('Failed to dial target host "127.0.0.1:%d": ' % port)
    assert "connection refused" in r.stderr
    assert time.monotonic() - t0 < 8


def test_reflection_messages_wire_format():
    """The runtime-built reflection classes encode with the public field numbers."""
    tool = load_tool_module()
    for version in ("v1", "v1alpha"):
        c = tool.reflection_classes(version)
        Req = c["ServerReflectionRequest"]
        assert Req(host="h", list_services="*").SerializeToString() == b"\x0a\x01h\x3a\x01*"
        assert Req(file_by_filename="f").SerializeToString() == b"\x1a\x01f"
        assert Req(file_containing_symbol="s").SerializeToString() == b"\x22\x01s"
        ext = Req(file_containing_extension=c["ExtensionRequest"](containing_type="t", extension_number=5))
        assert ext.SerializeToString() == b"\x2a\x05\x0a\x01t\x10\x05"
        assert Req(all_extension_numbers_of_type="t").SerializeToString() == b"\x32\x01t"
        Resp = c["ServerReflectionResponse"]
        r = Resp.FromString(b"\x0a\x01h" b"\x32\x05\x0a\x03\x0a\x01a" b"\x12\x03\x3a\x01*")
        assert r.valid_host == "h"
        assert [s.name for s in r.list_services_response.service] == ["a"]
        assert r.original_request.list_services == "*"
        r = Resp.FromString(b"\x22\x03\x0a\x01x")
        assert list(r.file_descriptor_response.file_descriptor_proto) == [b"x"]
        r = Resp.FromString(b"\x3a\x05\x08\x05\x12\x01m")
        assert (r.error_response.error_code, r.error_response.error_message) == (5, "m")
        r = Resp.FromString(b"\x2a\x05\x0a\x01t\x10\x07")
        assert r.all_extension_numbers_response.base_type_name == "t"
        assert list(r.all_extension_numbers_response.extension_number) == [7]


# --- against the in-process server -----------------------------------------

def test_list_services_sorted(server):
    r = run("-plaintext", server.addr, "list")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "grpc.reflection.v1alpha.ServerReflection\ntest.v1.EchoService\n"


def test_list_methods(server):
    r = run("-plaintext", server.addr, "list", "test.v1.EchoService")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["test.v1.EchoService.Echo", "test.v1.EchoService.Fail",
                                     "test.v1.EchoService.Sleep", "test.v1.EchoService.Stream"]


def test_list_unknown_service_fails(server):
    r = run("-plaintext", server.addr, "list", "test.v1.Nope")
    assert r.returncode == 1
    assert r.stderr.startswith('Failed to list methods for service "test.v1.Nope": ')


def test_reflection_v1_is_preferred_and_v1alpha_is_fallback():
    only_v1 = FakeServer(reflection_versions=("v1",))
    both = FakeServer(reflection_versions=("v1", "v1alpha"))
    only_alpha = FakeServer(reflection_versions=("v1alpha",))
    try:
        for s in (only_v1, both, only_alpha):
            r = run("-plaintext", s.addr, "list", "test.v1.EchoService")
            assert r.returncode == 0, r.stderr
            assert "test.v1.EchoService.Echo" in r.stdout.splitlines()
        assert {v for v, _ in only_v1.reflection_requests} == {"v1"}
        assert {v for v, _ in both.reflection_requests} == {"v1"}
        assert {v for v, _ in only_alpha.reflection_requests} == {"v1alpha"}
    finally:
        for s in (only_v1, both, only_alpha):
            s.stop()


def test_describe_service(server):
    r = run("-plaintext", server.addr, "describe", "test.v1.EchoService")
    assert r.returncode == 0, r.stderr
    assert r.stdout == (
        "test.v1.EchoService is a service:\n"
        "service EchoService {\n"
        "  rpc Echo ( .test.v1.EchoRequest ) returns ( .test.v1.EchoResponse );\n"
        "  rpc Fail ( .test.v1.FailRequest ) returns ( .test.v1.Empty );\n"
        "  rpc Sleep ( .test.v1.SleepRequest ) returns ( .test.v1.Empty );\n"
        "  rpc Stream ( .test.v1.StreamRequest ) returns ( stream .test.v1.StreamItem );\n"
        "}\n")


def test_describe_message(server):
    r = run("-plaintext", server.addr, "describe", ".test.v1.EchoRequest")
    assert r.returncode == 0, r.stderr
    assert r.stdout == (
        "test.v1.EchoRequest is a message:\n"
        "message EchoRequest {\n"
        "  string message = 1;\n"
        "  .test.v1.Slug slug = 2;\n"
        "  uint64 big = 3;\n"
        "  repeated string tags = 4;\n"
        "  map<string, int32> counts = 5;\n"
        "  .test.v1.Color color = 6;\n"
        "  bool flag = 7;\n"
        "  optional uint64 height = 8;\n"
        "  bytes data = 9;\n"
        "  int32 small_number = 10;\n"
        "  double ratio = 11;\n"
        "  oneof choice {\n"
        "    string name = 12;\n"
        "    int64 number = 13;\n"
        "  }\n"
        "}\n")


def test_describe_enum_method_and_unknown(server):
    r = run("-plaintext", server.addr, "describe", "test.v1.Color")
    assert r.stdout == ("test.v1.Color is an enum:\nenum Color {\n  COLOR_UNSPECIFIED = 0;\n"
                        "  RED = 1;\n  GREEN = 2;\n}\n")
    r = run("-plaintext", server.addr, "describe", "test.v1.EchoService.Stream")
    assert r.stdout == ("test.v1.EchoService.Stream is a method:\nrpc Stream ( .test.v1.StreamRequest )"
                        " returns ( stream .test.v1.StreamItem );\n")
    r = run("-plaintext", server.addr, "describe", "test.v1.Nope")
    assert r.returncode == 1
    assert r.stderr == 'Failed to resolve symbol "test.v1.Nope": Symbol not found: test.v1.Nope\n'


def test_unary_call_json_roundtrip(server):
    body = {"message": "hi <&>", "slug": {"id": "7"}, "big": 18446744073709551615,
            "tags": ["a", "b"], "counts": {"z": 1, "a": 2}, "color": "RED", "flag": True,
            "data": "AAE=", "small_number": 5, "ratio": 0.1, "number": "-5"}
    r = run("-plaintext", "-d", json.dumps(body), server.addr, ECHO)
    assert r.returncode == 0, r.stderr
    assert r.stdout == (
        '{\n'
        '  "request": {\n'
        '    "message": "hi \\u003c\\u0026\\u003e",\n'
        '    "slug": {\n'
        '      "id": "7"\n'
        '    },\n'
        '    "big": "18446744073709551615",\n'
        '    "tags": [\n'
        '      "a",\n'
        '      "b"\n'
        '    ],\n'
        '    "counts": {\n'
        '      "a": 2,\n'
        '      "z": 1\n'
        '    },\n'
        '    "color": "RED",\n'
        '    "flag": true,\n'
        '    "data": "AAE=",\n'
        '    "smallNumber": 5,\n'
        '    "ratio": 0.1,\n'
        '    "number": "-5"\n'
        '  }\n'
        '}\n')


def test_request_accepts_json_names_and_proto_names(server):
    for key in ("small_number", "smallNumber"):
        r = run("-plaintext", "-d", '{"%s": 42}' % key, server.addr, ECHO)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["request"]["smallNumber"] == 42


def test_dotted_method_name_and_empty_request(server):
    r = run("-plaintext", server.addr, "test.v1.EchoService.Echo")
    assert r.returncode == 0, r.stderr
    assert r.stdout == '{\n  "request": {}\n}\n'


def test_data_from_stdin(server):
    r = run("-plaintext", "-d", "@", server.addr, ECHO, input='{"message": "from stdin"}\n')
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["request"]["message"] == "from stdin"


def test_go_flag_syntax_variants(server):
    r = run("--plaintext", "-max-time=20", "--d={\"message\": \"eq\"}", server.addr, ECHO)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["request"]["message"] == "eq"


def test_proto3_optional_zero_is_printed(server):
    r = run("-plaintext", "-d", '{"height": "0"}', server.addr, ECHO)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"request": {"height": "0"}}


def test_emit_defaults(server):
    r = run("-plaintext", server.addr, ECHO)
    assert json.loads(r.stdout) == {"request": {}}
    r = run("-plaintext", "-emit-defaults", server.addr, ECHO)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got == {"request": {"message": "", "slug": None, "big": "0", "tags": [], "counts": {},
                               "color": "COLOR_UNSPECIFIED", "flag": False, "data": "",
                               "smallNumber": 0, "ratio": 0},
                   "metadata": {}}
    # unset proto3 optional and oneof members stay absent
    assert "height" not in got["request"] and "name" not in got["request"]


def test_uint64_printed_as_string(server):
    r = run("-plaintext", "-d", '{"big": "18446744073709551615"}', server.addr, ECHO)
    assert r.returncode == 0, r.stderr
    assert '"big": "18446744073709551615"' in r.stdout


def test_server_streaming(server):
    r = run("-plaintext", "-d", '{"count": 3}', server.addr, "test.v1.EchoService/Stream")
    assert r.returncode == 0, r.stderr
    assert json_stream(r.stdout) == [{"value": "9223372036854775808"},
                                     {"index": 1, "value": "9223372036854775809"},
                                     {"index": 2, "value": "9223372036854775810"}]
    assert r.stdout.startswith('{\n  "value": "9223372036854775808"\n}\n{\n')


@pytest.mark.parametrize("code,name", [(5, "NotFound"), (3, "InvalidArgument"), (14, "Unavailable")])
def test_error_status_exit_code(server, code, name):
    r = run("-plaintext", "-d", json.dumps({"code": code, "message": "it failed"}), server.addr,
            "test.v1.EchoService/Fail")
    assert r.returncode == 64 + code
    assert r.stderr == "ERROR:\n  Code: %s\n  Message: it failed\n" % name
    assert r.stdout == ""


def test_headers_reach_server(server):
    r = run("-plaintext", "-H", "X-Test: hello there", "-H", "x-other:2", server.addr, ECHO)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["metadata"] == {"x-test": "hello there", "x-other": "2"}
    assert server.calls[-1][1]["x-test"] == "hello there"


def test_max_time_deadline(server):
    t0 = time.monotonic()
    r = run("-plaintext", "-max-time", "0.5", "-d", '{"seconds": 20}', server.addr,
            "test.v1.EchoService/Sleep")
    elapsed = time.monotonic() - t0
    assert r.returncode == 64 + 4
    assert r.stderr.startswith("ERROR:\n  Code: DeadlineExceeded\n")
    assert elapsed < 10


def test_bad_json_is_error_invoking_method(server):
    r = run("-plaintext", "-d", "{bad", server.addr, ECHO)
    assert r.returncode == 1
    assert r.stderr.startswith('Error invoking method "%s": error getting request data: ' % ECHO)
    r = run("-plaintext", "-d", '{"no_such_field": 1}', server.addr, ECHO)
    assert r.returncode == 1
    r = run("-plaintext", "-allow-unknown-fields", "-d", '{"no_such_field": 1}', server.addr, ECHO)
    assert r.returncode == 0, r.stderr


def test_unknown_service_and_method(server):
    r = run("-plaintext", server.addr, "test.v1.Nope/Echo")
    assert r.returncode == 1
    assert r.stderr == ('Error invoking method "test.v1.Nope/Echo": rpc error: code = NotFound desc = '
                        'target server does not expose service "test.v1.Nope"\n')
    r = run("-plaintext", server.addr, "test.v1.EchoService/Nope")
    assert r.returncode == 1
    assert 'does not include a method named "Nope"' in r.stderr
