"""Settings of the result store: its backend (a local directory with its link port,
or an S3-compatible bucket), retention, links, write bounds and the sweeper."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator

from imagegate_server.settings.units import MIB


class StoreSettings(BaseModel):
    """Where stored results go, how long they stay and how writes are bounded."""

    store_backend: Literal["local", "s3"] = "local"
    """Where stored results go: ``local``, a directory served by the gateway's own
    link port (one replica, or replicas sharing the directory); ``s3``, any
    S3-compatible service (AWS S3, GCS in S3 mode, Ceph, SeaweedFS, MinIO...)."""
    store_dir: Path | None = None
    """The local store's directory. Unset: ``<data_dir>/results``."""
    store_retention_s: float = Field(default=86400.0, ge=60, le=365 * 86400)
    """How long a stored result is kept unless the call's client says otherwise
    (``result_retention`` in the clients file); capped at ``store_max_retention_s``."""
    store_max_retention_s: float = Field(default=7 * 86400.0, ge=60, le=365 * 86400)
    """The longest any stored result is kept: a client's ``result_retention`` above
    it is cut to it, so the operator bounds what the store holds whatever the
    clients file says."""
    store_link_lifetime_s: float = Field(default=3600.0, ge=1, le=365 * 86400)
    """Lifetime of a link to a stored result; capped at the result's remaining
    retention and at the backend's maximum (7 days for S3's presigned URLs)."""
    store_http_host: str | None = None
    """Address the local store's link port binds. Unset: the gateway's ``host``."""
    store_http_port: int = Field(default=50053, ge=0, le=65535)
    """Port on which the gateway serves local-store links (and nothing else); 0 picks
    a free one (with workers: one for all of them). Unused with
    ``store_backend=s3`` (links go to the bucket). Not 50052: the Kubernetes
    manifests give that to the health port."""
    store_public_url: str | None = None
    """Base URL of local-store links as callers reach them (the gateway may sit
    behind a proxy), e.g. ``https://images.example.com``. Unset:
    ``http://<store_http_host>:<port>``."""
    store_signing_key: SecretStr | None = None
    """HMAC-SHA256 key of local-store links (also from ``imagegate_store_signing_key``
    in the secrets directory). Unset: a random key generated once into
    ``<data_dir>/store-signing-key`` (mode 0600) and read from there by every worker
    and restart, so links stay valid as long as the directory does."""
    store_s3_bucket: str | None = None
    """The bucket of ``store_backend=s3`` (required there)."""
    store_s3_prefix: str = "imagegate/results/"
    """Key prefix of every stored result in the bucket (a lifecycle rule filters on it)."""
    store_s3_endpoint: str | None = None
    """S3 endpoint URL for non-AWS services (``http://`` is allowed); unset: AWS S3
    (``AWS_ENDPOINT_URL`` is also read)."""
    store_s3_region: str | None = None
    """Region; unset: ``AWS_REGION``/``AWS_DEFAULT_REGION``, else ``us-east-1``."""
    store_s3_access_key_id: SecretStr | None = None
    """Access key; unset: ``AWS_ACCESS_KEY_ID``, a web identity (EKS), the container
    or instance credentials, in the AWS SDKs' order."""
    store_s3_secret_access_key: SecretStr | None = None
    """Secret of ``store_s3_access_key_id`` (a secret: the secrets directory's
    ``imagegate_store_s3_secret_access_key`` serves it)."""
    store_s3_session_token: SecretStr | None = None
    """Session token of temporary credentials, if any."""
    store_s3_virtual_hosted_style: bool = False
    """Address the bucket as ``<bucket>.<endpoint>`` instead of ``<endpoint>/<bucket>``."""
    store_write_timeout_s: float = Field(default=120.0, gt=0)
    """Upper bound of storing one result, from its first byte to its last; past it the
    write is abandoned (nothing becomes visible) and the call fails UNAVAILABLE."""
    store_connect_timeout_s: float = Field(default=5.0, gt=0)
    """Upper bound of connecting to the S3 service."""
    store_max_concurrent_writes: int = Field(default=64, ge=1)
    """Results being stored at once per process; more wait (within the write timeout)."""
    store_part_bytes: int = Field(default=8 * MIB, ge=5 * MIB, le=512 * MIB)
    """S3 multipart part size: objects larger go up in parts, smaller in one request.
    With ``store_part_concurrency``, bounds the memory one write holds."""
    store_part_concurrency: int = Field(default=2, ge=1, le=16)
    """Parts of one object uploaded at once: a write holds at most
    ``store_part_bytes * (store_part_concurrency + 1)``."""
    store_sweep: bool = True
    """Delete expired results with the gateway's sweeper (with Redis, one replica at a
    time). Turn off only where a bucket lifecycle rule deletes them instead."""
    store_sweep_interval_s: float = Field(default=60.0, gt=0)
    """Time between two sweeps (a full batch sweeps again at once)."""
    store_sweep_batch: int = Field(default=1000, ge=1, le=100_000)
    """Most results one sweep deletes (a pass's work is bounded)."""

    @field_validator("store_s3_prefix")
    @classmethod
    def _key_prefix(cls, value: str) -> str:
        # "a/b" and "/a/b/" both mean keys "a/b/<...>"; "" means the bucket's root.
        value = value.strip("/")
        return f"{value}/" if value else ""
