"""``imagegate bench``: the gateway against a direct httpx baseline, in the same run.

Each scenario starts its own emulator and gateway as separate processes on
loopback, drives both the gateway (grpc.aio) and the emulator directly (httpx) from
this process, and reports ratios against that baseline, never absolute targets alone.
"""
