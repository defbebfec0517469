"""An Encord v2 public API emulator: a real HTTP server on 127.0.0.1 for tests, benchmarks and CI.

It serves the endpoints of encord-api.md (metadata schema v2, folders, items, get-bulk, patch-bulk,
child-items, bearer-token, and the legacy v1 dataset querier ``POST /public``) with their JSON shapes, paging,
status codes and Ed25519 request signatures, from a live-state snapshot (SPEC §5). Control endpoints under
``/_emulator/`` read and replace the state, read and reset request counts, inject faults (latency, 429, 503,
dropped connections) and switch each unconfirmed server behaviour to its other answer (``modes``)::

    with Emulator(snapshot, authorized_keys=[pubhex]) as emu:
        client = EncordUserClient.create_with_ssh_private_key(key, domain=emu.url)

Command line: ``python -m reconciler.testing.emulator --state live.json --accept-any-key`` prints the base
URL as its first line and serves until SIGINT or SIGTERM. ``reconciler/testing/README.md`` lists every
route and the behaviour chosen wherever Encord's own is unconfirmed.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import logging
import math
import os
import random
import secrets
import signal
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import unquote

import orjson

from reconciler.snapshot import Snapshot, SnapshotError, read_snapshot, snapshot_from_dict
from reconciler.testing._api import (
    API_PREFIX,
    NO_BODY,
    Api,
    ApiError,
    Modes,
    Request,
    Response,
    parse_query,
    route_name,
)
from reconciler.testing._auth import (
    AuthError,
    check_bearer,
    normalise_public_key,
    verify_signature,
    verify_v1_signature,
)
from reconciler.testing._state import canonical_uuid
from reconciler.testing._v1 import V1_PATH, V1Error, handle_v1, v1_route_name

__all__ = ["Emulator", "Faults", "Modes", "main"]

logger = logging.getLogger(__name__)

#: Largest request body accepted (a patch-bulk of 1000 items with large embeddings fits easily).
MAX_BODY_BYTES = 256 * 1024 * 1024
#: An idle keep-alive connection is closed after this many seconds.
IDLE_TIMEOUT_S = 120.0
_CONTROL_PREFIX = "/_emulator/"


@dataclass(frozen=True)
class Faults:
    """Injected faults, for API routes only (control endpoints are never faulted).

    Every API request first waits ``latency_ms``; then one random draw decides, in this order, whether the
    connection is dropped without an answer (``rate_drop``), answered 429 with ``Retry-After:
    retry_after_s`` (``rate_429``) or answered 503 (``rate_503``). ``seed`` makes the draws repeatable:
    the generator is re-seeded whenever the faults are set.
    """

    latency_ms: float = 0.0
    rate_429: float = 0.0
    retry_after_s: int = 1
    rate_503: float = 0.0
    rate_drop: float = 0.0
    seed: int | None = None

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Faults:
        """Validate a ``PUT /_emulator/faults`` body. Raises ``ValueError`` naming the bad field."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault field {unknown[0]!r} (known: {', '.join(sorted(known))})")

        def number(name: str, default: float, upper: float | None) -> float:
            value = data.get(name, default)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a number")
            if value < 0 or (upper is not None and value > upper):
                raise ValueError(
                    f"{name} must be between 0 and {upper:g}" if upper else f"{name} must be >= 0"
                )
            return float(value)

        def integer(name: str, default: int | None, *, nullable: bool) -> int | None:
            value = data.get(name, default)
            if value is None and nullable:
                return None
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an integer")
            return value

        retry_after = integer("retry_after_s", 1, nullable=False)
        assert retry_after is not None
        if retry_after < 0:
            raise ValueError("retry_after_s must be >= 0")
        faults = cls(
            latency_ms=number("latency_ms", 0.0, None),
            rate_429=number("rate_429", 0.0, 1.0),
            retry_after_s=retry_after,
            rate_503=number("rate_503", 0.0, 1.0),
            rate_drop=number("rate_drop", 0.0, 1.0),
            seed=integer("seed", None, nullable=True),
        )
        if faults.rate_429 + faults.rate_503 + faults.rate_drop > 1.0 + 1e-9:
            raise ValueError("rate_429 + rate_503 + rate_drop must not exceed 1")
        return faults

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _as_snapshot(snapshot: Snapshot | Mapping[str, Any] | str | os.PathLike[str]) -> Snapshot:
    """A Snapshot, a snapshot dict (the ``.json`` form, parsed) or the path of a snapshot file."""
    if isinstance(snapshot, Snapshot):
        return snapshot
    if isinstance(snapshot, Mapping):
        try:
            return snapshot_from_dict(snapshot)
        except SnapshotError as exc:
            raise ValueError(str(exc)) from exc
    if isinstance(snapshot, (str, os.PathLike)):
        return read_snapshot(snapshot)
    raise TypeError(f"snapshot must be a Snapshot, a dict or a path, not {type(snapshot).__name__}")


