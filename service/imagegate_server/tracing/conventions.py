"""What a call's SERVER span and its attempts' CLIENT spans share: the GenAI
operation and provider, the cap on a model's length, the W3C trace context.

No attribute carries a prompt, a token, a key or the request's parameters beyond
the model and ``n``.
"""

from __future__ import annotations

from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

PROVIDER = "openai"
AZURE_PROVIDER = "azure.ai.openai"
"""The GenAI conventions' name for Azure OpenAI, on attempts to an Azure upstream."""
MAX_MODEL = 100
PROPAGATOR = TraceContextTextMapPropagator()


def gen_ai_operation(operation: str) -> str:
    """``generation`` -> ``image_generation`` (also ``image_edit``, ``image_variation``)."""
    return f"image_{operation}"
