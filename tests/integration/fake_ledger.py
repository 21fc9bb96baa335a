#!/usr/bin/python3
"""Stand-in for build/inferadb-ledger used only to test conftest.py's fixture
machinery: accepts the fixture's command line, serves
grpc.health.v1.Health/Check (SERVING) on --listen and /metrics on --metrics.
FAKE_LEDGER_FAIL=1 makes it exit 3 at start-up after logging an error."""
import argparse
import http.server
import os
import signal
import sys
import threading
from concurrent import futures

import grpc

p = argparse.ArgumentParser()
p.add_argument("--single", action="store_true")
p.add_argument("--data", required=True)
p.add_argument("--listen", required=True)
p.add_argument("--metrics", required=True)
p.add_argument("--log-format", default="text")
a = p.parse_args()
print("level=info msg=starting data=%s listen=%s" % (a.data, a.listen), flush=True)
if os.environ.get("FAKE_LEDGER_FAIL"):
    print("level=error msg=fake start-up failure", flush=True)
    sys.exit(3)
with open(os.path.join(a.data, "starts"), "a") as fh:
    fh.write("start\n")

stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())

server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
    "Check": grpc.unary_unary_rpc_method_handler(lambda req, ctx: b"\x08\x01"),
}),))
server.add_insecure_port(a.listen)
server.start()


class Metrics(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"fake_ledger_up 1\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


host, port = a.metrics.rsplit(":", 1)
httpd = http.server.ThreadingHTTPServer((host, int(port)), Metrics)
threading.Thread(target=httpd.serve_forever, daemon=True).start()
print("level=info msg=ready", flush=True)
stop.wait()
print("level=info msg=stopping", flush=True)
server.stop(None)
os._exit(0)
