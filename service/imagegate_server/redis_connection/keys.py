"""Redis key names: the only place that builds them, and always with a hash tag.

A Redis Cluster runs a script or a multi-key command only when all its keys hash to
one slot, and only the part of a key inside its first ``{...}`` is hashed (the hash
tag). So every key is ``<prefix>{<tag>}:<name>``: the keys one operation touches
share its tag, hence its slot, on whatever node the Cluster puts it. :class:`Key`
is a distinct type so that mypy refuses a hand-made string where a key is expected
(:class:`~imagegate_server.redis_connection.RedisConnection` takes only Keys), and
:func:`one_slot` checks what it is given on every deployment shape, so a test on a
single server already fails on keys that a Cluster would refuse.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NewType

from redis.crc import key_slot

Key = NewType("Key", str)


class KeySpace:
    """Keys under one prefix (``IMAGEGATE_REDIS_PREFIX``), so that several gateways or
    other applications can share one Redis."""

    def __init__(self, prefix: str) -> None:
        if "{" in prefix or "}" in prefix:
            raise ValueError("the key prefix must not contain braces (hash tags)")
        self.prefix = prefix

    def keys(self, tag: str, *names: str) -> tuple[Key, ...]:
        """``<prefix>{<tag>}:<name>`` for each name: one hash slot for all of them.

        ``tag`` must be non-empty and brace-free (percent-encode what comes from
        outside, e.g. a client's name): an empty tag or a brace in it would move the
        slot to another part of the key.
        """
        if not tag or "{" in tag or "}" in tag:
            raise ValueError("a hash tag must be non-empty and free of braces")
        return tuple(Key(f"{self.prefix}{{{tag}}}:{name}") for name in names)


def slot(key: str) -> int:
    """The Cluster hash slot of ``key`` (CRC16 of its hash tag, as Redis computes it)."""
    return int(key_slot(key.encode()))


def one_slot(keys: Sequence[Key]) -> None:
    """Raise ``ValueError`` (a programming error) unless every key has a hash tag and
    all are in one slot."""
    for key in keys:
        start = key.find("{")
        if start < 0 or key.find("}", start) <= start + 1:
            raise ValueError(f"Redis key without a hash tag: {key[:80]!r}")
    if len({slot(key) for key in keys}) > 1:
        raise ValueError(f"Redis keys in different hash slots in one command: {list(keys)[:4]!r}")
