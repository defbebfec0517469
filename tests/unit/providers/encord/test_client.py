"""The HTTP layer: domain checks, wire format, retry schedule, Retry-After, error mapping, request counting."""

from __future__ import annotations

import email.utils
import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpx
import pytest

from reconciler.errors import (
    ProviderAuthError,
    ProviderConflictError,
    ProviderConnectionError,
    ProviderResponseError,
    UsageError,
)
from reconciler.providers.encord.auth import BearerAuth
from reconciler.providers.encord.client import (
    PAGE_TOKEN,
    EncordClient,
    RetryPolicy,
    normalize_domain,
    parse_retry_after,
)

DOMAIN = "https://api.encord.com"
FOLDER = "5e0b6a0e-2f1c-4b7e-9c51-0c2f6d1c9a10"
TOKEN = "tok-very-secret"

Step = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


class Script:
    """A MockTransport handler that plays a list of responses (or exceptions to raise) in order."""

    def __init__(self, steps: Iterable[Step]) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
        if isinstance(step, Exception):
            raise step
        if isinstance(step, httpx.Response):
            return step
        return step(request)


class Recorder:
    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def _policy(sleeper: Recorder, **kw: Any) -> RetryPolicy:
    # jitter returns the cap: the schedule becomes the deterministic upper bound of full jitter.
    return RetryPolicy(sleep=sleeper, jitter=lambda cap: cap, clock=lambda: 1_700_000_000.0, **kw)


def _client(script: Script, sleeper: Recorder | None = None, domain: str = DOMAIN, **kw: Any) -> EncordClient:
    return EncordClient(
        domain,
        BearerAuth(TOKEN),
        retry=_policy(sleeper or Recorder(), **kw),
        transport=httpx.MockTransport(script),
    )


def _ok(body: Any = None, status: int = 200, **kw: Any) -> httpx.Response:
    return httpx.Response(status, json=body if body is not None else {}, **kw)


