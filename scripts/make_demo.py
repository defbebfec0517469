"""Writes manifests/demo-live.json: the seed snapshot of the embedded demo workspace (deterministic)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

NS = uuid.UUID("6f1c1c57-7b1e-4a0e-9d0b-0d5c1f4c2a11")


def uid(name: str) -> str:
    return str(uuid.uuid5(NS, name))


def main() -> None:
    folders = [
        ("traffic", None),
        ("traffic/cams-2024", "traffic"),
        ("traffic/cams-2023", "traffic"),
        ("medical", None),
        ("medical/scans", "medical"),
        ("audio", None),
        ("audio/interviews", "audio"),
        ("images", None),
    ]
    folder_recs = [
        {"uuid": uid(p), "parent": uid(parent) if parent else None, "name": p.rsplit("/", 1)[-1]}
        for p, parent in folders
    ]
    items = []

    def add(folder: str, name: str, item_type: str, md: dict, parent_item: str | None = None) -> str:
        key = f"{folder}/{name}" if parent_item is None else f"{folder}/{parent_item}/{name}"
        rec = {
            "uuid": uid(key),
            "folder": uid(folder),
            "name": name,
            "item_type": item_type,
            "client_metadata": md,
        }
        if parent_item:
            rec["parent_item"] = uid(f"{folder}/{parent_item}")
        items.append(rec)
        return rec["uuid"]

    weathers = ["sunny", "rain", "sunny", "rain"]
    for i in range(1, 13):
        md = {"capture.weather": weathers[i % 4], "team.b.label": f"lane-{i % 3}"}
        if i == 1:
            md["keyframes"] = [13, 17]
        if i in (5, 6):
            md["capture.site"] = "paris"
        add("traffic/cams-2024", f"cam{i:02d}.mp4", "video", md)
    for i in range(1, 7):
        add(
            "traffic/cams-2023",
            f"cam{i:02d}.mp4",
            "video",
            {"capture.weather": "sunny", "capture.site": "london"},
        )
    add("medical/scans", "scan-07", "imageGroup", {"study": "S-7"})
    for j in range(1, 5):
        add("medical/scans", f"slice-{j:02d}.png", "image", {}, parent_item="scan-07")
    add("medical/scans", "scan-08", "imageGroup", {"study": "S-8"})
    for j in range(1, 4):
        add("medical/scans", f"slice-{j:02d}.png", "image", {"reviewed": True}, parent_item="scan-08")
    for i in range(1, 7):
        add(
            "audio/interviews",
            f"interview-{i:02d}.wav",
            "audio",
            {"legacy.owner": "ops", "transcript": f"draft {i}"},
        )
    for i in range(1, 18):
        md: dict = {"team.b.label": "street"} if i % 2 else {}
        add("images", f"img-{i:03d}.jpg", "image", md)
    schema = {
        "capture.weather": {"ty": "enum", "values": ["rain", "sunny"]},
        "capture.site": {"ty": "variant", "hint": "varchar"},
        "transcript": {"ty": "variant", "hint": "text"},
        "team.b.label": {"ty": "variant", "hint": "varchar"},
        "study": {"ty": "variant", "hint": "varchar"},
        "reviewed": {"ty": "variant", "hint": "boolean"},
    }
    doc = {"format_version": "1", "schema": schema, "folders": folder_recs, "items": items}
    out = Path(__file__).resolve().parent.parent / "manifests" / "demo-live.json"
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {out} ({len(items)} files)")


if __name__ == "__main__":
    main()
