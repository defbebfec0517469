"""Misbehaving servers on 127.0.0.1 for wire tests: one that records every request (as a server or as a
proxy) and answers a fixed status, one that redirects, and one that accepts connections and never answers."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Seen:
    """One request a recorder received: the request line's target (a path, or a URL for a proxy)."""

    method: str
    target: str
    headers: dict[str, str]


@dataclass
class Recorder:
    """Records every request; answers ``status`` with ``location`` (a redirect) when given."""

    url: str = ""
    status: int = 502
    location: str | None = None
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0


@contextmanager
def recording_server(status: int = 502, location: str | None = None) -> Iterator[Recorder]:
    rec = Recorder(status=status, location=location)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return None

        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            with lock:
                rec.seen.append(Seen(self.command, self.path, dict(self.headers.items())))
            self.send_response(rec.status)
            if rec.location is not None:
                self.send_header("Location", rec.location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_CONNECT = _any

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    rec.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Hung:
    url: str = ""
    accepted: int = 0


@contextmanager
def hung_server() -> Iterator[Hung]:
    """Accepts every connection, reads nothing and never answers (until the test ends)."""
    hung = Hung()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.settimeout(0.2)
    hung.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)
            hung.accepted += 1

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield hung
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        sock.close()


@contextmanager
def trickling_server(interval: float) -> Iterator[Hung]:
    """Answers 200 with a declared 1 MB body and then sends one byte every ``interval`` seconds."""
    hung = Hung()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.settimeout(0.2)
    hung.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{"
                )
                while not stop.wait(interval):
                    conn.sendall(b" ")
            except OSError:
                return

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            hung.accepted += 1
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield hung
    finally:
        stop.set()
        thread.join(2)
        sock.close()