# -- domains ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, "https://api.encord.com"),
        ("https://api.encord.com/", "https://api.encord.com"),
        ("https://API.US.Encord.com", "https://api.us.encord.com"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://127.9.8.7:1", "http://127.9.8.7:1"),
        ("http://localhost:5000/", "http://localhost:5000"),
        ("http://[::1]:5000", "http://[::1]:5000"),
        ("https://10.0.0.5:8443", "https://10.0.0.5:8443"),
    ],
)
def test_domain_accepted(given: str | None, expected: str) -> None:
    assert normalize_domain(given) == expected


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (
            "http://api.encord.com",
            "refusing plain http:// for Encord domain 'http://api.encord.com': credentials and metadata would "
            "travel unencrypted; use https:// (http:// is allowed only for loopback hosts such as 127.0.0.1)",
        ),
        (
            "http://10.1.2.3:80",
            "refusing plain http:// for Encord domain 'http://10.1.2.3:80': credentials and metadata would "
            "travel unencrypted; use https:// (http:// is allowed only for loopback hosts such as 127.0.0.1)",
        ),
        (
            "api.encord.com",
            "Encord domain 'api.encord.com' must be an https:// URL, such as https://api.encord.com",
        ),
        (
            "ftp://x.org",
            "Encord domain 'ftp://x.org' must be an https:// URL, such as https://api.encord.com",
        ),
        (
            "https://api.encord.com/v2/public",
            "Encord domain 'https://api.encord.com/v2/public' must be an origin without a path, such as "
            "https://api.encord.com (the API is always served under /v2/public/)",
        ),
        (
            "https://me:hunter2@api.encord.com",
            "the Encord domain must not contain credentials (user:password@); use ENCORD_SSH_KEY_FILE, "
            "ENCORD_SSH_KEY or ENCORD_API_TOKEN",
        ),
        ("https://api.encord.com:99999", "Encord domain 'https://api.encord.com:99999' is not a valid URL"),
    ],
)
def test_domain_refused(given: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        normalize_domain(given)
    assert str(info.value) == message


def test_insecure_http_allowed_when_asked() -> None:
    assert normalize_domain("http://10.1.2.3:80", allow_insecure_http=True) == "http://10.1.2.3:80"


# -- wire format ------------------------------------------------------------------------------------------------


def test_query_booleans_order_and_body_bytes() -> None:
    script = Script([_ok({"results": []})])
    with _client(script) as client:
        client.call(
            "GET",
            "storage/folders/{uuid}/items",
            FOLDER.upper(),
            params=[("search", "a b/é"), ("isRecursive", False), ("pageSize", 1000), ("signUrls", True)],
        )
        client.call(
            "POST", "storage/items/get-bulk", body={"itemUuids": [FOLDER], "name": "é", "signUrls": False}
        )
    get, post = script.requests
    assert (
        get.url.raw_path
        == (
            f"/v2/public/storage/folders/{FOLDER}/items?search=a+b%2F%C3%A9&isRecursive=False&pageSize=1000&signUrls=True"
        ).encode()
    )
    assert "content-type" not in get.headers
    assert post.url.raw_path == b"/v2/public/storage/items/get-bulk"
    assert post.content == f'{{"itemUuids": ["{FOLDER}"], "name": "\\u00e9", "signUrls": false}}'.encode()
    assert post.headers["Content-Type"] == "application/json"
    assert get.headers["Authorization"] == f"Bearer {TOKEN}"
    trace = get.headers["X-Cloud-Trace-Context"]
    assert len(trace.split("/")[0]) == 32
    assert trace.endswith("/1;o=1")
    assert trace != post.headers["X-Cloud-Trace-Context"]
    assert get.headers["User-Agent"].startswith("reconciler/")


def test_path_arguments_must_be_uuids() -> None:
    with _client(Script([_ok()])) as client, pytest.raises(ProviderConflictError) as info:
        client.call("GET", "storage/folders/{uuid}", "../admin")
    assert str(info.value) == "'../admin' is not a UUID"


def test_stats_count_every_request_by_route() -> None:
    script = Script([httpx.Response(503), _ok(), _ok(), _ok(status=204)])
    with _client(script) as client:
        client.call("GET", "storage/folders/{uuid}", FOLDER)
        client.call("POST", "storage/items/get-bulk", body={})
        client.call("PATCH", "storage/items/patch-bulk", body={}, write=True)
        assert client.stats.reads == 3
        assert client.stats.writes == 1
        assert client.stats.by_route == {
            "GET storage/folders/{uuid}": 2,
            "POST storage/items/get-bulk": 1,
            "PATCH storage/items/patch-bulk": 1,
        }


# -- retries ----------------------------------------------------------------------------------------------------


def test_backoff_schedule_then_success() -> None:
    sleeper = Recorder()
    script = Script([httpx.Response(s) for s in (500, 502, 503, 504, 429)] + [_ok({"x": 1})])
    with _client(script, sleeper) as client:
        assert client.call("GET", "organisation/client-metadata-schema-v2") == {"x": 1}
    assert sleeper.sleeps == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert len(script.requests) == 6


def test_backoff_is_capped_per_sleep() -> None:
    sleeper = Recorder()
    script = Script([httpx.Response(503)] * 4 + [_ok()])
    with _client(script, sleeper, base_delay=10.0, max_delay=25.0) as client:
        client.call("GET", "x")
    assert sleeper.sleeps == [10.0, 20.0, 25.0, 25.0]


def test_full_jitter_draws_below_the_cap() -> None:
    sleeper = Recorder()
    caps: list[float] = []

    def jitter(cap: float) -> float:
        caps.append(cap)
        return cap / 4

    policy = RetryPolicy(sleep=sleeper, jitter=jitter)
    script = Script([httpx.Response(500), httpx.Response(500), _ok()])
    with EncordClient(
        DOMAIN, BearerAuth(TOKEN), retry=policy, transport=httpx.MockTransport(script)
    ) as client:
        client.call("GET", "x")
    assert caps == [1.0, 2.0]
    assert sleeper.sleeps == [0.25, 0.5]


def test_default_jitter_is_within_bounds() -> None:
    policy = RetryPolicy()
    for retry in range(1, 8):
        cap = min(30.0, 2.0 ** (retry - 1))
        assert all(0.0 <= policy.delay(retry, None) <= cap for _ in range(50))


def test_budget_exhausted_names_route_and_last_status() -> None:
    sleeper = Recorder()
    script = Script([httpx.Response(429)])
    with _client(script, sleeper) as client, pytest.raises(ProviderConnectionError) as info:
        client.call("GET", "storage/folders/{uuid}/items", FOLDER)
    assert str(info.value) == (
        f"GET storage/folders/{FOLDER}/items at https://api.encord.com still failing after 6 attempt(s) and "
        "31.0 s of backoff (last: 429 Too Many Requests); try again later or lower parallelism"
    )
    assert sleeper.sleeps == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert len(script.requests) == 6


def test_retry_after_seconds_replaces_backoff() -> None:
    sleeper = Recorder()
    script = Script([httpx.Response(429, headers={"Retry-After": "3"}), httpx.Response(503), _ok()])
    with _client(script, sleeper) as client:
        client.call("GET", "x")
    assert sleeper.sleeps == [3.0, 2.0]


def test_retry_after_http_date() -> None:
    sleeper = Recorder()
    when = email.utils.formatdate(1_700_000_000 + 7, usegmt=True)
    script = Script([httpx.Response(503, headers={"Retry-After": when}), _ok()])
    with _client(script, sleeper) as client:
        client.call("GET", "x")
    assert sleeper.sleeps == [7.0]


def test_retry_after_is_capped() -> None:
    sleeper = Recorder()
    script = Script([httpx.Response(429, headers={"Retry-After": "86400"}), _ok()])
    with _client(script, sleeper) as client:
        client.call("GET", "x")
    assert sleeper.sleeps == [60.0]


def test_total_sleep_cap_gives_up_early() -> None:
    sleeper = Recorder()
    script = Script([httpx.Response(429, headers={"Retry-After": "50"})])
    with _client(script, sleeper) as client, pytest.raises(ProviderConnectionError) as info:
        client.call("PATCH", "storage/items/patch-bulk", body={}, write=True)
    assert sleeper.sleeps == [50.0, 50.0]
    assert str(info.value) == (
        "PATCH storage/items/patch-bulk at https://api.encord.com still failing after 3 attempt(s) and "
        "100.0 s of backoff (last: 429 Too Many Requests); try again later or lower parallelism"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("0", 0.0),
        ("12", 12.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        ("soon", None),
        ("nan", None),
        (email.utils.formatdate(1_700_000_030, usegmt=True), 30.0),
        (email.utils.formatdate(1_699_999_000, usegmt=True), 0.0),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, 1_700_000_000.0) == expected


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError("[Errno 111] Connection refused"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ReadTimeout("timed out"),
        httpx.ReadError("[Errno 104] Connection reset by peer"),
    ],
)
def test_connection_errors_are_retried(error: Exception) -> None:
    sleeper = Recorder()
    script = Script([error, error, _ok({"ok": True})])
    with _client(script, sleeper) as client:
        assert client.call("PATCH", "storage/items/patch-bulk", body={}, write=True) == {"ok": True}
    assert sleeper.sleeps == [1.0, 2.0]


def test_connection_errors_exhaust_the_budget() -> None:
    script = Script([httpx.ConnectError("[Errno 111] Connection refused")])
    with _client(script, max_attempts=3) as client, pytest.raises(ProviderConnectionError) as info:
        client.call("GET", "storage/folders")
    assert str(info.value) == (
        "GET storage/folders at https://api.encord.com still failing after 3 attempt(s) and 3.0 s of backoff "
        "(last: ConnectError: [Errno 111] Connection refused); try again later or lower parallelism"
    )
    assert isinstance(info.value.__cause__, httpx.ConnectError)


def test_tls_verification_failure_is_not_retried() -> None:
    script = Script([httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")])
    with _client(script) as client, pytest.raises(ProviderConnectionError) as info:
        client.call("GET", "x")
    assert str(info.value) == (
        "cannot reach https://api.encord.com: TLS certificate verification failed (for a private CA, point "
        "SSL_CERT_FILE at its certificate bundle)"
    )
    assert len(script.requests) == 1


# -- error mapping ----------------------------------------------------------------------------------------------


def _fail(
    response: httpx.Response | Exception, method: str = "GET", route: str = "storage/folders/{uuid}"
) -> Exception:
    script = Script([response])
    args = (FOLDER,) if "{uuid}" in route else ()
    with _client(script) as client, pytest.raises(Exception) as info:
        client.call(method, route, *args, body={} if method != "GET" else None)
    assert len(script.requests) == 1  # never retried
    text = str(info.value)
    assert "\n" not in text
    assert TOKEN not in text
    return info.value


def test_401() -> None:
    exc = _fail(httpx.Response(401, json={"message": "Signature invalid"}))
    assert isinstance(exc, ProviderAuthError)
    assert str(exc) == (
        "Encord refused the credentials (401) at https://api.encord.com: wrong key, or wrong region? "
        "US-region organisations use https://api.us.encord.com"
    )


def test_403() -> None:
    exc = _fail(httpx.Response(403, json={"message": "No access"}))
    assert isinstance(exc, ProviderConflictError)
    assert str(exc) == (
        f"GET storage/folders/{FOLDER}: no access to, or no such, file/folder (Encord answered 403): No access"
    )
    bare = _fail(httpx.Response(403, text="Forbidden"))
    assert (
        str(bare)
        == f"GET storage/folders/{FOLDER}: no access to, or no such, file/folder (Encord answered 403)"
    )


def test_404() -> None:
    exc = _fail(httpx.Response(404, json={"detail": "Not Found"}))
    assert isinstance(exc, ProviderConflictError)
    assert str(exc) == f"GET storage/folders/{FOLDER}: not found (Encord answered 404): Not Found"


def test_413() -> None:
    exc = _fail(httpx.Response(413, json={"message": "too big"}), "PATCH", "storage/items/patch-bulk")
    assert isinstance(exc, ProviderResponseError)
    assert (
        str(exc)
        == "PATCH storage/items/patch-bulk: request too large (2 bytes; Encord answered 413): too big"
    )


def test_400_message() -> None:
    exc = _fail(httpx.Response(400, json={"message": "Invalid page size"}))
    assert isinstance(exc, ProviderResponseError)
    assert str(exc) == (
        f"GET storage/folders/{FOLDER}: Encord rejected the request (400 Bad Request): Invalid page size"
    )


def test_422_fastapi_detail() -> None:
    detail = [
        {"loc": ["body", "itemPatches"], "msg": "field required", "type": "missing"},
        {"loc": ["query", "pageSize"], "msg": "must be\n<= 1000", "type": "value_error"},
    ]
    exc = _fail(httpx.Response(422, json={"detail": detail}), "POST", "storage/items/get-bulk")
    assert isinstance(exc, ProviderResponseError)
    assert str(exc) == (
        "POST storage/items/get-bulk: Encord rejected the request (422 Unprocessable Entity): "
        "body.itemPatches: field required; query.pageSize: must be <= 1000"
    )


def test_long_server_message_is_cut() -> None:
    exc = _fail(httpx.Response(400, json={"message": "x" * 1000}))
    assert str(exc).endswith(": " + "x" * 297 + "...")


def test_other_status() -> None:
    exc = _fail(httpx.Response(409, json={"message": "exists"}))
    assert isinstance(exc, ProviderResponseError)
    assert str(exc) == f"GET storage/folders/{FOLDER}: Encord answered 409 Conflict: exists"


def test_redirect_is_not_followed() -> None:
    exc = _fail(httpx.Response(301, headers={"Location": "https://app.encord.com/login"}))
    assert isinstance(exc, ProviderResponseError)
    assert str(exc) == (
        f"GET storage/folders/{FOLDER}: Encord answered a redirect (301 Moved Permanently) to "
        "https://app.encord.com/login; redirects are not followed (the credentials stay with the configured "
        "origin): configure the API domain itself"
    )


def test_html_on_200() -> None:
    html = "<html><body>Sign in</body></html>"
    exc = _fail(httpx.Response(200, text=html, headers={"Content-Type": "text/html; charset=utf-8"}))
    assert isinstance(exc, ProviderResponseError)
    assert str(exc) == (
        f"GET storage/folders/{FOLDER}: Encord answered 200 with an HTML page (33 bytes); "
        "is https://api.encord.com the Encord API?"
    )


def test_truncated_json_on_200() -> None:
    exc = _fail(
        httpx.Response(
            200, content=b'{"results": [{"uuid": "a"', headers={"Content-Type": "application/json"}
        )
    )
    assert isinstance(exc, ProviderResponseError)
    assert str(exc) == (
        f"GET storage/folders/{FOLDER}: Encord answered 200 with a body that is not JSON (application/json) "
        "(25 bytes); is https://api.encord.com the Encord API?"
    )


def test_empty_200() -> None:
    exc = _fail(httpx.Response(200, content=b""))
    assert str(exc) == (
        f"GET storage/folders/{FOLDER}: Encord answered 200 with an empty body (0 bytes); "
        "is https://api.encord.com the Encord API?"
    )


def test_204_is_none() -> None:
    with _client(Script([httpx.Response(204)])) as client:
        assert client.call("POST", "organisation/client-metadata-schema-v2", body={}, write=True) is None


def test_5xx_body_is_not_shown_after_budget() -> None:
    script = Script([httpx.Response(500, text="<html>oops</html>")])
    with _client(script, max_attempts=2) as client, pytest.raises(ProviderConnectionError) as info:
        client.call("GET", "x")
    assert str(info.value) == (
        "GET x at https://api.encord.com still failing after 2 attempt(s) and 1.0 s of backoff "
        "(last: 500 Internal Server Error); try again later or lower parallelism"
    )


# -- paging -----------------------------------------------------------------------------------------------------


def _page(results: list[Any], token: str | None) -> httpx.Response:
    return httpx.Response(200, json={"results": results, "nextPageToken": token})


def test_pages_follow_tokens_until_null() -> None:
    script = Script([_page([1, 2], "t1"), _page([3], "t/2="), _page([], None)])
    params: list[tuple[str, str | int | bool]] = [
        ("isRecursive", False),
        ("order", "name"),
        (PAGE_TOKEN, ""),
        ("pageSize", 2),
        ("signUrls", False),
    ]
    with _client(script) as client:
        pages = list(client.pages("storage/folders", params=params))
    assert pages == [[1, 2], [3], []]
    assert [r.url.raw_path.decode() for r in script.requests] == [
        "/v2/public/storage/folders?isRecursive=False&order=name&pageSize=2&signUrls=False",
        "/v2/public/storage/folders?isRecursive=False&order=name&pageToken=t1&pageSize=2&signUrls=False",
        "/v2/public/storage/folders?isRecursive=False&order=name&pageToken=t%2F2%3D&pageSize=2&signUrls=False",
    ]


def test_snake_case_token_is_accepted() -> None:
    script = Script([httpx.Response(200, json={"results": [1], "next_page_token": "a"}), _page([2], None)])
    with _client(script) as client:
        assert list(client.pages("storage/folders", params=[(PAGE_TOKEN, "")])) == [[1], [2]]


def test_empty_string_token_is_an_error() -> None:
    script = Script([_page([1], "")])
    with _client(script) as client, pytest.raises(ProviderResponseError) as info:
        list(client.pages("storage/folders/{uuid}/items", FOLDER, params=[(PAGE_TOKEN, "")]))
    assert str(info.value) == (
        "GET storage/folders/{uuid}/items: Encord answered nextPageToken ''; only null ends a listing, so "
        "following it would never stop"
    )


def test_repeated_token_is_an_error() -> None:
    script = Script([_page([1], "same"), _page([2], "same")])
    with _client(script) as client, pytest.raises(ProviderResponseError) as info:
        list(client.pages("storage/folders", params=[(PAGE_TOKEN, "")]))
    assert str(info.value) == "GET storage/folders: Encord answered the same nextPageToken twice"


def test_page_without_results() -> None:
    script = Script([httpx.Response(200, json={"items": []})])
    with _client(script) as client, pytest.raises(ProviderResponseError) as info:
        list(client.pages("storage/folders", params=[(PAGE_TOKEN, "")]))
    assert str(info.value) == "GET storage/folders: Encord answered a page without a 'results' list"


def test_next_page_is_asked_for_while_the_caller_reads_one_request_at_a_time() -> None:
    """Page N+1 is requested as soon as page N's answer is in (before the caller is done with page N), and
    never before: one request of a listing in flight at a time, tokens followed in order."""
    lock = threading.Lock()
    in_flight = [0]
    most = [0]
    asked = [threading.Event() for _ in range(3)]
    tokens = [None, "t1", "t2"]

    def handler(request: httpx.Request) -> httpx.Response:
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        try:
            token = request.url.params.get("pageToken")
            n = tokens.index(token)
            asked[n].set()
            time.sleep(0.02)
            nxt = tokens[n + 1] if n + 1 < len(tokens) else None
            return _page([n], nxt)
        finally:
            with lock:
                in_flight[0] -= 1

    with _client(Script([handler])) as client:
        seen = []
        for page in client.pages("storage/folders", params=[(PAGE_TOKEN, "")]):
            seen.append(page)
            if page != [2]:
                # The caller still holds this page: the next one is already on its way.
                assert asked[page[0] + 1].wait(5)
    assert seen == [[0], [1], [2]]
    assert most[0] == 1


def test_a_listing_left_early_waits_for_the_page_asked_for_ahead() -> None:
    """A caller that stops reading leaves no request running behind it."""
    done = threading.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("pageToken") == "t1":
            time.sleep(0.05)
            done.set()
            return _page([2], None)
        return _page([1], "t1")

    with _client(Script([handler])) as client:
        pages = client.pages("storage/folders", params=[(PAGE_TOKEN, "")])
        assert next(pages) == [1]
        pages.close()
        assert done.is_set()


def test_secrets_not_in_any_error_or_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    responses: list[Step] = [
        httpx.Response(401),
        httpx.Response(403),
        httpx.Response(429),
        httpx.Response(200, text="<html/>"),
        httpx.ConnectError("refused"),
    ]
    for response in responses:
        script = Script([response])
        with _client(script, max_attempts=2) as client, pytest.raises(Exception) as info:
            client.call("GET", "x")
        assert TOKEN not in str(info.value)
        assert TOKEN not in repr(info.value)
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
    assert json.dumps([r.getMessage() for r in caplog.records]).count("retry") >= 1
