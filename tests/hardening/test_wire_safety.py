"""Credentials stay on the wire they were meant for, and a hung server is bounded.

- Plain ``http://`` (loopback) never goes through a proxy from the environment: a recording proxy on
  127.0.0.1 named by ``HTTP_PROXY``/``ALL_PROXY`` sees no request (it would see the bearer token in clear).
- A redirect is never followed: a server answering 307 to another origin gets the request, the other origin
  gets nothing (no token, no signature).
- A server that accepts and never answers makes the command fail after ``RECONCILER_REQUEST_DEADLINE``
  seconds in all (attempts, timeouts and backoff), with a warning line while it waits.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from reconciler.errors import ProviderConnectionError
from reconciler.providers.encord.auth import BearerAuth
from reconciler.providers.encord.client import EncordClient, RetryPolicy
from reconciler.testing.emulator import Emulator
from tests.helpers.cli import run
from tests.helpers.servers import hung_server, recording_server, trickling_server
from tests.helpers.states import make_snapshot

TOKEN = "wire-token"
ENV = {"ENCORD_API_TOKEN": TOKEN}


@pytest.fixture
def emu() -> Iterator[Emulator]:
    e = Emulator(make_snapshot({"cams": [("a.jpg", {"k": 1})]}), tokens=[TOKEN]).start()
    try:
        yield e
    finally:
        e.stop()


@pytest.fixture
def no_proxy_exemptions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without NO_PROXY, an environment proxy would apply to 127.0.0.1 too (as it did before the fix)."""
    for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY",
                 "all_proxy"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("no_proxy_exemptions")
def test_loopback_http_never_uses_an_environment_proxy(emu: Emulator):
    with recording_server(status=502) as proxy:
        env = {**ENV, "HTTP_PROXY": proxy.url, "http_proxy": proxy.url, "ALL_PROXY": proxy.url}
        r = run(["snapshot", "--provider", f"encord:{emu.url}", "--out", "/dev/null"], env=env)
        assert r.code == 0, r.err
        assert r.out == "Wrote 1 folder(s) and 1 file(s) to /dev/null.\n"
        assert proxy.seen == []
    assert emu.request_counts()["total"] > 0


@pytest.mark.usefixtures("no_proxy_exemptions")
def test_https_still_uses_the_proxy_the_user_configured(monkeypatch: pytest.MonkeyPatch):
    """The proxy rule is for plain http only: for https the environment (proxies, SSL_CERT_FILE) applies."""
    with recording_server(status=502) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        client = EncordClient(
            "https://api.encord.com", BearerAuth(TOKEN), retry=RetryPolicy(max_attempts=1, deadline=5)
        )
        try:
            with pytest.raises(ProviderConnectionError) as info:
                client.call("GET", "organisation/client-metadata-schema-v2")
        finally:
            client.close()
        assert str(info.value) == (
            "GET organisation/client-metadata-schema-v2 at https://api.encord.com failed: ProxyError: 502 Bad Gateway"
        )
        assert [s.method for s in proxy.seen] == ["CONNECT"]  # a tunnel: the proxy never sees the token
        assert "authorization" not in {k.lower() for k in proxy.seen[0].headers}


SOCKS = (
    "Error: the proxy in the environment (HTTPS_PROXY / ALL_PROXY) is a SOCKS proxy, which needs the socksio "
    "package: pip install 'httpx[socks]', or unset it\n"
)
UNUSABLE = (
    "Error: the proxy in the environment (HTTPS_PROXY / HTTP_PROXY / ALL_PROXY, any case) is not a URL httpx "
    "can use (http://, https:// or socks5://HOST:PORT); fix or unset it\n"
)


@pytest.mark.usefixtures("no_proxy_exemptions")
@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("ALL_PROXY", "socks5://127.0.0.1:9", SOCKS),
        ("HTTPS_PROXY", "ftp://user:s3cret@127.0.0.1:9", UNUSABLE),
        ("HTTPS_PROXY", "http://[::1", UNUSABLE),
        ("https_proxy", ":::", UNUSABLE),
    ],
)
def test_a_proxy_setting_httpx_cannot_use_is_one_line_without_the_setting(
    name: str, value: str, message: str
):
    r = run(
        ["snapshot", "--provider", "encord:https://127.0.0.1:9", "--out", "/dev/null"],
        env={**ENV, name: value},
    )
    assert (r.code, r.out, r.err) == (1, "", message)