class Emulator:
    """The emulator: state, credentials, faults and request counts, served by ``start()``.

    With no ``authorized_keys``, no ``tokens`` and ``accept_any_key=False`` every API request is refused
    with 401 (the control endpoints still work, so a test can still inspect state).
    """

    def __init__(
        self,
        snapshot: Snapshot | Mapping[str, Any] | str | os.PathLike[str] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        authorized_keys: Sequence[str] = (),
        accept_any_key: bool = False,
        tokens: Sequence[str] = (),
        latency_ms: float = 0.0,
    ) -> None:
        self._api = Api()
        if snapshot is not None:
            self._api.load(_as_snapshot(snapshot))
        self._api.mint_token = self._mint_token
        self._host = host
        self._port = port
        self._authorized = frozenset(normalise_public_key(k) for k in authorized_keys)
        self._accept_any_key = accept_any_key
        for token in tokens:
            if not isinstance(token, str) or not token.strip() or any(c.isspace() for c in token):
                raise ValueError("a bearer token must be a non-empty string without whitespace")
        self._tokens: set[str] = set(tokens)
        self._meta_lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._total = 0
        self._faults = Faults.parse({"latency_ms": latency_ms})
        self._rng = random.Random()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._url: str | None = None

    # ---- lifecycle -----------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:PORT`` (the SDK's ``domain``). Valid after ``start()``."""
        if self._url is None:
            raise RuntimeError("the emulator is not running; call start() first")
        return self._url

    def start(self) -> Emulator:
        """Bind and serve in a background thread. Raises ``OSError`` if the address cannot be bound."""
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        server = _Server((self._host, self._port), self, family)
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="encord-emulator", daemon=True
        )
        host, port = server.server_address[:2]
        host_text = host.decode() if isinstance(host, bytes) else str(host)
        self._url = f"http://[{host_text}]:{port}" if ":" in host_text else f"http://{host_text}:{port}"
        server.base_url = self._url
        self._server, self._thread = server, thread
        thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close open connections and the listening socket. Safe to call twice."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join()
        self._server = self._thread = None
        self._url = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ---- state, counts, faults -----------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """A deep copy of the current state."""
        return self._api.snapshot()

    def load(self, snapshot: Snapshot | Mapping[str, Any] | str | os.PathLike[str]) -> None:
        """Replace the whole state (schema, folders, items). Page tokens issued before are refused.

        Raises:
            ValueError: a snapshot with malformed or duplicate UUIDs, unknown parents or item types.
        """
        self._api.load(_as_snapshot(snapshot))

    def request_counts(self) -> dict[str, Any]:
        """``{"total": N, "by_route": {"GET storage/folders/{uuid}/items": n, ...}}`` (routes sorted)."""
        with self._meta_lock:
            return {"total": self._total, "by_route": dict(sorted(self._counts.items()))}

    def reset_counts(self) -> None:
        with self._meta_lock:
            self._counts.clear()
            self._total = 0

    def set_faults(self, **faults: Any) -> None:
        """Replace the fault settings (fields of :class:`Faults`; omitted fields go back to no fault).

        Raises:
            ValueError: an unknown field or a value out of range.
        """
        parsed = Faults.parse(faults)
        with self._meta_lock:
            self._faults = parsed
            self._rng = random.Random(parsed.seed)

    def faults(self) -> Faults:
        with self._meta_lock:
            return self._faults

    def set_modes(self, **modes: Any) -> None:
        """Replace the unconfirmed-behaviour switches (fields of :class:`Modes`; omitted ones go back to the
        default guess).

        Raises:
            ValueError: an unknown field or a value of the wrong kind.
        """
        parsed = Modes.parse(modes)
        with self._api.lock:
            self._api.modes = parsed

    def modes(self) -> Modes:
        return self._api.modes  # immutable, replaced whole: no lock needed to read it

    # ---- used by the request handler -----------------------------------------------------------------

    def _count(self, route: str) -> None:
        with self._meta_lock:
            self._counts[route] += 1
            self._total += 1

    def _draw_fault(self) -> tuple[float, str | None]:
        with self._meta_lock:
            f = self._faults
            if not (f.rate_drop or f.rate_429 or f.rate_503):
                return f.latency_ms / 1000.0, None
            u = self._rng.random()
        fault = None
        if u < f.rate_drop:
            fault = "drop"
        elif u < f.rate_drop + f.rate_429:
            fault = "429"
        elif u < f.rate_drop + f.rate_429 + f.rate_503:
            fault = "503"
        return f.latency_ms / 1000.0, fault

    def _authenticate_v1(self, handler: _Handler, body: bytes) -> None:
        """Check a v1 call's ``Authorization`` (bearer, or ``<key hex>:<signature hex>``); raise AuthError."""
        authorization = handler.headers.get("Authorization")
        if not authorization:
            raise AuthError("missing credentials: the v1 API needs an Authorization header")
        if authorization.strip().lower().startswith("bearer "):
            with self._meta_lock:
                tokens = frozenset(self._tokens)
            check_bearer(authorization, tokens)
            return
        verify_v1_signature(authorization, body, None if self._accept_any_key else self._authorized)

    def _mint_token(self) -> str:
        token = secrets.token_urlsafe(32)
        with self._meta_lock:
            self._tokens.add(token)
        return token

    def _authenticate(self, handler: _Handler, body: bytes) -> str:
        """Return ``"bearer"`` or ``"signature"``, or raise AuthError."""
        headers = handler.headers
        authorization = headers.get("Authorization")
        if authorization is not None:
            with self._meta_lock:
                tokens = frozenset(self._tokens)
            check_bearer(authorization, tokens)
            return "bearer"
        if headers.get("Signature-Input") is None and headers.get("Signature") is None:
            raise AuthError(
                "missing credentials: send 'Authorization: Bearer <token>' or an Ed25519 request signature"
            )
        verify_signature(
            method=handler.command,
            request_target=handler.path,
            digest=headers.get("Content-Digest"),
            signature_input=headers.get("Signature-Input"),
            signature=headers.get("Signature"),
            body=body,
            authorized_keys=None if self._accept_any_key else self._authorized,
            now=time.time(),
        )
        return "signature"


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Server(ThreadingHTTPServer):
    """A threading HTTP server that remembers open connections so ``stop()`` can close them."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], emulator: Emulator, family: socket.AddressFamily) -> None:
        self.address_family = family
        self.emulator = emulator
        self.base_url = ""
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut down every open client connection; their handler threads then see EOF and exit."""
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("emulator: error while serving %s", client_address, exc_info=True)


