"""The direct nested diff (``differ._plain_field_changes``) says exactly what DeepDiff says, where it applies."""

from __future__ import annotations

import random
from typing import Any

import pytest

from reconciler.plan import differ
from reconciler.plan.model import FieldChange

SCALARS = [0, 1, 2, 1.0, 2.5, True, False, None, "a", "b", "", "1", 0.1, -3]
FLOATS = [round(random.Random(i).uniform(-2, 2), 3) for i in range(40)] + [0, 1, 1.0]
KEYS = ["a", "b", "c", "lat", "it's", 'q"x', "[0]", "x y"]


def deepdiff_changes(before: Any, after: Any) -> tuple[FieldChange, ...]:
    """What ``_field_changes`` returns with the fast path switched off."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(differ, "_plain_field_changes", lambda b, a: None)
        return differ._field_changes(before, after)


def random_pair(rng: random.Random, pool: list, longest: int) -> tuple[Any, Any]:
    if rng.random() < 0.6:
        n = rng.randint(0, longest)
        before = [rng.choice(pool) for _ in range(n)]
        after = list(before)
        mode = rng.random()
        if mode < 0.4 and n:
            after[rng.randrange(n)] = rng.choice(pool)
        elif mode < 0.7:
            after = [rng.choice(pool) for _ in range(n)]
        else:
            after = [rng.choice(pool) for _ in range(rng.randint(0, longest))]
        return before, after
    old = {k: rng.choice(pool) for k in rng.sample(KEYS, rng.randint(0, 5))}
    new = dict(old)
    for k in rng.sample(KEYS, rng.randint(0, 3)):
        if rng.random() < 0.3:
            new.pop(k, None)
        else:
            new[k] = rng.choice(pool)
    return old, new


@pytest.mark.parametrize(("seed", "pool", "longest"), [(1, SCALARS, 9), (2, SCALARS, 9), (3, FLOATS, 40)])
def test_fast_path_matches_deepdiff(seed, pool, longest):
    rng = random.Random(seed)
    used = 0
    for _ in range(1500):
        before, after = random_pair(rng, pool, longest)
        fast = differ._plain_field_changes(before, after)
        if fast is None:
            continue
        used += 1
        assert fast == deepdiff_changes(before, after), (before, after)
    assert used > 300  # the fast path is actually exercised


def test_fast_path_shapes():
    assert differ._field_changes([0.5, 0.25, 1.5], [0.5, 0.75, 1.5]) == (FieldChange("[1]", 0.25, 0.75),)
    assert differ._field_changes({"latitude": 1.5, "longitude": 2}, {"latitude": 1.5, "longitude": 3}) == (
        FieldChange("['longitude']", 2, 3),
    )
    # Shapes it leaves to DeepDiff: different lengths, nesting, a value equal across number types, NaN.
    assert differ._plain_field_changes([1, 2], [1, 2, 3]) is None
    assert differ._plain_field_changes([[1]], [[2]]) is None
    assert differ._plain_field_changes([1, 2], [1.0, 3]) is None
    assert differ._plain_field_changes([float("nan")], [1.0]) is None
    assert differ._plain_field_changes({"a": 1}, {"b": 1}) is None
