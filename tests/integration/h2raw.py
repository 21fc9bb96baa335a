"""A tiny hand-written HTTP/2 (h2c, prior knowledge) client for bad-input tests.

Requests are encoded by hand: frames per RFC 9113 and header blocks made of
HPACK "literal header field without indexing -- new name" entries with plain
(non-Huffman) strings, which any decoder accepts.  Response header blocks are
decoded with the HPACK inflater of libnghttp2 (a Debian package the project
already depends on) through ctypes, because the server's encoder uses Huffman
coding and the dynamic table.

    c = H2Conn(addr)            # connect, send preface + SETTINGS
    c.request(1, "/grpc.health.v1.Health/Check", grpc_frame(b""))
    st = c.wait_stream(1)       # Stream: headers, trailers, data, rst
    st.grpc_status, st.grpc_message
"""

import ctypes
import ctypes.util
import socket
import struct
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, SETTINGS_TIMEOUT, STREAM_CLOSED, \
    FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR, CONNECT_ERROR, \
    ENHANCE_YOUR_CALM = range(12)
SETTINGS_MAX_CONCURRENT_STREAMS = 3
SETTINGS_INITIAL_WINDOW_SIZE = 4


def frame(ftype, flags, stream_id, payload=b""):
    return struct.pack(">I", len(payload))[1:] + struct.pack(">BBI", ftype, flags,
                                                               stream_id & 0x7FFFFFFF) + payload


def settings(pairs=()):
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def _hpack_int(value, prefix_bits, first=0):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = bytearray([first | limit])
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_literal(name, value):
    """Literal header field without indexing, new name, no Huffman."""
    name = name.encode() if isinstance(name, str) else name
    value = value.encode() if isinstance(value, str) else value
    return b"\x00" + _hpack_int(len(name), 7) + name + _hpack_int(len(value), 7) + value


def grpc_headers(path, extra=()):
    hdrs = [(":method", "POST"), (":scheme", "http"), (":path", path),
            (":authority", "localhost"), ("content-type", "application/grpc"), ("te", "trailers")]
    hdrs += list(extra)
    return b"".join(hpack_literal(n, v) for n, v in hdrs)


def grpc_frame(msg, compressed=False, length=None):
    """Length-prefixed gRPC message; `length` overrides the declared length."""
    return bytes([1 if compressed else 0]) + struct.pack(">I", len(msg) if length is None
                                                         else length) + msg


# --- HPACK decoding through libnghttp2 ---------------------------------------

class _NV(ctypes.Structure):
    _fields_ = [("name", ctypes.POINTER(ctypes.c_uint8)), ("value", ctypes.POINTER(ctypes.c_uint8)),
                ("namelen", ctypes.c_size_t), ("valuelen", ctypes.c_size_t),
                ("flags", ctypes.c_uint8)]


_lib = None


def _nghttp2():
    global _lib
    if _lib is None:
        name = ctypes.util.find_library("nghttp2") or "libnghttp2.so.14"
        lib = ctypes.CDLL(name)
        lib.nghttp2_hd_inflate_new.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
        lib.nghttp2_hd_inflate_del.argtypes = [ctypes.c_void_p]
        lib.nghttp2_hd_inflate_hd2.argtypes = [ctypes.c_void_p, ctypes.POINTER(_NV),
                                               ctypes.POINTER(ctypes.c_int), ctypes.c_char_p,
                                               ctypes.c_size_t, ctypes.c_int]
        lib.nghttp2_hd_inflate_hd2.restype = ctypes.c_ssize_t
        lib.nghttp2_hd_inflate_end_headers.argtypes = [ctypes.c_void_p]
        _lib = lib
    return _lib