def _answer_bytes(body: object) -> bytes:
    """An answer's JSON text: orjson's (compact, UTF-8), or the standard library's for what orjson refuses
    (an integer beyond 64 bits, a key that is not a string)."""
    try:
        return orjson.dumps(body)
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(body).encode("utf-8")


class _Handler(BaseHTTPRequestHandler):
    """One connection: routes ``/v2/public/...`` to the API and ``/_emulator/...`` to the controls."""

    protocol_version = "HTTP/1.1"
    server_version = "reconciler-encord-emulator"
    sys_version = ""
    timeout = IDLE_TIMEOUT_S
    # Headers and body leave in one write (flushed after each request), and without Nagle's delay: two
    # small writes per answer would otherwise meet the client's delayed ACK and cost ~40 ms each.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("emulator: " + format, *args)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_OPTIONS(self) -> None:
        self._dispatch()

    # ---- plumbing ------------------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
            return self._read_chunked()
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            n = int(length)
        except ValueError:
            raise _BadRequest(400, "malformed Content-Length") from None
        if n < 0:
            raise _BadRequest(400, "malformed Content-Length")
        if n > MAX_BODY_BYTES:
            raise _BadRequest(413, f"request body over {MAX_BODY_BYTES} bytes")
        data = self.rfile.read(n)
        if len(data) != n:
            raise _BadRequest(400, "request body shorter than Content-Length")
        return data

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BadRequest(400, "malformed chunked body") from None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            total += size
            if total > MAX_BODY_BYTES:
                raise _BadRequest(413, f"request body over {MAX_BODY_BYTES} bytes")
            parts.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def _send(self, resp: Response) -> None:
        data = b"" if resp.body is NO_BODY else _answer_bytes(resp.body)
        self._send_raw(resp.status, data, resp.headers, json_body=resp.body is not NO_BODY)

    def _send_raw(self, status: int, data: bytes, headers: Mapping[str, str], *, json_body: bool) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if json_body:
            self.send_header("Content-Type", "application/json")
        if status != 204:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        self._send(Response(status, {"message": message}, dict(headers or {})))

    def _dispatch(self) -> None:
        try:
            try:
                body = self._read_body()
            except _BadRequest as exc:
                self.close_connection = True
                self._error(exc.status, str(exc))
                return
            path = self.path.partition("?")[0]
            if path.startswith(_CONTROL_PREFIX):
                self._control(path[len(_CONTROL_PREFIX) :], body)
            elif path.startswith(API_PREFIX):
                self._api_request(path, body)
            elif path == V1_PATH:
                self._v1_request(body)
            else:
                self._error(404, f"not found: {path} (the API is served under {API_PREFIX})")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:  # a server must answer 500, not die; the traceback goes to the log
            logger.exception("emulator: internal error on %s %s", self.command, self.path)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._error(500, "internal emulator error (see the emulator's log)")

    # ---- the API -------------------------------------------------------------------------------------

    def _faulted(self, body: bytes) -> bool:
        """Wait the latency, then answer an injected fault or a body over ``max_body_bytes``; True if done."""
        emu = self.server.emulator
        latency, fault = emu._draw_fault()
        if latency > 0:
            time.sleep(latency)
        if fault == "drop":
            self.close_connection = True  # no answer at all: the client sees the connection close
            return True
        if fault == "429":
            retry_after = str(emu.faults().retry_after_s)
            self._error(429, "rate limit exceeded (emulated fault)", {"Retry-After": retry_after})
            return True
        if fault == "503":
            self._error(503, "service unavailable (emulated fault)")
            return True
        cap = emu.modes().max_body_bytes
        if cap is not None and len(body) > cap:
            self._error(413, f"request body of {len(body)} bytes is over the limit of {cap} bytes")
            return True
        return False

    def _v1_request(self, body: bytes) -> None:
        """``POST /public``: the legacy dataset querier, answered in its ``{"status", "response"}`` envelope."""
        emu = self.server.emulator
        emu._count(v1_route_name(body))
        if self._faulted(body):
            return
        if self.command != "POST":
            self._error(405, f"method {self.command} not allowed here", {"Allow": "POST"})
            return
        try:
            emu._authenticate_v1(self, body)
        except AuthError as exc:
            self._send(Response(200, V1Error(401, "AUTHENTICATION_ERROR", str(exc)).envelope()))
            return
        resource_type = self.headers.get("ResourceType") or ""
        resource_id = self.headers.get("ResourceID") or ""
        now = datetime.now(timezone.utc).isoformat()
        try:
            with emu._api.lock:
                merges = emu._api.modes.patch_merges
                answer = handle_v1(emu._api.state, resource_type, resource_id, body, now, merges=merges)
        except V1Error as exc:
            self._send(Response(200, exc.envelope()))
            return
        self._send(Response(200, {"status": 200, "response": answer}))

    def _api_request(self, path: str, body: bytes) -> None:
        emu = self.server.emulator
        method = self.command
        sub_path = unquote(path[len(API_PREFIX) :])
        emu._count(route_name(method, sub_path))
        if self._faulted(body):
            return
        api = emu._api
        try:
            handler, args = api.route(method, sub_path)
            try:
                auth_kind = emu._authenticate(self, body)
            except AuthError as exc:
                self._error(401, str(exc))
                return
            query = parse_query(self.path.partition("?")[2])
            resp = handler(api, Request(method, sub_path, args, query, body, self.server.base_url, auth_kind))
        except ApiError as exc:
            resp = Response(exc.status, {"message": exc.message}, exc.headers)
        self._send(resp)

    # ---- control endpoints ---------------------------------------------------------------------------

    def _control(self, name: str, body: bytes) -> None:
        emu = self.server.emulator
        method = self.command
        allowed: dict[str, tuple[str, ...]] = {
            "state": ("GET", "PUT"),
            "requests": ("GET", "DELETE"),
            "faults": ("GET", "PUT"),
            "modes": ("GET", "PUT"),
        }
        if name.startswith("client-metadata/"):
            allowed[name] = ("GET",)
        if name not in allowed:
            self._error(404, f"no such control endpoint: /_emulator/{name}")
            return
        if method not in allowed[name]:
            self._error(405, f"method {method} not allowed here", {"Allow": ", ".join(allowed[name])})
            return
        if name == "state" and method == "GET":
            self._send(Response(200, emu._api.state_json()))
        elif name == "state":
            self._put_state(body)
        elif name == "requests" and method == "GET":
            self._send(Response(200, emu.request_counts()))
        elif name == "requests":
            emu.reset_counts()
            self._send(Response(204))
        elif name == "faults" and method == "GET":
            self._send(Response(200, emu.faults().to_json()))
        elif name == "faults":
            self._put_faults(body)
        elif name == "modes" and method == "GET":
            self._send(Response(200, emu.modes().to_json()))
        elif name == "modes":
            self._put_modes(body)
        else:
            self._metadata_blob(name.partition("/")[2])

    def _put_faults(self, body: bytes) -> None:
        emu = self.server.emulator
        self._put_settings(body, "faults", emu.set_faults, lambda: emu.faults().to_json())

    def _put_modes(self, body: bytes) -> None:
        emu = self.server.emulator
        self._put_settings(body, "modes", emu.set_modes, lambda: emu.modes().to_json())

    def _put_settings(
        self, body: bytes, what: str, apply: Callable[..., object], current: Callable[[], object]
    ) -> None:
        """``PUT /_emulator/faults`` and ``/modes``: a JSON object of settings, answered with them all."""
        try:
            data = json.loads(body.decode("utf-8")) if body else {}
        except (UnicodeDecodeError, ValueError):
            self._error(400, "malformed JSON body")
            return
        if not isinstance(data, dict):
            self._error(400, f"{what} must be a JSON object")
            return
        try:
            apply(**data)
        except ValueError as exc:
            self._error(400, str(exc))
            return
        self._send(Response(200, current()))

    def _put_state(self, body: bytes) -> None:
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        suffix = ".jsonl" if content_type in ("application/x-ndjson", "application/jsonl") else ".json"
        # read_snapshot reads files; going through one keeps a single validator for every snapshot.
        fd, tmp = tempfile.mkstemp(suffix=suffix, prefix="emulator-state-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(body)
            try:
                snapshot = read_snapshot(tmp)
            except SnapshotError as exc:
                self._error(400, str(exc).replace(tmp, "<request body>"))
                return
        finally:
            os.unlink(tmp)
        try:
            self.server.emulator.load(snapshot)
        except ValueError as exc:
            self._error(400, f"invalid state: {exc}")
            return
        self._send(Response(204))

    def _metadata_blob(self, raw_id: str) -> None:
        """What a ``clientMetadataSignedUrl`` points at: the item's metadata as a JSON document.

        Like a cloud bucket's signed URL, it refuses requests that carry credentials (400): a client must not
        send its Encord key or token to the storage host.
        """
        if any(
            self.headers.get(h) for h in ("Authorization", "Signature", "Signature-Input", "Content-Digest")
        ):
            self._error(400, "a signed URL must be fetched without credentials (Authorization or Signature)")
            return
        try:
            item_id = canonical_uuid(raw_id)
        except ValueError:
            self._error(404, "no such item")
            return
        text = self.server.emulator._api.item_metadata_json(item_id)
        if text is None:
            self._error(404, "no such item")
            return
        self._send_raw(200, text.encode("utf-8"), {}, json_body=True)


# ---- command line ----------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reconciler.testing.emulator",
        description="Serve an emulated Encord v2 public API. Prints the base URL as the first line of stdout.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind (default 0: any free port)")
    parser.add_argument("--state", metavar="SNAPSHOT", help="a snapshot file (.json or .jsonl) to serve")
    keys = parser.add_mutually_exclusive_group()
    keys.add_argument(
        "--authorized-key",
        action="append",
        default=[],
        metavar="PUBHEX",
        help="accept signatures from this Ed25519 public key (64 hex characters, or an 'ssh-ed25519 ...' "
        "line); repeatable",
    )
    keys.add_argument("--accept-any-key", action="store_true", help="accept a valid signature from any key")
    parser.add_argument("--token", action="append", default=[], metavar="T", help="accept this bearer token")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="wait this long before every answer")
    return parser


