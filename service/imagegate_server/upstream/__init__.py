"""The HTTP side: one shared httpx client, OpenAI's key, retries, SSE.

Nothing here knows about gRPC; nothing above it knows about HTTP.
"""

from imagegate_server.upstream.client import Body, Upstream, UpstreamConfig
from imagegate_server.upstream.sse import ServerSentEvent, iter_events

__all__ = ["Body", "ServerSentEvent", "Upstream", "UpstreamConfig", "iter_events"]