class HpackDecoder:
    """One per connection (the dynamic table is connection state)."""

    def __init__(self):
        self._lib = _nghttp2()
        self._inf = ctypes.c_void_p()
        if self._lib.nghttp2_hd_inflate_new(ctypes.byref(self._inf)) != 0:
            raise RuntimeError("nghttp2_hd_inflate_new failed")

    def decode(self, block):
        out, off = [], 0
        buf = ctypes.create_string_buffer(block, len(block))
        base = ctypes.addressof(buf)
        while True:
            nv, flags = _NV(), ctypes.c_int(0)
            rv = self._lib.nghttp2_hd_inflate_hd2(self._inf, ctypes.byref(nv), ctypes.byref(flags),
                                                  ctypes.c_char_p(base + off), len(block) - off, 1)
            if rv < 0:
                raise ValueError("HPACK decoding failed (%d)" % rv)
            off += rv
            if flags.value & 0x02:  # NGHTTP2_HD_INFLATE_EMIT
                out.append((ctypes.string_at(nv.name, nv.namelen).decode("latin-1"),
                            ctypes.string_at(nv.value, nv.valuelen).decode("latin-1")))
            if flags.value & 0x01:  # NGHTTP2_HD_INFLATE_FINAL
                self._lib.nghttp2_hd_inflate_end_headers(self._inf)
                return out
            if rv == 0 and not flags.value & 0x02:
                raise ValueError("truncated header block")

    def __del__(self):
        if getattr(self, "_inf", None) and self._lib:
            self._lib.nghttp2_hd_inflate_del(self._inf)


# --- connection ----------------------------------------------------------------

class Stream:
    def __init__(self, sid):
        self.id = sid
        self.headers = None   # first header block: list of (name, value)
        self.trailers = None  # second header block
        self.data = b""
        self.rst = None       # RST_STREAM error code
        self.ended = False    # END_STREAM received

    @property
    def done(self):
        return self.ended or self.rst is not None

    def _field(self, name):
        for block in (self.trailers, self.headers):
            for n, v in block or ():
                if n == name:
                    return v
        return None

    @property
    def grpc_status(self):
        v = self._field("grpc-status")
        return None if v is None else int(v)

    @property
    def grpc_message(self):
        from urllib.parse import unquote
        v = self._field("grpc-message")
        return None if v is None else unquote(v)

    @property
    def http_status(self):
        for n, v in self.headers or ():
            if n == ":status":
                return int(v)
        return None

    def messages(self):
        out, d = [], self.data
        while len(d) >= 5:
            n = struct.unpack(">I", d[1:5])[0]
            out.append(d[5:5 + n])
            d = d[5 + n:]
        return out