def test_a_redirect_to_another_origin_carries_no_credentials():
    with recording_server(status=200) as other, recording_server(status=307) as redirecting:
        redirecting.location = other.url + "/v2/public/organisation/client-metadata-schema-v2?token=x"
        r = run(["snapshot", "--provider", f"encord:{redirecting.url}", "--out", "/dev/null"], env=ENV)
        assert (r.code, r.out) == (1, "")
        assert r.err == (
            "Error: GET organisation/client-metadata-schema-v2: Encord answered a redirect (307 Temporary "
            f"Redirect) to {other.url}/v2/public/organisation/client-metadata-schema-v2?***; redirects are not "
            "followed (the credentials stay with the configured origin): configure the API domain itself\n"
        )
        assert [s.headers.get("Authorization") for s in redirecting.seen] == [f"Bearer {TOKEN}"]
        assert other.seen == []


def test_a_hung_server_is_bounded_by_the_deadline():
    with hung_server() as hung:
        env = {**ENV, "RECONCILER_REQUEST_DEADLINE": "2"}
        started = time.monotonic()
        r = run(["snapshot", "--provider", f"encord:{hung.url}", "--out", "/dev/null"], env=env)
        took = time.monotonic() - started
        assert hung.accepted >= 1
    assert (r.code, r.out) == (1, "")
    lines = r.err.splitlines()
    assert lines[0] == (
        f"Warning: GET organisation/client-metadata-schema-v2 at {hung.url}: no answer yet after 0.5 s; "
        "still waiting (gives up 2 s after it started)"
    )
    assert lines[-1].startswith(
        f"Error: GET organisation/client-metadata-schema-v2 at {hung.url}: no complete answer within the 2 s "
        "deadline (1 attempt(s); last: ReadTimeout"
    )
    assert lines[-1].endswith("); try again later")
    assert 1.9 <= took < 4.0, took


def test_a_bad_deadline_setting_is_one_line():
    r = run(["snapshot", "--provider", "encord:http://127.0.0.1:9", "--out", "/dev/null"],
            env={**ENV, "RECONCILER_REQUEST_DEADLINE": "soon"})  # fmt: skip
    assert (r.code, r.out) == (1, "")
    assert r.err == "Error: RECONCILER_REQUEST_DEADLINE='soon': expected a number of seconds greater than 0\n"


def test_the_deadline_counts_attempts_timeouts_and_backoff_together():
    """A server that answers 503 after 4 s, forever: the retries stop at the deadline, not after six
    attempts, and the last attempt's timeout is cut to the time left."""
    clock = [0.0]

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    def handler(request: httpx.Request) -> httpx.Response:
        read_timeout = request.extensions["timeout"]["read"]
        if read_timeout < 4.0:
            clock[0] += read_timeout
            raise httpx.ReadTimeout("timed out", request=request)
        clock[0] += 4.0
        return httpx.Response(503)

    policy = RetryPolicy(deadline=20.0, sleep=sleep, jitter=lambda cap: cap, monotonic=lambda: clock[0])
    client = EncordClient(
        "https://api.encord.com", BearerAuth(TOKEN), retry=policy, transport=httpx.MockTransport(handler)
    )
    with pytest.raises(Exception) as info:
        client.call("GET", "organisation/client-metadata-schema-v2")
    client.close()
    # Answers at 4 s, 9 s and 15 s, backoff 1, 2 and 4 s; the fourth attempt starts at 19 s with 1 s left.
    assert str(info.value) == (
        "GET organisation/client-metadata-schema-v2 at https://api.encord.com: no complete answer within the "
        "20 s deadline (4 attempt(s); last: ReadTimeout: timed out); try again later"
    )
    assert clock[0] == 20.0


@pytest.mark.parametrize("interval", [0.1, 0.7])
def test_a_trickling_server_is_held_to_the_deadline_plus_one_read_timeout(interval: float):
    """A server that keeps sending a byte: the answer is abandoned at the first byte past the deadline, so
    the request ends within the deadline plus one read timeout (cut to what was left: here the deadline)."""
    with trickling_server(interval) as slow:
        client = EncordClient(slow.url, BearerAuth(TOKEN), retry=RetryPolicy(deadline=1.0))
        started = time.monotonic()
        with pytest.raises(ProviderConnectionError) as info:
            client.call("GET", "organisation/client-metadata-schema-v2")
        took = time.monotonic() - started
        client.close()
    assert str(info.value).startswith(
        f"GET organisation/client-metadata-schema-v2 at {slow.url}: no complete answer within the 1 s deadline "
        "(1 attempt(s); last: ReadTimeout: "
    )
    assert 1.0 <= took < 2.0, took


def test_the_default_deadline_and_warning():
    policy = RetryPolicy()
    assert (policy.deadline, policy.warn_delay) == (300.0, 15.0)
    assert RetryPolicy(deadline=8).warn_delay == 2.0
