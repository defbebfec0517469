"""Conflicts found before anything is written, on every provider (the embedded store and the emulator):
names two live files share, ``owns`` patterns against keys another manifest gives, targeted plans."""

from __future__ import annotations

import pytest

from reconciler.apply import apply_plan
from reconciler.errors import ManifestValidationError
from reconciler.model import LiveItem
from reconciler.plan.planner import Targets, make_plan
from reconciler.schema import FieldSpec, KeyType
from tests.helpers.desired import desired, manifest, schema, sel
from tests.helpers.states import make_snapshot, uid


def problems(d, p, **kw) -> list[str]:
    with pytest.raises(ManifestValidationError) as exc:
        make_plan(d, p, **kw)
    return [str(i) for i in exc.value.issues]


def converge(p, d):
    result = apply_plan(make_plan(d, p), p)
    assert result.ok
    assert not make_plan(d, p).has_changes


def test_duplicate_names_and_group_children_are_errors_naming_both(make_provider):
    snap = make_snapshot({"f": [("a.jpg", {})], "f/x": [("y.jpg", {})]})
    f = snap.folders[0].uuid
    grp = LiveItem(uid("grp"), f, "grp", "imageGroup", {})
    snap.items += [
        LiveItem(uid("a2"), f, "a.jpg", "image", {}),
        LiveItem(uid("xy"), f, "x/y.jpg", "image", {}),
        LiveItem(uid("top"), f, "grp/c1.png", "image", {}),
        grp,
        LiveItem(uid("kid"), f, "c1.png", "image", {}, parent_item=grp.uuid),
    ]
    p = make_provider(snap)
    a1 = uid("item:f/a.jpg")
    d = desired(
        manifest("a.yaml", "f", sel("name", "a.jpg", "a.yaml", n=1)),
        manifest("r.yaml", "f", sel("name", "x/y.jpg", "r.yaml", n=1), recursive=True),
        manifest("g.yaml", "f", sel("name", "grp/c1.png", "g.yaml", n=1), children=True),
    )
    assert sorted(problems(d, p)) == sorted(
        [
            f"a.yaml:5:5: name 'a.jpg' matches 2 files in folder 'f' ({' and '.join(sorted([a1, uid('a2')]))}); select each by uuid instead",
            f"r.yaml:5:5: name 'x/y.jpg' matches 2 files in folder 'f' ({' and '.join(sorted([uid('xy'), uid('item:f/x/y.jpg')]))}); "
            "select each by uuid instead",
            f"g.yaml:5:5: name 'grp/c1.png' matches 2 files in folder 'f' ({' and '.join(sorted([uid('top'), uid('kid')]))}); "
            "select each by uuid instead",
        ]
    )
    fixed = desired(
        manifest(
            "a.yaml",
            "f",
            sel("uuid", a1, "a.yaml", n=1),
            sel("uuid", uid("kid"), "a.yaml", n=2),
            children=True,
        )
    )
    converge(p, fixed)


def test_owns_star_and_another_manifests_key_and_targets(make_provider):
    p = make_provider(make_snapshot({"f": [("a.jpg", {"k": 1}), ("b.jpg", {})]}))
    imported = manifest("i.yaml", "f", sel("name", "a.jpg", "i.yaml", k=1), owns=("*",))
    team_b = manifest("b.yaml", "f", sel("glob", "*.jpg", "b.yaml", team=2))
    d = desired(imported, team_b)
    want = ["b.yaml:1:1: conflict: i.yaml and b.yaml both own key 'team' on f/a.jpg"]
    assert problems(d, p) == want
    # Whatever is targeted: the manifest itself, the other one, or the folder.
    assert problems(d, p, targets=Targets(manifests=frozenset({"i.yaml"}))) == want
    assert problems(d, p, targets=Targets(manifests=frozenset({"b.yaml"}))) == want
    assert problems(d, p, targets=Targets(folders=frozenset({"f"}))) == want
    converge(p, desired(manifest("i.yaml", "f", sel("name", "a.jpg", "i.yaml", k=1), owns=("k*",)), team_b))


def test_a_targeted_plan_that_needs_the_left_out_schema_change_names_target_schema(make_provider):
    live_schema = {"weather": {"ty": "enum", "values": ["rain", "sunny"]}}
    p = make_provider(make_snapshot({"f": [("a.jpg", {})]}, schema=live_schema))
    s = schema(weather=FieldSpec(KeyType.ENUM, values=("rain", "sunny", "snow")))
    d = desired(manifest("a.yaml", "f", sel("name", "a.jpg", "a.yaml", weather="snow")), schema_manifest=s)
    assert problems(d, p, targets=Targets(manifests=frozenset({"a.yaml"}))) == [
        "a.yaml:9:9: weather: the string 'snow' is valid only with the change to 'weather' that the "
        "MetadataSchema manifest declares, and this plan leaves the schema out: add --target schema "
        "(or plan without --target)"
    ]
    converge(p, d)
