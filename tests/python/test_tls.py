"""The camera pipeline's optional TLS / mTLS deployment: redis-py (asyncio and sync) over
`rediss://` with a client certificate and a password, against basalt and redis-server started
alike (`--tls-port`, `--tls-cert-file`, `--tls-key-file`, `--tls-ca-cert-file`, clients must
present a certificate). Certificates are made for the session with `cryptography`.
"""

import asyncio
import datetime
import ipaddress
import ssl

import pytest
import redis
import redis.asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conftest import PASSWORD, Server, free_port


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path, cert, key):
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        path.with_suffix(".key").write_bytes(
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def _cert(subject, issuer, issuer_key, key, *, ca=False, server=False):
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder()
         .subject_name(_name(subject)).issuer_name(_name(issuer))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(days=1))
         .not_valid_after(now + datetime.timedelta(days=30))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        b = b.add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
    elif server:
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    else:
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("camera CA", "camera CA", ca_key, ca_key, ca=True)
    _write(d / "ca", ca, None)
    for name, server in (("server", True), ("client", False)):
        key = ec.generate_private_key(ec.SECP256R1())
        _write(d / name, _cert(name, "camera CA", ca_key, key, server=server), key)
    return d


class TlsServer(Server):
    """A server with a TLS port beside its plain one (the harness pings the plain one)."""

    def __init__(self, kind, pki):
        self.tls_port = free_port()
        super().__init__(kind, PASSWORD, [
            "--tls-port", str(self.tls_port),
            "--tls-cert-file", str(pki / "server.crt"), "--tls-key-file", str(pki / "server.key"),
            "--tls-ca-cert-file", str(pki / "ca.crt"),
        ])
        self.pki = pki

    def tls_kw(self, cert=True):
        kw = dict(host=self.host, port=self.tls_port, password=PASSWORD, decode_responses=True,
                  socket_timeout=20, ssl=True, ssl_ca_certs=str(self.pki / "ca.crt"))
        if cert:
            kw.update(ssl_certfile=str(self.pki / "client.crt"), ssl_keyfile=str(self.pki / "client.key"))
        return kw


@pytest.fixture(scope="module", params=["basalt", "redis"])
def tls_server(request, pki):
    s = TlsServer(request.param, pki).start()
    try:
        yield s
    finally:
        s.stop()


async def test_pipeline_over_mtls(tls_server):
    c = redis.asyncio.Redis(**tls_server.tls_kw())
    sub_client = redis.asyncio.Redis(**tls_server.tls_kw())
    try:
        await c.flushall()
        # Dedupe, job status, a queue with a blocking consumer.
        assert await c.set("frame:1", "seen", nx=True, ex=30) is True
        assert await c.set("frame:1", "seen", nx=True, ex=30) is None
        await c.hset("job:1", mapping={"state": "queued", "camera": "cam-1"})
        consumer = asyncio.create_task(c.brpop(["q:cam-1", "q:cam-2"], timeout=10))
        await asyncio.sleep(0.1)
        producer = redis.asyncio.Redis(**tls_server.tls_kw())
        try:
            assert await producer.lpush("q:cam-2", "job:1") == 1
        finally:
            await producer.aclose()
        assert await consumer == ("q:cam-2", "job:1")
        # Events fan out to a TLS subscriber.
        ps = sub_client.pubsub()
        await ps.subscribe("events")
        assert (await ps.get_message(timeout=5))["type"] == "subscribe"
        for i in range(200):
            assert await c.publish("events", f"det-{i}-" + "x" * 2000) == 1
        got = []
        while len(got) < 200:
            m = await ps.get_message(timeout=5)
            assert m is not None, f"only {len(got)} events arrived"
            got.append(m["data"])
        assert got == [f"det-{i}-" + "x" * 2000 for i in range(200)]
        await ps.aclose()
        # A pipeline and a transaction.
        async with c.pipeline(transaction=True) as p:
            p.hset("job:1", "state", "done").hgetall("job:1").incr("done")
            assert await p.execute() == [0, {"state": "done", "camera": "cam-1"}, 1]
    finally:
        await c.aclose()
        await sub_client.aclose()


def test_sync_client_and_url(tls_server):
    pki = tls_server.pki
    url = (f"rediss://:{PASSWORD}@localhost:{tls_server.tls_port}/0?ssl_ca_certs={pki / 'ca.crt'}"
           f"&ssl_certfile={pki / 'client.crt'}&ssl_keyfile={pki / 'client.key'}")
    c = redis.Redis.from_url(url, decode_responses=True)
    try:
        assert c.ping() is True
        big = "v" * 1_000_000
        assert c.set("big", big) is True
        assert c.get("big") == big
    finally:
        c.close()


def test_client_without_certificate_is_refused(tls_server):
    c = redis.Redis(**tls_server.tls_kw(cert=False))
    try:
        with pytest.raises((redis.ConnectionError, ssl.SSLError, OSError)):
            c.ping()
    finally:
        c.close()
