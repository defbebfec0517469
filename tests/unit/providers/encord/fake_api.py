"""A small in-memory stand-in for Encord's v2 storage API, served through ``httpx.MockTransport``.

Only for unit tests of the provider's logic (paging, path walking, bulk fallbacks); the real wire contract is
tested against the project's emulator in tests/integration/encord/.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx


@dataclass
class FakeApi:
    folders: dict[str, tuple[str | None, str]] = field(default_factory=dict)  # uuid -> (parent, name)
    items: dict[str, dict[str, Any]] = field(default_factory=dict)  # uuid -> raw StorageItem (+ "_children")
    schema: Any = None
    log: list[str] = field(default_factory=list)  # "METHOD path?query"
    forbidden: set[str] = field(default_factory=set)  # uuids get-bulk / GET answer 403 for
    fail_patch: int | None = None  # status for patch-bulk
    path_to_root: bool = True
    loose_search: bool = True

    def add_folder(self, uuid: str, name: str, parent: str | None = None) -> str:
        self.folders[uuid] = (parent, name)
        return uuid

    def add_item(
        self,
        uuid: str,
        folder: str,
        name: str,
        item_type: str = "image",
        metadata: Any = "{}",
        children: list[dict[str, Any]] | None = None,
    ) -> None:
        self.items[uuid] = {
            "uuid": uuid,
            "parent": folder,
            "name": name,
            "itemType": item_type,
            "clientMetadata": metadata,
            "_children": children or [],
        }

    # -- helpers ------------------------------------------------------------------------------------------------

    def _descendants(self, root: str) -> list[str]:
        out: list[str] = []
        frontier = [root]
        while frontier:
            cur = frontier.pop(0)
            kids = sorted(
                (u for u, (p, _) in self.folders.items() if p == cur), key=lambda u: self.folders[u][1]
            )
            out += kids
            frontier += kids
        return out

    def _folder_json(self, uuid: str) -> dict[str, Any]:
        parent, name = self.folders[uuid]
        chain = []
        cur = parent
        while cur is not None:
            p, n = self.folders[cur]
            chain.append({"uuid": cur, "parentUuid": p, "name": n})
            cur = p
        return {
            "uuid": uuid,
            "parent": parent,
            "name": name,
            "pathToRoot": chain if self.path_to_root else [],
        }

    @staticmethod
    def _public(item: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in item.items() if not k.startswith("_")}

    @staticmethod
    def _page(results: list[Any], query: dict[str, list[str]]) -> httpx.Response:
        size = int(query.get("pageSize", ["100"])[0])
        start = int(query.get("pageToken", ["0"])[0])
        chunk = results[start : start + size]
        nxt = str(start + size) if start + size < len(results) else None
        return httpx.Response(200, json={"results": chunk, "nextPageToken": nxt})

    def _search(self, uuids: list[str], query: dict[str, list[str]]) -> list[str]:
        term = query.get("search", [None])[0]
        if term is None:
            return uuids
        if self.loose_search:
            return [u for u in uuids if term.lower() in self.folders[u][1].lower()]
        return [u for u in uuids if self.folders[u][1] == term]

    # -- the handler --------------------------------------------------------------------------------------------

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/v2/public/")
        query = parse_qs(request.url.query.decode(), keep_blank_values=True)
        self.log.append(f"{request.method} {request.url.raw_path.decode().removeprefix('/v2/public/')}")
        body: Any = json.loads(request.content) if request.content else None
        m = request.method
        if path == "organisation/client-metadata-schema-v2":
            if m == "GET":
                return (
                    httpx.Response(200, json=self.schema) if self.schema is not None else httpx.Response(204)
                )
            self.schema = body
            return httpx.Response(204)
        if m == "GET" and path == "storage/folders":
            tops = sorted(
                (u for u, (p, _) in self.folders.items() if p is None), key=lambda u: self.folders[u][1]
            )
            return self._page([self._folder_json(u) for u in self._search(tops, query)], query)
        if match := re.fullmatch(r"storage/folders/([0-9a-f-]{36})/folders", path):
            root = match.group(1)
            if query.get("isRecursive") == ["True"]:
                subs = self._descendants(root)
            else:
                subs = sorted(
                    (u for u, (p, _) in self.folders.items() if p == root), key=lambda u: self.folders[u][1]
                )
            return self._page([self._folder_json(u) for u in self._search(subs, query)], query)
        if match := re.fullmatch(r"storage/folders/([0-9a-f-]{36})", path):
            if match.group(1) not in self.folders:
                return httpx.Response(403, json={"message": "forbidden"})
            return httpx.Response(200, json=self._folder_json(match.group(1)))
        if match := re.fullmatch(r"storage/folders/([0-9a-f-]{36})/items", path):
            root = match.group(1)
            scope = {root} | (set(self._descendants(root)) if query.get("isRecursive") == ["True"] else set())
            found = [self._public(i) for i in self.items.values() if i["parent"] in scope]
            return self._page(sorted(found, key=lambda i: i["name"]), query)
        if match := re.fullmatch(r"storage/folders/([0-9a-f-]{36})/items/([0-9a-f-]{36})/child-items", path):
            return self._page(self.items[match.group(2)]["_children"], query)
        if m == "POST" and path == "storage/items/get-bulk":
            uuids = body["itemUuids"]
            if any(u not in self.items or u in self.forbidden for u in uuids):
                return httpx.Response(403, json={"message": "forbidden"})
            return httpx.Response(200, json={"results": [self._public(self.items[u]) for u in uuids]})
        if m == "PATCH" and path == "storage/items/patch-bulk":
            if self.fail_patch is not None:
                return httpx.Response(self.fail_patch, json={"message": "nope"})
            out = []
            for u, patch in body["itemPatches"].items():
                self.items[u]["clientMetadata"] = json.dumps(patch["clientMetadata"])
                out.append(self._public(self.items[u]))
            return httpx.Response(200, json={"results": out})
        return httpx.Response(404, json={"detail": "Not Found"})


def U(n: int) -> str:
    """The ``n``-th test uuid."""
    return f"00000000-0000-4000-8000-{n:012d}"
