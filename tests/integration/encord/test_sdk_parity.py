"""The provider's requests are the official SDK's, byte for byte: the same calls are made by both against a
recording server on 127.0.0.1, and method, path, query string and body are compared."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from reconciler.providers.encord import EncordProvider, auth_from_env
from reconciler.types import JsonValue
from tests.helpers.keys import make_ed25519_key

FOLDER = "5e0b6a0e-2f1c-4b7e-9c51-0c2f6d1c9a10"
ITEM = "0f9d7c2e-8a51-4c1b-9e0b-7a3f5d2c1b00"
STAMP = "2024-01-01T00:00:00+00:00"

FOLDER_JSON: dict[str, Any] = {
    "uuid": FOLDER,
    "parent": None,
    "name": "cams",
    "description": "",
    "clientMetadata": None,
    "owner": "o@example.invalid",
    "createdAt": STAMP,
    "lastEditedAt": STAMP,
    "userRole": "admin",
    "syncedDatasetHash": None,
    "pathToRoot": [],
}
ITEM_JSON: dict[str, Any] = {
    "uuid": ITEM,
    "parent": FOLDER,
    "itemType": "image",
    "name": "a.jpg",
    "description": "",
    "clientMetadata": '{"k": 1}',
    "owner": "o@example.invalid",
    "createdAt": STAMP,
    "lastEditedAt": STAMP,
    "backedDataUnitsCount": 0,
    "storageLocation": "encord",
    **dict.fromkeys(
        [
            "integrationHash",
            "url",
            "signedUrl",
            "fileSize",
            "mimeType",
            "duration",
            "fps",
            "height",
            "width",
            "dicomInstanceUid",
            "dicomStudyUid",
            "dicomSeriesUid",
            "frameCount",
            "audioSampleRate",
            "audioBitDepth",
            "audioCodec",
            "audioNumChannels",
        ]
    ),
}


@dataclass(frozen=True)
class Seen:
    method: str
    target: str  # raw path and query, as sent
    body: bytes


class _Recorder(ThreadingHTTPServer):
    daemon_threads = True
    seen: list[Seen]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Recorder

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.seen.append(Seen(self.command, self.path, body))
        path = self.path.partition("?")[0].removeprefix("/v2/public/")
        reply: Any
        if path == "organisation/client-metadata-schema-v2":
            reply = {"k": {"ty": "variant", "hint": "text"}} if self.command == "GET" else None
        elif re.fullmatch(r"storage/folders/[0-9a-f-]{36}", path):
            reply = FOLDER_JSON
        elif path == "storage/folders" or path.endswith("/folders"):
            reply = {"results": [FOLDER_JSON], "nextPageToken": None}
        elif path.endswith("/items"):
            reply = {"results": [ITEM_JSON], "nextPageToken": None}
        else:
            reply = {"results": [ITEM_JSON]}
        data = json.dumps(reply).encode() if reply is not None else b""
        self.send_response(200 if data else 204)
        if data:
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = _answer


@pytest.fixture
def recorder() -> Iterator[_Recorder]:
    server = _Recorder(("127.0.0.1", 0), _Handler)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_requests_match_the_sdk(recorder: _Recorder) -> None:
    encord = pytest.importorskip("encord")
    from encord.http.bundle import Bundle

    pem, _ = make_ed25519_key()
    url = f"http://127.0.0.1:{recorder.server_address[1]}"
    metadata: dict[str, JsonValue] = {"k": "v", "caf\u00e9": [1, 2.5, None], "nested": {"b": True}}

    client = encord.EncordUserClient.create_with_ssh_private_key(pem, domain=url)
    client.metadata_schema()
    folder = client.get_storage_folder(FOLDER)
    items = list(folder.list_items(page_size=1000))
    client.get_storage_items([ITEM])
    with Bundle() as bundle:
        items[0].update(client_metadata=metadata, bundle=bundle)
    sdk = list(recorder.seen)
    recorder.seen.clear()

    with EncordProvider(url, auth_from_env({"ENCORD_SSH_KEY": pem})) as provider:
        provider.read_schema()
        live_folder = provider.resolve_folder(FOLDER)
        listed = list(provider.iter_items(live_folder, recursive=False, children=False))
        provider.get_items([ITEM])
        provider.patch_items({ITEM: metadata})
    ours = list(recorder.seen)

    assert [(s.method, s.target) for s in ours] == [(s.method, s.target) for s in sdk]
    assert [s.body for s in ours] == [s.body for s in sdk]
    assert listed[0].item.metadata == {"k": 1}
    # What was compared, for the reader:
    assert [s.target.partition("?")[0] for s in ours] == [
        "/v2/public/organisation/client-metadata-schema-v2",
        f"/v2/public/storage/folders/{FOLDER}",
        f"/v2/public/storage/folders/{FOLDER}/items",
        "/v2/public/storage/items/get-bulk",
        "/v2/public/storage/items/patch-bulk",
    ]


def test_folder_requests_match_the_sdk(recorder: _Recorder) -> None:
    encord = pytest.importorskip("encord")
    pem, _ = make_ed25519_key()
    url = f"http://127.0.0.1:{recorder.server_address[1]}"

    client = encord.EncordUserClient.create_with_ssh_private_key(pem, domain=url)
    top = list(client.list_storage_folders(search="cams", page_size=1000))
    list(top[0].list_subfolders(search="cams", page_size=1000))
    every = list(client.list_storage_folders(page_size=1000))
    list(every[0].find_subfolders(page_size=1000))
    sdk = list(recorder.seen)
    recorder.seen.clear()

    with EncordProvider(url, auth_from_env({"ENCORD_SSH_KEY": pem})) as provider:
        provider.resolve_folder("cams/cams")  # top-level search, then a subfolder search
        provider.list_folders()  # top-level listing, then a recursive subfolder listing per top folder
    ours = list(recorder.seen)

    assert [(s.method, s.target) for s in ours] == [(s.method, s.target) for s in sdk]
    assert ours[1].target == (
        f"/v2/public/storage/folders/{FOLDER}/folders?search=cams&isRecursive=False&order=name&desc=False"
        "&pageSize=1000"
    )
