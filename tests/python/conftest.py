"""Fixtures for the real-client suite: every test runs against basalt (--shards 4) and against
redis-server, the oracle. The fixtures build nothing: they start target/debug/basalt (or
$BASALT_BIN) and redis-server ($REDIS_SERVER, else the one on PATH) on free ports, each in its
own temp dir, and kill them at the end of the session.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import pytest_asyncio
import redis
import redis.asyncio

REPO = Path(__file__).resolve().parents[2]
SHARDS = 4
PASSWORD = "camera-s3cret"
# Far above a normal start (well under a second); basalt has a known intermittent startup
# stall (tests/startup.rs), so a stalled start is retried on a new port, as tests/common does.
START_DEADLINE = 12.0

_used_ports = set()


def free_port():
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _used_ports:
            _used_ports.add(port)
            return port


def basalt_bin():
    b = os.environ.get("BASALT_BIN") or str(REPO / "target" / "debug" / "basalt")
    if not os.access(b, os.X_OK):
        pytest.exit(f"no basalt binary at {b}: run `cargo build` first or set BASALT_BIN", returncode=2)
    return b


def redis_server_bin():
    b = os.environ.get("REDIS_SERVER") or shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.access(b, os.X_OK):
        pytest.exit(f"no redis-server at {b}: install redis-server or set REDIS_SERVER", returncode=2)
    return b


class Server:
    """One server process: `kind` is "basalt" or "redis"."""

    def __init__(self, kind, password=None, extra=()):
        self.kind = kind
        self.password = password
        self.extra = list(extra)
        self.host = "127.0.0.1"
        self.port = None
        self.proc = None
        self.dir = None
        self.log = None

    def __repr__(self):
        return f"<{self.kind} on {self.port}>"

    @property
    def url(self):
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}"

    def url_db(self, db):
        return f"{self.url}/{db}"

    def _argv(self):
        common = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                  "--dir", self.dir]
        if self.password:
            common += ["--requirepass", self.password]
        common += self.extra
        if self.kind == "basalt":
            return [basalt_bin(), "--shards", str(SHARDS)] + common
        return [redis_server_bin()] + common

    def _log_text(self):
        try:
            return Path(self.log).read_text(errors="replace")
        except OSError:
            return ""

    def _ping(self):
        try:
            with socket.create_connection((self.host, self.port), timeout=2) as s:
                s.sendall(b"*1\r\n$4\r\nPING\r\n")
                reply = s.recv(64)
            return reply.startswith(b"+PONG") or reply.startswith(b"-NOAUTH")
        except OSError:
            return False

    def _start_once(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix=f"basalt-py-{self.kind}-")
        self.log = os.path.join(self.dir, "server.log")
        with open(self.log, "wb") as logf:
            self.proc = subprocess.Popen(self._argv(), cwd=self.dir, stdin=subprocess.DEVNULL,
                                         stdout=logf, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_DEADLINE
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return f"exited with {self.proc.returncode}:\n{self._log_text()[-3000:]}"
            # Every shard must be up, not just the one that answers the first PING.
            if "Ready to accept connections" in self._log_text() and self._ping():
                return None
            time.sleep(0.02)
        self.stop()
        return f"not ready within {START_DEADLINE}s:\n{self._log_text()[-3000:]}"

    def start(self):
        last = ""
        for _ in range(4):
            last = self._start_once()
            if last is None:
                return self
            print(f"WARNING: {self.kind} did not start ({last}); retrying on a new port")
        raise RuntimeError(f"{self.kind} did not start: {last}")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def client(self, **kw):
        kw.setdefault("decode_responses", True)
        kw.setdefault("socket_timeout", 20)
        return redis.Redis(host=self.host, port=self.port, password=self.password, **kw)

    def aclient(self, **kw):
        kw.setdefault("decode_responses", True)
        kw.setdefault("socket_timeout", 20)
        return redis.asyncio.Redis(host=self.host, port=self.port, password=self.password, **kw)

    def flushall(self):
        c = self.client()
        try:
            c.flushall()
        finally:
            c.close()


def _server_fixture(kind, password, extra=()):
    s = Server(kind, password, extra).start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="session", params=["basalt", "redis"])
def server(request):
    """The server under test, started once per session for each kind."""
    yield from _server_fixture(request.param, None)


@pytest.fixture(scope="session", params=["basalt", "redis"])
def auth_server(request):
    """A server started with --requirepass (the camera pipeline's deployment)."""
    yield from _server_fixture(request.param, PASSWORD)


@pytest.fixture
def srv(server):
    """The server under test, emptied before the test."""
    server.flushall()
    return server


@pytest.fixture
def r(srv):
    c = srv.client()
    yield c
    c.close()


@pytest_asyncio.fixture
async def ar(srv):
    c = srv.aclient()
    yield c
    await c.aclose()

