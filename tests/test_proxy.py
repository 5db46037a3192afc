"""The proxy in front of `pulse serve`: slow clients cost nginx a connection, not a gunicorn thread.

gunicorn's gthread worker gives each connection a thread as soon as its first byte arrives, and
the thread waits for the rest of the request: a dozen clients sending a byte every 2 s hold
every thread of a plain `pulse serve`, and nobody else is answered. In production nginx stands
in front (deploy/nginx.conf). These tests run Debian's nginx with that very file, rewritten to
listen on loopback without TLS and to proxy to a real `pulse serve`, put 50 slow clients on it
(half send their request head a byte at a time, half a form body), and time ordinary requests
through it; then the same slow clients against plain `pulse serve`, which they hold. With
`proxy_request_buffering off` in deploy/nginx.conf the first test fails too: the slow bodies
then reach gunicorn's threads.
"""

from __future__ import annotations

import http.client
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from .helpers import CLIENT_ADDRESS, FULL_ANSWERS, ROOT, LiveServer, free_port, request

pytestmark = pytest.mark.slow

SLOW_CLIENTS = 50
BYTE_EVERY = 1.0  # seconds between two bytes of a slow client
SLOW_ADDRESS = "127.0.0.77"  # where the slow clients connect from (ordinary requests: CLIENT_ADDRESS)
# Settings of deploy/nginx.conf this test relies on; the derived config must still have them.
KEPT = (
    "proxy_request_buffering on;",
    "proxy_buffering on;",
    "client_header_timeout",
    "client_body_timeout",
    "send_timeout",
    "client_max_body_size 64k;",
    "proxy_set_header X-Forwarded-For $remote_addr;",
    "access_log",
    "pulse_private",
)


def nginx_binary() -> str:
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)
    if found is None:
        reason = "nginx is not installed (Debian: apt-get install nginx); tests/test_proxy.py runs it"
        if os.environ.get("CI"):
            pytest.fail(reason + "; CI must install it (.ci/run does)")
        print(f"skipped: {reason}")
        pytest.skip(reason)
    return found


def derived_config(deploy_conf: str, folder: Path, listen_port: int, app_port: int) -> str:
    """deploy/nginx.conf for this test: loopback ports, no TLS, logs and temp files under `folder`."""
    rewrites = [
        (
            r"upstream pulse_app \{[^}]*\}",
            f"upstream pulse_app {{\n    server 127.0.0.1:{app_port};\n    keepalive 32;\n}}",
        ),
        (r"listen 443 ssl;", f"listen 127.0.0.1:{listen_port};"),
        (r"\n[ \t]*http2 on;", ""),
        (r"\n[ \t]*ssl_certificate[ \t][^;]*;", ""),
        (r"\n[ \t]*ssl_certificate_key[ \t][^;]*;", ""),
        (r"access_log /var/log/nginx/pulse\.log ", f"access_log {folder}/access.log "),
        (r"error_log  /var/log/nginx/pulse-error\.log ", f"error_log {folder}/error.log "),
    ]
    conf = deploy_conf
    for pattern, replacement in rewrites:
        conf, count = re.subn(pattern, lambda _: replacement, conf)
        assert count == 1, f"deploy/nginx.conf has changed shape: {pattern!r} matched {count} times"
    for setting in KEPT:
        assert setting in conf, setting
    # As root, nginx would hand its workers to "nobody", who cannot write under tmp_path.
    user = f"user {pwd.getpwuid(os.getuid()).pw_name};\n" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {kind}_temp_path {folder}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"{user}daemon off;\nworker_processes 1;\npid {folder}/nginx.pid;\nerror_log {folder}/error.log warn;\n"
        f"events {{\n    worker_connections 1024;\n}}\nhttp {{\n{temp}\n{conf}\n}}\n"
    )


