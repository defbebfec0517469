"""Fault injection on the client side of the Encord provider: an ``httpx`` transport wrapper.

The emulator injects faults *before* it handles a request (429 with ``Retry-After``, 503, a dropped
connection). :class:`ChaosTransport` adds what a server cannot fake on its own: a request that is carried
out but whose answer is lost on the way back (the write happened; the client sees a dropped connection),
requests delayed on the wire, and route rules ("every PATCH after the first one is refused"). It also counts
every fault the client saw, from either side, so tests can report figures.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

#: A rule: ``(method, path, attempt number of this route) -> synthetic status or None``.
Rule = Callable[[str, str, int], "int | None"]


@dataclass
class ChaosTransport(httpx.BaseTransport):
    """Forwards to ``inner`` and injects client-side faults with a seeded generator.

    ``rate_lost``: the request is sent and handled, then its answer is dropped (``httpx.ReadError``).
    ``rate_delay``: the request waits ``delay_s`` before it is sent. ``rule`` may answer a request itself
    with a status (503 and 429 get ``Retry-After: 0`` when ``rule_retry_after`` is set).
    """

    inner: httpx.BaseTransport
    rate_lost: float = 0.0
    rate_delay: float = 0.0
    delay_s: float = 0.005
    seed: int = 0
    rule: Rule | None = None
    rule_retry_after: str | None = None
    seen: Counter[str] = field(default_factory=Counter)
    _rng: random.Random = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _routes: Counter[str] = field(default_factory=Counter, init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def faults(self) -> int:
        """Every fault the client saw: 429s, 503s, dropped connections, lost answers, synthetic refusals."""
        return sum(n for k, n in self.seen.items() if k not in ("requests", "delayed", "faults on writes"))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        key = f"{request.method} {request.url.path}"
        with self._lock:
            self.seen["requests"] += 1
            self._routes[key] += 1
            nth = self._routes[key]
            u_lost, u_delay = self._rng.random(), self._rng.random()
        if self.rule is not None:
            status = self.rule(request.method, request.url.path, nth)
            if status is not None:
                self._count(f"synthetic {status}", request)
                headers = {"Retry-After": self.rule_retry_after} if self.rule_retry_after is not None else {}
                return httpx.Response(status, json={"message": "injected by ChaosTransport"}, headers=headers)
        if u_delay < self.rate_delay:
            self._count("delayed", request)
            time.sleep(self.delay_s)
        try:
            response = self.inner.handle_request(request)
        except httpx.TransportError:
            self._count("dropped by the server", request)
            raise
        if response.status_code in (429, 503):
            self._count(str(response.status_code), request)
        if u_lost < self.rate_lost:
            response.read()
            response.close()
            self._count("answer lost", request)
            raise httpx.ReadError(
                "connection reset after the request was handled (injected)", request=request
            )
        return response

    def _count(self, what: str, request: httpx.Request) -> None:
        with self._lock:
            self.seen[what] += 1
            if what != "delayed" and request.method == "PATCH":
                self.seen["faults on writes"] += 1

    def close(self) -> None:
        self.inner.close()
