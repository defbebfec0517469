"""Hypothesis strategies and helpers shared by the fuzz tests: JSON values, tree mutations, text mutations.

Every fuzz test follows one rule: bad input gives a ``ReconcilerError`` whose message says *where* (a file
and line, or a file and field), never another exception type (which the CLI would report as exit 3).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

#: Bounded, deterministic: CI runs the same examples every time, in seconds.
FUZZ = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["", "0", "null", "sha256:", "00000000-0000-4000-8000-000000000001", "../x", "\x00"])
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def paths(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path (keys and indexes) inside a JSON document, the root included."""
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from paths(v, (*prefix, i))


def mutate(doc: Any, path: tuple[Any, ...], op: str, value: Any) -> Any:
    """A copy of ``doc`` with the node at ``path`` replaced by ``value``, deleted, or given an extra key."""
    doc = json.loads(json.dumps(doc))
    if not path:
        return value if op != "extra" or not isinstance(doc, dict) else {**doc, "zz_unknown": value}
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if op == "replace":
        parent[last] = value
    elif op == "delete":
        del parent[last]
    elif isinstance(parent[last], dict):
        parent[last]["zz_unknown"] = value
    else:
        parent[last] = [parent[last], value]
    return doc


def tree_mutations(doc: Any) -> st.SearchStrategy[Any]:
    """Strategies for one structural mutation of ``doc``."""
    all_paths = list(paths(doc))
    return st.builds(
        mutate,
        st.just(doc),
        st.sampled_from(all_paths),
        st.sampled_from(["replace", "delete", "extra"]),
        json_values,
    )


_SNIPPETS = [
    "\n", ":", ": ", "- ", "  ", "\t", "{", "}", "[", "]", ",", "'", '"', "#", "&a ", "*a", "!!python/object ",
    "!!binary ", "<<: *a\n", "---\n", "...\n", "%YAML 1.1\n", "? ", "|\n", ">\n", "null", "~", "\x00", "\ufeff",
    "é", "\u2028", "0x1F", "1e999", ".nan", "2024-13-45", "no", "-", "@", "`", "%", "!", "&", "*",
]  # fmt: skip


def text_mutations(text: str, *, max_edits: int = 4) -> st.SearchStrategy[str]:
    """Strategies for ``text`` with a few characters deleted, inserted (YAML-meaningful snippets) or swapped."""

    @st.composite
    def build(draw: Callable[..., Any]) -> str:
        out = text
        for _ in range(draw(st.integers(1, max_edits))):
            pos = draw(st.integers(0, len(out)))
            kind = draw(st.sampled_from(["insert", "delete", "replace", "truncate"]))
            if kind == "truncate":
                out = out[:pos]
            elif kind == "delete":
                out = out[:pos] + out[pos + draw(st.integers(1, 8)) :]
            else:
                snippet = draw(st.sampled_from(_SNIPPETS) | st.text(max_size=3))
                skip = 1 if kind == "replace" else 0
                out = out[:pos] + snippet + out[pos + skip :]
        return out

    return build()


def plan_checksum(data: dict[str, Any]) -> str:
    """The checksum a saved plan carries (SPEC §4: over everything else in the file)."""
    body = {k: v for k, v in data.items() if k != "checksum"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
