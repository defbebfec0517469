"""Fuzzing the Encord provider with server answers: garbage bodies, wrong shapes, odd status codes.

An ``httpx.MockTransport`` answers every request with something hypothesis draws: usually a plausible
answer for the route with a few fields mutated, sometimes a random JSON value, random bytes, an empty or
truncated body, or any status code. Planning and applying through the provider must end either normally
or in a ``ReconcilerError`` (what the CLI reports as exit 1), never in another exception (exit 3).
"""

from __future__ import annotations

import json
import random
import re
import threading
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.apply import apply_plan
from reconciler.errors import ProviderResponseError, ReconcilerError
from reconciler.plan.planner import make_plan
from reconciler.providers.encord import EncordProvider, RetryPolicy
from reconciler.providers.encord.auth import BearerAuth
from reconciler.providers.encord.client import EncordClient
from reconciler.schema import FieldSpec, KeyType
from tests.hardening.fuzzing import FUZZ, json_values
from tests.helpers.desired import desired, manifest, schema, sel
from tests.helpers.plans import add, file_change, plan_of

F1 = "00000000-0000-4000-8000-0000000000f1"
F2 = "00000000-0000-4000-8000-0000000000f2"
I1 = "00000000-0000-4000-8000-000000000001"
I2 = "00000000-0000-4000-8000-000000000002"
URL = "http://127.0.0.1:9"
STATUSES = [200] * 16 + [204, 201, 302, 400, 401, 403, 404, 413, 422, 429, 500, 503, 599]


def _item(uuid: str, name: str, item_type: str = "image", md: Any = '{"k": 1}') -> dict[str, Any]:
    return {"uuid": uuid, "parent": F2, "name": name, "itemType": item_type, "clientMetadata": md}


def _plausible(method: str, path: str) -> Any:
    """A well-formed answer for the route (what the emulator would say)."""
    if path.endswith("client-metadata-schema-v2"):
        return {"k": {"ty": "variant", "hint": "number"}, "w": {"ty": "enum", "values": ["a", "b"]}}
    if path.endswith("/child-items"):
        return {"results": [_item(I2, "c.png")], "nextPageToken": None}
    if path.endswith("/items"):
        return {"results": [_item(I1, "a.jpg"), _item(I2, "g", "imageGroup")], "nextPageToken": None}
    if path.endswith("/storage/folders"):
        return {"results": [{"uuid": F1, "parent": None, "name": "traffic"}], "nextPageToken": None}
    if path.endswith("/folders"):
        return {"results": [{"uuid": F2, "parent": F1, "name": "cams"}], "nextPageToken": None}
    if "/storage/folders/" in path:
        return {"uuid": F2, "parent": F1, "name": "cams", "pathToRoot": [{"uuid": F1, "name": "traffic"}]}
    if path.endswith("get-bulk"):
        return {"results": [_item(I1, "a.jpg"), _item(I2, "b.jpg", md=None)]}
    return None


def _mutate(value: Any, rng: random.Random, garbage: Any) -> Any:
    """Replace or delete one node of ``value`` (picked by a seeded walk) with ``garbage``."""
    if isinstance(value, dict) and value and rng.random() < 0.7:
        key = rng.choice(sorted(value))
        out = dict(value)
        if rng.random() < 0.3:
            del out[key]
        else:
            out[key] = _mutate(value[key], rng, garbage)
        return out
    if isinstance(value, list) and value and rng.random() < 0.7:
        i = rng.randrange(len(value))
        return [*value[:i], _mutate(value[i], rng, garbage), *value[i + 1 :]]
    return garbage


@dataclass(frozen=True)
class Answer:
    """One server answer, drawn up front (hypothesis draws only in the test's thread)."""

    status: int
    shape: str
    garbage: Any
    raw: bytes
    seed: int
    truncate: float | None
    retry_after: str


answers = st.builds(
    Answer,
    status=st.sampled_from(STATUSES),
    shape=st.sampled_from(["plausible"] * 4 + ["mutated"] * 4 + ["json", "bytes"]),
    garbage=json_values,
    raw=st.binary(max_size=40),
    seed=st.integers(0, 2**32),
    truncate=st.none() | st.none() | st.none() | st.floats(0, 1),
    retry_after=st.sampled_from(["0", "1", "soon", "-5", "1e9", ""]),
)


class Server:
    """Answers requests from a drawn script (then plausibly, once it runs out); thread-safe."""

    def __init__(self, script: list[Answer]) -> None:
        self._script = list(script)
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        with self._lock:
            answer = self._script.pop(0) if self._script else _GOOD
        if answer.shape == "bytes":
            body = answer.raw
        else:
            value = _plausible(request.method, path)
            if answer.shape == "mutated":
                value = _mutate(value, random.Random(answer.seed), answer.garbage)
            elif answer.shape == "json":
                value = answer.garbage
            body = json.dumps(value).encode()
            if answer.truncate is not None:
                body = body[: int(len(body) * answer.truncate)]
        headers = {"Content-Type": "application/json"}
        if answer.status == 429:
            headers["Retry-After"] = answer.retry_after
        if answer.status == 302:
            headers["Location"] = "http://127.0.0.1:9/elsewhere"
        return httpx.Response(answer.status, content=body if answer.status != 204 else b"", headers=headers)


