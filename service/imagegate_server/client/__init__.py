"""The ``imagegate generate | edit | vary`` client commands, over the Python stubs.

The client is a caller like any other: it speaks only the public contract
(``imagegate.v1``) and uses the streaming RPCs, so results of any size arrive
within gRPC's default message limits and partial images can be shown as they come.
Modules: :mod:`.options` (argparse <-> parameter messages), :mod:`.upload` (the
request stream), :mod:`.assemble` (image slices -> images), :mod:`.output` (files),
:mod:`.fetch` (URL results), :mod:`.progress` (stderr display), :mod:`.errors`
(one-line errors), :mod:`.call` (one RPC end to end) and :mod:`.command` (the
sub-commands).
"""
