from __future__ import annotations

from routing_support import Upstreams, gateway, generation, stub_for


async def test_smoke(upstreams: Upstreams) -> None:
    upstreams.write(
        upstreams.entry("openai-a"), upstreams.entry("openai-b"), upstreams.entry("azure-eu")
    )
    async with gateway(upstreams.file) as running, stub_for(running) as stub:
        seen = set()
        for i in range(30):
            reply = await stub.CreateImage(generation(f"p{i}"), timeout=30)
            seen.add(reply.result.upstream)
        assert seen == {"openai-a", "openai-b", "azure-eu"}, seen
        total = sum(upstreams.generations(n) for n in upstreams.emulators)
        assert total == 30, [(n, upstreams.generations(n)) for n in upstreams.emulators]
