"""The HTTP layer of the Encord provider: one ``httpx.Client``, the SDK's wire format, retries, error mapping.

Requests are built the way the Encord SDK 0.1.211 builds them (encord-api.md §1): ``v2/public/`` paths, query
parameters in the SDK's order with booleans as ``True``/``False``, JSON bodies from ``json.dumps`` defaults.
Every request is counted in :class:`~reconciler.providers.base.CallStats`. Failures become one-line
``ProviderError`` messages that never contain headers, keys or tokens.
"""

from __future__ import annotations

import email.utils
import functools
import heapq
import ipaddress
import json
import logging
import math
import random
import re
import threading
import time
import urllib.parse
import uuid as uuid_mod
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

from reconciler._version import __version__
from reconciler.errors import (
    ProviderAuthError,
    ProviderConflictError,
    ProviderConnectionError,
    ProviderResponseError,
    UsageError,
)
from reconciler.jsonio import loads, loads_noting_strings
from reconciler.providers.base import CallStats
from reconciler.redact import redact_url

__all__ = [
    "DEADLINE_ENV",
    "DEFAULT_DEADLINE",
    "DEFAULT_DOMAIN",
    "MAX_RESPONSE_BYTES",
    "PAGE_TOKEN",
    "US_DOMAIN",
    "EncodedBody",
    "EncordClient",
    "PayloadTooLargeError",
    "QueryParams",
    "RetryPolicy",
    "normalize_domain",
    "parse_retry_after",
    "retry_policy_from_env",
]

logger = logging.getLogger(__name__)

DEFAULT_DOMAIN: Final = "https://api.encord.com"
US_DOMAIN: Final = "https://api.us.encord.com"
_API_PREFIX: Final = "/v2/public/"

#: Where :meth:`EncordClient.pages` puts ``pageToken`` in a parameter list (dropped on the first page).
PAGE_TOKEN: Final = "\x00pageToken"


@dataclass(frozen=True)
class EncodedBody:
    """A request body the caller has already serialised exactly as :meth:`EncordClient.call` would."""

    content: bytes


#: Query parameters in wire order; booleans are sent as ``True``/``False`` like the SDK.
QueryParams = Sequence[tuple[str, "str | int | bool"]]

_MAX_MESSAGE = 300

#: ``json.dumps(value, allow_nan=False)`` (one encoder, not one per call).
_sdk_json: Callable[[Any], str] = json.JSONEncoder(allow_nan=False).encode

#: Largest answer read from the server (a page of 1000 items with 4096-d embeddings is ~80 MiB); a larger
#: one is refused while it streams in, so a broken or hostile server cannot exhaust memory.
MAX_RESPONSE_BYTES: Final = 256 * 1024 * 1024


#: Seconds one request may take in all, retries and backoff included (``RetryPolicy.deadline``).
DEFAULT_DEADLINE: Final = 300.0


class PayloadTooLargeError(ProviderResponseError):
    """Encord answered 413: the request body was larger than it accepts (the caller may split it)."""


