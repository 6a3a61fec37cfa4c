"""Result store settings and a clock for the store tests (imported by their modules and
by their conftest)."""

from __future__ import annotations

import datetime
import secrets
from pathlib import Path
from typing import Any

from weed_support import ACCESS_KEY, REGION, SECRET_KEY, WeedServer

from imagegate_server.settings import Settings

BUCKET = "results"


def store_settings(backend: str, tmp_path: Path, **overrides: Any) -> Settings:
    """Settings of a store on ``backend``: loopback, port 0, a private directory or
    key prefix, no sweeping unless asked."""
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "data_dir": tmp_path / "data",
        "store_backend": backend,
        "store_http_port": 0,
        "store_sweep": False,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def s3_settings(weed: WeedServer, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "store_s3_bucket": BUCKET,
        "store_s3_prefix": f"t-{secrets.token_hex(4)}/",
        "store_s3_endpoint": weed.endpoint,
        "store_s3_region": REGION,
        "store_s3_access_key_id": ACCESS_KEY,
        "store_s3_secret_access_key": SECRET_KEY,
    }
    values.update(overrides)
    return store_settings("s3", tmp_path, **values)


class Clock:
    """A clock tests move (the store's notion of now: expiry, sweeping, links)."""

    def __init__(self) -> None:
        self.now = datetime.datetime.now(datetime.UTC)

    def __call__(self) -> datetime.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += datetime.timedelta(**delta)
