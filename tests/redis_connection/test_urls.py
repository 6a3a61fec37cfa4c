"""IMAGEGATE_REDIS_URL in every documented form, and the settings beside it: what each
means, and a clear start-up error (never quoting the URL) for what cannot work."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from imagegate_server.errors import StartupError
from imagegate_server.redis_connection import RedisConnection, RedisUrlError, connect
from imagegate_server.redis_connection.urls import parse
from imagegate_server.settings import Settings

PASSWORD = "pa:ss/w@rd-SECRET"
QUOTED = "pa%3Ass%2Fw%40rd-SECRET"


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, _secrets_dir=None, **values)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://cache:6380/2", ("single", False, (("cache", 6380),), 2, None, None, None)),
        ("redis://cache", ("single", False, (("cache", 6379),), 0, None, None, None)),
        (
            f"rediss://app:{QUOTED}@cache.example:6380",
            ("single", True, (("cache.example", 6380),), 0, None, "app", PASSWORD),
        ),
        (
            f"redis://:{QUOTED}@[::1]:7000/1",
            ("single", False, (("::1", 7000),), 1, None, None, PASSWORD),
        ),
        (
            "redis+cluster://10.0.0.1:7000,10.0.0.2,node-3:7002",
            (
                "cluster",
                False,
                (("10.0.0.1", 7000), ("10.0.0.2", 6379), ("node-3", 7002)),
                0,
                None,
                None,
                None,
            ),
        ),
        (
            f"rediss+cluster://app:{QUOTED}@redis-cluster.db:6379/0",
            ("cluster", True, (("redis-cluster.db", 6379),), 0, None, "app", PASSWORD),
        ),
        (
            "redis+sentinel://s1:26380,s2/mymaster",
            ("sentinel", False, (("s1", 26380), ("s2", 26379)), 0, "mymaster", None, None),
        ),
        (
            f"rediss+sentinel://:{QUOTED}@s1:26379/my%20primary/3",
            ("sentinel", True, (("s1", 26379),), 3, "my primary", None, PASSWORD),
        ),
        ("REDIS+CLUSTER://h:1", ("cluster", False, (("h", 1),), 0, None, None, None)),
    ],
)
def test_each_form_names_its_shape_hosts_and_credentials(
    url: str, expected: tuple[Any, ...]
) -> None:
    target = parse(url)
    got = (target.shape, target.tls, target.hosts, target.db, target.service)
    assert (*got, target.username, target.password) == expected
    assert PASSWORD not in target.location and "app" not in target.location
    assert PASSWORD not in repr(target)


def test_a_socket_url_names_the_path_and_the_database() -> None:
    target = parse(f"unix://:{QUOTED}@/run/redis/redis.sock?db=4")
    assert (target.shape, target.socket_path, target.db, target.password) == (
        "single",
        "/run/redis/redis.sock",
        4,
        PASSWORD,
    )
    assert target.location == "unix:/run/redis/redis.sock"


def test_locations_for_log_lines_keep_the_shape_and_drop_the_credentials() -> None:
    assert parse(f"rediss+cluster://u:{QUOTED}@a:1,b:2").location == "rediss+cluster://a:1,b:2"
    assert parse("redis+sentinel://s:5/main").location == "redis+sentinel://s:5/main"
    assert parse(f"redis://:{QUOTED}@[::1]").location == "redis://[::1]:6379"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("", "empty"),
        (f"http://:{QUOTED}@cache:6379", "must start with one of"),
        (f"redis://:{QUOTED}@a:1,b:2", "redis+cluster://"),
        (f"redis+sentinel://:{QUOTED}@s1:26379", "primary's name"),
        (f"redis+sentinel://:{QUOTED}@s1:26379/", "primary's name"),
        (f"redis+cluster://:{QUOTED}@h:1/3", "only database 0"),
        (f"redis://:{QUOTED}@h:port", "host or port"),
        (f"redis://:{QUOTED}@h:1,,h:2", "empty one"),
        (f"redis://:{QUOTED}@h:1/x", "database number"),
        (f"redis://:{QUOTED}@h:1?ssl_cert_reqs=none", "IMAGEGATE_REDIS_*"),
        (f"redis://:{QUOTED}@h:1?db=2", "not as ?db="),
        (f"unix://:{QUOTED}@", "socket path"),
    ],
)
def test_what_cannot_work_is_said_without_quoting_the_url(url: str, says: str) -> None:
    with pytest.raises(RedisUrlError) as caught:
        parse(url)
    assert says in str(caught.value)
    assert PASSWORD not in str(caught.value) and QUOTED not in str(caught.value)
    with pytest.raises(StartupError) as stopped:
        connect(settings(redis_url=url))
    assert str(stopped.value).startswith("IMAGEGATE_REDIS_URL ")
    assert PASSWORD not in str(stopped.value) and QUOTED not in str(stopped.value)


def test_the_password_from_the_secrets_directory_is_used_and_never_shown(tmp_path: Path) -> None:
    (tmp_path / "imagegate_redis_password").write_text(PASSWORD + "\n")
    (tmp_path / "imagegate_redis_username").write_text("app\n")
    read = Settings(_env_file=None, _secrets_dir=tmp_path, redis_url="redis://cache")  # type: ignore[call-arg]
    assert read.redis_password is not None
    assert read.redis_password.get_secret_value() == PASSWORD
    assert read.redis_username == "app"
    assert PASSWORD not in repr(read) and PASSWORD not in str(read.model_dump())
    connection = connect(read)
    kwargs = connection.client.connection_pool.connection_kwargs  # type: ignore[union-attr]
    assert (kwargs["username"], kwargs["password"]) == ("app", PASSWORD)
    assert connection.location == "redis://cache:6379"


def test_a_password_given_twice_is_a_start_up_error() -> None:
    with pytest.raises(StartupError, match="keep one of them") as stopped:
        connect(settings(redis_url=f"redis://:{QUOTED}@cache", redis_password="other"))
    assert PASSWORD not in str(stopped.value)


@pytest.mark.parametrize(
    ("url", "files", "says"),
    [
        ("redis://cache", {"redis_tls_ca_file": "ca"}, "does not use TLS"),
        ("redis+cluster://cache", {"redis_tls_ca_file": "ca"}, "does not use TLS"),
        ("rediss://cache", {"redis_tls_cert_file": "crt"}, "both"),
        ("rediss://cache", {"redis_tls_ca_file": "missing"}, "not a readable file"),
    ],
)
def test_tls_files_that_cannot_work_stop_start_up(
    tmp_path: Path, url: str, files: dict[str, str], says: str
) -> None:
    for name in ("ca", "crt", "key"):
        (tmp_path / name).write_text("PEM")
    values = {field: tmp_path / name for field, name in files.items()}
    with pytest.raises(StartupError, match=says):
        connect(settings(redis_url=url, **values))


def test_each_shape_gets_redis_pys_own_client_with_the_timeout_and_pool() -> None:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster
    from redis.asyncio.sentinel import SentinelConnectionPool

    chosen = settings(
        redis_url="redis+cluster://a:1,b:2", redis_timeout_s=0.3, redis_max_connections=9
    )
    cluster = connect(chosen)
    assert isinstance(cluster.client, RedisCluster)
    assert sorted(cluster.client.nodes_manager.startup_nodes) == ["a:1", "b:2"]
    assert cluster.client.connection_kwargs["socket_timeout"] == 0.3
    assert cluster.client.connection_kwargs["max_connections"] == 9

    sentinel = connect(settings(redis_url="rediss+sentinel://s:1/main/2", redis_timeout_s=0.3))
    assert isinstance(sentinel.client, Redis)
    pool = sentinel.client.connection_pool
    assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "main"
    assert pool.connection_kwargs["db"] == 2 and pool.connection_kwargs["socket_timeout"] == 0.3
    assert (cluster.timeout_s, sentinel.timeout_s) == (0.3, 0.3)
    assert isinstance(RedisConnection.from_url("unix:///tmp/r.sock").client, Redis)


REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = [
    REPO / "deploy" / "kubernetes" / "overlays" / "redis" / "README.md",
    REPO / "deploy" / "kubernetes" / "overlays" / "redis" / "kustomization.yaml",
    REPO / "docs" / "_pending" / "redis.md",
    *sorted((REPO / "docs").glob("*.md")),
]
_DOCUMENTED_URL = re.compile(r"\b(?:rediss?(?:\+cluster|\+sentinel)?|unix)://[^\s`|'\"]+")


def _documented_urls() -> list[str]:
    found = []
    for document in DOCUMENTS:
        if not document.is_file():
            continue  # the pending notes move into docs/ when they are merged
        for url in _DOCUMENTED_URL.findall(document.read_text()):
            url = url.rstrip(".,:;)")
            if not url.endswith("://"):  # "use redis+cluster://" names a scheme only
                found.append(url)
    return found


def test_every_url_the_documentation_shows_is_one_the_gateway_accepts() -> None:
    urls = _documented_urls()
    assert len(urls) >= 10, urls
    shapes = {parse(url).shape for url in urls}
    assert shapes == {"single", "cluster", "sentinel"}
