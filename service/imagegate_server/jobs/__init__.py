"""The jobs stage: long-running image work, idempotent calls, the fair queue.

Between requests and routing (DESIGN.md section 1), only for submitted jobs and
for calls that carry a ``request_id``:

    model, payload     what a job is, as the stores keep it
    fingerprint        what makes a repeated request id "the same request"
    store              the backends' one interface: local (SQLite) or Redis
    runner             each process's runners: claim fairly, admit, run, lease
    execution          one job's request upstream, its result into the store
    service            submit, get, list, wait, cancel, delete; calls run once
    grpc_*, operations_service   the edge: ImageJobsService, google.longrunning

gRPC appears only in the edge modules; everything else is usable from anything.
"""
