"""A small in-process gRPC server with server reflection, used to test
tests/tools/grpcurl without our own server.

The schema is built at runtime (two files, the service file importing the
common one, so a client must fetch dependencies by file name).  Reflection
answers file_containing_symbol with the containing file only.
"""

import importlib.machinery
import importlib.util
import os
import threading
from concurrent import futures

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

TOOL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools", "grpcurl")

_F = descriptor_pb2.FieldDescriptorProto
OPT, REP = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED


def load_tool_module():
    """Import tests/tools/grpcurl (a script without .py) as a module."""
    loader = importlib.machinery.SourceFileLoader("grpcurl_tool", TOOL)
    spec = importlib.util.spec_from_loader("grpcurl_tool", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def _field(m, name, number, ftype, label=OPT, type_name=None, oneof=None, proto3_optional=False,
           json_name=True):
    f = m.field.add()
    f.name = name
    f.number = number
    f.type = ftype
    f.label = label
    if type_name:
        f.type_name = type_name
    if oneof is not None:
        f.oneof_index = oneof
    if proto3_optional:
        f.proto3_optional = True
    if json_name:
        parts = name.split("_")
        f.json_name = parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])
    return f


def build_files():
    common = descriptor_pb2.FileDescriptorProto(name="test/v1/common.proto", package="test.v1",
                                                syntax="proto3")
    slug = common.message_type.add(name="Slug")
    _field(slug, "id", 1, _F.TYPE_UINT64)
    color = common.enum_type.add(name="Color")
    for i, n in enumerate(["COLOR_UNSPECIFIED", "RED", "GREEN"]):
        color.value.add(name=n, number=i)

    echo = descriptor_pb2.FileDescriptorProto(name="test/v1/echo.proto", package="test.v1",
                                              syntax="proto3", dependency=["test/v1/common.proto"])
    req = echo.message_type.add(name="EchoRequest")
    _field(req, "message", 1, _F.TYPE_STRING)
    _field(req, "slug", 2, _F.TYPE_MESSAGE, type_name=".test.v1.Slug")
    _field(req, "big", 3, _F.TYPE_UINT64)
    _field(req, "tags", 4, _F.TYPE_STRING, REP)
    _field(req, "counts", 5, _F.TYPE_MESSAGE, REP, ".test.v1.EchoRequest.CountsEntry")
    _field(req, "color", 6, _F.TYPE_ENUM, type_name=".test.v1.Color")
    _field(req, "flag", 7, _F.TYPE_BOOL)
    _field(req, "height", 8, _F.TYPE_UINT64, oneof=1, proto3_optional=True)
    _field(req, "data", 9, _F.TYPE_BYTES)
    # no json_name in the descriptor: the client must derive "smallNumber"
    _field(req, "small_number", 10, _F.TYPE_INT32, json_name=False)
    _field(req, "ratio", 11, _F.TYPE_DOUBLE)
    _field(req, "name", 12, _F.TYPE_STRING, oneof=0)
    _field(req, "number", 13, _F.TYPE_INT64, oneof=0)
    req.oneof_decl.add(name="choice")
    req.oneof_decl.add(name="_height")
    entry = req.nested_type.add(name="CountsEntry")
    entry.options.map_entry = True
    _field(entry, "key", 1, _F.TYPE_STRING)
    _field(entry, "value", 2, _F.TYPE_INT32)

    resp = echo.message_type.add(name="EchoResponse")
    _field(resp, "request", 1, _F.TYPE_MESSAGE, type_name=".test.v1.EchoRequest")
    _field(resp, "metadata", 2, _F.TYPE_MESSAGE, REP, ".test.v1.EchoResponse.MetadataEntry")
    entry = resp.nested_type.add(name="MetadataEntry")
    entry.options.map_entry = True
    _field(entry, "key", 1, _F.TYPE_STRING)
    _field(entry, "value", 2, _F.TYPE_STRING)

    sreq = echo.message_type.add(name="StreamRequest")
    _field(sreq, "count", 1, _F.TYPE_INT32)
    item = echo.message_type.add(name="StreamItem")
    _field(item, "index", 1, _F.TYPE_INT32)
    _field(item, "value", 2, _F.TYPE_UINT64)
    freq = echo.message_type.add(name="FailRequest")
    _field(freq, "code", 1, _F.TYPE_INT32)
    _field(freq, "message", 2, _F.TYPE_STRING)
    slp = echo.message_type.add(name="SleepRequest")
    _field(slp, "seconds", 1, _F.TYPE_DOUBLE)
    echo.message_type.add(name="Empty")

    svc = echo.service.add(name="EchoService")
    for name, i, o, ss in [("Echo", "EchoRequest", "EchoResponse", False),
                           ("Stream", "StreamRequest", "StreamItem", True),
                           ("Fail", "FailRequest", "Empty", False),
                           ("Sleep", "SleepRequest", "Empty", False)]:
        m = svc.method.add(name=name, input_type=".test.v1." + i, output_type=".test.v1." + o)
        if ss:
            m.server_streaming = True
    return [common, echo]


