"""A server that answers a re-read half (get-bulk items without their metadata text, or one file twice) never
makes an apply drop or alter keys no manifest owns: through a rewriting proxy on loopback, in front of the
emulator, with the real CLI."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from reconciler.testing.emulator import Emulator
from tests.helpers.cli import run
from tests.helpers.states import make_snapshot
from tests.helpers.workspace import encord_workspace, file_manifest, write_dir

TOKEN = "half-token"
ENV = {"ENCORD_API_TOKEN": TOKEN}
FOREIGN = {"labeler.status": "done", "qa": 3}


def live(emu: Emulator) -> dict[str, Any]:
    (item,) = [i for i in emu.snapshot().items if i.name == "a.jpg"]
    return dict(item.metadata)


@contextmanager
def rewriting_proxy(
    upstream: str, rewrite: Callable[[dict[str, Any]], None], route: str = "get-bulk"
) -> Iterator[str]:
    """Forwards every request to ``upstream``; the first answer of a request whose path holds ``route`` is
    passed through ``rewrite``."""
    host = upstream.split("//", 1)[1]
    state = {"done": False}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _any(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or None
            conn = http.client.HTTPConnection(host, timeout=30)
            headers = {
                k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")
            }
            try:
                conn.request(self.command, self.path, body, headers)
                answer = conn.getresponse()
                data = answer.read()
            finally:
                conn.close()
            if route in self.path and not state["done"] and answer.status == 200:
                state["done"] = True
                doc = json.loads(data)
                rewrite(doc)
                data = json.dumps(doc).encode()
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = _any

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _workspace(tmp_path: Path, proxy: str) -> Path:
    """An Encord workspace through ``proxy``: one manifest tagging every file of ``cams``."""
    return write_dir(
        tmp_path / "ws",
        {"workspace.yaml": encord_workspace(proxy), "cams.yaml": file_manifest("cams", "*.jpg", "{tag: x}")},
    )


def _converges(ws: Path, emu: Emulator) -> None:
    """Once the proxy passes answers on: the next apply writes the tag beside every foreign key, and the plan
    after it has nothing to do."""
    r = run(["-C", str(ws), "apply", "--auto-approve"], env=ENV)
    assert r.code == 0, r.err
    assert live(emu) == {**FOREIGN, "tag": "x"}
    final = run(["-C", str(ws), "plan", "--detailed-exitcode"], env=ENV)
    assert (final.code, "No changes." in final.out) == (0, True), final.out


def _drop(doc: dict[str, Any]) -> None:
    for item in doc["results"]:
        item.pop("clientMetadata")


def _null(doc: dict[str, Any]) -> None:
    for item in doc["results"]:
        item["clientMetadata"] = None


def _empty(doc: dict[str, Any]) -> None:
    for item in doc["results"]:
        item["clientMetadata"] = ""


def _twice(doc: dict[str, Any]) -> None:
    doc["results"].append({**doc["results"][0], "clientMetadata": json.dumps({"labeler.status": "BOGUS"})})


@pytest.mark.parametrize(
    ("rewrite", "why"),
    [
        (_drop, "without its clientMetadata text (missing)"),
        (_null, "without its clientMetadata text (None)"),
        (_empty, "without its clientMetadata text ('')"),
        (_twice, "twice"),
    ],
)
def test_a_half_answered_re_read_fails_the_files_and_keeps_every_foreign_key(
    tmp_path: Path, rewrite: Callable[[dict[str, Any]], None], why: str
) -> None:
    emu = Emulator(make_snapshot({"cams": [("a.jpg", dict(FOREIGN))]}), tokens=[TOKEN]).start()
    try:
        with rewriting_proxy(emu.url, rewrite) as proxy:
            ws = _workspace(tmp_path, proxy)
            r = run(["-C", str(ws), "apply", "--auto-approve"], env=ENV)
            assert r.code == 1, r.out + r.err
            assert "Apply complete" not in r.out
            assert why in r.out + r.err
            assert live(emu) == FOREIGN  # nothing written, nothing lost
            _converges(ws, emu)
    finally:
        emu.stop()


def _listed_twice(doc: dict[str, Any]) -> None:
    doc["results"].append(dict(doc["results"][0]))


def _listed_twice_renamed(doc: dict[str, Any]) -> None:
    doc["results"].append(
        {**doc["results"][0], "name": "z.jpg", "clientMetadata": '{"labeler.status": "BOGUS"}'}
    )


@pytest.mark.parametrize("rewrite", [_listed_twice, _listed_twice_renamed])
def test_a_listing_that_repeats_a_file_is_refused_not_planned_twice(
    tmp_path: Path, rewrite: Callable[[dict[str, Any]], None]
) -> None:
    """A listing page that gives one file twice (as it is, or under another name with other metadata) is the
    plan's error: nothing is planned or written from it (before, the file was planned, and written, twice)."""
    emu = Emulator(make_snapshot({"cams": [("a.jpg", dict(FOREIGN))]}), tokens=[TOKEN]).start()
    (item,) = emu.snapshot().items
    try:
        with rewriting_proxy(emu.url, rewrite, route="/items") as proxy:
            ws = _workspace(tmp_path, proxy)
            r = run(["-C", str(ws), "apply", "--auto-approve"], env=ENV)
            assert r.code == 1, r.out + r.err
            assert r.err.strip().splitlines()[-1] == (
                f"Error: GET storage/folders/{{uuid}}/items: Encord listed file {item.uuid} twice in one "
                "listing; nothing is planned from a listing that repeats a file (run the command again)"
            )
            assert live(emu) == FOREIGN
            _converges(ws, emu)
    finally:
        emu.stop()