def _full_jitter(cap: float) -> float:
    return random.uniform(0.0, cap)  # backoff jitter, not cryptography


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before retrying a request.

    Retried: statuses in ``retry_statuses`` and connection failures (refused, reset, dropped, timed out).
    The wait before retry *n* (1-based) is ``jitter(min(max_delay, base_delay * 2 ** (n - 1)))`` ("full
    jitter": a uniform draw in ``[0, cap]``), or the server's ``Retry-After`` (seconds or an HTTP date,
    capped at ``max_retry_after``) when the response carries one. A request gives up after ``max_attempts``
    attempts, or when the next wait would take the total waiting past ``max_total_sleep`` seconds.

    ``deadline`` bounds one request in all: its attempts, their connect/read/write timeouts (each attempt's
    timeouts are cut to the time left), reading the answer, and the backoff between attempts. A request
    still without a complete answer ``warn_after`` seconds into an attempt (default: a quarter of the
    deadline, at most 15 s) logs one warning that it is still waiting.
    ``sleep``, ``jitter``, ``clock`` and ``monotonic`` are injectable so tests can check the schedule
    without waiting.
    """

    max_attempts: int = 6
    base_delay: float = 1.0
    max_delay: float = 30.0
    max_retry_after: float = 60.0
    max_total_sleep: float = 120.0
    deadline: float = DEFAULT_DEADLINE
    warn_after: float | None = None
    retry_statuses: frozenset[int] = frozenset({429, 500, 502, 503, 504})
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    jitter: Callable[[float], float] = field(default=_full_jitter, repr=False)
    clock: Callable[[], float] = field(default=time.time, repr=False)
    monotonic: Callable[[], float] = field(default=time.monotonic, repr=False)

    @property
    def warn_delay(self) -> float:
        return self.warn_after if self.warn_after is not None else min(15.0, self.deadline / 4)

    def delay(self, retry: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        cap = min(self.max_delay, self.base_delay * (2.0 ** (retry - 1)))
        return min(max(self.jitter(cap), 0.0), cap)


#: The environment variable that sets ``RetryPolicy.deadline`` (seconds) for the CLI.
DEADLINE_ENV: Final = "RECONCILER_REQUEST_DEADLINE"


def retry_policy_from_env(env: Mapping[str, str]) -> RetryPolicy:
    """The retry policy, with the total deadline per request from ``RECONCILER_REQUEST_DEADLINE`` if set.

    Raises:
        UsageError: a value that is not a number of seconds greater than 0.
    """
    raw = env.get(DEADLINE_ENV)
    if raw is None or not raw.strip():
        return RetryPolicy()
    try:
        deadline = float(raw)
    except ValueError:
        deadline = math.nan
    if not math.isfinite(deadline) or deadline <= 0:
        raise UsageError(f"{DEADLINE_ENV}={raw!r}: expected a number of seconds greater than 0")
    return RetryPolicy(deadline=deadline)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds from ``now``: delta-seconds or an HTTP date; ``None`` if absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if seconds == seconds and seconds != float("inf") else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(when.timestamp() - now, 0.0)


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalize_domain(domain: str | None, *, allow_insecure_http: bool = False) -> str:
    """The API origin (``scheme://host[:port]``) for a configured domain; ``None`` means the default.

    Raises:
        UsageError: not an http(s) URL, a URL with a path, query or credentials, or plain ``http://`` to a
            host that is not loopback (127.0.0.0/8, ``localhost``, ``::1``) without ``allow_insecure_http``.
    """
    raw = (domain or DEFAULT_DOMAIN).strip().rstrip("/")
    shown = redact_url(raw)  # messages never repeat a password or token typed into the URL
    try:
        parts = urllib.parse.urlsplit(raw)
        host = parts.hostname
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"Encord domain {shown!r} is not a valid URL") from exc
    if parts.username is not None or parts.password is not None:
        raise UsageError(
            "the Encord domain must not contain credentials (user:password@); "
            "use ENCORD_SSH_KEY_FILE, ENCORD_SSH_KEY or ENCORD_API_TOKEN"
        )
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or not host:
        raise UsageError(f"Encord domain {shown!r} must be an https:// URL, such as {DEFAULT_DOMAIN}")
    if parts.path or parts.query or parts.fragment:
        raise UsageError(
            f"Encord domain {shown!r} must be an origin without a path, such as {DEFAULT_DOMAIN} "
            "(the API is always served under /v2/public/)"
        )
    if scheme == "http" and not allow_insecure_http and not _is_loopback(host):
        raise UsageError(
            f"refusing plain http:// for Encord domain {shown!r}: credentials and metadata would travel "
            "unencrypted; use https:// (http:// is allowed only for loopback hosts such as 127.0.0.1)"
        )
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return f"{scheme}://{netloc.lower()}"


def _query_value(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


def _canonical_uuid(value: str) -> str:
    try:
        return str(uuid_mod.UUID(value))
    except (ValueError, TypeError, AttributeError) as exc:
        raise ProviderConflictError(f"{value!r} is not a UUID") from exc


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def _server_message(response: httpx.Response) -> str | None:
    """The server's ``message`` or ``detail`` (FastAPI), as one short line; ``None`` if there is none."""
    try:
        body = loads(response.content)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    detail = body.get("message") or body.get("detail")
    if detail is None:
        return None
    if isinstance(detail, list):
        parts = []
        for entry in detail:
            if isinstance(entry, dict) and "msg" in entry:
                loc = ".".join(str(p) for p in entry.get("loc") or ())
                parts.append(f"{loc}: {entry['msg']}" if loc else str(entry["msg"]))
            else:
                parts.append(json.dumps(entry))
        text = "; ".join(parts)
    elif isinstance(detail, str):
        text = detail
    else:
        text = json.dumps(detail)
    return _one_line(text) or None


_RETRYABLE_TRANSPORT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


class _Ahead:
    """``fn(arg, self)`` on a daemon thread (a process that exits does not wait for it); :meth:`result` is its
    value or raises its exception. :attr:`wanted` is set once a caller waits for the value."""

    def __init__(self, fn: Callable[[Any, _Ahead], Any], arg: Any) -> None:
        self.arg = arg
        self.wanted = threading.Event()
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn, arg), name="page-ahead", daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[Any, _Ahead], Any], arg: Any) -> None:
        try:
            self._value = fn(arg, self)
        except BaseException as exc:  # handed to the caller of result()
            self._error = exc

    def join(self) -> None:
        self._thread.join()

    def result(self) -> Any:
        self.wanted.set()
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


