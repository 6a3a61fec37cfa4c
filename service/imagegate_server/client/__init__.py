"""The ``imagegate generate | edit | vary`` client commands, over the Python stubs.

The client is a caller like any other: it speaks only the public contract
(``imagegate.v1``) and uses the streaming RPCs, so results of any size arrive
within gRPC's default message limits and partial images can be shown as they come.

The path of one command, in order: :mod:`.parsers` (the command lines; all that
``imagegate --help`` loads), :mod:`.options` (options <-> parameter fields) with
:mod:`.option_values` (what an option's text becomes),
:mod:`.request` (the one builder: parameters, declared files, the RPC to start),
:mod:`.upload` (the request stream of files), :mod:`.connection` (target, token,
TLS), :mod:`.call` (the RPC end to end), :mod:`.assemble` (image slices -> images),
:mod:`.fetch` (URL results), :mod:`.output` (files), :mod:`.progress` (stderr) and
:mod:`.errors` (one-line errors); :mod:`.command` runs it all and owns exit codes.
"""
