"""Small network fixtures on 127.0.0.1: a TLS front, a canned-reply server and a rule-driven proxy.

``TlsFront`` terminates TLS with a certificate from a throwaway CA and pipes the bytes to a plain-HTTP
upstream (the emulator), so the Encord provider can be tested over ``https://127.0.0.1:PORT`` with real
certificate verification. ``CannedServer`` answers every connection with the same raw bytes.
``RuleProxy`` forwards to the emulator but answers the requests a rule picks (faults by route).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import ipaddress
import json
import socket
import ssl
import threading
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def make_ca_and_server_cert(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it: (ca.pem, server.pem, server.key)."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "reconciler test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem = directory / "ca.pem"
    cert_pem = directory / "server.pem"
    key_pem = directory / "server.key"
    ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return ca_pem, cert_pem, key_pem


class _Listener:
    def __init__(self, scheme: str) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self.port: int = self._sock.getsockname()[1]
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> _Listener:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle_safely, args=(conn,), daemon=True).start()

    def _handle_safely(self, conn: socket.socket) -> None:
        try:
            self.handle(conn)
        except (OSError, ssl.SSLError):
            pass  # the client gave up (e.g. it refused our certificate): nothing to do
        finally:
            conn.close()

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError


class TlsFront(_Listener):
    """``https://127.0.0.1:PORT`` in front of a plain-HTTP upstream on 127.0.0.1."""

    def __init__(self, upstream_port: int, cert: Path, key: Path) -> None:
        super().__init__("https")
        self._upstream = upstream_port
        self._ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._ctx.load_cert_chain(cert, key)

    def handle(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        tls = self._ctx.wrap_socket(conn, server_side=True)
        with tls, socket.create_connection(("127.0.0.1", self._upstream), timeout=10) as up:
            pump = threading.Thread(target=_copy, args=(up, tls), daemon=True)
            pump.start()
            _copy(tls, up)
            pump.join(timeout=10)


def _copy(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


class CannedServer(_Listener):
    """``http://127.0.0.1:PORT`` answering every request with ``reply`` (raw HTTP bytes), then closing."""

    def __init__(self, reply: bytes) -> None:
        super().__init__("http")
        self._reply = reply

    def handle(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        conn.recv(65536)
        conn.sendall(self._reply)


#: A proxy rule: ``(method, path, how many requests of this method and path so far) -> (status, headers)``
#: to answer instead of the upstream, or ``None`` to forward.
ProxyRule = Callable[[str, str, int], "tuple[int, dict[str, str]] | None"]


class RuleProxy:
    """``http://127.0.0.1:PORT`` forwarding to a plain-HTTP upstream, answering some requests itself.

    Lets a test drive the real CLI (which builds its own HTTP client) into faults a server decides per
    route, e.g. "every write after the first is answered 429".
    """

    def __init__(self, upstream: str, rule: ProxyRule) -> None:
        self.rule = rule
        self.enabled = True
        self.refused = 0
        proxy = self
        counts: Counter[tuple[str, str]] = Counter()
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.partition("?")[0]
                with lock:
                    counts[(self.command, path)] += 1
                    nth = counts[(self.command, path)]
                verdict = proxy.rule(self.command, path, nth) if proxy.enabled else None
                if verdict is not None:
                    status, headers = verdict
                    with lock:
                        proxy.refused += 1
                    data = json.dumps({"message": "refused by the test proxy"}).encode()
                    self.send_response(status)
                    for k, v in {**headers, "Content-Type": "application/json"}.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                forward = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn = http.client.HTTPConnection("127.0.0.1", _port_of(upstream), timeout=60)
                try:
                    conn.request(self.command, self.path, body=body, headers=forward)
                    resp = conn.getresponse()
                    data = resp.read()
                    self.send_response(resp.status)
                    for k, v in resp.getheaders():
                        if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                finally:
                    conn.close()

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _any

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})

    def __enter__(self) -> RuleProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def _port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])
