"""Redis keys: built in one place, always with a hash tag, checked for one slot before
any command leaves; and no Redis client anywhere else in the server.

The checks on the source are static (they read the code, so a new key or a new
use of Redis fails here before any server is involved); the Cluster in the limiter
tests catches at run time what they cannot see.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagegate_server.redis_connection import Key, KeySpace, RedisConnection, Script, slot
from imagegate_server.redis_connection.keys import one_slot

SERVER = Path(__file__).resolve().parents[2] / "service" / "imagegate_server"
KEYS_MODULE = SERVER / "redis_connection" / "keys.py"
CONNECTION_PACKAGE = SERVER / "redis_connection"


def _modules() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(), str(path))) for path in sorted(SERVER.rglob("*.py"))]


def test_only_the_key_space_makes_keys() -> None:
    # Key is the type every Redis command of RedisConnection takes (mypy checks it);
    # a Key(...) anywhere else would be a key built by hand, maybe without a tag.
    made = [
        f"{path.relative_to(SERVER)}:{node.lineno}"
        for path, tree in _modules()
        if path != KEYS_MODULE
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Key"
    ]
    assert made == []


def test_no_module_but_the_connection_package_talks_to_redis() -> None:
    # Every use of Redis goes through RedisConnection: its bounds, its failures, its
    # slot check. (bench/redis_server.py starts a server and speaks raw PING to it.)
    importers = []
    for path, tree in _modules():
        if CONNECTION_PACKAGE in path.parents:
            continue
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            if any(name == "redis" or name.startswith("redis.") for name in names):
                importers.append(f"{path.relative_to(SERVER)}:{node.lineno}")
    assert importers == []


tags = st.text(min_size=1, max_size=40).filter(lambda t: "{" not in t and "}" not in t)
prefixes = st.text(max_size=20).filter(lambda t: "{" not in t and "}" not in t)
names = st.lists(st.text(max_size=20), min_size=1, max_size=6)


@given(prefixes, tags, names)
def test_keys_of_one_tag_share_a_slot_the_tag_alone_decides(
    prefix: str, tag: str, parts: list[str]
) -> None:
    keys = KeySpace(prefix).keys(tag, *parts)
    assert len(keys) == len(parts)
    assert {slot(key) for key in keys} == {slot("{" + tag + "}")}
    one_slot(keys)
    for key, part in zip(keys, parts, strict=True):
        assert key == f"{prefix}{{{tag}}}:{part}"


@pytest.mark.parametrize("tag", ["", "a{b", "a}b", "{x}"])
def test_a_tag_that_would_move_the_slot_is_refused(tag: str) -> None:
    with pytest.raises(ValueError, match="hash tag"):
        KeySpace("p:").keys(tag, "x")


def test_a_prefix_with_braces_is_refused() -> None:
    with pytest.raises(ValueError, match="braces"):
        KeySpace("a{b}:")


def test_keys_without_a_tag_or_in_two_slots_never_reach_redis() -> None:
    space = KeySpace("p:")
    (a,) = space.keys("client-a", "x")
    b = next(k for n in range(100) for k in space.keys(f"client-{n}", "x") if slot(k) != slot(a))
    with pytest.raises(ValueError, match="different hash slots"):
        one_slot([a, b])
    with pytest.raises(ValueError, match="without a hash tag"):
        one_slot([Key("p:plain")])


async def test_a_script_on_keys_of_two_slots_is_refused_before_any_connection() -> None:
    # Port 9 (discard) on loopback: nothing is listening; nothing must be tried.
    connection = RedisConnection.from_url("redis://127.0.0.1:9")
    space = KeySpace("p:")
    keys = [*space.keys("one", "x"), *space.keys("two", "y")]
    assert slot(keys[0]) != slot(keys[1])
    with pytest.raises(ValueError, match="different hash slots"):
        await connection.run(Script("return 1"), keys, [])
    await connection.aclose()
