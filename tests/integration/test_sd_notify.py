"""systemd Type=notify readiness: READY=1 once the node serves, STOPPING=1 at
a graceful stop, sent to $NOTIFY_SOCKET (a datagram socket the test binds)."""
import os
import signal
import socket
import subprocess

from test_process import BIN, clean_env, single_args


def recv_until(sock, needle, timeout=20):
    sock.settimeout(timeout)
    seen = []
    while True:
        msg = sock.recv(4096).decode()
        seen.append(msg)
        if needle in msg:
            return seen


def test_ready_then_stopping_on_notify_socket(tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    proc = subprocess.Popen([BIN] + single_args(tmp_path / "d"),
                            env=clean_env(NOTIFY_SOCKET=path),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        seen = recv_until(sock, "READY=1")
        assert "STATUS=serving" in seen[-1]
        proc.send_signal(signal.SIGTERM)
        recv_until(sock, "STOPPING=1")
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
        os.unlink(path)