def _symbols(fdp):
    """Map every fully-qualified symbol in a file to the file name."""
    out = {}
    pkg = fdp.package

    def msg(m, scope):
        full = scope + "." + m.name
        out[full] = fdp.name
        for f in m.field:
            out[full + "." + f.name] = fdp.name
        for n in m.nested_type:
            msg(n, full)
        for e in m.enum_type:
            out[full + "." + e.name] = fdp.name

    for m in fdp.message_type:
        msg(m, pkg)
    for e in fdp.enum_type:
        out[pkg + "." + e.name] = fdp.name
        for v in e.value:
            out[pkg + "." + v.name] = fdp.name
    for s in fdp.service:
        out[pkg + "." + s.name] = fdp.name
        for m in s.method:
            out[pkg + "." + s.name + "." + m.name] = fdp.name
    return out


class FakeServer:
    """Echo service + reflection on 127.0.0.1:<free port>.

    reflection_versions: which of "v1", "v1alpha" to serve.
    calls: list of (method, metadata dict) seen by the Echo service.
    reflection_requests: list of (version, request kind) seen.
    """

    def __init__(self, reflection_versions=("v1alpha",)):
        self.tool = load_tool_module()
        self.files = build_files()
        self.by_name = {f.name: f for f in self.files}
        self.symbols = {}
        for f in self.files:
            self.symbols.update(_symbols(f))
        pool = descriptor_pool.DescriptorPool()
        for f in self.files:
            pool.Add(f)
        factory = message_factory.MessageFactory(pool)
        self.cls = {}
        for n in ["EchoRequest", "EchoResponse", "StreamRequest", "StreamItem", "FailRequest",
                  "SleepRequest", "Empty"]:
            self.cls[n] = factory.GetPrototype(pool.FindMessageTypeByName("test.v1." + n))
        self.calls = []
        self.reflection_requests = []
        self.lock = threading.Lock()
        self.versions = list(reflection_versions)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        self.server.add_generic_rpc_handlers(self._handlers())
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.addr = "127.0.0.1:%d" % self.port
        self.server.start()

    def stop(self):
        self.server.stop(grace=None).wait(5)

    # --- echo service -----------------------------------------------------
    def _record(self, method, context):
        md = {k: v for k, v in context.invocation_metadata()}
        with self.lock:
            self.calls.append((method, md))
        return md

    def echo(self, req, context):
        md = self._record("Echo", context)
        resp = self.cls["EchoResponse"]()
        resp.request.CopyFrom(req)
        for k, v in md.items():
            if isinstance(v, str) and k.startswith("x-"):
                resp.metadata[k] = v
        return resp

    def stream(self, req, context):
        self._record("Stream", context)
        for i in range(req.count):
            yield self.cls["StreamItem"](index=i, value=(1 << 63) + i)

    def fail(self, req, context):
        self._record("Fail", context)
        code = {c.value[0]: c for c in grpc.StatusCode}[req.code]
        context.abort(code, req.message)

    def sleep(self, req, context):
        self._record("Sleep", context)
        done = threading.Event()
        context.add_callback(done.set)
        done.wait(req.seconds)
        return self.cls["Empty"]()

    # --- reflection -------------------------------------------------------
    def _reflection(self, version):
        classes = self.tool.reflection_classes(version)
        Resp = classes["ServerReflectionResponse"]

        def handler(request_iterator, context):
            for req in request_iterator:
                kind = req.WhichOneof("message_request")
                with self.lock:
                    self.reflection_requests.append((version, kind))
                resp = Resp(valid_host=req.host)
                resp.original_request.CopyFrom(req)
                if kind == "list_services":
                    for name in ["test.v1.EchoService",
                                 "grpc.reflection.%s.ServerReflection" % version]:
                        resp.list_services_response.service.add(name=name)
                elif kind in ("file_containing_symbol", "file_by_filename"):
                    key = getattr(req, kind)
                    fname = self.symbols.get(key) if kind == "file_containing_symbol" else key
                    if fname in self.by_name:
                        resp.file_descriptor_response.file_descriptor_proto.append(
                            self.by_name[fname].SerializeToString())
                    else:
                        resp.error_response.error_code = grpc.StatusCode.NOT_FOUND.value[0]
                        resp.error_response.error_message = "not found: " + key
                else:
                    resp.error_response.error_code = grpc.StatusCode.UNIMPLEMENTED.value[0]
                    resp.error_response.error_message = "unsupported"
                yield resp

        return grpc.stream_stream_rpc_method_handler(
            handler, request_deserializer=classes["ServerReflectionRequest"].FromString,
            response_serializer=lambda m: m.SerializeToString())

    def _handlers(self):
        c = self.cls

        def ser(m):
            return m.SerializeToString()

        handlers = [grpc.method_handlers_generic_handler("test.v1.EchoService", {
            "Echo": grpc.unary_unary_rpc_method_handler(
                self.echo, request_deserializer=c["EchoRequest"].FromString, response_serializer=ser),
            "Stream": grpc.unary_stream_rpc_method_handler(
                self.stream, request_deserializer=c["StreamRequest"].FromString, response_serializer=ser),
            "Fail": grpc.unary_unary_rpc_method_handler(
                self.fail, request_deserializer=c["FailRequest"].FromString, response_serializer=ser),
            "Sleep": grpc.unary_unary_rpc_method_handler(
                self.sleep, request_deserializer=c["SleepRequest"].FromString, response_serializer=ser),
        })]
        for v in self.versions:
            handlers.append(grpc.method_handlers_generic_handler(
                "grpc.reflection.%s.ServerReflection" % v, {"ServerReflectionInfo": self._reflection(v)}))
        return handlers
