"""The two ways Encord's documentation updates custom metadata with the official SDK, as runnable scripts.

``bench/apply_vs_sdk.py`` runs each as its own process against the emulator; they are written the way the
documentation's scripts are, with the desired values read from the same JSONL source reconciler plans from.

``bundle``: "Bulk custom metadata import on specific data units": ``get_storage_folder``, then
``folder.list_items()`` (the SDK's default page size), and for every file with a desired row
``item.update(client_metadata=..., bundle=bundle)`` inside ``with Bundle() as bundle:`` (the SDK sends
``patch-bulk`` requests of up to 1000 when the block ends). Like reconciler's merge, each file keeps its other
keys: ``md = item.client_metadata; md.update(row)``.

``loop``: "Update custom metadata to specific data units": for each file, ``get_storage_item(uuid)`` then
``item.update(client_metadata=md)``: two requests per file. Run on a sample (``--sample N``) because it is
slow; the caller compares the time per file.

Run: ``.venv/bin/python -m bench.sdk_scripts bundle --domain URL --key-file KEY --folder UUID --source FILE``
(``loop`` takes ``--uuids FILE``: a JSON list of ``[uuid, name]`` pairs). Prints one JSON line: files, wall.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path
from typing import Any

__all__ = ["main"]


def _client(domain: str, key_file: Path) -> Any:
    # encord 0.1.211 trips a pydantic deprecation warning at import time.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from encord.user_client import EncordUserClient

    return EncordUserClient.create_with_ssh_private_key(key_file.read_text(), domain=domain)


def _desired(source: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    with source.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                out[row["name"]] = row.get("metadata") or {}
    return out


def bundle(domain: str, key_file: Path, folder_uuid: str, source: Path) -> int:
    """The documentation's bulk script: list the folder, update every file with a desired row in one Bundle."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from encord.http.bundle import Bundle

    desired = _desired(source)
    client = _client(domain, key_file)
    folder = client.get_storage_folder(folder_uuid)
    updated = 0
    with Bundle() as b:
        for item in folder.list_items():
            new = desired.get(item.name)
            if new is None:
                continue
            md = dict(item.client_metadata or {})
            md.update(new)
            item.update(client_metadata=md, bundle=b)
            updated += 1
    return updated


def loop(domain: str, key_file: Path, uuids: Path, source: Path) -> int:
    """The documentation's one-by-one script: get each file, merge, update (two requests per file)."""
    desired = _desired(source)
    client = _client(domain, key_file)
    updated = 0
    for uuid, name in json.loads(uuids.read_text()):
        item = client.get_storage_item(uuid)
        md = dict(item.client_metadata or {})
        md.update(desired[name])
        item.update(client_metadata=md)
        updated += 1
    return updated


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("script", choices=("bundle", "loop"))
    p.add_argument("--domain", required=True, help="API origin, e.g. the emulator's http://127.0.0.1:PORT")
    p.add_argument("--key-file", type=Path, required=True, help="OpenSSH Ed25519 private key")
    p.add_argument("--source", type=Path, required=True, help="JSONL rows {name, metadata}")
    p.add_argument("--folder", help="bundle: the folder UUID")
    p.add_argument("--uuids", type=Path, help="loop: JSON list of [uuid, name] pairs")
    args = p.parse_args(argv)
    start = time.perf_counter()
    if args.script == "bundle":
        if not args.folder:
            p.error("bundle needs --folder")
        n = bundle(args.domain, args.key_file, args.folder, args.source)
    else:
        if not args.uuids:
            p.error("loop needs --uuids")
        n = loop(args.domain, args.key_file, args.uuids, args.source)
    print(json.dumps({"script": args.script, "files": n, "wall_s": round(time.perf_counter() - start, 3)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
