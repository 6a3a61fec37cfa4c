"""``imagegate bench``: the gateway against direct calls to the emulator, in the same run.

Each scenario starts its own emulator and gateway as separate processes on
loopback, drives both the gateway (gRPC) and the emulator directly (HTTP), with ghz
and hey when they are installed (:mod:`.native`) and this process's Python clients
otherwise, and reports ratios against that baseline and the gateway's CPU time per
call, never absolute targets alone.
"""