def _provider(script: list[Answer]) -> EncordProvider:
    policy = RetryPolicy(
        max_attempts=2, base_delay=0.0, max_delay=0.0, max_retry_after=0.0, sleep=lambda s: None
    )
    return EncordProvider(
        URL, BearerAuth("t"), parallelism=2, retry=policy, transport=httpx.MockTransport(Server(script))
    )


_GOOD = Answer(200, "plausible", None, b"", 0, None, "0")
#: A run of good answers (so the provider gets deep into a flow), then drawn ones.
scripts = st.builds(
    lambda n, rest: [_GOOD] * n + rest, st.integers(0, 12), st.lists(answers, min_size=1, max_size=20)
)


#: Where an error from a server answer is located: the request, the manifest line, or the plan/schema it
#: was checked against (a 401 names the domain).
_LOCATED = re.compile(
    r"^((GET|POST|PATCH) \S+|Encord refused the credentials \(401\) at |the plan is stale|live metadata schema: |"
    r"[^:\s]+\.ya?ml:\d+)"
)


def _check(exc: ReconcilerError) -> None:
    message = str(exc)
    assert message.strip() and _LOCATED.match(message), message


_DESIRED = desired(
    manifest("m.yaml", "traffic/cams", sel("name", "a.jpg", k=2), sel("glob", "*", w="a"), children=True),
    manifest("u.yaml", F2, sel("uuid", I2, k=3), on_missing="ignore"),
    schema_manifest=schema(k=FieldSpec(KeyType.NUMBER), w=FieldSpec(KeyType.ENUM, values=("a", "b"))),
)


@FUZZ
@given(script=scripts)
def test_planning_against_a_fuzzed_server_fails_cleanly(script: list[Answer]) -> None:
    provider = _provider(script)
    try:
        make_plan(_DESIRED, provider)
    except ReconcilerError as exc:
        _check(exc)
    finally:
        provider.close()


_PLAN = plan_of(
    file_change("traffic/cams", "a.jpg", add("k", 2), n=1),
    file_change("traffic/cams", "b.jpg", add("k", 3), strategy="overwrite", n=2),
)


@FUZZ
@given(script=scripts, precheck=st.booleans())
def test_applying_against_a_fuzzed_server_fails_cleanly(script: list[Answer], precheck: bool) -> None:
    provider = _provider(script)
    try:
        result = apply_plan(_PLAN, provider, precheck=precheck)
    except ReconcilerError as exc:
        _check(exc)
    else:
        for r in result.files:
            assert r.status.value in ("written", "unchanged", "stale", "failed", "not-attempted")
    finally:
        provider.close()


@FUZZ
@given(script=scripts)
def test_reading_folders_and_items_from_a_fuzzed_server_fails_cleanly(script: list[Answer]) -> None:
    provider = _provider(script)
    try:
        folders = provider.list_folders()
        for folder in folders[:2]:
            list(provider.iter_items(folder, recursive=True, children=True))
        provider.get_items([I1, I2])
        provider.patch_items({I1: {"k": 1}})
    except ReconcilerError as exc:
        _check(exc)
    finally:
        provider.close()


# --------------------------------------------------------------------------------------------- answer size cap


def _endless(request: httpx.Request) -> httpx.Response:
    def chunks() -> Any:
        while True:  # a server that never stops talking
            yield b"x" * 65536

    return httpx.Response(200, stream=_Stream(chunks()))


class _Stream(httpx.SyncByteStream):
    def __init__(self, chunks: Any) -> None:
        self._chunks = chunks

    def __iter__(self) -> Any:
        return iter(self._chunks)


@pytest.mark.parametrize("declared", [True, False])
def test_an_answer_over_the_size_cap_is_refused_while_it_streams_in(declared: bool) -> None:
    cap = 1_000_000

    def handler(request: httpx.Request) -> httpx.Response:
        if declared:  # an honest Content-Length over the cap: refused before reading
            return httpx.Response(200, headers={"Content-Length": str(10**12)}, stream=_Stream(iter([b"{}"])))
        return _endless(request)

    client = EncordClient(
        URL, BearerAuth("t"), transport=httpx.MockTransport(handler), max_response_bytes=cap
    )
    with client, pytest.raises(ProviderResponseError) as info:
        client.call("GET", "organisation/client-metadata-schema-v2")
    assert str(info.value) == (
        "GET organisation/client-metadata-schema-v2: Encord's answer is larger than 1,000,000 bytes; "
        f"refusing to read it (is {URL} the Encord API?)"
    )


def test_a_gzip_answer_under_the_cap_is_decoded() -> None:
    import gzip

    payload = json.dumps({"k": {"ty": "variant", "hint": "text"}}).encode()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Encoding": "gzip"}, content=gzip.compress(payload))

    client = EncordClient(URL, BearerAuth("t"), transport=httpx.MockTransport(handler))
    with client:
        assert client.call("GET", "organisation/client-metadata-schema-v2") == json.loads(payload)
