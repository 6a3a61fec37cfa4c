"""What of an upstream's error text may reach a caller: cut to a size a status can
carry, with anything shaped like a key (or the configured keys) replaced."""

from __future__ import annotations

import re
from collections.abc import Iterable

# Anything that looks like an OpenAI key is cut from upstream messages before they
# are relayed: OpenAI's own 401 message quotes part of the key.
_KEY_PATTERN = re.compile(r"sk-[A-Za-z0-9_\-*]{4,}")

# What an upstream error may put into a caller's status, in UTF-8 bytes. A status
# travels in trailing metadata, which gRPC clients cap (8 KiB soft, 16 KiB hard in
# most): the message goes twice (grpc-message, percent-encoded: up to 3 bytes per
# byte, and the details) and a field violation may repeat it, so these keep the
# whole status near 4 KiB at worst, whatever the upstream sent.
MESSAGE_BYTES = 512
"""An upstream error's message (OpenAI's are one or two sentences)."""
FIELD_BYTES = 64
"""An upstream error's ``code``, ``type`` and ``param`` (OpenAI's are short names)."""


def clip(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` of UTF-8, on a character boundary."""
    if len(text) * 4 <= max_bytes:  # even four bytes per character fit
        return text
    encoded = text.encode("utf-8", "replace")
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode("utf-8", "ignore")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with the given secrets (the configured keys, whatever their shape) and
    anything shaped like an OpenAI key replaced, cut to :data:`MESSAGE_BYTES`."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return clip(_KEY_PATTERN.sub("sk-***", text), MESSAGE_BYTES)