def bind_warning(host: str) -> str | None:
    """The warning for serving on ``host`` when it is not a loopback address (``None`` for loopback)."""
    if host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host.strip("[]")).is_loopback:
            return None
    except ValueError:  # a host name: it may resolve to anything
        pass
    return (
        f"warning: the emulator is listening on {host}, not on a loopback address: other machines can reach it, "
        "and it accepts the credentials it was given from anyone (use --host 127.0.0.1 unless you mean it)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until SIGINT or SIGTERM; returns the exit code (0, 1 bad state or bind, 2 usage)."""
    args = _parser().parse_args(argv)
    if not (args.authorized_key or args.accept_any_key or args.token):
        sys.stderr.write(
            "error: no credentials configured; pass --authorized-key PUBHEX, --token T or --accept-any-key "
            "(the emulator refuses to serve an API that nobody can, or anybody could, use by accident)\n"
        )
        return 2
    snapshot = None
    if args.state:
        try:
            snapshot = read_snapshot(args.state)
        except SnapshotError as exc:
            sys.stderr.write(f"error: {exc}\n")
            return 1
    try:
        emulator = Emulator(
            host=args.host,
            port=args.port,
            authorized_keys=args.authorized_key,
            accept_any_key=args.accept_any_key,
            tokens=args.token,
            latency_ms=args.latency_ms,
        )
    except ValueError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    if snapshot is not None:
        try:
            emulator.load(snapshot)
        except ValueError as exc:
            sys.stderr.write(f"error: {args.state}: {exc}\n")
            return 1
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            emulator.start()
        except OSError as exc:
            sys.stderr.write(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}\n")
            return 1
        warning = bind_warning(args.host)
        if warning is not None:
            sys.stderr.write(warning + "\n")
            sys.stderr.flush()
        sys.stdout.write(emulator.url + "\n")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
        emulator.stop()
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
