"""imagegate: a gRPC gateway to OpenAI's Images API.

The server package. Generated protobuf/gRPC code lives in the separate
``imagegate-client-stubs`` distribution and is imported as ``imagegate.v1``.
"""

__version__ = "0.1.0"
