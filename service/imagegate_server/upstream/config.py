"""What one upstream is: its endpoint, key, kind (OpenAI, Azure OpenAI or a
compatible server) and the bounds its requests and answers are held to.

The upstreams file (:mod:`imagegate_server.routing`) or the ``IMAGEGATE_OPENAI_*``
settings make one :class:`UpstreamConfig` per upstream; :class:`~.client.Upstream`
speaks to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import SecretStr

from imagegate_server.upstream.azure import AzureConfig
from imagegate_server.upstream.retry import RetryPolicy

Kind = Literal["openai", "azure", "compatible"]


@dataclass(frozen=True)
class UpstreamConfig:
    base_url: str
    """OpenAI's or a compatible server's ``.../v1``; for Azure, the resource endpoint."""
    api_key: SecretStr
    name: str = "default"
    """How logs, metrics, spans, results and the clients file's policies name it."""
    kind: Kind = "openai"
    azure: AzureConfig | None = None
    """Azure's routes, deployments and authentication (kind ``azure`` only)."""
    organization: str | None = None
    project: str | None = None
    connect_timeout_s: float = 10.0
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(2, 0.5, 20.0))
    max_connections: int = 4096
    http2: bool = False
    unknown_model_answer_bytes: int = 128 * 1024 * 1024
    """The largest answer (and image) taken for a model the model table does not know."""
    error_body_bytes: int = 64 * 1024
    """How much of an error answer's body is read; the rest is not."""
