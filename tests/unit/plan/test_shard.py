"""plan/shard.py: parsing ``K/N`` and the rule (whole folder groups, or files by uuid)."""

from __future__ import annotations

import hashlib
import random
import zlib

import pytest

from reconciler.errors import UsageError
from reconciler.plan.shard import Shard, ShardRule, parse_shard, uuid_shard


def test_parse_shard():
    assert parse_shard("2/4") == Shard(2, 4) and str(Shard(2, 4)) == "2/4"
    assert parse_shard(" 1/1 ") == Shard(1, 1)
    for bad in ("0/1", "2/1", "1", "1/", "/1", "x/2", "1.0/2", "１/２", "1/1001", "+1/2"):
        with pytest.raises(UsageError) as exc:
            parse_shard(bad)
        assert str(exc.value) == f"--shard {bad!r}: expected K/N with 1 <= K <= N <= 1000 (e.g. --shard 2/4)"


def test_uuid_shard_is_crc32_of_the_lowercase_uuid():
    u = "0B7A4F6E-1111-4A2B-8C3D-5E6F7A8B9C0D"
    assert uuid_shard(u, 7) == zlib.crc32(u.lower().encode()) % 7 + 1 == uuid_shard(u.lower(), 7)


def test_folder_groups_are_top_folders_dealt_round_robin_in_sha256_order():
    paths = ["b", "a/x", "a", "c/d", "c/e", "/d/"]
    tops = sorted(["a", "b", "c/d", "c/e", "d"], key=lambda t: hashlib.sha256(t.encode()).hexdigest())
    for count in (1, 2, 3, 4, 5):
        rules = [ShardRule(Shard(k, count), paths) for k in range(1, count + 1)]
        assert all(r.by_folder for r in rules)
        for r, top in enumerate(tops):
            owner = r % count + 1
            assert [rule.lists(top) for rule in rules] == [k == owner for k in range(1, count + 1)]
            assert [rule.lists(top + "/deeper") for rule in rules] == [
                k == owner for k in range(1, count + 1)
            ]
            assert [rule.owns_file("u", top + "/z") for rule in rules] == [
                k == owner for k in range(1, count + 1)
            ]
    # "a/x" is inside "a": one group, one shard.
    assert all(
        ShardRule(Shard(k, 5), paths).lists("a") == ShardRule(Shard(k, 5), paths).lists("a/x")
        for k in range(1, 6)
    )


def test_every_shard_gets_its_share_of_the_groups():
    rng = random.Random(3)
    for _ in range(50):
        groups = [f"g{rng.randint(0, 10**6)}" for _ in range(rng.randint(1, 40))]
        g = len(set(groups))
        for count in range(1, g + 1):
            sizes = [
                sum(ShardRule(Shard(k, count), groups).lists(t) for t in set(groups))
                for k in range(1, count + 1)
            ]
            assert sum(sizes) == g and set(sizes) <= {g // count, -(-g // count)}


def test_fewer_groups_than_shards_split_files_by_uuid():
    rules = [ShardRule(Shard(k, 3), ["big", "big/sub", ""]) for k in (1, 2, 3)]
    assert not any(r.by_folder for r in rules)
    assert all(r.lists("big") and r.lists("elsewhere") for r in rules)
    for u in ("a", "b", "c", "d"):
        assert [r.keeps(u) for r in rules] == [uuid_shard(u, 3) == k for k in (1, 2, 3)]
        assert [r.owns_file(u, "big") for r in rules] == [uuid_shard(u, 3) == k for k in (1, 2, 3)]


def test_by_folder_a_file_outside_every_group_goes_by_uuid():
    rules = [ShardRule(Shard(k, 2), ["a", "b"]) for k in (1, 2)]
    assert [r.owns_file("u1", "z") for r in rules] == [uuid_shard("u1", 2) == k for k in (1, 2)]
    assert all(r.keeps("anything") for r in rules)
