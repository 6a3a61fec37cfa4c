"""Azure OpenAI's differences from OpenAI, for an upstream of kind ``azure``.

Routes (both take the deployment, not the model; the body's ``model`` is the
deployment name too, as the official SDKs send it):

    deployments   {endpoint}/openai/deployments/{deployment}/images/{op}?api-version=V
    v1            {endpoint}/openai/v1/images/{op}?api-version=V   (V: ``preview``
                  while Azure serves images on v1 only as a preview; empty: none)

Authentication is the ``api-key`` header, or ``Authorization: Bearer`` with an Entra
ID token (the key reference then holds the token). What Azure's image models do not
take is refused here before anything is sent (:func:`violations`): WebP output
("WEBP images aren't supported"), edits with DALL-E models, and variations (Azure
documents no variations route). Sources: research/wave3.md section 4 (Microsoft's
``dall-e.md`` how-to and API-version lifecycle pages).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

from imagegate_server.errors import FieldViolation
from imagegate_server.models import Operation

Route = Literal["deployments", "v1"]
Auth = Literal["api-key", "bearer"]
V1_PREVIEW = "preview"


@dataclass(frozen=True)
class AzureConfig:
    deployments: Mapping[str, str]
    """Model name -> deployment name; the models an Azure upstream serves."""
    api_version: str = ""
    """``api-version`` query value; empty sends none (the v1 route's GA form)."""
    route: Route = "deployments"
    auth: Auth = "api-key"


def url(endpoint: str, config: AzureConfig, path: str, deployment: str) -> str:
    """The URL of ``path`` (``images/generations``...) for ``deployment``."""
    base = endpoint.rstrip("/")
    if config.route == "v1":
        target = f"{base}/openai/v1/{path}"
    else:
        target = f"{base}/openai/deployments/{quote(deployment, safe='')}/{path}"
    if config.api_version:
        target += f"?api-version={quote(config.api_version, safe='')}"
    return target


def auth_headers(config: AzureConfig, key: str) -> dict[str, str]:
    if config.auth == "bearer":
        return {"authorization": f"Bearer {key}"}
    return {"api-key": key}


def violations(operation: Operation, params: Mapping[str, Any]) -> list[FieldViolation]:
    """What Azure OpenAI documents it does not take, as field violations."""
    found = []
    if operation is Operation.VARIATION:
        found.append(
            FieldViolation(
                "request",
                "Azure OpenAI serves no image variations",
                "operation_not_supported",
            )
        )
    if params.get("output_format") == "webp":
        found.append(
            FieldViolation(
                "parameters.output_format",
                "Azure OpenAI does not support WebP output: use png or jpeg",
                "unsupported_output_format",
            )
        )
    model = params.get("model")
    if operation is Operation.EDIT and isinstance(model, str) and model.startswith("dall-e"):
        found.append(
            FieldViolation(
                "parameters.model",
                "Azure OpenAI's DALL-E models do not support image edits",
                "unsupported_operation",
            )
        )
    return found