#: Seconds without a request after which the watchdog's thread ends.
_WATCHDOG_IDLE = 2.0


class _Watchdog:
    """One daemon thread that calls ``fn(*args)`` for every entry not cancelled by its time: what a
    ``threading.Timer`` per request did, without starting a thread (and waiting for it to run) per request."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._live: set[int] = set()
        self._count = 0
        self._closing = False
        self._thread: threading.Thread | None = None

    def add(self, delay: float, fn: Callable[..., None], args: tuple[Any, ...]) -> int:
        with self._cond:
            self._count += 1
            key = self._count
            when = time.monotonic() + delay
            first = not self._heap or when < self._heap[0][0]
            heapq.heappush(self._heap, (when, key, fn, args))
            self._live.add(key)
            self._closing = False
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="request-watchdog", daemon=True)
                self._thread.start()
            elif first:
                self._cond.notify()
        return key

    def cancel(self, key: int) -> None:
        with self._cond:
            self._live.discard(key)

    def stop(self) -> None:
        """Drop every entry and end the thread (another starts if an entry is added again)."""
        with self._cond:
            self._heap.clear()
            self._live.clear()
            self._closing = True
            thread = self._thread
            self._cond.notify()
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    heap = self._heap
                    while heap and heap[0][1] not in self._live:
                        heapq.heappop(heap)
                    if not heap:
                        if not self._closing:
                            self._cond.wait(_WATCHDOG_IDLE)
                        if not self._heap:  # idle, or stopped: the thread ends
                            self._thread = None
                            self._closing = False
                            return
                        continue
                    wait = heap[0][0] - time.monotonic()
                    if wait <= 0:
                        _, key, fn, args = heapq.heappop(heap)
                        self._live.discard(key)
                        break
                    self._cond.wait(wait)
            fn(*args)


#: A page's ``nextPageToken`` as the last member of the answer (where Encord and the emulator write it), read
#: from the raw bytes so that the next page can be asked for before this one is decoded. Only plain token
#: characters: anything else waits for the decoded answer.
_NEXT_TOKEN = re.compile(rb'"nextPageToken"\s*:\s*"([A-Za-z0-9_.~+/=-]{1,4096})"\s*}\s*\Z')
#: How far from the end of an answer :data:`_NEXT_TOKEN` is looked for.
_TOKEN_TAIL = 4200
#: Whether a listing asks for its next page as soon as the token is in the raw answer (tests compare both ways).
PEEK_NEXT_TOKEN = True


def _http_client(**options: Any) -> httpx.Client:
    """``httpx.Client(**options)``; a proxy setting in the environment that httpx cannot use (a SOCKS proxy
    without socksio, an unknown scheme, a malformed URL) is ProviderConnectionError, in a line that does not
    quote the setting (a proxy URL may hold a password)."""
    try:
        return httpx.Client(**options)
    except ImportError as exc:
        raise ProviderConnectionError(
            "the proxy in the environment (HTTPS_PROXY / ALL_PROXY) is a SOCKS proxy, which needs the socksio "
            "package: pip install 'httpx[socks]', or unset it"
        ) from exc
    except (ValueError, httpx.InvalidURL) as exc:
        raise ProviderConnectionError(
            "the proxy in the environment (HTTPS_PROXY / HTTP_PROXY / ALL_PROXY, any case) is not a URL httpx "
            "can use (http://, https:// or socks5://HOST:PORT); fix or unset it"
        ) from exc


class EncordClient:
    """One keep-alive connection pool to an Encord API domain, safe to share between threads."""

    def __init__(
        self,
        domain: str,
        auth: httpx.Auth,
        *,
        parallelism: int = 4,
        allow_insecure_http: bool = False,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        stats: CallStats | None = None,
        timeout: httpx.Timeout | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        self.domain = normalize_domain(domain, allow_insecure_http=allow_insecure_http)
        self.max_response_bytes = max_response_bytes
        self.retry = retry or RetryPolicy()
        self.stats = stats if stats is not None else CallStats()
        self._stats_lock = threading.Lock()
        size = max(1, parallelism)
        # pool=None: a thread waits for a free connection instead of failing (the deadline still bounds
        # it); the caller's parallelism bounds how many wait.
        self._timeout = timeout or httpx.Timeout(connect=30.0, read=120.0, write=120.0, pool=None)
        self._http = _http_client(
            auth=auth,
            transport=transport,
            timeout=self._timeout,
            limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
            headers={"User-Agent": f"reconciler/{__version__} python-httpx/{httpx.__version__}"},
            # Redirects are never followed: the token or signature stays with the origin configured.
            follow_redirects=False,
            # https: proxies and SSL_CERT_FILE from the environment (verification stays on). Plain http
            # (loopback, or an explicit allow_insecure_http) never goes through a proxy, which would see
            # the credentials in clear: the environment is not consulted at all.
            trust_env=not self.domain.startswith("http://"),
        )
        #: Warns of requests still waiting for their answer (``RetryPolicy.warn_delay``).
        self._watchdog = _Watchdog()
        #: For signed URLs (no credentials at all); made on first use.
        self._blob_http: httpx.Client | None = None
        self._timeout = timeout or httpx.Timeout(connect=30.0, read=120.0, write=120.0, pool=None)
        self._parallelism = size

    def close(self) -> None:
        self._http.close()
        self._watchdog.stop()
        with self._stats_lock:
            blob, self._blob_http = self._blob_http, None
        if blob is not None:
            blob.close()

    def __enter__(self) -> EncordClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests ---------------------------------------------------------------------------------------------

    def call(
        self,
        method: str,
        route: str,
        *path_args: str,
        params: QueryParams = (),
        body: Any = None,
        write: bool = False,
        parse: bool = True,
        plain_strings: list[bool] | None = None,
        on_body: Callable[[bytes], None] | None = None,
    ) -> Any:
        """Send one API call (with retries) and return its parsed JSON (``None`` for 204).

        ``on_body`` hears a 200 answer's bytes before they are decoded.

        ``plain_strings`` (a list) gets one flag appended for a decoded answer: whether each string in it
        may be decoded as JSON without the long-integer check (:func:`reconciler.jsonio.loads_noting_strings`).

        ``parse=False`` is for answers the caller ignores (a ``patch-bulk`` echoes every written item, 13 MB
        for 10,000 files): a 200 body is checked to be a JSON object at its ends, not decoded, and ``None``
        is returned.

        ``route`` is a path under ``v2/public/`` with ``{uuid}`` placeholders filled from ``path_args`` in
        order (e.g. ``"storage/folders/{uuid}/items"``); ``METHOD route`` is how the call is counted and named.
        ``body`` (when not ``None``) is sent as JSON exactly as the SDK serialises it. ``write`` counts the call
        as a write.

        Raises:
            ProviderAuthError: 401.
            ProviderConflictError: 403 or 404 (no such, or no access to, the file or folder).
            ProviderResponseError: any other refusal, or a success body that is not JSON.
            ProviderConnectionError: the retry budget ran out, or the server could not be reached.
        """
        pieces = route.split("{uuid}")
        assert len(pieces) == len(path_args) + 1, f"route {route!r} takes {len(pieces) - 1} path argument(s)"
        path = pieces[0] + "".join(_canonical_uuid(a) + p for a, p in zip(path_args, pieces[1:], strict=True))
        query = urllib.parse.urlencode([(k, _query_value(v)) for k, v in params])
        url = self.domain + _API_PREFIX + path + ("?" + query if query else "")
        headers: dict[str, str] = {}
        content: bytes | None = None
        if isinstance(body, EncodedBody):
            content = body.content
            headers["Content-Type"] = "application/json"
        elif body is not None:
            try:
                # The SDK's bytes: requests' json.dumps defaults (", " and ": ", ASCII escapes).
                content = _sdk_json(body).encode("ascii")
            except (TypeError, ValueError) as exc:
                raise ProviderResponseError(
                    f"{method} {path}: the request body is not valid JSON: {exc}"
                ) from exc
            headers["Content-Type"] = "application/json"
        name = f"{method} {route}"
        desc = f"{method} {path}"
        response = self._send_with_retries(method, url, content, headers, name, desc, write)
        if on_body is not None and response.status_code == 200:
            on_body(response.content)
        if not parse and response.status_code == 200:
            body_bytes = response.content
            if body_bytes.lstrip()[:1] == b"{" and body_bytes.rstrip()[-1:] == b"}":
                return None
        return self._parse(response, desc, plain_strings)

    def pages(
        self,
        route: str,
        *path_args: str,
        params: QueryParams,
        max_pages: int = 1_000_000,
        plain_strings: list[bool] | None = None,
    ) -> Generator[list[Any], None, None]:
        """Follow a paged listing: yield each page's ``results`` until ``nextPageToken`` is null.

        ``params`` must hold ``(PAGE_TOKEN, "")`` where the SDK puts ``pageToken`` (left out on page one).
        ``plain_strings`` gets each page's flag (see :meth:`call`) appended before the page is yielded.
        The next page is asked for (on a helper thread) as soon as a page's answer is in, while the caller
        reads that page: still one request at a time per listing (each needs the token of the one before).

        Raises:
            ProviderResponseError: a page that is not ``{"results": [...]}``, or a ``nextPageToken`` that is
                empty or repeats (a client following it would loop forever).
        """
        where = f"GET {route}"
        seen: set[str] = set()

        def fetch(token: str | None, me: _Ahead | None, number: int = 1) -> tuple[Any, bool, _Ahead | None]:
            """Page ``number`` (after ``token``): its answer, its flag, and the next page's request if that
            was made as soon as this answer was in (only while the caller already waits for this page, so
            that no listing runs more than a page ahead of its reader; checked against the decoded answer)."""
            page_params: list[tuple[str, str | int | bool]] = [
                ("pageToken", token or "") if k == PAGE_TOKEN else (k, v)
                for k, v in params
                if k != PAGE_TOKEN or token is not None
            ]
            flags: list[bool] | None = [] if plain_strings is not None else None
            early: list[_Ahead] = []

            def peek(body: bytes) -> None:
                if number >= max_pages or (me is not None and not me.wanted.is_set()):
                    return
                m = _NEXT_TOKEN.search(body, max(0, len(body) - _TOKEN_TAIL))
                if m is not None:
                    nxt = m.group(1).decode("ascii")
                    if nxt != token and nxt not in seen:
                        early.append(_Ahead(functools.partial(fetch, number=number + 1), nxt))

            try:
                page = self.call(
                    "GET",
                    route,
                    *path_args,
                    params=page_params,
                    plain_strings=flags,
                    on_body=peek if PEEK_NEXT_TOKEN else None,
                )
            except BaseException:
                for pending in early:
                    pending.join()  # (no request left running behind an answer that failed)
                raise
            return page, bool(flags and flags[0]), (early[0] if early else None)

        ahead: _Ahead | None = None
        early: _Ahead | None = None
        try:
            page, plain, early = fetch(None, None)
            for fetched in range(1, max_pages + 1):
                if not isinstance(page, dict) or not isinstance(page.get("results"), list):
                    raise ProviderResponseError(f"{where}: Encord answered a page without a 'results' list")
                results = page["results"]
                if plain_strings is not None:
                    plain_strings.append(plain)
                nxt = page.get("nextPageToken", page.get("next_page_token"))
                if nxt is None:
                    yield results
                    return
                if not isinstance(nxt, str) or not nxt:
                    yield results
                    raise ProviderResponseError(
                        f"{where}: Encord answered nextPageToken {nxt!r}; only null ends a listing, so "
                        "following it would never stop"
                    )
                if nxt in seen:
                    yield results
                    raise ProviderResponseError(f"{where}: Encord answered the same nextPageToken twice")
                seen.add(nxt)
                if fetched == max_pages:
                    yield results
                    break
                if early is not None and early.arg == nxt:
                    ahead, early = early, None  # (asked for already, with this very token)
                else:
                    if early is not None:  # (asked for with a token the decoded answer does not give)
                        early.join()
                        early = None
                    ahead = _Ahead(functools.partial(fetch, number=fetched + 1), nxt)
                yield results
                page, plain, early = ahead.result()
        finally:
            for pending in (ahead, early):
                if pending is not None:
                    pending.join()  # a caller that stops early leaves no request running behind it
        raise ProviderResponseError(f"GET {route}: more than {max_pages} pages")

    # -- internals --------------------------------------------------------------------------------------------

    def _count(self, name: str, *, write: bool) -> None:
        with self._stats_lock:
            self.stats.count(name, write=write)

    def _attempt_timeout(self, left: float) -> httpx.Timeout:
        """The client's timeouts, each cut to the ``left`` seconds of the request's deadline."""
        t = self._timeout

        def cut(value: float | None) -> float:
            return max(0.001, left if value is None else min(value, left))

        return httpx.Timeout(connect=cut(t.connect), read=cut(t.read), write=cut(t.write), pool=cut(t.pool))

    def _request_capped(
        self,
        method: str,
        url: str,
        content: bytes | None,
        headers: dict[str, str],
        desc: str,
        ends_at: float | None = None,
    ) -> httpx.Response:
        """Send one request and read its answer, refusing (while it streams in) one over the size cap.

        ``ends_at`` (``RetryPolicy.monotonic`` time) is the request's deadline: the attempt's timeouts are
        cut to it, and an answer still streaming in past it is abandoned (``httpx.ReadTimeout``).
        """
        cap = self.max_response_bytes
        now = self.retry.monotonic
        timeout = self._timeout if ends_at is None else self._attempt_timeout(ends_at - now())
        request = self._http.build_request(method, url, content=content, headers=headers, timeout=timeout)
        streamed = self._http.send(request, stream=True)
        try:
            declared = streamed.headers.get("Content-Length", "")
            too_big = declared.isdigit() and int(declared) > cap
            body = bytearray()
            if not too_big:
                for chunk in streamed.iter_bytes():
                    body += chunk
                    if len(body) > cap:
                        too_big = True
                        break
                    if ends_at is not None and now() > ends_at:
                        raise httpx.ReadTimeout("the answer was still streaming in at the deadline")
        finally:
            streamed.close()
        if too_big:
            raise ProviderResponseError(
                f"{desc}: Encord's answer is larger than {cap:,} bytes; refusing to read it "
                f"(is {self.domain} the Encord API?)"
            )
        # A complete, decoded copy (so the content-encoding no longer applies).
        headers_out = [
            (k, v)
            for k, v in streamed.headers.multi_items()
            if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        extensions = {k: v for k, v in streamed.extensions.items() if k in ("http_version", "reason_phrase")}
        return httpx.Response(
            streamed.status_code,
            headers=headers_out,
            content=bytes(body),
            request=request,
            extensions=extensions,
        )

    def _send_with_retries(
        self,
        method: str,
        url: str,
        content: bytes | None,
        headers: dict[str, str],
        name: str,
        desc: str,
        write: bool,
    ) -> httpx.Response:
        policy = self.retry
        slept = 0.0
        attempt = 0
        started = policy.monotonic()
        ends_at = started + policy.deadline
        while True:
            attempt += 1
            request_headers = {**headers, "X-Cloud-Trace-Context": f"{uuid_mod.uuid4().hex}/1;o=1"}
            self._count(name, write=write)
            retry_after: float | None = None
            waiting = self._watchdog.add(policy.warn_delay, self._still_waiting, (desc, started))
            try:
                response = self._request_capped(method, url, content, request_headers, desc, ends_at)
            except _RETRYABLE_TRANSPORT as exc:
                if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                    raise ProviderConnectionError(
                        f"cannot reach {self.domain}: TLS certificate verification failed "
                        "(for a private CA, point SSL_CERT_FILE at its certificate bundle)"
                    ) from exc
                last = f"{type(exc).__name__}: {_one_line(str(exc)) or 'no details'}"
                failure: BaseException | None = exc
            except httpx.HTTPError as exc:
                raise ProviderConnectionError(
                    f"{desc} at {self.domain} failed: {type(exc).__name__}: {_one_line(str(exc))}"
                ) from exc
            else:
                if response.status_code not in policy.retry_statuses:
                    return response
                last = f"{response.status_code} {response.reason_phrase}".strip()
                failure = None
                retry_after = parse_retry_after(response.headers.get("Retry-After"), policy.clock())
            finally:
                self._watchdog.cancel(waiting)
            wait = policy.delay(attempt, retry_after)
            if policy.monotonic() + wait >= ends_at:
                message = (
                    f"{desc} at {self.domain}: no complete answer within the {policy.deadline:g} s deadline "
                    f"({attempt} attempt(s); last: {last}); try again later"
                )
                if failure is not None:
                    raise ProviderConnectionError(message) from failure
                raise ProviderConnectionError(message)
            if attempt >= policy.max_attempts or slept + wait > policy.max_total_sleep:
                message = (
                    f"{desc} at {self.domain} still failing after {attempt} attempt(s) and {slept:.1f} s of "
                    f"backoff (last: {last}); try again later or lower parallelism"
                )
                if failure is not None:
                    raise ProviderConnectionError(message) from failure
                raise ProviderConnectionError(message)
            logger.info(
                "%s failed (%s); retry %d of %d in %.2f s", name, last, attempt, policy.max_attempts - 1, wait
            )
            policy.sleep(wait)
            slept += wait

    def _still_waiting(self, desc: str, started: float) -> None:
        waited = self.retry.monotonic() - started
        logger.warning(
            "%s at %s: no answer yet after %.1f s; still waiting (gives up %g s after it started)",
            desc,
            self.domain,
            waited,
            self.retry.deadline,
        )

    def _parse(self, response: httpx.Response, desc: str, plain_strings: list[bool] | None = None) -> Any:
        status = response.status_code
        if status == 204:
            return None
        if status == 200:
            try:
                if plain_strings is None:
                    return loads(response.content)
                value, plain = loads_noting_strings(response.content)
                plain_strings.append(plain)
                return value
            except ValueError as exc:
                ctype = response.headers.get("Content-Type", "").split(";")[0].strip() or "no content type"
                what = "an HTML page" if "html" in ctype else f"a body that is not JSON ({ctype})"
                if not response.content:
                    what = "an empty body"
                raise ProviderResponseError(
                    f"{desc}: Encord answered 200 with {what} ({len(response.content)} bytes); "
                    f"is {self.domain} the Encord API?"
                ) from exc
        message = _server_message(response)
        suffix = f": {message}" if message else ""
        reason = f"{status} {response.reason_phrase}".strip()
        if status == 401:
            # The server's reason (e.g. clock skew of the signature's ``created``) helps under --debug.
            logger.info("Encord answered 401 for %s: %s", desc, message or "no message")
            raise ProviderAuthError(
                f"Encord refused the credentials (401) at {self.domain}: wrong key, or wrong region? "
                f"US-region organisations use {US_DOMAIN}"
            )
        if status == 403:
            raise ProviderConflictError(
                f"{desc}: no access to, or no such, file/folder (Encord answered 403){suffix}"
            )
        if status == 404:
            raise ProviderConflictError(f"{desc}: not found (Encord answered 404){suffix}")
        if status == 413:
            size = len(response.request.content) if response.request.content else 0
            raise PayloadTooLargeError(
                f"{desc}: request too large ({size} bytes; Encord answered 413){suffix}"
            )
        if status in (400, 422):
            raise ProviderResponseError(f"{desc}: Encord rejected the request ({reason}){suffix}")
        if 300 <= status < 400:
            raise ProviderResponseError(
                f"{desc}: Encord answered a redirect ({reason}) to "
                f"{redact_url(response.headers.get('Location', '?'))}; redirects are not followed (the "
                "credentials stay with the configured origin): configure the API domain itself"
            )
        raise ProviderResponseError(f"{desc}: Encord answered {reason}{suffix}")

    # -- the legacy v1 querier (datasets) ---------------------------------------------------------------------

    def call_v1(
        self,
        resource_id: str,
        query_type: str,
        query_method: str,
        *,
        uid: str | None = None,
        payload: Any = None,
        write: bool = False,
    ) -> Any:
        """One call of the legacy v1 dataset querier (encord-api.md §6): ``POST /public``, headers
        ``ResourceType: dataset`` and ``ResourceID``; returns the envelope's ``response``.

        Counted as ``POST public <query_type>``. Retried like v2 calls (reconciler's v1 writes carry the whole
        dict, so a retry is idempotent).

        Raises:
            ProviderAuthError: credentials refused (HTTP 401 or ``AUTHENTICATION_ERROR`` in the envelope).
            ProviderConflictError: no such dataset or data row, or no access (``AUTHORISATION_ERROR``,
                ``RESOURCE_NOT_FOUND_ERROR``, HTTP 403/404).
            ProviderResponseError: any other refusal, or an answer that is not the envelope.
        """
        doc = {
            "query_type": query_type,
            "query_method": query_method,
            "values": {"uid": uid, "payload": payload},
        }
        try:
            content = json.dumps(doc, allow_nan=False).encode("ascii")
        except (TypeError, ValueError) as exc:
            raise ProviderResponseError(
                f"v1 {query_type}: the request body is not valid JSON: {exc}"
            ) from exc
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "ResourceType": "dataset",
            "ResourceID": resource_id,
        }
        desc = f"v1 {query_type} {query_method} (dataset {resource_id})"
        name = f"POST public {query_type}"
        response = self._send_with_retries(
            "POST", self.domain + "/public", content, headers, name, desc, write
        )
        data = self._parse(response, desc)
        if not isinstance(data, dict) or "status" not in data:
            raise ProviderResponseError(
                f'{desc}: Encord answered without the v1 envelope ({{"status", "response"}})'
            )
        if data.get("status") == 200:
            return data.get("response")
        code = data.get("response")
        code_text = (
            code[0] if isinstance(code, list) and len(code) == 1 and isinstance(code[0], str) else str(code)
        )
        detail = data.get("payload")
        suffix = f": {_one_line(detail)}" if isinstance(detail, str) and detail else ""
        if code_text == "AUTHENTICATION_ERROR":
            raise ProviderAuthError(
                f"Encord refused the credentials ({code_text}) at {self.domain}: wrong key, or wrong region? "
                f"US-region organisations use {US_DOMAIN}"
            )
        if code_text in ("AUTHORISATION_ERROR", "RESOURCE_NOT_FOUND_ERROR"):
            raise ProviderConflictError(
                f"{desc}: no such, or no access to, the dataset or data row ({code_text}){suffix}"
            )
        raise ProviderResponseError(
            f"{desc}: Encord answered {code_text} (status {data.get('status')}){suffix}"
        )

    # -- signed URLs ------------------------------------------------------------------------------------------

    def fetch_signed_json(self, url: str, what: str) -> Any:
        """GET a signed URL Encord handed out (e.g. ``clientMetadataSignedUrl``) and return its parsed JSON.

        The request carries **no** credentials (a separate connection pool without auth): a signed URL is its
        own authorisation, and the Encord key or token must never travel to the storage host. ``https://``
        only, or ``http://`` to a loopback host (the emulator). Retried like API calls; counted as
        ``GET clientMetadataSignedUrl``.

        Raises:
            ProviderResponseError: an unusable URL, a refusal, or a body that is not JSON.
            ProviderConnectionError: the retry budget ran out.
        """
        try:
            parts = urllib.parse.urlsplit(url)
            host = parts.hostname or ""
        except ValueError:
            host, parts = "", urllib.parse.urlsplit("")
        scheme = parts.scheme.lower()
        if not host or scheme not in ("https", "http") or (scheme == "http" and not _is_loopback(host)):
            raise ProviderResponseError(
                f"{what}: Encord answered a signed URL that is not https:// (scheme {scheme!r}, host {host!r}); "
                "plain http:// is fetched only from loopback hosts"
            )
        with self._stats_lock:
            if self._blob_http is None:
                self._blob_http = _http_client(
                    timeout=self._timeout,
                    limits=httpx.Limits(max_connections=self._parallelism),
                    headers={"User-Agent": f"reconciler/{__version__} python-httpx/{httpx.__version__}"},
                    follow_redirects=False,
                    trust_env=scheme == "https",
                )
            blob = self._blob_http
        policy = self.retry
        slept = 0.0
        last = "no attempt"
        for attempt in range(1, policy.max_attempts + 1):
            self._count("GET clientMetadataSignedUrl", write=False)
            retry_after: float | None = None
            try:
                with blob.stream("GET", url) as streamed:
                    status = streamed.status_code
                    body = bytearray()
                    for chunk in streamed.iter_bytes():
                        body += chunk
                        if len(body) > self.max_response_bytes:
                            raise ProviderResponseError(
                                f"{what}: the signed URL's content is larger than {self.max_response_bytes:,} bytes"
                            )
                    retry_after = parse_retry_after(streamed.headers.get("Retry-After"), policy.clock())
            except _RETRYABLE_TRANSPORT as exc:
                last = f"{type(exc).__name__}"
            except httpx.HTTPError as exc:
                raise ProviderConnectionError(
                    f"{what}: fetching the signed URL failed: {type(exc).__name__}"
                ) from exc
            else:
                if status == 200:
                    try:
                        return loads(bytes(body))
                    except ValueError as exc:
                        raise ProviderResponseError(f"{what}: the signed URL's content is not JSON") from exc
                if status not in policy.retry_statuses:
                    raise ProviderResponseError(f"{what}: the signed URL answered {status}")
                last = str(status)
            wait = policy.delay(attempt, retry_after)
            if attempt >= policy.max_attempts or slept + wait > policy.max_total_sleep:
                break
            policy.sleep(wait)
            slept += wait
        raise ProviderConnectionError(f"{what}: the signed URL still failing after retries (last: {last})")
