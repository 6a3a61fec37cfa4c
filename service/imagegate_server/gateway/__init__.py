"""The gRPC side of the gateway, one package per stage of a call.

edge/         the servicer, each RPC's bookkeeping (ids, deadline, log line), the
              guard that turns every ending into a status, lenient wire parsing
requests/     proto parameters and uploaded files -> a validated ImagesRequest
mapping/      the upstream's answers and events -> results and image slices
server.py     the running gateway: its parts started in order, the drain
upstream_set.py   which upstreams it calls: the upstreams file's, OpenAI's, or an emulator
startup_checks.py what it judges of them at start: retired models refused, reachability
services.py   what its server serves (images, quota, health, reflection) and their names
listening.py  the servers' channel options, ports and the plaintext health server
connections/  callers' connections bounded: open files, per address, per connection,
              first-call and idle deadlines
"""