class H2Conn:
    """Blocking h2c client: call read_until/wait_stream to process input."""

    def __init__(self, addr, handshake=True, settings_pairs=(), timeout=5.0, auto_window=True):
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rbuf = b""
        self.hpack = HpackDecoder()
        self.streams = {}
        self.goaway = None     # (last_stream_id, error_code, debug)
        self.closed = False    # EOF or reset seen
        self.frames = []       # (type, flags, stream_id) of every frame received
        self._cont = None      # (stream_id, block) while CONTINUATION frames are pending
        self.auto_window = auto_window  # give back receive window as DATA arrives
        self.send_window = {0: 65535}   # our send windows (connection: 0), per RFC 9113
        self.initial_window = 65535
        if handshake:
            self.send(PREFACE + settings(settings_pairs))

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        self.sock.close()

    def request(self, sid, path, body=None, extra_headers=(), end_stream=True):
        """HEADERS (+ DATA with `body`, already gRPC-framed) on stream `sid`."""
        block = grpc_headers(path, extra_headers)
        out = frame(HEADERS, END_HEADERS | (END_STREAM if end_stream and body is None else 0),
                    sid, block)
        if body is not None:
            out += frame(DATA, END_STREAM if end_stream else 0, sid, body)
        self.streams.setdefault(sid, Stream(sid))
        return out

    def send_data(self, sid, data, end_stream=False, timeout=5.0):
        """DATA frames within the server's flow-control windows (waits for
        WINDOW_UPDATE as needed; frames are at most 16 KiB)."""
        while True:
            n = min(len(data), 16384)
            if n:
                ok = self.read_until(lambda: min(self.send_window[0], self.send_window.get(
                    sid, self.initial_window)) >= n or self.closed, timeout)
                if not ok or self.closed:
                    raise ConnectionError("no send window on stream %d" % sid)
            last = n == len(data)
            self.send(frame(DATA, END_STREAM if end_stream and last else 0, sid, data[:n]))
            self.send_window[0] -= n
            self.send_window[sid] = self.send_window.get(sid, self.initial_window) - n
            data = data[n:]
            if last:
                return

    def stream(self, sid):
        return self.streams.setdefault(sid, Stream(sid))

    def _recv(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.closed = True
            return False
        self.rbuf += chunk
        return True

    def _process(self):
        while len(self.rbuf) >= 9:
            length = struct.unpack(">I", b"\0" + self.rbuf[:3])[0]
            if len(self.rbuf) < 9 + length:
                return
            ftype, flags, sid = struct.unpack(">BBI", self.rbuf[3:9])
            sid &= 0x7FFFFFFF
            payload = self.rbuf[9:9 + length]
            self.rbuf = self.rbuf[9 + length:]
            self.frames.append((ftype, flags, sid))
            self._on_frame(ftype, flags, sid, payload)

    def _on_frame(self, ftype, flags, sid, payload):
        if ftype == SETTINGS and not flags & ACK:
            for i in range(0, len(payload) - 5, 6):
                k, v = struct.unpack(">HI", payload[i:i + 6])
                if k == SETTINGS_INITIAL_WINDOW_SIZE:
                    for sid2 in self.send_window:
                        if sid2:
                            self.send_window[sid2] += v - self.initial_window
                    self.initial_window = v
            try:
                self.send(frame(SETTINGS, ACK, 0))
            except OSError:
                pass
        elif ftype == PING and not flags & ACK:
            try:
                self.send(frame(PING, ACK, 0, payload))
            except OSError:
                pass
        elif ftype == WINDOW_UPDATE:
            inc = struct.unpack(">I", payload[:4])[0] & 0x7FFFFFFF
            self.send_window[sid] = self.send_window.get(sid, self.initial_window) + inc
        elif ftype == GOAWAY:
            last, code = struct.unpack(">II", payload[:8])
            self.goaway = (last & 0x7FFFFFFF, code, payload[8:])
        elif ftype == RST_STREAM:
            self.stream(sid).rst = struct.unpack(">I", payload[:4])[0]
        elif ftype == DATA:
            st = self.stream(sid)
            if flags & 0x8:  # PADDED
                pad = payload[0]
                payload = payload[1:len(payload) - pad]
            st.data += payload
            if flags & END_STREAM:
                st.ended = True
            if payload and self.auto_window:  # give the window back so responses keep flowing
                inc = struct.pack(">I", len(payload))
                try:
                    self.send(frame(WINDOW_UPDATE, 0, 0, inc) + frame(WINDOW_UPDATE, 0, sid, inc))
                except OSError:
                    pass
        elif ftype in (HEADERS, CONTINUATION):
            if ftype == HEADERS:
                if flags & 0x8:
                    pad = payload[0]
                    payload = payload[1:len(payload) - pad]
                if flags & 0x20:  # PRIORITY
                    payload = payload[5:]
                self._cont = (sid, payload, flags & END_STREAM)
            else:
                s0, block, es = self._cont
                self._cont = (s0, block + payload, es)
            if flags & END_HEADERS:
                s0, block, es = self._cont
                self._cont = None
                st = self.stream(s0)
                fields = self.hpack.decode(block)
                if st.headers is None:
                    st.headers = fields
                else:
                    st.trailers = fields
                if es:
                    st.ended = True

    def read_until(self, cond, timeout=5.0):
        """Process frames until cond() is true, EOF, or the timeout; returns cond()."""
        deadline = time.monotonic() + timeout
        while True:
            self._process()
            if cond():
                return True
            if self.closed or not self._recv(deadline):
                self._process()
                return cond()

    def wait_stream(self, sid, timeout=5.0):
        st = self.stream(sid)
        assert self.read_until(lambda: st.done, timeout), (
            "stream %d not finished after %.1f s (closed=%s goaway=%s)" % (
                sid, timeout, self.closed, self.goaway))
        return st

    def wait_closed(self, timeout=5.0):
        """True once the server closed the connection (EOF or reset)."""
        return self.read_until(lambda: self.closed, timeout)


def wait_socket_closed(sock, timeout):
    """Read and discard until EOF/reset; returns (closed, bytes_received)."""
    deadline = time.monotonic() + timeout
    got = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False, got
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return False, got
        except (ConnectionResetError, BrokenPipeError):
            return True, got
        if not chunk:
            return True, got
        got += chunk