class Nginx:
    """Debian's nginx in the foreground, with the derived config, on a free loopback port."""

    def __init__(self, folder: Path, app_port: int):
        binary = nginx_binary()
        folder.mkdir()
        self.folder = folder
        self.port = free_port()
        conf = folder / "nginx.conf"
        conf.write_text(derived_config((ROOT / "deploy" / "nginx.conf").read_text(), folder, self.port, app_port))
        check = subprocess.run(
            [binary, "-t", "-p", str(folder), "-c", str(conf), "-e", str(folder / "error.log")],
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0, check.stderr
        self.process = subprocess.Popen(
            [binary, "-p", str(folder), "-c", str(conf), "-e", str(folder / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=(folder / "stderr.log").open("wb"),
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if request(f"http://127.0.0.1:{self.port}/")[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"nginx did not start: {(folder / 'error.log').read_text(errors='replace')}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


# Half the slow clients send their request head slowly, half a whole head and then a body slowly.
HEADS = (
    b"GET /survey HTTP/1.1\r\nHost: pulse.example.org\r\nX-Slow: ",
    b"POST /survey HTTP/1.1\r\nHost: pulse.example.org\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    b"Content-Length: 60000\r\n\r\n",
)


class SlowClients:
    """`count` connections that each send one more byte of a request every `every` seconds.

    One thread drives them all; a connection the server drops is opened again. They stop when
    told to, and on their own after `at_most` seconds, so a failing test cannot leave them running.
    """

    def __init__(self, port: int, count: int = SLOW_CLIENTS, every: float = BYTE_EVERY, at_most: float = 20.0):
        self.port, self.count, self.every, self.at_most = port, count, every, at_most
        self.opened = self.dropped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        sockets: list[socket.socket | None] = [None] * self.count
        deadline = time.monotonic() + self.at_most
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                for i in range(self.count):
                    try:
                        if sockets[i] is None:
                            sockets[i] = socket.create_connection(
                                ("127.0.0.1", self.port), timeout=2, source_address=(SLOW_ADDRESS, 0)
                            )
                            sockets[i].sendall(HEADS[i % 2])
                            self.opened += 1
                        else:
                            sockets[i].sendall(b"a")
                    except OSError:  # dropped by the server (nginx: client_header_timeout), or refused
                        if sockets[i] is not None:
                            sockets[i].close()
                            sockets[i] = None
                        self.dropped += 1
                self._stop.wait(self.every)
        finally:
            for sock in sockets:
                if sock is not None:
                    sock.close()


def timed(port: int, method: str, path: str, body: bytes | None = None, timeout: float = 5.0):
    """(status or None if it timed out, seconds) of one ordinary request from CLIENT_ADDRESS."""
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(CLIENT_ADDRESS, 0))
    try:
        connection.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
        response = connection.getresponse()
        response.read()
        return response.status, time.monotonic() - started
    except TimeoutError:
        return None, time.monotonic() - started
    finally:
        connection.close()


ORDINARY = [
    ("GET", "/", None),
    ("GET", "/survey", None),
    ("GET", "/api/v1/survey", None),
    ("POST", "/api/v1/responses", json.dumps({"answers": FULL_ANSWERS}).encode()),
    ("GET", "/api/v1/topics", None),
]


def test_through_nginx_slow_clients_do_not_delay_others(tmp_path):
    server = LiveServer(tmp_path, env={"PULSE_PROXY_HOPS": "1"})
    nginx = None
    try:
        nginx = Nginx(tmp_path / "nginx", server.port)
        with SlowClients(nginx.port) as slow:
            time.sleep(2 * BYTE_EVERY + 0.5)  # every slow client is connected and has sent more since
            results = []
            for method, path, body in ORDINARY * 2:
                results.append((path, *timed(nginx.port, method, path, body)))
                time.sleep(BYTE_EVERY / 4)  # spread over the slow clients' sends
            opened = slow.opened
    finally:
        if nginx is not None:
            nginx.stop()
        server.stop()
    print(
        f"\nthrough nginx with {SLOW_CLIENTS} slow clients ({opened} connections opened): "
        + ", ".join(f"{path} {status} in {seconds * 1000:.0f} ms" for path, status, seconds in results)
    )
    assert opened >= SLOW_CLIENTS
    for path, status, seconds in results:
        assert status in (200, 201), (path, status)
        assert seconds < 1.0, (path, seconds)
    access_log = (tmp_path / "nginx" / "access.log").read_text()
    assert "/api/v1/responses" in access_log  # the private log format was in use...
    assert "127.0.0." not in access_log  # ...and holds no client address


def test_plain_pulse_serve_is_held_by_slow_clients(tmp_path):
    """The contrast that documents the problem: why plain `pulse serve` is not for the open internet."""
    server = LiveServer(tmp_path)
    try:
        before = timed(server.port, "GET", "/api/v1/survey")
        with SlowClients(server.port):
            time.sleep(2 * BYTE_EVERY + 0.5)
            during = timed(server.port, "GET", "/api/v1/survey", timeout=2.5)
        after = timed(server.port, "GET", "/api/v1/survey", timeout=10.0)
    finally:
        server.stop()
    print(
        f"\nplain pulse serve: before {before[1] * 1000:.0f} ms; with {SLOW_CLIENTS} slow clients "
        f"{'no answer within' if during[0] is None else f'{during[0]} in'} {during[1]:.1f} s; "
        f"after they left {after[1] * 1000:.0f} ms"
    )
    assert before[0] == 200 and before[1] < 1.0
    assert during[0] is None or during[1] > 1.0  # held: no answer, or a late one
    assert after[0] == 200  # the threads come back once the slow clients go


def test_serve_says_once_that_proxy_hops_trust_forwarded_for(tmp_path):
    server = LiveServer(tmp_path, env={"PULSE_PROXY_HOPS": "1"})
    try:
        for path in ("/", "/survey", "/api/v1/survey"):
            assert request(server.url + path)[0] == 200  # straight from a client: no proxy added the header
        assert request(server.url + "/", headers={"X-Forwarded-For": "192.0.2.1"})[0] == 200
    finally:
        server.stop()
    output = server.output()
    assert output.count("PULSE_PROXY_HOPS=1: Pulse trusts the last 1 X-Forwarded-For entry") == 1, output
    assert output.count("Requests are arriving without X-Forwarded-For although PULSE_PROXY_HOPS=1") == 1, output
    assert CLIENT_ADDRESS not in output and "192.0.2.1" not in output
