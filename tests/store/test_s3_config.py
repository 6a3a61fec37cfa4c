"""Where the S3 store finds its configuration: the settings, the secrets directory,
or the standard AWS variables; and what it refuses at start-up."""

from __future__ import annotations

import datetime
import secrets
from pathlib import Path

import obstore
import pytest
from store_support import BUCKET, Clock, s3_settings, store_settings
from weed_support import ACCESS_KEY, REGION, SECRET_KEY, WeedServer

from imagegate_server.errors import StartupError
from imagegate_server.settings import Settings
from imagegate_server.store import CallInfo, ResultStore, open_store

DAY = datetime.timedelta(days=1)


async def _round_trip(settings: Settings) -> None:
    running = await open_store(settings)
    try:
        stored = await running.store.put(
            b"config", content_type="image/png", call=CallInfo("acme"), retention=DAY
        )
        assert (await running.store.stat(stored.key)) is not None
    finally:
        await running.aclose()


async def test_credentials_and_endpoint_from_the_standard_aws_variables(
    weed: WeedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", weed.endpoint)  # http://: allowed from here too
    settings = store_settings("s3", tmp_path, store_s3_bucket=BUCKET, store_s3_prefix="env/")
    await _round_trip(settings)


async def test_the_secret_from_the_secrets_directory(weed: WeedServer, tmp_path: Path) -> None:
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    (secrets_dir / "imagegate_store_s3_secret_access_key").write_text(SECRET_KEY)
    base = s3_settings(weed, tmp_path)
    values = base.model_dump(exclude={"store_s3_secret_access_key"})
    settings = Settings(_env_file=None, _secrets_dir=secrets_dir, **values)  # type: ignore[call-arg]
    assert settings.store_s3_secret_access_key is not None
    assert settings.store_s3_secret_access_key.get_secret_value() == SECRET_KEY
    await _round_trip(settings)


async def test_s3_without_a_bucket_does_not_start(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="IMAGEGATE_STORE_S3_BUCKET"):
        await open_store(store_settings("s3", tmp_path))


def test_the_key_prefix_is_normalised(tmp_path: Path) -> None:
    def prefix(value: str) -> str:
        return store_settings("s3", tmp_path, store_s3_prefix=value).store_s3_prefix

    assert prefix("/a/b") == "a/b/"
    assert prefix("a/b/") == "a/b/"
    assert prefix("") == ""
    assert prefix("/") == ""


async def test_a_store_at_the_buckets_root_sweeps_only_its_own_keys(
    weed: WeedServer, tmp_path: Path, clock: Clock
) -> None:
    bucket = f"root-{secrets.token_hex(4)}"
    settings = s3_settings(weed, tmp_path, store_s3_bucket=bucket, store_s3_prefix="")
    running = await open_store(settings)
    try:
        raw = weed.store(bucket)
        await obstore.put_async(raw, "2000-01-01/notes.txt", b"not ours")  # an old date
        await obstore.put_async(raw, "readme.txt", b"not ours either")
        store = ResultStore(running.store.backend, clock=clock)
        stored = await store.put(
            b"ours", content_type="image/png", call=CallInfo("a"), retention=DAY
        )
        assert stored.key.count("/") == 3  # no prefix: the key is the object's name
        clock.advance(days=2)
        assert (await store.sweep(10)).objects == 1
        left = [meta["path"] async for page in obstore.list(raw) for meta in page]
        assert sorted(left) == ["2000-01-01/notes.txt", "readme.txt"]
    finally:
        await running.aclose()
