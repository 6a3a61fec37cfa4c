"""``IMAGEGATE_REDIS_URL`` read into a :class:`Target`: which shape of deployment,
which hosts, which credentials.

    redis://[[user]:password@]host[:6379][/db]             one server
    rediss://...                                           the same over TLS
    unix://[[user]:password@]/path/to/redis.sock[?db=N]    one server, local socket
    redis+cluster://[[user]:password@]host[:6379][,host[:port]...]
    rediss+cluster://...                                   Redis Cluster (any nodes as seeds)
    redis+sentinel://[[user]:password@]host[:26379][,host[:port]...]/primary-name[/db]
    rediss+sentinel://...                                  a primary found by Sentinel

User and password belong to the Redis servers (for Sentinel: the primary and its
replicas; the sentinels' own are separate settings). Percent-encode what is not
URL-safe in them. Every error message here is free of the URL: it may hold a password.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

Shape = Literal["single", "cluster", "sentinel"]

SCHEMES: dict[str, tuple[Shape, bool]] = {
    "redis": ("single", False),
    "rediss": ("single", True),
    "unix": ("single", False),
    "redis+cluster": ("cluster", False),
    "rediss+cluster": ("cluster", True),
    "redis+sentinel": ("sentinel", False),
    "rediss+sentinel": ("sentinel", True),
}
SCHEME_LIST = ", ".join(f"{scheme}://" for scheme in SCHEMES)
DEFAULT_PORT = {"single": 6379, "cluster": 6379, "sentinel": 26379}


class RedisUrlError(ValueError):
    """The URL cannot be used; the message never quotes it."""


@dataclass(frozen=True)
class Target:
    shape: Shape
    tls: bool
    hosts: tuple[tuple[str, int], ...] = ()
    """(host, port) of the server, the Cluster's seed nodes or the sentinels."""
    socket_path: str | None = None
    """unix:// only."""
    db: int = 0
    service: str | None = None
    """Sentinel: the name the sentinels know the primary by."""
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    @property
    def location(self) -> str:
        """Where it is, for log lines: scheme and hosts, never credentials."""
        if self.socket_path is not None:
            return f"unix:{self.socket_path}"
        scheme = ("rediss" if self.tls else "redis") + {
            "single": "",
            "cluster": "+cluster",
            "sentinel": "+sentinel",
        }[self.shape]
        hosts = ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.hosts)
        return f"{scheme}://{hosts}" + (f"/{self.service}" if self.service else "")


def parse(url: str) -> Target:
    """The :class:`Target` of ``url``; raises :class:`RedisUrlError` saying what is wrong."""
    url = url.strip()
    if not url:
        raise RedisUrlError("is set but empty; set a Redis URL or unset it")
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in SCHEMES:
        raise RedisUrlError(f"must start with one of {SCHEME_LIST}")
    shape, tls = SCHEMES[scheme]
    rest, _, query = rest.partition("?")
    rest = rest.partition("#")[0]
    userinfo, at, netloc_path = rest.rpartition("@")
    if not at:
        userinfo, netloc_path = "", rest
    username, password = _credentials(userinfo)
    netloc, slash, path = netloc_path.partition("/")
    options = _query(query)
    if scheme == "unix":
        socket_path = unquote("/" + path if slash else netloc)
        if netloc or not socket_path.strip("/"):
            raise RedisUrlError("unix:// needs an absolute socket path: unix:///path/to/redis.sock")
        db = _number(options.get("db", "0"), "the database number")
        return Target(
            "single", False, socket_path=socket_path, db=db, username=username, password=password
        )
    if "db" in options:
        raise RedisUrlError("give the database as the path (/N), not as ?db=")
    hosts = _hosts(netloc, shape)
    parts = [unquote(p) for p in path.split("/")] if slash else []
    service = None
    if shape == "sentinel":
        if not parts or not parts[0]:
            raise RedisUrlError(
                "redis+sentinel:// needs the primary's name as the path: "
                "redis+sentinel://host1:26379,host2:26379/mymaster"
            )
        service, parts = parts[0], parts[1:]
    db = _database(parts)
    if shape == "cluster" and db != 0:
        raise RedisUrlError("a Redis Cluster has only database 0")
    if shape == "single" and len(hosts) > 1:
        raise RedisUrlError(
            "names several hosts: use redis+cluster:// for a Cluster or "
            "redis+sentinel://.../primary-name for Sentinel"
        )
    return Target(shape, tls, hosts, None, db, service, username, password)


def _credentials(userinfo: str) -> tuple[str | None, str | None]:
    if not userinfo:
        return None, None
    user, colon, password = userinfo.partition(":")
    return (unquote(user) or None), (unquote(password) if colon and password else None)


def _query(query: str) -> dict[str, str]:
    try:
        parsed = parse_qs(query, strict_parsing=bool(query))
        options = {name: values[-1] for name, values in parsed.items()}
    except ValueError:
        raise RedisUrlError("has a malformed query string") from None
    unknown = sorted(set(options) - {"db"})
    if unknown:
        raise RedisUrlError(
            f"query parameters are not read ({', '.join(n[:40] for n in unknown[:5])}): set "
            "TLS files, timeouts and credentials with the IMAGEGATE_REDIS_* settings"
        )
    return options


def _hosts(netloc: str, shape: Shape) -> tuple[tuple[str, int], ...]:
    hosts = []
    for item in netloc.split(","):
        item = item.strip()
        if not item:
            raise RedisUrlError("names no host (or an empty one between commas)")
        try:
            parsed = urlsplit(f"//{item}")
            host, port = parsed.hostname, parsed.port
        except ValueError:
            raise RedisUrlError("has a host or port that cannot be read") from None
        if not host:
            raise RedisUrlError("has a host or port that cannot be read")
        hosts.append((unquote(host), port or DEFAULT_PORT[shape]))
    return tuple(hosts)


def _database(parts: list[str]) -> int:
    parts = [p for p in parts if p]
    if not parts:
        return 0
    if len(parts) > 1:
        raise RedisUrlError("has a path that is not a database number")
    return _number(parts[0], "the database number")


def _number(text: str, what: str) -> int:
    if not text.isdigit() or len(text) > 6:
        raise RedisUrlError(f"has {what} that is not a small whole number")
    return int(text)
