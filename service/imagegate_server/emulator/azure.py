"""The emulator as an Azure OpenAI resource (``EmulatorConfig(azure=True)``,
``imagegate emulator --azure``), so that routing to Azure is tested offline.

Routes, both with a required ``api-version`` query parameter (any value):

    POST /openai/deployments/{deployment}/images/{generations,edits}
    POST /openai/v1/images/{generations,edits}         the body's model: the deployment

A deployment is one of ``azure_deployments`` (deployment -> model); without any,
every deployment named like a model the emulator serves is that model. The key goes
in the ``api-key`` header (or as a bearer token, as with an Entra ID token). Errors
have Azure's shapes: a content-filter refusal is ``contentFilter`` (with the
``ResponsibleAIPolicyViolation`` inner error), a bare status is the code of a 401
or 429 (``"429"``), an unknown deployment ``DeploymentNotFound``; WebP output is
refused ("WEBP images aren't supported"). Variations have no Azure route: 404.
"""

from __future__ import annotations

import secrets

from aiohttp import web

from imagegate_server.emulator.config import EmulatorConfig
from imagegate_server.emulator.errors import ApiError, bad_request
from imagegate_server.emulator.parsing import Body
from imagegate_server.models import Operation, rules_for

OPERATIONS = {"generations": Operation.GENERATION, "edits": Operation.EDIT}
DEPLOYMENT_ROUTE = "/openai/deployments/{deployment}/images/{operation}"
V1_ROUTE = "/openai/v1/images/{operation}"
_ACCESS_DENIED = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
    "provide a valid key for an active subscription and use a correct regional API "
    "endpoint for your resource."
)


def check_request(request: web.Request, config: EmulatorConfig) -> None:
    """The key (``api-key``, or a bearer token) and the ``api-version``."""
    key = request.headers.get("api-key", "").strip()
    if not key:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        key = token.strip() if scheme.lower() == "bearer" else ""
    if not key or (
        config.api_key is not None
        and not secrets.compare_digest(key.encode(), config.api_key.encode())
    ):
        raise ApiError(401, _ACCESS_DENIED, code="401")
    if not request.query.get("api-version"):
        raise ApiError(
            404, "Resource not found: the api-version query parameter is required.", code="404"
        )


def deployed_model(config: EmulatorConfig, deployment: str) -> str:
    """The model behind ``deployment``; 404 ``DeploymentNotFound`` for none."""
    if config.azure_deployments:
        model = config.azure_deployments.get(deployment)
    else:
        model = deployment if rules_for(deployment) or deployment in config.extra_models else None
    if model is None:
        raise ApiError(
            404,
            "The API deployment for this resource does not exist. If you created the "
            "deployment within the last 5 minutes, please wait a moment and try again.",
            code="DeploymentNotFound",
        )
    return model


def body_deployment(body: Body) -> str:
    """The deployment the v1 route names in the body's ``model``."""
    if body.kind == "json" and isinstance(body.json, dict):
        value = body.json.get("model")
    else:
        value = next((v for k, v in reversed(body.form) if k == "model"), None)
    if not isinstance(value, str) or not value:
        raise bad_request("model is required: the deployment's name.", "model")
    return value


def with_model(body: Body, model: str) -> Body:
    """``body`` naming ``model`` where it named the deployment."""
    if body.kind == "json" and isinstance(body.json, dict):
        return Body("json", json={**body.json, "model": model})
    if body.kind == "multipart":
        form = [(k, v) for k, v in body.form if k != "model"] + [("model", model)]
        return Body("multipart", form=form, files=body.files)
    return body


def refuse_unsupported(body: Body) -> None:
    if body.kind == "json" and isinstance(body.json, dict):
        output_format = body.json.get("output_format")
    else:
        output_format = next((v for k, v in reversed(body.form) if k == "output_format"), None)
    if output_format == "webp":
        raise bad_request("WEBP images aren't supported.", "output_format", "invalid_value")
