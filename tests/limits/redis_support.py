"""A real ``redis-server`` for the limiter tests (the one of
:mod:`support.redis_deployments`, under the name these tests have always used)."""

from __future__ import annotations

from support.redis_deployments import RedisNode as RedisServer

__all__ = ["RedisServer"]
