"""``EncordClient.pages`` asks for a listing's next page as soon as the raw answer's last member is a plain
``nextPageToken`` (``client.PEEK_NEXT_TOKEN``), before the answer is decoded: on random listings (tokens
last or elsewhere, odd token characters, ``next_page_token``, repeated or empty tokens, answers that are not
JSON or not pages, ``max_pages``) it yields the pages and raises the errors that waiting for the decoded
answer gives, with the same requests; where an answer fails (not JSON, not a page) after its token was read,
at most the one request made ahead is extra. And the watchdog that warns of slow requests fires once per
entry left."""

from __future__ import annotations

import json
import random
import threading
import time
from typing import Any

import httpx
import pytest

from reconciler.errors import ProviderError
from reconciler.providers.encord import client as client_mod
from reconciler.providers.encord.auth import BearerAuth
from reconciler.providers.encord.client import PAGE_TOKEN, EncordClient, RetryPolicy

ROUTE = "storage/folders"
TOKENS = ["t1", "abc-DEF_09", "x+y/z==", "a.b~c", "sp ace", 'q"uote', "é", "t1"]


def _body(rng: random.Random, results: list[Any], token: Any, bad: float) -> bytes:
    r = rng.random()
    if r < bad / 2:
        return rng.choice([b"not json", b'{"results": 5, "nextPageToken": "zz"}', b"[1, 2]"])
    if r < bad:  # not JSON, but with a token at its end
        return b'{"results": [1, , "nextPageToken": "' + str(token).encode() + b'"}'
    if rng.random() < 0.2:
        doc: dict[str, Any] = {"nextPageToken": token, "results": results}  # token first
    elif rng.random() < 0.1:
        doc = {"results": results, "next_page_token": token}
    else:
        doc = {"results": results, "nextPageToken": token}
    text = json.dumps(doc, separators=(",", ":") if rng.random() < 0.3 else None)
    return (text + rng.choice(["", " ", "\n"])).encode()


class _Listing:
    """A server whose answers are scripted per page token (``""``: the first page)."""

    def __init__(self, rng: random.Random, bad: float) -> None:
        self.log: list[str] = []
        self.bodies: dict[str, bytes] = {}
        token = ""
        for n in range(rng.randint(1, 7)):
            last = n == 6 or rng.random() < 0.15
            nxt: Any = None if last else rng.choice([*TOKENS, f"p{n}", f"p{n}", f"p{n}", "", 3])
            if isinstance(nxt, str) and nxt.startswith("p"):
                nxt = f"p{n}-{rng.randint(0, 9)}"
            self.bodies.setdefault(token, _body(rng, list(range(n * 3, n * 3 + rng.randint(0, 3))), nxt, bad))
            if not isinstance(nxt, str) or not nxt:
                break
            token = nxt
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        token = request.url.params.get("pageToken", "")
        with self.lock:
            self.log.append(token)
        time.sleep(0.001)
        body = self.bodies.get(token)
        if body is None:
            return httpx.Response(404, json={"message": "no such page"})
        return httpx.Response(200, content=body, headers={"Content-Type": "application/json"})


def _run(listing: _Listing, max_pages: int) -> tuple[list[Any], str | None]:
    policy = RetryPolicy(sleep=lambda s: None, jitter=lambda cap: 0.0)
    pages: list[Any] = []
    with EncordClient(
        "https://api.encord.com", BearerAuth("t"), retry=policy, transport=httpx.MockTransport(listing)
    ) as c:
        try:
            for page in c.pages(ROUTE, params=[(PAGE_TOKEN, ""), ("pageSize", 3)], max_pages=max_pages):
                pages.append(page)
                time.sleep(random.random() * 0.002)  # (the reader is sometimes slower than the server)
        except ProviderError as exc:
            return pages, f"{type(exc).__name__}: {exc}"
    return pages, None


@pytest.mark.parametrize("seed", range(8))
def test_pages_asked_for_ahead_are_the_pages_of_waiting_for_each_answer(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    early = 0
    found = [0]
    pattern = client_mod._NEXT_TOKEN

    class Spy:
        def search(self, body: bytes, pos: int) -> Any:
            m = pattern.search(body, pos)
            found[0] += m is not None
            return m

    monkeypatch.setattr(client_mod, "_NEXT_TOKEN", Spy())
    for _ in range(40):
        bad = rng.choice([0.0, 0.0, 0.1, 0.3])
        max_pages = rng.choice([1_000_000, 1_000_000, 1, 2, 3])
        listing = _Listing(rng, bad)
        monkeypatch.setattr(client_mod, "PEEK_NEXT_TOKEN", False)
        want = _run(listing, max_pages)
        careful_log = list(listing.log)
        listing.log.clear()
        monkeypatch.setattr(client_mod, "PEEK_NEXT_TOKEN", True)
        got = _run(listing, max_pages)
        assert got == want, listing.bodies
        if want[1] is None:
            assert listing.log == careful_log, listing.bodies
        else:  # (an answer that failed after its token was read, as not JSON or not a page: one request ahead)
            assert listing.log[: len(careful_log)] == careful_log
            assert len(listing.log) <= len(careful_log) + 1
        early += len(careful_log) > 1
    assert early > 5 and found[0] > 5  # (tokens read from raw answers)


def test_the_watchdog_fires_each_entry_left_once_and_its_thread_ends_when_idle_or_stopped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(client_mod, "_WATCHDOG_IDLE", 0.05)
    dog = client_mod._Watchdog()
    fired: list[str] = []
    keys = [dog.add(0.02 * n, fired.append, (f"e{n}",)) for n in (3, 1, 2)]
    dog.cancel(keys[2])
    deadline = time.monotonic() + 5
    while dog._thread is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fired == ["e1", "e3"] and dog._thread is None
    dog.add(0.0, fired.append, ("again",))  # (a new thread for a new entry)
    while dog._thread is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fired == ["e1", "e3", "again"]
    dog.add(60.0, fired.append, ("never",))
    thread = dog._thread
    assert thread is not None
    dog.stop()  # (a closed client leaves no thread behind)
    assert not thread.is_alive() and dog._thread is None and fired == ["e1", "e3", "again"]
