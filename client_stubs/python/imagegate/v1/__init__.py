"""imagegate.v1: generated protobuf messages and gRPC stubs (do not edit).

Regenerate with ``python tools/gen_stubs.py``.
"""
