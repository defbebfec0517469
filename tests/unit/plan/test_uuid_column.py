"""A digest listing's uuid column reads as the list of its uuids, whatever is put in it."""

from __future__ import annotations

import random
import uuid

import pytest

from reconciler.plan.listing import UuidColumn


def rand_uuid(rng: random.Random) -> str:
    u = str(uuid.UUID(int=rng.getrandbits(128)))
    r = rng.random()
    if r < 0.03:
        return u.upper()[:35]  # another length
    if r < 0.05:
        return u[:35] + "é"  # not ASCII
    return u.upper() if r < 0.2 else u


@pytest.mark.parametrize("seed", range(20))
def test_the_column_reads_as_a_list(seed: int) -> None:
    rng = random.Random(seed)
    col, ref = UuidColumn(), []
    for _ in range(rng.randint(1, 30)):
        if rng.random() < 0.3:
            u = rand_uuid(rng)
            col.append(u)
            ref.append(u)
        else:
            page = [rand_uuid(rng) for _ in range(rng.randint(0, 20))]
            col.extend(tuple(page) if rng.random() < 0.5 else iter(page))
            ref.extend(page)
        assert len(col) == len(ref)
        for i in range(-len(ref), len(ref)):
            assert col[i] == ref[i]
        a, b = sorted(rng.randint(-len(ref) - 2, len(ref) + 2) for _ in range(2))
        assert col[a:b] == ref[a:b] and list(col) == ref
        for bad in (len(ref), -len(ref) - 1):
            with pytest.raises(IndexError):
                col[bad]
    if ref:
        col[0] = ref[0] = "x"
        del col[-1], ref[-1]
        col.insert(0, "y")
        ref.insert(0, "y")
        assert list(col) == ref
